// SPDX-License-Identifier: BSL-1.0
#pragma once
// The custodial ledger: its schema, and the domain operations in the shape
// sertx asks for. A helper that writes takes `sertx::writable_transaction
// auto&`, one that reads takes `sertx::serializable_transaction auto&`; every
// one is plain read-check-write SQL, correct because the transaction around it
// is SERIALIZABLE and re-run whole on conflict. The same SQL runs on
// PostgreSQL and SQLite.

#include "payment_network.hpp"

#include <sertx/effects.hpp>
#include <sertx/migrate.hpp>
#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ledger {

/// The ledger's schema, one migration per step of its history, as a real
/// service grows. sertx::migrate applies what is missing, each step with its
/// version row in one transaction.
inline const sertx::migration schema[] = {
    {1, "accounts and deposits",
     "create table ledger_identity(id varchar(32) primary key);"
     "create table account(id integer primary key, balance bigint not null);"
     "create table deposit(id varchar(40) primary key, account integer not null references account(id),"
     " amount bigint not null)"},
    {2, "transfers",
     "create table transfer(id varchar(40) primary key, src integer not null references account(id),"
     " dst integer not null references account(id), amount bigint not null)"},
    {3, "withdrawals",
     "create table withdrawal(id varchar(40) primary key, account integer not null references account(id),"
     " amount bigint not null);"
     "create index withdrawal_by_account on withdrawal(account)"},
    {4, "refunds",
     "create table refund(withdrawal varchar(40) primary key references withdrawal(id), amount bigint not null)"},
};

inline constexpr int account_count = 32;
inline constexpr long long opening_deposit = 10'000;
inline constexpr long long largest_amount = 1'000;

/// 16 random hex digits: ids that no other run, process or thread makes.
inline std::string random_hex() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (std::uint64_t v = rng(), i = 0; i < 16; ++i, v >>= 4) hex += digits[v & 0xf];
    return hex;
}

/// An operation's id ("tr-", "dp-", "wd-" and 16 hex digits), made outside
/// the body: a re-run of the body repeats the same operation under the same id.
inline std::string new_id(std::string_view prefix) { return std::string(prefix) + "-" + random_hex(); }

/// Takes `amount` from the account when its balance covers it; false otherwise.
bool debit(sertx::writable_transaction auto& tx, int account, long long amount) {
    long long balance = 0;
    tx.sql() << "select balance from account where id = :id", soci::use(account), soci::into(balance);
    if (balance < amount) return false;
    tx.sql() << "update account set balance = balance - :a where id = :id", soci::use(amount), soci::use(account);
    return true;
}

void credit(sertx::writable_transaction auto& tx, int account, long long amount) {
    tx.sql() << "update account set balance = balance + :a where id = :id", soci::use(amount), soci::use(account);
}

void deposit(sertx::writable_transaction auto& tx, const std::string& id, int account, long long amount) {
    credit(tx, account, amount);
    tx.sql() << "insert into deposit(id, account, amount) values(:i, :a, :m)", soci::use(id), soci::use(account),
        soci::use(amount);
}

/// Moves money between two accounts when the source covers it.
bool transfer(sertx::writable_transaction auto& tx, const std::string& id, int src, int dst, long long amount) {
    if (!debit(tx, src, amount)) return false;
    credit(tx, dst, amount);
    tx.sql() << "insert into transfer(id, src, dst, amount) values(:i, :s, :d, :a)", soci::use(id), soci::use(src),
        soci::use(dst), soci::use(amount);
    return true;
}

/// A withdrawal's payout through the payment network: at most once, so sertx
/// refuses to run it inside a transaction body (a re-run would pay twice); it
/// is scheduled in the withdrawal's transaction and dispatched after commit.
/// The payload is "KEY ACCOUNT AMOUNT".
struct payout {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "payout";

    payment_network* network;
    std::atomic<std::uint64_t>* paid;
    /// Kill the process inside this call number (0: never), after the network
    /// received the payout and before sertx records it done: the payout is
    /// then really in doubt.
    std::uint64_t crash_at = 0;
    /// What the crash message tells the reader comes next.
    const char* after_crash = "'sertx-ledger demo --resume' recovers";

    static std::string payload(const std::string& key, int account, long long amount) {
        return key + " " + std::to_string(account) + " " + std::to_string(amount);
    }

    std::string operator()(const std::string& payload) const {
        std::istringstream fields(payload);
        std::string key;
        int account = 0;
        long long amount = 0;
        if (!(fields >> key >> account >> amount))
            throw std::invalid_argument("a payout's payload is 'KEY ACCOUNT AMOUNT', not '" + payload + "'");
        std::string receipt = network->pay(key, account, amount);
        if (paid->fetch_add(1) + 1 == crash_at) {
            std::fprintf(stderr,
                         "\nsertx-ledger: --crash-after %llu: killing this process (SIGKILL) inside payout %s, after "
                         "the network received it and before sertx recorded it; %s\n",
                         static_cast<unsigned long long>(crash_at), key.c_str(), after_crash);
            std::fflush(stderr);
            std::raise(SIGKILL);
        }
        return receipt;
    }

    /// Asked by the journal about a payout that a dead dispatcher left
    /// started, before it goes to an operator: the network's own record
    /// says whether it was paid, as a real provider's lookup by key would.
    sertx::reconciliation reconcile(const std::string& payload) const {
        std::istringstream fields(payload);
        std::string key;
        fields >> key;
        const auto received = network->received();
        if (received.count(key) > 0) return {sertx::reconciliation::happened, "found on the payment network"};
        return {sertx::reconciliation::not_happened, {}};
    }
};

/// Takes the amount from the account and schedules its payout, in the
/// caller's transaction: the debit, the withdrawal and the intent to pay
/// commit together or not at all.
template <class Effects>
bool withdraw(sertx::writable_transaction auto& tx, Effects& journal, const std::string& key, int account,
              long long amount) {
    if (!debit(tx, account, amount)) return false;
    tx.sql() << "insert into withdrawal(id, account, amount) values(:i, :a, :m)", soci::use(key),
        soci::use(account), soci::use(amount);
    journal.template schedule<payout>(tx, key, payout::payload(key, account, amount));
    return true;
}

/// Gives a withdrawal's money back to its account: its payout failed. The
/// refund's primary key makes a second refund of the same withdrawal fail.
void refund(sertx::writable_transaction auto& tx, const std::string& key) {
    int account = 0;
    long long amount = 0;
    tx.sql() << "select account, amount from withdrawal where id = :k", soci::use(key), soci::into(account),
        soci::into(amount);
    if (!tx.sql().got_data()) throw std::invalid_argument("no withdrawal has the key '" + key + "'");
    credit(tx, account, amount);
    tx.sql() << "insert into refund(withdrawal, amount) values(:k, :a)", soci::use(key), soci::use(amount);
}

/// The id the ledger was given when it was opened.
template <class Db>
std::string ledger_id(Db& db) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        std::string id;
        tx.sql() << "select id from ledger_identity", soci::into(id);
        if (!tx.sql().got_data())
            throw usage_error("this database's ledger was never opened; run 'sertx-ledger demo'");
        return id;
    });
}

/// A ledger's identity, and whether this call opened it.
struct opened {
    std::string id;
    bool now = false;
};

/// Opens the ledger once, whoever calls and however often: its identity, the
/// accounts and an opening deposit in each commit under one idempotency key.
template <class Db>
opened open_ledger(Db& db) {
    const std::string fresh = random_hex();
    const bool now = sertx::transact(db, sertx::idempotency_key{"sertx-ledger: open"}, [&](auto& tx) {
        tx.sql() << "insert into ledger_identity(id) values(:id)", soci::use(fresh);
        for (int account = 1; account <= account_count; ++account) {
            tx.sql() << "insert into account(id, balance) values(:id, 0)", soci::use(account);
            deposit(tx, "opening-" + std::to_string(account), account, opening_deposit);
        }
    });
    return {now ? fresh : ledger_id(db), now};
}

/// What the invariants are checked against, read in one serializable snapshot.
struct books {
    long long accounts = 0;
    long long balances = 0;
    long long lowest_balance = 0;
    long long deposited = 0;
    long long withdrawn = 0;
    long long refunded = 0;
};

/// Reads only: any serializable handle will do, a read-only one included.
books count_books(sertx::serializable_transaction auto& tx) {
    books b;
    tx.sql() << "select count(*), coalesce(sum(balance), 0), coalesce(min(balance), 0) from account",
        soci::into(b.accounts), soci::into(b.balances), soci::into(b.lowest_balance);
    tx.sql() << "select coalesce(sum(amount), 0) from deposit", soci::into(b.deposited);
    tx.sql() << "select coalesce(sum(amount), 0) from withdrawal", soci::into(b.withdrawn);
    tx.sql() << "select coalesce(sum(amount), 0) from refund", soci::into(b.refunded);
    return b;
}

template <class Db>
books read_books(Db& db) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) { return count_books(tx); });
}

}  // namespace ledger

// SPDX-License-Identifier: BSL-1.0
#pragma once
// A bank, for any sertx database: accounts whose total never changes,
// writers that move money with read-check-write (read the balance, move the
// amount only when it is covered: the race sertx exists to stop), and a
// reader that checks every balance while they run. Each transfer is logged in
// the same transaction, so the log proves that each committed transfer
// applied exactly once. The same SQL runs on PostgreSQL and SQLite.

#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sertx::test::bank {

struct workload {
    int accounts = 10;
    int writers = 8;
    int transfers_per_writer = 2000;
    long long opening_balance = 1000;
    long long total() const { return opening_balance * accounts; }
};

struct outcome {
    long long transfers = 0;  ///< committed transfers that moved money
    long long refused = 0;    ///< committed transfers refused for want of money
    long long reads = 0;      ///< snapshots of all balances taken while writers ran
    long long bad_reads = 0;  ///< snapshots whose total changed or with a negative balance
    long long errors = 0;     ///< exceptions out of transact, of any kind
    std::string first_error;
    long long final_total = 0;
    long long final_min = 0;
    long long logged = 0;        ///< rows in the transfer log
    long long mismatched = 0;    ///< accounts whose balance the log does not explain
    sertx::stats stats;
    double seconds = 0;

    double per_second() const { return seconds > 0 ? (transfers + refused) / seconds : 0; }
};

/// Creates the accounts, each with the opening balance, and the transfer log.
template <class Db>
void open_accounts(Db& db, const workload& w) {
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "create table account(id integer primary key, balance bigint not null)";
        tx.sql() << "create table transfer(id integer primary key, src integer not null, dst integer not null, "
                    "amount bigint not null)";
        for (int id = 0; id < w.accounts; ++id)
            tx.sql() << "insert into account(id, balance) values(:id, :b)", soci::use(id), soci::use(w.opening_balance);
    });
}

/// Every balance, in one serializable read-only transaction.
template <class Db>
std::vector<long long> balances(Db& db, const workload& w) {
    return sertx::transact<sertx::policy<sertx::read_only, sertx::max_attempts<100>>>(db, [&](auto& tx) {
        std::vector<long long> b(static_cast<std::size_t>(w.accounts));
        tx.sql() << "select balance from account order by id", soci::into(b);
        return b;
    });
}

/// Runs the writers and the reader; `WritePolicy` is the writers' policy.
template <class WritePolicy, class Db>
outcome run(Db& db, const workload& w) {
    outcome out;
    std::atomic<long long> transfers{0}, refused{0}, errors{0}, reads{0}, bad_reads{0};
    std::atomic<bool> writing{true};
    std::mutex error_mutex;
    auto record_error = [&](const std::exception& e) {
        std::lock_guard lock(error_mutex);
        if (errors++ == 0) out.first_error = e.what();
    };

    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> writers;
    for (int writer = 0; writer < w.writers; ++writer) {
        writers.emplace_back([&, writer] {
            std::mt19937 rng(static_cast<unsigned>(writer) * 7919u + 1u);
            std::uniform_int_distribution<int> account(0, w.accounts - 1);
            std::uniform_int_distribution<long long> amount_of(1, w.opening_balance / 4);
            for (int i = 0; i < w.transfers_per_writer; ++i) {
                // Chosen outside the body: a re-run repeats the same transfer.
                const int id = writer * w.transfers_per_writer + i;
                const int src = account(rng);
                const int dst = (src + 1 + account(rng) % (w.accounts - 1)) % w.accounts;
                const long long amount = amount_of(rng);
                try {
                    const bool moved = sertx::transact<WritePolicy>(db, [&](auto& tx) {
                        long long balance = 0;
                        tx.sql() << "select balance from account where id = :id", soci::use(src), soci::into(balance);
                        if (balance < amount) return false;
                        tx.sql() << "update account set balance = balance - :a where id = :id", soci::use(amount),
                            soci::use(src);
                        tx.sql() << "update account set balance = balance + :a where id = :id", soci::use(amount),
                            soci::use(dst);
                        tx.sql() << "insert into transfer(id, src, dst, amount) values(:i, :s, :d, :a)", soci::use(id),
                            soci::use(src), soci::use(dst), soci::use(amount);
                        return true;
                    });
                    ++(moved ? transfers : refused);
                } catch (const std::exception& e) {
                    record_error(e);
                }
            }
        });
    }
    std::thread reader([&] {
        while (writing.load()) {
            try {
                const auto b = balances(db, w);
                ++reads;
                const long long total = std::accumulate(b.begin(), b.end(), 0LL);
                if (static_cast<int>(b.size()) != w.accounts || total != w.total() ||
                    *std::min_element(b.begin(), b.end()) < 0)
                    ++bad_reads;
            } catch (const std::exception& e) {
                record_error(e);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    for (auto& t : writers) t.join();
    writing = false;
    reader.join();
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    out.transfers = transfers;
    out.refused = refused;
    out.errors = errors;
    out.reads = reads;
    out.bad_reads = bad_reads;
    const auto b = balances(db, w);
    out.final_total = std::accumulate(b.begin(), b.end(), 0LL);
    out.final_min = *std::min_element(b.begin(), b.end());
    sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        tx.sql() << "select count(*) from transfer", soci::into(out.logged);
        tx.sql() << "select count(*) from account a where a.balance <> :opening"
                    " - coalesce((select sum(amount) from transfer where src = a.id), 0)"
                    " + coalesce((select sum(amount) from transfer where dst = a.id), 0)",
            soci::use(w.opening_balance), soci::into(out.mismatched);
    });
    out.stats = db.stats();
    return out;
}

/// One line for the test log: throughput and retries by kind.
inline std::string summary(const char* backend, const workload& w, const outcome& o) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "bank on %s: %d writers x %d transfers in %.1f s = %.0f tx/s (%lld moved, %lld refused), "
                  "%lld balance reads; retries: serialization=%llu deadlock=%llu busy=%llu connection_lost=%llu; "
                  "give_ups=%llu",
                  backend, w.writers, w.transfers_per_writer, o.seconds, o.per_second(), o.transfers, o.refused,
                  o.reads, static_cast<unsigned long long>(o.stats.retries_of(sertx::failure::serialization)),
                  static_cast<unsigned long long>(o.stats.retries_of(sertx::failure::deadlock)),
                  static_cast<unsigned long long>(o.stats.retries_of(sertx::failure::busy)),
                  static_cast<unsigned long long>(o.stats.retries_of(sertx::failure::connection_lost)),
                  static_cast<unsigned long long>(o.stats.give_ups));
    return line;
}

}  // namespace sertx::test::bank

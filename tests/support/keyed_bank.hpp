// SPDX-License-Identifier: BSL-1.0
#pragma once
// The bank of bank.hpp with exactly-once transfers, for the fault tests:
// every transfer carries an idempotency key, every worker writes down what
// transact told it (moved, refused, committed before, failed, unknown), and
// the audit holds each of those answers against what the database holds.
// Under faults, an answer is the only thing a caller has; the audit proves
// that each one was true.

#include "bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/common.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

namespace sertx::test::keyed_bank {

using bank::workload;

inline std::string key_of(long long id) { return "transfer-" + std::to_string(id); }

/// The accounts, the transfer log and the commit log.
template <class Db>
void open(Db& db, const workload& w) {
    sertx::install(db);
    bank::open_accounts(db, w);
}

/// How a transfer learns the outcome of a COMMIT whose answer was lost.
enum class resolution {
    key,   ///< an idempotency key
    txid,  ///< resolve_unknown<by_txid> (PostgreSQL)
    none,  ///< nothing: the caller gets commit_unknown
};

/// What the workers were told, by transfer id.
class answers {
public:
    enum kind { moved, refused, committed_before, failed, unknown };

    void add(kind k, long long id, resolution how, const std::string& why = {}) {
        std::lock_guard lock(mutex_);
        by_kind_[k].push_back(id);
        how_[id] = how;
        if (k == failed && !why.empty() && failure_texts_.size() < 8) failure_texts_.insert(why.substr(0, 300));
    }
    std::size_t count(kind k) const {
        std::lock_guard lock(mutex_);
        auto it = by_kind_.find(k);
        return it == by_kind_.end() ? 0 : it->second.size();
    }
    std::vector<long long> ids(kind k) const {
        std::lock_guard lock(mutex_);
        auto it = by_kind_.find(k);
        return it == by_kind_.end() ? std::vector<long long>{} : it->second;
    }
    resolution how(long long id) const {
        std::lock_guard lock(mutex_);
        auto it = how_.find(id);
        return it == how_.end() ? resolution::key : it->second;
    }
    std::size_t acknowledged() const { return count(moved) + count(refused) + count(committed_before); }
    std::size_t total() const { return acknowledged() + count(failed) + count(unknown); }
    /// A few distinct messages of failed transfers, for the test log.
    std::string failure_sample() const {
        std::lock_guard lock(mutex_);
        std::string s;
        for (const auto& t : failure_texts_) s += "\n  " + t;
        return s;
    }

private:
    mutable std::mutex mutex_;
    std::map<kind, std::vector<long long>> by_kind_;
    std::map<long long, resolution> how_;
    std::set<std::string> failure_texts_;
};

/// One transfer, read-check-write as in bank.hpp: moves `amount` when the
/// balance covers it and logs it under `id`. Writes nothing outside the
/// database, so it is safe to re-run.
template <class Tx>
bool transfer_body(Tx& tx, long long id, int src, int dst, long long amount) {
    long long balance = 0;
    tx.sql() << "select balance from account where id = :id", soci::use(src), soci::into(balance);
    if (balance < amount) return false;
    tx.sql() << "update account set balance = balance - :a where id = :id", soci::use(amount), soci::use(src);
    tx.sql() << "update account set balance = balance + :a where id = :id", soci::use(amount), soci::use(dst);
    tx.sql() << "insert into transfer(id, src, dst, amount) values(:i, :s, :d, :a)", soci::use(id), soci::use(src),
        soci::use(dst), soci::use(amount);
    return true;
}

/// Runs one transfer and writes down its answer. `Policy` runs keyed and
/// unresolved transfers; `TxidPolicy` (void: none) those resolved by txid.
template <class Policy, class TxidPolicy = void, class Db>
void transfer(Db& db, answers& out, resolution how, long long id, int src, int dst, long long amount) {
    auto body = [&](auto& tx) { return transfer_body(tx, id, src, dst, amount); };
    try {
        if (how == resolution::key) {
            const std::optional<bool> moved = sertx::transact<Policy>(db, sertx::idempotency_key{key_of(id)}, body);
            out.add(!moved ? answers::committed_before : *moved ? answers::moved : answers::refused, id, how);
            return;
        }
        bool moved = false;
        if constexpr (!std::is_void_v<TxidPolicy>) {
            if (how == resolution::txid) moved = sertx::transact<TxidPolicy>(db, body);
        } else {
            if (how == resolution::txid) throw std::logic_error("test: resolution::txid needs a TxidPolicy");
        }
        if (how == resolution::none) moved = sertx::transact<Policy>(db, body);
        out.add(moved ? answers::moved : answers::refused, id, how);
    } catch (const sertx::commit_unknown&) {
        out.add(answers::unknown, id, how);
    } catch (const std::exception& e) {
        out.add(answers::failed, id, how, e.what());
    }
}

/// `w.writers` threads doing transfers until `stop` is set or each has done
/// `per_writer`; ids are writer * 10'000'000 + n (+ `first_id`), so runs
/// never collide. `how(writer)` says how each writer's transfers resolve a
/// lost COMMIT.
template <class Policy, class TxidPolicy = void, class Db, class How>
void run_writers(Db& db, const workload& w, answers& out, const std::atomic<bool>& stop, int per_writer, How how,
                 unsigned seed = 1, long long first_id = 0) {
    std::vector<std::thread> writers;
    for (int writer = 0; writer < w.writers; ++writer) {
        writers.emplace_back([&, writer] {
            std::mt19937 rng(seed * 7919u + static_cast<unsigned>(writer));
            std::uniform_int_distribution<int> account(0, w.accounts - 1);
            std::uniform_int_distribution<long long> amount_of(1, w.opening_balance / 4);
            const resolution by = how(writer);
            for (int n = 0; n < per_writer && !stop.load(); ++n) {
                // Chosen outside the body: a re-run repeats the same transfer.
                const long long id = first_id + static_cast<long long>(writer) * 10'000'000 + n;
                const int src = account(rng);
                const int dst = (src + 1 + account(rng) % (w.accounts - 1)) % w.accounts;
                transfer<Policy, TxidPolicy>(db, out, by, id, src, dst, amount_of(rng));
            }
        });
    }
    for (auto& t : writers) t.join();
}

/// Every writer with an idempotency key.
template <class Policy, class Db>
void run_writers(Db& db, const workload& w, answers& out, const std::atomic<bool>& stop, int per_writer) {
    run_writers<Policy>(db, w, out, stop, per_writer, [](int) { return resolution::key; });
}

/// What the database holds, read in one transaction.
struct books {
    long long total = 0;
    long long min_balance = 0;
    long long mismatched = 0;  ///< accounts whose balance the transfer log does not explain
    std::set<long long> transfers;  ///< ids in the transfer log
    std::set<std::string> keys;     ///< keys in the commit log (hex, as sertx stores them)
};

template <class Db>
books read_books(Db& db, const workload& w) {
    return sertx::transact<sertx::policy<sertx::read_only, sertx::max_attempts<100>>>(db, [&](auto& tx) {
        books b;
        tx.sql() << "select coalesce(sum(balance), 0), coalesce(min(balance), 0) from account", soci::into(b.total),
            soci::into(b.min_balance);
        tx.sql() << "select count(*) from account a where a.balance <> :opening"
                    " - coalesce((select sum(amount) from transfer where src = a.id), 0)"
                    " + coalesce((select sum(amount) from transfer where dst = a.id), 0)",
            soci::use(w.opening_balance), soci::into(b.mismatched);
        soci::rowset<long long> ids = (tx.sql().prepare << "select id from transfer");
        for (long long id : ids) b.transfers.insert(id);
        soci::rowset<std::string> keys = (tx.sql().prepare << "select key from sertx_commit_log");
        for (const auto& k : keys) b.keys.insert(k);
        return b;
    });
}

/// Every answer held against the books; each count is of violations.
struct verdict {
    long long money_created = 0;       ///< total - opening total
    long long negative_balances = 0;
    long long unexplained_balances = 0;  ///< balances the transfer log does not explain
    long long acknowledged_missing = 0;  ///< keyed and acknowledged, but its key is not in the commit log
    long long moved_not_logged = 0;      ///< "moved", but no transfer row
    long long refused_but_logged = 0;    ///< "refused", but a transfer row
    long long failed_but_present = 0;    ///< failed, yet its transfer row (or key) is there
    long long logged_without_key = 0;    ///< a keyed transfer's row whose key is not in the commit log
    long long unknown_but_resolvable = 0;  ///< commit_unknown for a transfer with a key or txid
    std::size_t checked = 0;             ///< answers checked

    bool holds() const {
        return money_created == 0 && negative_balances == 0 && unexplained_balances == 0 &&
               acknowledged_missing == 0 && moved_not_logged == 0 && refused_but_logged == 0 &&
               failed_but_present == 0 && logged_without_key == 0 && unknown_but_resolvable == 0;
    }
    std::string describe() const {
        return "money_created=" + std::to_string(money_created) + " negative=" + std::to_string(negative_balances) +
               " unexplained=" + std::to_string(unexplained_balances) +
               " acknowledged_missing=" + std::to_string(acknowledged_missing) +
               " moved_not_logged=" + std::to_string(moved_not_logged) +
               " refused_but_logged=" + std::to_string(refused_but_logged) +
               " failed_but_present=" + std::to_string(failed_but_present) +
               " logged_without_key=" + std::to_string(logged_without_key) +
               " unknown_but_resolvable=" + std::to_string(unknown_but_resolvable) + " (" + std::to_string(checked) +
               " answers checked)";
    }
};

template <class Db>
verdict audit(Db& db, const workload& w, const answers& a) {
    const books b = read_books(db, w);
    verdict v;
    v.money_created = b.total - w.total();
    v.negative_balances = b.min_balance < 0 ? 1 : 0;
    v.unexplained_balances = b.mismatched;
    auto keyed = [&](long long id) { return a.how(id) == resolution::key; };
    auto committed = [&](long long id) { return b.keys.count(sertx::detail::to_hex(key_of(id))) == 1; };
    auto logged = [&](long long id) { return b.transfers.count(id) == 1; };
    for (auto k : {answers::moved, answers::refused, answers::committed_before})
        for (long long id : a.ids(k)) {
            ++v.checked;
            if (keyed(id) && !committed(id)) ++v.acknowledged_missing;
            if (k == answers::moved && !logged(id)) ++v.moved_not_logged;
            if (k == answers::refused && logged(id)) ++v.refused_but_logged;
        }
    for (long long id : a.ids(answers::failed)) {
        ++v.checked;
        if (logged(id) || (keyed(id) && committed(id))) ++v.failed_but_present;
    }
    for (long long id : a.ids(answers::unknown)) {
        ++v.checked;
        if (a.how(id) != resolution::none) ++v.unknown_but_resolvable;
    }
    for (long long id : b.transfers)
        if (keyed(id) && !committed(id)) ++v.logged_without_key;
    return v;
}

}  // namespace sertx::test::keyed_bank

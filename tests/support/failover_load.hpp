// SPDX-License-Identifier: BSL-1.0
#pragma once
// Keyed transfers through failovers, as clients send them: each worker keeps
// resubmitting a transfer's key until sertx gives an answer that settles it
// (moved, refused, committed before); an error or commit_unknown is what a
// client sees when the primary dies, and it sends the same key again. Each
// commit is noted with the server port that ran it and the time it was
// acknowledged, so that a test reads the unavailability window of a failover
// (from the kill to the first commit on the new primary).

#include "keyed_bank.hpp"

#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sertx::test::failover_load {

namespace keyed_bank = sertx::test::keyed_bank;

/// A client's patience through a failover: a call outlasts the few seconds a
/// failover takes; the deadline bounds it, and the worker sends its key
/// again after it.
using patient = sertx::policy<sertx::max_attempts<100'000>, sertx::full_jitter<1'000, 200'000>, sertx::deadline<20'000>>;

/// Eight workers over ten accounts, transferring until told to stop.
inline const keyed_bank::workload eight_workers{
    .accounts = 10, .writers = 8, .transfers_per_writer = 0, .opening_balance = 1000};

inline long long unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// What the workers saw.
class record {
public:
    struct commit {
        long long at_ms;  ///< acknowledged, unix ms
        int port;         ///< the server that ran the committed attempt
        long long id;     ///< the transfer
    };
    void committed(int port, long long id) {
        const long long now = unix_ms();
        std::lock_guard lock(mutex_);
        commits_.push_back({now, port, id});
    }
    /// The commits of these transfers, for a report of what went missing.
    std::vector<commit> commits_of(const std::set<long long>& ids) const {
        std::lock_guard lock(mutex_);
        std::vector<commit> out;
        for (const auto& c : commits_)
            if (ids.count(c.id)) out.push_back(c);
        return out;
    }
    /// The first commit at or after `since_ms` on `port`, as unix ms; -1: none.
    long long first_commit_on(int port, long long since_ms) const {
        std::lock_guard lock(mutex_);
        long long first = -1;
        for (const auto& c : commits_)
            if (c.port == port && c.at_ms >= since_ms && (first < 0 || c.at_ms < first)) first = c.at_ms;
        return first;
    }
    std::size_t commits() const {
        std::lock_guard lock(mutex_);
        return commits_.size();
    }
    std::atomic<long long> resubmissions{0};   ///< keys sent again after an error
    std::atomic<long long> unknown_answers{0};  ///< commit_unknown reaching a worker (then resubmitted)
    /// durability_error: require_synchronous_standby refused a primary that
    /// had no synchronous standby at that moment (then resubmitted).
    std::atomic<long long> durability_refusals{0};
    keyed_bank::answers final_answers;          ///< one settled answer per transfer

private:
    mutable std::mutex mutex_;
    std::vector<commit> commits_;
};

/// `writers` threads, each sending transfers `writer * 10'000'000 + n` until
/// `stop`; a transfer is resubmitted under its key until it is settled (after
/// `stop`, five more times at most: then its last answer is kept, failed or
/// unknown, and the audit judges it).
template <class Policy, class Db>
void run(Db& db, const keyed_bank::workload& w, record& out, const std::atomic<bool>& stop) {
    std::vector<std::thread> threads;
    for (int writer = 0; writer < w.writers; ++writer)
        threads.emplace_back([&, writer] {
            std::mt19937 rng(7919u + static_cast<unsigned>(writer));
            std::uniform_int_distribution<int> account(0, w.accounts - 1);
            std::uniform_int_distribution<long long> amount_of(1, w.opening_balance / 4);
            for (long long n = 0; !stop.load(); ++n) {
                const long long id = static_cast<long long>(writer) * 10'000'000 + n;
                const int src = account(rng);
                const int dst = (src + 1 + account(rng) % (w.accounts - 1)) % w.accounts;
                const long long amount = amount_of(rng);
                int after_stop = 0;
                for (bool first = true;; first = false) {
                    if (!first) ++out.resubmissions;
                    int port = 0;
                    auto body = [&](auto& tx) {
                        tx.sql() << "select inet_server_port()", soci::into(port);
                        return keyed_bank::transfer_body(tx, id, src, dst, amount);
                    };
                    keyed_bank::answers::kind kind = keyed_bank::answers::failed;
                    std::string why;
                    try {
                        const std::optional<bool> moved =
                            sertx::transact<Policy>(db, sertx::idempotency_key{keyed_bank::key_of(id)}, body);
                        kind = !moved ? keyed_bank::answers::committed_before
                                      : *moved ? keyed_bank::answers::moved : keyed_bank::answers::refused;
                        if (moved) out.committed(port, id);
                    } catch (const sertx::commit_unknown& e) {
                        ++out.unknown_answers;
                        kind = keyed_bank::answers::unknown;
                        why = e.what();
                    } catch (const sertx::durability_error& e) {
                        ++out.durability_refusals;
                        why = e.what();
                    } catch (const std::exception& e) {
                        why = e.what();
                    }
                    const bool settled = kind != keyed_bank::answers::failed && kind != keyed_bank::answers::unknown;
                    if (settled || (stop.load() && ++after_stop > 5)) {
                        out.final_answers.add(kind, id, keyed_bank::resolution::key, why);
                        break;
                    }
                    // A client backs off before it sends the key again.
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                }
            }
        });
    for (auto& t : threads) t.join();
}

/// `run` on a thread of its own, stopped and joined by `stop()` or, when a
/// check fails first, by the destructor.
template <class Policy, class Db>
class writers {
public:
    writers(Db& db, const keyed_bank::workload& w, record& out)
        : thread_([this, &db, &w, &out] { run<Policy>(db, w, out, stop_); }) {}
    writers(const writers&) = delete;
    writers& operator=(const writers&) = delete;
    ~writers() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace sertx::test::failover_load

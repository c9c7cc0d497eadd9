// SPDX-License-Identifier: BSL-1.0
#pragma once
// Runs that show whether SQLite's writers and the session pool take turns.
// Each runs twice: in the ordinary suite, which checks what must hold on
// any scheduler (no one starved past a generous limit, nothing lost), and in
// the soak suite (label `soak`), which checks how evenly the turns were
// shared, a bound that depends on how the scheduler runs the threads.

#include "databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace sertx::test {

/// A "hog" thread commits as fast as it can (at most hog_limit times) while
/// a "waiter" commits waiter_needs times.
struct writer_queue_run {
    static constexpr int hog_limit = 20'000, waiter_needs = 100;
    int hog_when_waiter_done = -1;  ///< the hog's commits when the waiter had all of its own
};

inline writer_queue_run run_hog_and_waiter() {
    writer_queue_run r;
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("queue.db"), {.pool_size = 2});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table counter(name text primary key, n integer)"; });
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into counter values('hog', 0), ('waiter', 0)"; });
    std::atomic<bool> waiter_done{false};
    std::thread hog([&] {
        for (int i = 0; i < r.hog_limit && !waiter_done; ++i)
            sertx::transact(db, [](auto& tx) { tx.sql() << "update counter set n = n + 1 where name = 'hog'"; });
    });
    for (int i = 0; i < r.waiter_needs; ++i)
        sertx::transact(db, [](auto& tx) { tx.sql() << "update counter set n = n + 1 where name = 'waiter'"; });
    int hog_count = 0;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select n from counter where name = 'hog'", soci::into(hog_count); });
    r.hog_when_waiter_done = hog_count;
    waiter_done = true;
    hog.join();
    return r;
}

/// `threads` threads each run `each` transactions through a pool of one
/// session with a 1 s acquire_timeout.
struct pool_turns_run {
    static constexpr int threads = 4, each = 300;
    int exhausted = 0;        ///< pool_exhausted thrown: a thread waited out acquire_timeout
    int done = 0;             ///< transactions committed
    int counted = 0;          ///< the counter they incremented, read back
    std::vector<int> order;   ///< which thread had the session, in turn

    /// The longest run of one thread's transactions while the others were
    /// still working (the first three quarters): with turns, about one.
    std::size_t longest_run() const {
        std::size_t longest = 0, run = 0;
        for (std::size_t i = 0; i < order.size() && i < static_cast<std::size_t>(threads * each * 3 / 4); ++i) {
            run = i > 0 && order[i] == order[i - 1] ? run + 1 : 1;
            longest = run > longest ? run : longest;
        }
        return longest;
    }
};

inline pool_turns_run run_pool_turns() {
    pool_turns_run r;
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("pool.db"), {.pool_size = 1, .acquire_timeout = std::chrono::milliseconds(1'000)});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table counter(n integer)"; });
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into counter values(0)"; });
    std::atomic<int> exhausted{0}, done{0};
    std::mutex order_mutex;
    std::vector<std::thread> workers;
    for (int t = 0; t < r.threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < r.each; ++i) {
                try {
                    sertx::transact(db, [&](auto& tx) {
                        tx.sql() << "update counter set n = n + 1";
                        std::lock_guard lock(order_mutex);
                        r.order.push_back(t);
                    });
                    ++done;
                } catch (const sertx::pool_exhausted&) {
                    ++exhausted;
                }
            }
        });
    for (auto& w : workers) w.join();
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select n from counter", soci::into(r.counted); });
    r.exhausted = exhausted;
    r.done = done;
    return r;
}

}  // namespace sertx::test

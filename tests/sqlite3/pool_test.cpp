// SPDX-License-Identifier: BSL-1.0
// The session pool both adapters share, on a real SQLite file.

#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

// A thread that gives a session back and comes straight back for another
// would win it again and again, and a waiting thread could wait out its
// acquire_timeout although the sessions were busy only with short work.
TEST_CASE("a pool smaller than its threads serves every thread in turn: none waits out acquire_timeout",
          "[sqlite3][concurrency]") {
    sertx::test::temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("pool.db"),
                                   {.pool_size = 1, .acquire_timeout = std::chrono::milliseconds(1'000)});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table counter(n integer)"; });
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into counter values(0)"; });

    constexpr int threads = 4, each = 300;
    std::atomic<int> exhausted{0}, done{0};
    std::mutex order_mutex;
    std::vector<int> order;  // which thread had the session, in turn
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                try {
                    sertx::transact(db, [&](auto& tx) {
                        tx.sql() << "update counter set n = n + 1";
                        std::lock_guard lock(order_mutex);
                        order.push_back(t);
                    });
                    ++done;
                } catch (const sertx::pool_exhausted&) {
                    ++exhausted;
                }
            }
        });
    for (auto& w : workers) w.join();

    int n = 0;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select n from counter", soci::into(n); });
    // The longest run of one thread's transactions while the others were
    // still working: with turns, about one.
    std::size_t longest = 0, run = 0;
    for (std::size_t i = 0; i < order.size() && i < static_cast<std::size_t>(threads * each * 3 / 4); ++i) {
        run = i > 0 && order[i] == order[i - 1] ? run + 1 : 1;
        longest = run > longest ? run : longest;
    }
    INFO("longest run of one thread: " << longest);
    CHECK(longest <= 10);
    CHECK(exhausted == 0);
    CHECK(done == threads * each);
    CHECK(n == done);
}

// SPDX-License-Identifier: BSL-1.0
// A policy's lock_timeout is ignored on SQLite (soci/sqlite3.hpp): it has no
// row locks to bound, and its one wait, for the write lock, is bounded by
// busy_timeout. A writer whose policy says lock_timeout<1> and allows one
// attempt still waits for another writer and commits.
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <chrono>
#include <future>
#include <thread>

namespace {

// Tells the holder when the waiter is about to take the write lock.
std::promise<void>* waiter_begins = nullptr;
struct announce_begin {
    void on_begin(unsigned attempt) {
        if (attempt == 1 && waiter_begins) waiter_begins->set_value();
    }
};

}  // namespace

TEST_CASE("a policy's lock_timeout does not bound the wait for SQLite's write lock but busy_timeout does",
          "[sqlite3][concurrency]") {
    sertx::test::temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("lock.db"), {.pool_size = 2, .busy_timeout = std::chrono::seconds(10)});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t (id integer primary key, v integer)"; });

    std::promise<void> holding, begins;
    waiter_begins = &begins;
    std::thread holder([&] {
        sertx::transact(db, [&](auto& tx) {
            tx.sql() << "insert into t values (1, 1)";
            holding.set_value();
            begins.get_future().wait();
            // Pacing: the waiter, past on_begin, is blocked on the write lock
            // well within this, and a 1 ms lock_timeout would fail it.
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        });
    });
    holding.get_future().wait();
    using impatient = sertx::policy<sertx::lock_timeout<1>, sertx::max_attempts<1>, sertx::observe<announce_begin>>;
    CHECK_NOTHROW(sertx::transact<impatient>(db, [](auto& tx) { tx.sql() << "insert into t values (2, 2)"; }));
    holder.join();
    waiter_begins = nullptr;

    int rows = 0;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select count(*) from t", soci::into(rows); });
    CHECK(rows == 2);
    CHECK(db.stats().total_retries() == 0);
    CHECK(db.stats().give_ups == 0);
}

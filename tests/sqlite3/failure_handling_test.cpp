// SPDX-License-Identifier: BSL-1.0
// What transact does when something goes wrong on SQLite: permanent errors,
// after_commit, nesting, and a writer that waits too long for the lock.

#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/observer_journal.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using sertx::test::observer_journal;
using sertx::test::recording_observer;
using sertx::test::temp_dir;

namespace {

sertx::sqlite3::database open_with_table(const temp_dir& dir, sertx::sqlite3::options opts = {}) {
    auto db = sertx::sqlite3::open(dir.file("app.db"), opts);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table item(id integer primary key, note text)"; });
    return db;
}

template <class Db>
long long items(Db& db, const std::string& where = "1") {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        long long n = 0;
        tx.sql() << "select count(*) from item where " + where, soci::into(n);
        return n;
    });
}

sertx::database_error provoked_busy() {
    return sertx::database_error(sertx::failure::busy, "5", "sertx: a busy database the test provokes");
}

/// Another connection to the file holding SQLite's write lock (BEGIN
/// IMMEDIATE) from its own thread until released.
class writer_holding_the_lock {
public:
    explicit writer_holding_the_lock(std::string path) : thread_([this, p = std::move(path)] { hold(p); }) {
        locked_.wait();
    }
    ~writer_holding_the_lock() {
        release();
        thread_.join();
    }
    writer_holding_the_lock(const writer_holding_the_lock&) = delete;
    writer_holding_the_lock& operator=(const writer_holding_the_lock&) = delete;

    bool holds() const { return holds_; }
    void release() {
        if (!released_.exchange(true)) release_.count_down();
    }

private:
    void hold(const std::string& path) {
        sqlite_api::sqlite3* c = nullptr;
        holds_ = sqlite_api::sqlite3_open(path.c_str(), &c) == SQLITE_OK &&
                 sqlite_api::sqlite3_exec(c, "BEGIN IMMEDIATE; insert into item values (100, 'held')", nullptr,
                                          nullptr, nullptr) == SQLITE_OK;
        locked_.count_down();
        release_.wait();
        sqlite_api::sqlite3_exec(c, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite_api::sqlite3_close(c);
    }

    std::latch locked_{1}, release_{1};
    std::atomic<bool> released_{false};
    bool holds_ = false;
    std::thread thread_;  // last: starts once the rest exists
};

/// The writer an observer lets go of at the first conflict it sees.
writer_holding_the_lock* let_go_on_conflict = nullptr;
struct releasing_observer {
    void on_conflict(sertx::failure, unsigned, std::chrono::microseconds) {
        if (let_go_on_conflict) let_go_on_conflict->release();
    }
};

}  // namespace

TEST_CASE("a unique violation on SQLite propagates as SOCI's own error, after rollback, without a retry",
          "[sqlite3][failure]") {
    temp_dir dir;
    auto db = open_with_table(dir);
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into item values (1, 'first')"; });
    int runs = 0;
    try {
        sertx::transact(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (2, 'before the failure')";
            tx.sql() << "insert into item values (1, 'duplicate')";
        });
        FAIL("no error");
    } catch (const soci::sqlite3_soci_error& e) {
        CHECK((e.result() & 0xff) == SQLITE_CONSTRAINT);
    }
    CHECK(runs == 1);
    CHECK(items(db) == 1);
    CHECK(items(db, "id = 2") == 0);
    CHECK(db.stats().total_retries() == 0);
}

TEST_CASE("an exception of the body's own propagates unchanged on SQLite, after rollback, without a retry",
          "[sqlite3][failure]") {
    struct insufficient_funds {
        long long missing;
    };
    temp_dir dir;
    auto db = open_with_table(dir);
    int runs = 0;
    try {
        sertx::transact(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (1, 'before the throw')";
            throw insufficient_funds{42};
        });
        FAIL("no exception");
    } catch (const insufficient_funds& e) {
        CHECK(e.missing == 42);
    }
    CHECK(runs == 1);
    CHECK(items(db) == 0);
    CHECK(db.stats().total_retries() == 0);
}

TEST_CASE("after_commit actions on SQLite run once, after the commit, never for an attempt that rolled back",
          "[sqlite3][failure]") {
    temp_dir dir;
    auto db = open_with_table(dir);
    std::vector<std::string> ran;
    sertx::transact<sertx::policy<sertx::max_attempts<3>, sertx::no_backoff>>(db, [&](auto& tx) {
        const unsigned attempt = tx.attempt();
        tx.sql() << "insert into item values (1, 'paid')";
        tx.after_commit([&, attempt] {
            // Visible to another connection: the commit is done when this runs.
            ran.push_back("attempt " + std::to_string(attempt) + " saw " + std::to_string(items(db)));
        });
        if (attempt == 1) throw provoked_busy();
    });
    CHECK(ran == std::vector<std::string>{"attempt 2 saw 1"});

    ran.clear();
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        tx.after_commit([&] { ran.push_back("must not run"); });
                                        tx.sql() << "insert into item values (1, 'duplicate')";
                                    }),
                    soci::sqlite3_soci_error);
    CHECK(ran.empty());
}

TEST_CASE("a transact inside another on the same thread is refused on SQLite with sertx::error",
          "[sqlite3][failure]") {
    temp_dir dir;
    auto db = open_with_table(dir, {.pool_size = 2});
    std::string refused;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "insert into item values (1, 'outer')";
        try {
            // On a one-writer database this inner writer would wait for the
            // outer one forever (busy_timeout, then again on every retry).
            sertx::transact(db, [](auto& inner) { inner.sql() << "insert into item values (2, 'inner')"; });
        } catch (const sertx::error& e) {
            refused = e.what();
        }
    });
    CHECK(refused.rfind("sertx:", 0) == 0);
    CHECK(refused.find("inside another transact()") != std::string::npos);
    CHECK(items(db) == 1);
}

TEST_CASE("a nested transact with nested<savepoint> that fails on SQLite rolls back only its own part",
          "[sqlite3][failure]") {
    temp_dir dir;
    auto db = open_with_table(dir);
    using inner = sertx::policy<sertx::nested<sertx::savepoint>>;
    bool inner_failed = false;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "insert into item values (1, 'outer, before')";
        sertx::transact<inner>(db, [](auto& in) { in.sql() << "insert into item values (2, 'inner, kept')"; });
        try {
            sertx::transact<inner>(db, [](auto& in) {
                in.sql() << "insert into item values (3, 'inner, undone')";
                in.sql() << "insert into item values (1, 'duplicate')";
            });
        } catch (const soci::sqlite3_soci_error&) {
            inner_failed = true;
        }
        tx.sql() << "insert into item values (4, 'outer, after')";
    });
    CHECK(inner_failed);
    CHECK(items(db) == 3);
    CHECK(items(db, "id in (1, 2, 4)") == 3);
    CHECK(items(db, "id = 3") == 0);
}

TEST_CASE("a writer kept waiting past busy_timeout by another connection is retried as busy, then commits",
          "[sqlite3][failure][concurrency]") {
    temp_dir dir;
    auto db = open_with_table(dir, {.pool_size = 1, .busy_timeout = std::chrono::milliseconds(100)});
    writer_holding_the_lock other(dir.file("app.db"));
    REQUIRE(other.holds());
    let_go_on_conflict = &other;
    observer_journal::clear();
    using patient = sertx::policy<sertx::max_attempts<20>, sertx::no_backoff,
                                  sertx::observe<recording_observer, releasing_observer>>;
    const unsigned attempts = sertx::transact<patient>(db, [](auto& tx) {
        tx.sql() << "insert into item values (1, 'after the wait')";
        return tx.attempt();
    });
    let_go_on_conflict = nullptr;
    CHECK(attempts >= 2u);
    const auto events = observer_journal::take();
    REQUIRE(events.size() >= 2u);
    CHECK(events[0] == "begin 1");
    CHECK(events[1] == "conflict busy 1");
    CHECK(db.stats().retries_of(sertx::failure::busy) == attempts - 1);
    CHECK(items(db) == 1);
}

TEST_CASE("a writer kept waiting past busy_timeout on every attempt gives up with last_failure busy",
          "[sqlite3][failure][concurrency]") {
    temp_dir dir;
    auto db = open_with_table(dir, {.pool_size = 1, .busy_timeout = std::chrono::milliseconds(50)});
    writer_holding_the_lock other(dir.file("app.db"));
    REQUIRE(other.holds());
    int runs = 0;
    try {
        sertx::transact<sertx::policy<sertx::max_attempts<2>, sertx::no_backoff>>(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (1, 'never')";
        });
        FAIL("no exception");
    } catch (const sertx::retries_exhausted& e) {
        CHECK(e.attempts() == 2u);
        CHECK(e.last_failure() == sertx::failure::busy);
        try {
            std::rethrow_if_nested(e);
            FAIL("no nested cause");
        } catch (const sertx::database_error& cause) {
            CHECK(cause.kind() == sertx::failure::busy);
            CHECK((std::stoi(cause.code()) & 0xff) == SQLITE_BUSY);
        }
    }
    CHECK(runs == 0);  // BEGIN IMMEDIATE itself waited: the body never started
    other.release();
    CHECK(db.stats().retries_of(sertx::failure::busy) == 1);  // the second failure was given up on, not retried
    CHECK(db.stats().give_ups == 1);
    CHECK(items(db) == 0);
}

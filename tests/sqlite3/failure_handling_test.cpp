// SPDX-License-Identifier: BSL-1.0
// What transact does when something goes wrong on SQLite: permanent errors,
// after_commit, nesting, and a writer that waits too long for the lock.

#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/failure_cases.hpp"
#include "support/observer_journal.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

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

/// The database of open_with_table, as support/failure_cases.hpp uses it.
struct SQLite : sertx::test::sqlite3_backend {
    using soci_error = soci::sqlite3_soci_error;
    static constexpr int unique_violation = SQLITE_CONSTRAINT;
    static int code_of(const soci_error& e) { return e.result() & 0xff; }
    // A busy database as SQLite would report it, thrown by the body itself.
    static sertx::database_error retried_failure() {
        return sertx::database_error(sertx::failure::busy, "5", "sertx: a busy database the test provokes");
    }

    SQLite() : db(open_with_table(dir)) {}
    explicit SQLite(std::size_t pool_size) : db(open_with_table(dir, {.pool_size = pool_size})) {}
    long long items(const std::string& where = "1") { return ::items(db, where); }

    temp_dir dir;
    sertx::sqlite3::database db;
};

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

SERTX_FAILURE_CASES(SQLite, "[sqlite3]")

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

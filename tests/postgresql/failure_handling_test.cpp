// SPDX-License-Identifier: BSL-1.0
// What transact does when something goes wrong on PostgreSQL: errors the body
// swallows, permanent errors, a session killed under it, a budget spent,
// after_commit, nesting, notices, observers, an empty pool.

#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/failure_cases.hpp"
#include "support/observer_journal.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <soci/postgresql/soci-postgresql.h>  // soci::postgresql_soci_error

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using sertx::test::observer_journal;
using sertx::test::pg_admin_value;
using sertx::test::recording_observer;

namespace {

using no_wait = sertx::policy<sertx::max_attempts<3>, sertx::no_backoff>;

sertx::postgresql::database open_with_table(const sertx::test::pg_database& pg, sertx::postgresql::options opts = {}) {
    auto db = sertx::postgresql::open(pg.conninfo(), opts);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table item(id integer primary key, note text)"; });
    return db;
}

long long items(const sertx::test::pg_database& pg, const std::string& where = "true") {
    return std::stoll(pg_admin_value(pg.conninfo(), "select count(*) from item where " + where));
}

// A conflict as the database would report it, thrown by the body itself.
sertx::database_error provoked_conflict() {
    return sertx::database_error(sertx::failure::serialization, "40001", "sertx: a conflict the test provokes");
}

bool starts_with_sertx(const std::string& s) { return s.rfind("sertx:", 0) == 0; }

// Sends what the process writes to stderr into a file, for one scope.
class stderr_capture {
public:
    explicit stderr_capture(std::string path) : path_(std::move(path)) {
        std::fflush(stderr);
        saved_ = ::dup(2);
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~stderr_capture() { restore(); }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;

    std::string text() {
        restore();
        std::ifstream in(path_);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    std::string path_;
    int saved_ = -1;
};

/// The database of open_with_table, as support/failure_cases.hpp uses it.
struct PostgreSQL : sertx::test::postgresql_backend {
    using soci_error = soci::postgresql_soci_error;
    static constexpr const char* unique_violation = "23505";
    static std::string code_of(const soci_error& e) { return e.sqlstate(); }
    static sertx::database_error retried_failure() { return provoked_conflict(); }

    PostgreSQL() : db(open_with_table(pg)) {}
    explicit PostgreSQL(std::size_t pool_size) : db(open_with_table(pg, {.pool_size = pool_size})) {}
    long long items(const std::string& where = "true") const { return ::items(pg, where); }

    sertx::test::pg_database pg;
    sertx::postgresql::database db;
};

}  // namespace

TEST_CASE("a failed statement the body swallows fails the transaction: nothing of it is committed",
          "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    const auto commits = db.stats().commits;
    int runs = 0;
    try {
        sertx::transact(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (1, 'written before the failure')";
            try {
                tx.sql() << "select 1 / 0";
            } catch (const soci::soci_error&) {
                // swallowed: PostgreSQL has aborted the transaction all the same
            }
        });
        FAIL("transact reported a commit");
    } catch (const sertx::database_error& e) {
        CHECK(e.kind() == sertx::failure::permanent);
        CHECK(e.code() == "25P02");
        CHECK(starts_with_sertx(e.what()));
    }
    CHECK(runs == 1);
    CHECK(items(pg) == 0);
    CHECK(db.stats().commits == commits);
}

SERTX_FAILURE_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("a session terminated in the middle of a body is discarded and the body re-run on a fresh one",
          "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg, {.pool_size = 1});
    const auto before = db.stats();
    int first_pid = 0;
    const auto [attempt, pid] = sertx::transact<no_wait>(db, [&](auto& tx) {
        int me = 0;
        tx.sql() << "select pg_backend_pid()", soci::into(me);
        if (tx.attempt() == 1) {
            first_pid = me;  // the timeout makes it wait until the backend is gone
            CHECK(pg_admin_value(pg.conninfo(), "select pg_terminate_backend(" + std::to_string(me) + ", 5000)") == "t");
        }
        const unsigned attempt = tx.attempt();
        // named: SOCI runs the statement when the full expression ends, after
        // a temporary bound with use() would already be gone
        const std::string note = std::to_string(attempt);
        tx.sql() << "insert into item values (1, :a)", soci::use(note);
        return std::pair(attempt, me);
    });
    CHECK(attempt == 2u);
    CHECK(pid != first_pid);
    CHECK(items(pg) == 1);
    CHECK(items(pg, "note = '2'") == 1);
    const auto after = db.stats();
    CHECK(after.retries_of(sertx::failure::connection_lost) == before.retries_of(sertx::failure::connection_lost) + 1);
    CHECK(after.sessions_discarded == before.sessions_discarded + 1);
    CHECK(after.sessions_opened == before.sessions_opened + 1);

    // The dead session never came back: with one session in the pool, every
    // later transaction runs at once on the new one.
    for (int i = 0; i < 5; ++i) {
        const auto [attempt_later, pid_later] = sertx::transact<no_wait>(db, [](auto& tx) {
            int me = 0;
            tx.sql() << "select pg_backend_pid()", soci::into(me);
            return std::pair(tx.attempt(), me);
        });
        CHECK(attempt_later == 1u);
        CHECK(pid_later == pid);
    }
    CHECK(db.stats().sessions_discarded == after.sessions_discarded);
}

TEST_CASE("a session terminated while idle in the pool is replaced before a body runs on it",
          "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg, {.pool_size = 1});
    auto backend_pid = [&] {
        return sertx::transact<no_wait>(db, [](auto& tx) {
            int me = 0;
            tx.sql() << "select pg_backend_pid()", soci::into(me);
            return std::pair(tx.attempt(), me);
        });
    };
    const int idle_pid = backend_pid().second;
    const auto before = db.stats();
    REQUIRE(pg_admin_value(pg.conninfo(), "select pg_terminate_backend(" + std::to_string(idle_pid) + ", 5000)") == "t");
    const auto [attempt, pid] = backend_pid();
    CHECK(attempt == 1u);  // no attempt was spent on the dead session
    CHECK(pid != idle_pid);
    CHECK(db.stats().sessions_discarded == before.sessions_discarded + 1);
    CHECK(db.stats().total_retries() == before.total_retries());
}

TEST_CASE("retries_exhausted carries the attempts, the last failure and the cause nested", "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    int runs = 0;
    try {
        sertx::transact<no_wait>(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (1, 'rolled back each time')";
            throw provoked_conflict();
        });
        FAIL("no exception");
    } catch (const sertx::retries_exhausted& e) {
        CHECK(e.attempts() == 3u);
        CHECK(e.last_failure() == sertx::failure::serialization);
        CHECK(starts_with_sertx(e.what()));
        CHECK(std::string(e.what()).find("max_attempts") != std::string::npos);
        try {
            std::rethrow_if_nested(e);
            FAIL("no nested cause");
        } catch (const sertx::database_error& cause) {
            CHECK(cause.code() == "40001");
        }
    }
    CHECK(runs == 3);
    CHECK(items(pg) == 0);
    const auto s = db.stats();
    CHECK(s.retries_of(sertx::failure::serialization) == 2);  // the third failure was not retried
    CHECK(s.give_ups == 1);
}

TEST_CASE("a real serialization failure from PostgreSQL, when the budget is spent, is nested in retries_exhausted",
          "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into item values (1, 'v0')"; });
    // The body reads, then another transaction updates the row and commits,
    // then the body updates it: 40001 (concurrent update) every time.
    try {
        sertx::transact<sertx::policy<sertx::max_attempts<2>, sertx::no_backoff>>(db, [&](auto& tx) {
            std::string note;
            tx.sql() << "select note from item where id = 1", soci::into(note);
            sertx::test::pg_admin_exec(pg.conninfo(), "update item set note = note || '+' where id = 1");
            tx.sql() << "update item set note = 'mine' where id = 1";
        });
        FAIL("no exception");
    } catch (const sertx::retries_exhausted& e) {
        CHECK(e.attempts() == 2u);
        CHECK(e.last_failure() == sertx::failure::serialization);
        try {
            std::rethrow_if_nested(e);
            FAIL("no nested cause");
        } catch (const soci::postgresql_soci_error& cause) {
            CHECK(cause.sqlstate() == "40001");
        }
    }
    CHECK(items(pg, "note = 'v0++'") == 1);
}

TEST_CASE("server notices reach the observers and the counters, not stderr", "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    sertx::test::temp_dir dir;
    auto db = open_with_table(pg);
    const auto before = db.stats().notices;
    observer_journal::clear();
    stderr_capture capture(dir.file("stderr.txt"));
    sertx::transact<sertx::policy<sertx::observe<recording_observer>>>(db, [](auto& tx) {
        tx.sql() << "do $$ begin raise notice 'hello'; raise warning 'careful'; end $$";
    });
    const std::string stderr_text = capture.text();
    CHECK(stderr_text.find("hello") == std::string::npos);
    CHECK(stderr_text.find("careful") == std::string::npos);
    const auto events = observer_journal::take();
    CHECK(std::count_if(events.begin(), events.end(), [](const std::string& e) {
              return e.rfind("notice", 0) == 0 && e.find("hello") != std::string::npos;
          }) == 1);
    CHECK(std::count_if(events.begin(), events.end(), [](const std::string& e) {
              return e.rfind("notice", 0) == 0 && e.find("careful") != std::string::npos;
          }) == 1);
    CHECK(db.stats().notices == before + 2);
}

TEST_CASE("observers see begin, conflict, commit and give-up in order", "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    using observed = sertx::policy<sertx::max_attempts<2>, sertx::no_backoff, sertx::observe<recording_observer>>;

    observer_journal::clear();
    sertx::transact<observed>(db, [](auto& tx) {
        if (tx.attempt() == 1) throw provoked_conflict();
    });
    CHECK(observer_journal::take() ==
          std::vector<std::string>{"begin 1", "conflict serialization 1", "begin 2", "commit 2"});

    observer_journal::clear();
    CHECK_THROWS_AS(sertx::transact<observed>(db, [](auto&) { throw provoked_conflict(); }), sertx::retries_exhausted);
    CHECK(observer_journal::take() ==
          std::vector<std::string>{"begin 1", "conflict serialization 1", "begin 2", "give_up serialization 2"});
}

TEST_CASE("a transaction that finds every session busy for acquire_timeout gets pool_exhausted",
          "[postgresql][failure][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg, {.pool_size = 1, .acquire_timeout = std::chrono::milliseconds(200)});
    std::latch holding(1), release(1);
    std::thread holder([&] {
        sertx::transact(db, [&](auto& tx) {
            tx.sql() << "insert into item values (1, 'held')";
            holding.count_down();
            release.wait();
        });
    });
    holding.wait();
    std::string message;
    try {
        sertx::transact(db, [](auto& tx) { tx.sql() << "insert into item values (2, 'never')"; });
    } catch (const sertx::pool_exhausted& e) {
        message = e.what();
    }
    release.count_down();
    holder.join();
    CHECK(starts_with_sertx(message));
    CHECK(message.find("200 ms") != std::string::npos);
    CHECK(items(pg) == 1);
    // The session came back: the pool works again.
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into item values (2, 'now')"; });
    CHECK(items(pg) == 2);
}

TEST_CASE("a deadline gives up with retries_exhausted before max_attempts", "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    using hurried =
        sertx::policy<sertx::max_attempts<1000>, sertx::deadline<100>, sertx::exponential<10'000, 10'000>>;
    int runs = 0;
    try {
        sertx::transact<hurried>(db, [&](auto&) {
            ++runs;
            throw provoked_conflict();
        });
        FAIL("no exception");
    } catch (const sertx::retries_exhausted& e) {
        CHECK(e.attempts() < 1000u);
        CHECK(static_cast<int>(e.attempts()) == runs);
        CHECK(e.last_failure() == sertx::failure::serialization);
        CHECK(std::string(e.what()).find("deadline") != std::string::npos);
    }
    CHECK(db.stats().give_ups == 1);
}

// PostgreSQL can report a lock timeout that fires as the lock is granted as a
// plain cancel (57014 "due to user request"); a cancel of the backend's own
// makes the same error on demand.
TEST_CASE("a cancelled statement is retried as busy under a lock_timeout, and permanent without one",
          "[postgresql][failure]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with_table(pg);
    const auto cancel_first = [](int& runs) {
        return [&runs](auto& tx) {
            if (++runs == 1) tx.sql() << "select pg_cancel_backend(pg_backend_pid()), pg_sleep(5)";
            tx.sql() << "insert into item values (1, 'after the cancel')";
        };
    };
    int runs = 0;
    sertx::transact<sertx::policy<sertx::max_attempts<3>, sertx::no_backoff, sertx::lock_timeout<20>>>(
        db, cancel_first(runs));
    CHECK(runs == 2);
    CHECK(items(pg) == 1);

    runs = 0;
    CHECK_THROWS(sertx::transact<sertx::policy<sertx::max_attempts<3>, sertx::no_backoff, sertx::lock_timeout<0>>>(
        db, cancel_first(runs)));
    CHECK(runs == 1);
    CHECK(items(pg) == 1);
}

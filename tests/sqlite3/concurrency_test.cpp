// SPDX-License-Identifier: BSL-1.0
// Several connections writing one SQLite file at once: SQLite runs one writer
// at a time, and sertx makes each writer wait for its turn (BEGIN IMMEDIATE in
// the busy handler) instead of failing or racing.

#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using sertx::test::temp_dir;

namespace {

constexpr int threads = 4;

/// Runs `work(thread)` on `threads` threads; returns how many exceptions
/// escaped, and the first one's message.
template <class Work>
std::pair<int, std::string> on_threads(Work work) {
    std::atomic<int> errors{0};
    std::mutex mutex;
    std::string first;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            try {
                work(t);
            } catch (const std::exception& e) {
                std::lock_guard lock(mutex);
                if (errors++ == 0) first = e.what();
            }
        });
    for (auto& t : pool) t.join();
    return {errors.load(), first};
}

template <class Db>
long long value_of(Db& db, const char* query) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        long long v = 0;
        tx.sql() << query, soci::into(v);
        return v;
    });
}

}  // namespace

TEST_CASE("four connections writing one file at once get no SQLITE_BUSY and lose no row",
          "[sqlite3][concurrency]") {
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("rows.db"), {.pool_size = threads});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table entry(writer integer not null, n integer not null)"; });
    constexpr int per_thread = 250;
    const auto [errors, first_error] = on_threads([&](int writer) {
        for (int n = 0; n < per_thread; ++n)
            sertx::transact(db, [&](auto& tx) {
                tx.sql() << "insert into entry(writer, n) values(:w, :n)", soci::use(writer), soci::use(n);
            });
    });
    INFO(first_error);
    CHECK(errors == 0);
    CHECK(value_of(db, "select count(*) from entry") == threads * per_thread);
    CHECK(value_of(db, "select count(distinct writer * 1000 + n) from entry") == threads * per_thread);
    CHECK(db.stats().give_ups == 0);
    CHECK(db.stats().sessions_opened == threads);
}

TEST_CASE("read-then-write increments from four threads are exact: BEGIN IMMEDIATE prevents lost updates",
          "[sqlite3][concurrency]") {
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("counter.db"), {.pool_size = threads});
    sertx::transact(db, [](auto& tx) {
        tx.sql() << "create table counter(id integer primary key, value integer not null)";
        tx.sql() << "insert into counter values (1, 0)";
    });
    constexpr int per_thread = 500;
    const auto [errors, first_error] = on_threads([&](int) {
        for (int i = 0; i < per_thread; ++i)
            sertx::transact(db, [](auto& tx) {
                long long seen = 0;
                tx.sql() << "select value from counter where id = 1", soci::into(seen);
                const long long next = seen + 1;  // computed here, not by the database
                tx.sql() << "update counter set value = :v where id = 1", soci::use(next);
            });
    });
    INFO(first_error);
    CHECK(errors == 0);
    CHECK(value_of(db, "select value from counter where id = 1") == threads * per_thread);
    CHECK(db.stats().give_ups == 0);
}

TEST_CASE("without BEGIN IMMEDIATE, a read-then-write overtaken by another writer fails with SQLITE_BUSY_SNAPSHOT",
          "[sqlite3][concurrency]") {
    // What sertx's BEGIN IMMEDIATE avoids, shown on two plain connections to
    // a file sertx set up (WAL): both read in deferred transactions, one
    // writes and commits, the other cannot upgrade its old snapshot.
    using namespace sqlite_api;
    temp_dir dir;
    const std::string path = dir.file("deferred.db");
    {
        auto db = sertx::sqlite3::open(path, {.pool_size = 1});
        sertx::transact(db, [](auto& tx) {
            tx.sql() << "create table counter(id integer primary key, value integer not null)";
            tx.sql() << "insert into counter values (1, 0)";
        });
    }
    sqlite_api::sqlite3 *first = nullptr, *second = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &first) == SQLITE_OK);
    REQUIRE(sqlite3_open(path.c_str(), &second) == SQLITE_OK);
    sqlite3_extended_result_codes(second, 1);
    const char* read = "select value from counter";
    REQUIRE(sqlite3_exec(first, "BEGIN DEFERRED", nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(first, read, nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(second, "BEGIN DEFERRED", nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(second, read, nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(sqlite3_exec(first, "update counter set value = 1; COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(sqlite3_exec(second, "update counter set value = 1", nullptr, nullptr, nullptr) == SQLITE_BUSY_SNAPSHOT);
    sqlite3_exec(second, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(first);
    sqlite3_close(second);
}

TEST_CASE("a statement error the body swallows on SQLite undoes that statement only, and the rest commits",
          "[sqlite3][failure]") {
    // Unlike PostgreSQL, SQLite keeps the transaction open after a failed
    // statement: the body that catches the error decides, as with a savepoint.
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("swallow.db"), {.pool_size = 1});
    sertx::transact(db, [](auto& tx) {
        tx.sql() << "create table item(id integer primary key, note text)";
        tx.sql() << "insert into item values (1, 'first')";
    });
    bool failed = false;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "insert into item values (2, 'kept')";
        try {
            tx.sql() << "insert into item values (1, 'duplicate')";
        } catch (const soci::soci_error&) {
            failed = true;
        }
    });
    CHECK(failed);
    CHECK(value_of(db, "select count(*) from item") == 2);
}

TEST_CASE("a statement that makes SQLite roll the transaction back, swallowed by the body, commits nothing",
          "[sqlite3][failure]") {
    // After such a statement SQLite is in autocommit mode: whatever the body
    // runs next would commit on its own, unless sertx refuses it.
    const bool goes_on_writing = GENERATE(false, true);
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("rollback.db"), {.pool_size = 1});
    sertx::transact(db, [](auto& tx) {
        tx.sql() << "create table item(id integer primary key, note text)";
        tx.sql() << "insert into item values (1, 'first')";
    });
    const auto commits = db.stats().commits;
    int runs = 0;
    std::string error;
    try {
        sertx::transact(db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (2, 'before the failure')";
            try {
                tx.sql() << "insert or rollback into item values (1, 'duplicate')";
            } catch (const soci::soci_error&) {
                // swallowed: SQLite has rolled the whole transaction back all the same
            }
            if (goes_on_writing) tx.sql() << "insert into item values (3, 'after the failure')";
        });
        FAIL("transact reported a commit");
    } catch (const std::exception& e) {
        error = e.what();
    }
    INFO(error);
    CHECK(runs == 1);
    CHECK(db.stats().commits == commits);
    CHECK(value_of(db, "select count(*) from item") == 1);  // neither 2 nor 3
}

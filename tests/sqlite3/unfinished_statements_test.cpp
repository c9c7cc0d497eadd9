// SPDX-License-Identifier: BSL-1.0
// Statements a body leaves running when it returns (SOCI leaves a prepared
// SELECT on its row): sertx resets them before COMMIT. Resetting only those
// in the way, after COMMIT, cost more than the walk it saved: committing
// with cursors open makes SQLite save each cursor's position.
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <chrono>

using sertx::test::temp_dir;

namespace {

/// The first row of a statement that has more: SOCI leaves it running.
struct first_row {
    explicit first_row(soci::session& sql, const char* query) : run((sql.prepare << query, soci::into(n))) {}
    int n = 0;
    soci::statement run;
};
struct first_number : first_row {
    explicit first_number(soci::session& sql) : first_row(sql, "select n from numbers order by n") {}
};
struct first_inserted : first_row {
    explicit first_inserted(soci::session& sql)
        : first_row(sql, "insert into numbers values (10), (11) returning n") {}
};

sertx::sqlite3::database numbers(temp_dir& dir) {
    auto db = sertx::sqlite3::open(dir.file("numbers.db"), {.pool_size = 1});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table numbers(n integer)"; });
    sertx::transact(db, [](auto& tx) { tx.sql() << "insert into numbers values (1), (2), (3)"; });
    return db;
}

int transaction_state(sertx::sqlite3::database& db) {
    auto lease = db.acquire(std::chrono::steady_clock::time_point::max());
    return sqlite_api::sqlite3_txn_state(lease.connection().native_handle(), nullptr);
}

}  // namespace

TEST_CASE("a prepared SELECT left before its last row keeps no read transaction open past COMMIT", "[sqlite3]") {
    temp_dir dir;
    auto db = numbers(dir);
    sertx::transact(db, [](auto& tx) {
        auto& first = sertx::prepared<first_number>(tx);
        first.run.execute(true);
        CHECK(first.n == 1);
    });
    // Left open, it would hold an old snapshot: the next BEGIN IMMEDIATE of
    // this connection would fail with SQLITE_BUSY at once.
    CHECK(transaction_state(db) == SQLITE_TXN_NONE);
    CHECK_NOTHROW(sertx::transact(db, [](auto& tx) { tx.sql() << "insert into numbers values (4)"; }));
}

TEST_CASE("a statement still writing when the body returns does not keep the transaction from committing",
          "[sqlite3]") {
    temp_dir dir;
    auto db = numbers(dir);
    sertx::transact(db, [](auto& tx) {
        auto& inserted = sertx::prepared<first_inserted>(tx);
        inserted.run.execute(true);  // one row of two read: the statement still runs
        CHECK(inserted.n == 10);
    });
    CHECK(transaction_state(db) == SQLITE_TXN_NONE);
    int count = 0;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select count(*) from numbers where n >= 10", soci::into(count); });
    CHECK(count == 2);
}

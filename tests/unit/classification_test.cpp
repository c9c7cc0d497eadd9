// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"

#include <sertx/postgresql/backend.hpp>
#include <sertx/sqlite3/backend.hpp>

#include <sqlite3.h>

using sertx::failure;
using sertx::postgresql::classify_sqlstate;
constexpr auto classify_sqlite = &sertx::sqlite3::classify_result;

TEST_CASE("PostgreSQL SQLSTATEs map onto failures as DESIGN section 5 says", "[classify]") {
    CHECK(classify_sqlstate("40001") == failure::serialization);
    CHECK(classify_sqlstate("40P01") == failure::deadlock);
    CHECK(classify_sqlstate("55P03") == failure::busy);
    CHECK(classify_sqlstate("40003") == failure::commit_unknown);
    CHECK(classify_sqlstate("08000") == failure::connection_lost);
    CHECK(classify_sqlstate("08006") == failure::connection_lost);
    CHECK(classify_sqlstate("08P01") == failure::connection_lost);
    CHECK(classify_sqlstate("57P01") == failure::connection_lost);
    CHECK(classify_sqlstate("57P02") == failure::connection_lost);
    CHECK(classify_sqlstate("57P03") == failure::connection_lost);
    // unique violations under SERIALIZABLE are the body's to decide
    CHECK(classify_sqlstate("23505") == failure::permanent);
    CHECK(classify_sqlstate("42P01") == failure::permanent);
    CHECK(classify_sqlstate("57014") == failure::permanent);  // statement timeout
    CHECK(classify_sqlstate("") == failure::permanent);
}

TEST_CASE("PostgreSQL's table reads the connection's state beside the SQLSTATE", "[classify]") {
    using sertx::postgresql::failure_context;
    // gone: lost before COMMIT is retried, lost during COMMIT is unknown
    CHECK(classify_sqlstate("40001", failure_context{.connected = false}) == failure::connection_lost);
    CHECK(classify_sqlstate("", failure_context{.connected = false, .commit_sent = true}) == failure::commit_unknown);
    // a cancel is a lost lock timeout only while one may have fired
    CHECK(classify_sqlstate("57014", failure_context{.lock_timeout_may_cancel = true}) == failure::busy);
    CHECK(classify_sqlstate("57014", failure_context{.lock_timeout_may_cancel = false}) == failure::permanent);
    // the key's insert meeting a key committed after its lookup (which runs
    // before the snapshot) is a conflict that the re-run resolves; any other
    // unique violation stays the body's
    CHECK(classify_sqlstate("23505", failure_context{.key_taken = true}) == failure::serialization);
    CHECK(classify_sqlstate("23505", failure_context{.key_taken = false}) == failure::permanent);
    // the adapter's own refusals go through the same table
    CHECK(classify_sqlstate("25006") == failure::permanent);
    CHECK(classify_sqlstate("25P02") == failure::permanent);
    // a write refused by a server that was a writable primary when the
    // session opened: it was demoted, and a fresh session finds the new one
    CHECK(classify_sqlstate("25006", failure_context{.writable_when_opened = true}) == failure::connection_lost);
    CHECK(classify_sqlstate("25006", failure_context{.connected = false, .commit_sent = true,
                                                     .writable_when_opened = true}) == failure::commit_unknown);
}

TEST_CASE("SQLite result codes map onto failures as DESIGN section 5 says", "[classify]") {
    CHECK(classify_sqlite(SQLITE_BUSY_SNAPSHOT) == failure::serialization);
    CHECK(classify_sqlite(SQLITE_BUSY) == failure::busy);
    CHECK(classify_sqlite(SQLITE_BUSY_RECOVERY) == failure::busy);
    CHECK(classify_sqlite(SQLITE_LOCKED) == failure::busy);
    CHECK(classify_sqlite(SQLITE_LOCKED_SHAREDCACHE) == failure::busy);
    CHECK(classify_sqlite(SQLITE_CONSTRAINT_UNIQUE) == failure::permanent);
    CHECK(classify_sqlite(SQLITE_CORRUPT) == failure::permanent);
    CHECK(classify_sqlite(SQLITE_READONLY) == failure::permanent);
}

TEST_CASE("only serialization, deadlock, busy and connection_lost are retried blindly", "[classify]") {
    CHECK(sertx::is_retryable(failure::serialization));
    CHECK(sertx::is_retryable(failure::deadlock));
    CHECK(sertx::is_retryable(failure::busy));
    CHECK(sertx::is_retryable(failure::connection_lost));
    CHECK_FALSE(sertx::is_retryable(failure::commit_unknown));
    CHECK_FALSE(sertx::is_retryable(failure::permanent));
}

// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"

#include <sertx/detail/postgresql_codes.hpp>
#include <sertx/detail/sqlite_codes.hpp>

#include <sqlite3.h>

using sertx::failure;
using sertx::detail::classify_sqlite_result;
using sertx::detail::classify_sqlstate;

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

TEST_CASE("SQLite result codes map onto failures as DESIGN section 5 says", "[classify]") {
    CHECK(classify_sqlite_result(SQLITE_BUSY_SNAPSHOT) == failure::serialization);
    CHECK(classify_sqlite_result(SQLITE_BUSY) == failure::busy);
    CHECK(classify_sqlite_result(SQLITE_BUSY_RECOVERY) == failure::busy);
    CHECK(classify_sqlite_result(SQLITE_LOCKED) == failure::busy);
    CHECK(classify_sqlite_result(SQLITE_LOCKED_SHAREDCACHE) == failure::busy);
    CHECK(classify_sqlite_result(SQLITE_CONSTRAINT_UNIQUE) == failure::permanent);
    CHECK(classify_sqlite_result(SQLITE_CORRUPT) == failure::permanent);
    CHECK(classify_sqlite_result(SQLITE_READONLY) == failure::permanent);
}

TEST_CASE("only serialization, deadlock, busy and connection_lost are retried blindly", "[classify]") {
    CHECK(sertx::is_retryable(failure::serialization));
    CHECK(sertx::is_retryable(failure::deadlock));
    CHECK(sertx::is_retryable(failure::busy));
    CHECK(sertx::is_retryable(failure::connection_lost));
    CHECK_FALSE(sertx::is_retryable(failure::commit_unknown));
    CHECK_FALSE(sertx::is_retryable(failure::permanent));
}

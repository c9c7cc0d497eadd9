// SPDX-License-Identifier: BSL-1.0
#pragma once
// Hostile and mistaken input that reaches PostgreSQL and SQLite alike through
// sertx (idempotency keys and migration names with quotes, NUL bytes and great
// lengths), written and registered once (SERTX_BAD_INPUT_CASES, at the end)
// and run by tests/*/bad_input_test.cpp. Each case takes a freshly opened,
// empty sertx database: the `db` of a fixture that the test file defines,
// deriving from sertx::test::sqlite3_backend or postgresql_backend
// (support/databases.hpp).

#include "catch.hpp"
#include "databases.hpp"

#include <sertx/migrate.hpp>
#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <cstddef>
#include <string>
#include <vector>

namespace sertx::test::bad_input_cases {

template <class Db>
void keys_are_bound_stored_as_given_and_told_apart(Db& db) {
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table hits (n integer)"; });
    const std::vector<std::string> keys = {
        "'; drop table hits; --",
        "\"quoted\" and 'single' and \\backslash",
        std::string("a\0b", 3),
        std::string("a\0c", 3),
        std::string("a"),
        std::string(1, '\0'),
        "\xff\xfe not UTF-8 \xc3\x28",
        std::string(sertx::idempotency_key::max_length, 'k'),
    };
    auto hit = [](auto& tx) { tx.sql() << "insert into hits values (1)"; };
    for (const auto& k : keys) {
        CHECK(sertx::transact(db, sertx::idempotency_key{k}, hit));
        CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{k}, hit));
    }
    int hits = 0;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "select count(*) from hits", soci::into(hits); });
    CHECK(hits == static_cast<int>(keys.size()));  // each key once, and the table still there
}

/// A key one byte over the limit is refused with an error naming the limit,
/// before the body runs; so is an empty key.
template <class Db>
void key_over_the_limit_is_refused_before_the_body(Db& db) {
    bool ran = false;
    try {
        sertx::transact(db, sertx::idempotency_key{std::string(sertx::idempotency_key::max_length + 1, 'k')},
                        [&](auto&) { ran = true; });
        FAIL("a key of max_length + 1 bytes was accepted");
    } catch (const sertx::error& e) {
        CHECK(std::string(e.what()).find(std::to_string(sertx::idempotency_key::max_length)) != std::string::npos);
    }
    CHECK_FALSE(ran);
    CHECK_THROWS_AS(sertx::transact(db, sertx::idempotency_key{""}, [&](auto&) { ran = true; }), sertx::error);
    CHECK_FALSE(ran);
}

template <class Db>
void migration_names_are_stored_as_given(Db& db) {
    const std::vector<sertx::migration> schema = {
        {1, "'); drop table sertx_schema; --", "create table a (x int)"},
        {2, "\"quoted\" \\ and 'single'", "create table b (x int)"},
        {3, std::string(100'000, 'n'), "create table c (x int)"},
    };
    sertx::migrate(db, schema);
    const auto status = sertx::migration_status(db);
    REQUIRE(status.applied.size() == schema.size());
    for (std::size_t i = 0; i < schema.size(); ++i) CHECK(status.applied[i].name == schema[i].name);
}

template <class Db>
void migration_with_a_nul_byte_is_refused(Db& db) {
    const std::vector<sertx::migration> bad_name = {{1, std::string("before\0after", 12), "create table a (x int)"}};
    const std::vector<sertx::migration> bad_sql = {
        {1, "nul", std::string("create table a (x int)\0; drop table sertx_schema", 49)}};
    for (const auto* schema : {&bad_name, &bad_sql}) {
        try {
            sertx::migrate(db, *schema);
            FAIL("a migration with a NUL byte was accepted");
        } catch (const sertx::migration_error& e) {
            CHECK(std::string(e.what()).find("NUL byte") != std::string::npos);
        }
    }
    CHECK(sertx::migration_status(db).applied.empty());
}

}  // namespace sertx::test::bad_input_cases

/// Registers the cases above for one backend; its test file calls it once:
/// SERTX_BAD_INPUT_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_BAD_INPUT_CASES(Fixture, backend_tag)                                                                    \
    TEMPLATE_TEST_CASE("idempotency keys with quotes, NUL bytes and SQL are bound, stored as given and told apart",    \
                       backend_tag "[bad_input]", Fixture) {                                                           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::bad_input_cases::keys_are_bound_stored_as_given_and_told_apart(fixture.db);                     \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("an idempotency key longer than the limit, or empty, is refused before anything runs",          \
                       backend_tag "[bad_input]", Fixture) {                                                           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::bad_input_cases::key_over_the_limit_is_refused_before_the_body(fixture.db);                     \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("migration names with quotes, SQL and great length are stored as given",                        \
                       backend_tag "[bad_input]", Fixture) {                                                           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::bad_input_cases::migration_names_are_stored_as_given(fixture.db);                               \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a migration whose name or SQL holds a NUL byte is refused, not cut short",                     \
                       backend_tag "[bad_input]", Fixture) {                                                           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::bad_input_cases::migration_with_a_nul_byte_is_refused(fixture.db);                              \
    }

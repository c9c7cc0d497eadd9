// SPDX-License-Identifier: BSL-1.0
#pragma once
// The migration tests that say the same of PostgreSQL and SQLite, written
// and registered once (SERTX_MIGRATE_CASES, at the end) and run by
// tests/*/migrate_test.cpp. Each takes the backend as a fixture that the test
// file defines, deriving from sertx::test::sqlite3_backend or
// postgresql_backend (support/databases.hpp):
//
//     Fixture()                                  // a fresh database of its own
//     static constexpr sertx::detail::sql_dialect dialect;
//     auto open(std::size_t pool_size);          // a sertx database on the test's database
//     std::string value(const std::string& sql); // one value, read on a connection of its own
//     std::string column_in_order(const std::string& column, const std::string& table);
//                                                // the column's values, ascending, joined by ','
//     std::string catalog();                     // every schema object and sertx_schema row: equal
//                                                // text before and after means nothing changed
//     std::string object_count();                // how many schema objects there are: "0" when untouched
//     void start_afresh(const std::string& tables);  // an empty database again, for the next round
//     static void names_missing_table(const std::string& what, const sertx::database_error& cause);
//                                                // checks the error of a statement on a missing table
//
// The SQL is the same on both: `integer primary key`, which SQLite makes the
// rowid, and `bigint`, an integer column on both.

#include "catch.hpp"
#include "databases.hpp"
#include "processes.hpp"

#include <sertx/sertx.hpp>
#include <sertx/sql/split.hpp>

#include <chrono>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace sertx::test {

inline const std::vector<sertx::migration> accounts = {
    {1, "accounts", "create table account (id integer primary key, balance bigint not null check (balance >= 0))"},
    {2, "opening balances", "insert into account values (1, 100), (2, 50)"},
};

/// The checksum migrate() computes for code[index] on this backend.
template <class Backend>
std::string checksum_in_code(const std::vector<sertx::migration>& code, std::size_t index) {
    const auto split = [](std::string_view script) { return sertx::detail::split_statements(script, Backend::dialect); };
    return sertx::detail::prepare_migrations(code, split).at(index).checksum;
}

template <class Backend>
void migrate_applies_each_once_then_nothing(Backend&& b) {
    auto db = b.open(2);
    const auto before = std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now());
    const auto applied = sertx::migrate(db, accounts);
    const auto after = std::chrono::system_clock::now();
    REQUIRE(applied.size() == 2);
    CHECK(applied[0].version == 1);
    CHECK(applied[1].version == 2);

    const sertx::schema_status status = sertx::migration_status(db);
    REQUIRE(status.applied.size() == 2);
    CHECK(status.version() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(status.applied[i].version == accounts[i].version);
        CHECK(status.applied[i].name == accounts[i].name);
        CHECK(status.applied[i].checksum == applied[i].checksum);
        CHECK(status.applied[i].applied_at >= before);
        CHECK(status.applied[i].applied_at <= after);
    }

    CHECK(sertx::migrate(db, accounts).empty());
    CHECK(b.value("select count(*) || ' ' || sum(balance) from account") == "2 150");
}

template <class Backend>
void migration_status_reports_applied_and_pending(Backend&& b) {
    auto db = b.open(1);
    CHECK(sertx::migration_status(db).applied.empty());
    CHECK(sertx::migration_status(db).version() == 0);
    sertx::migrate(db, std::span(accounts).first(1));

    const sertx::schema_status status = sertx::migration_status(db, accounts);
    REQUIRE(status.applied.size() == 1);
    CHECK(status.applied[0].name == "accounts");
    CHECK(status.applied[0].checksum == checksum_in_code<Backend>(accounts, 0));
    REQUIRE(status.pending.size() == 1);
    CHECK(status.pending[0].version == 2);
    CHECK(status.pending[0].checksum == checksum_in_code<Backend>(accounts, 1));
    CHECK(status.problems.empty());
    CHECK(sertx::migration_status(db).pending.empty());  // without the code nothing is pending
}

template <class Backend>
void dry_run_reports_and_changes_nothing(Backend&& b) {
    auto db = b.open(1);
    const auto plan = sertx::migrate(db, accounts, sertx::dry_run);
    REQUIRE(plan.size() == 2);
    CHECK(plan[0].statements == std::vector<std::string>{accounts[0].sql});
    CHECK(b.object_count() == "0");

    sertx::migrate(db, std::span(accounts).first(1));
    const std::string catalog_before = b.catalog();
    const auto rest = sertx::migrate(db, accounts, sertx::dry_run);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].version == 2);
    CHECK(b.catalog() == catalog_before);
}

/// `names_missing_table(what, cause)` checks the backend's own words in the
/// error and in the database error nested in it.
template <class Backend, class NamesMissingTable>
void failed_statement_rolls_back_whole(Backend&& b, NamesMissingTable names_missing_table) {
    auto db = b.open(1);
    sertx::migrate(db, accounts);
    const std::string catalog_before = b.catalog();

    const std::string ledger =
        "create table ledger (account integer not null references account (id), amount bigint not null)";
    std::vector<sertx::migration> code = accounts;
    code.push_back({3, "ledger",
                    ledger + ";\n"
                             "create index ledger_account on ledger (account);\n"
                             "insert into missing_table values (1);\n"
                             "create table never_created (x int);"});
    try {
        sertx::migrate(db, code);
        FAIL("migrate did not throw");
    } catch (const sertx::migration_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what, Catch::Matchers::StartsWith("sertx: migration 3 'ledger'"));
        CHECK_THAT(what, has_text("statement 3 of 4 (`insert into missing_table values (1)`)"));
        try {
            std::rethrow_if_nested(e);
            FAIL("no nested database error");
        } catch (const sertx::database_error& cause) {
            names_missing_table(what, cause);
        }
    }
    CHECK(b.catalog() == catalog_before);
    CHECK(sertx::migration_status(db).version() == 2);

    code[2].sql = ledger;
    CHECK(sertx::migrate(db, code).size() == 1);  // the failed attempt left no row behind
}

template <class Backend>
void changed_checksum_is_refused(Backend&& b) {
    auto db = b.open(1);
    sertx::migrate(db, accounts);
    const std::string catalog_before = b.catalog();
    const std::string stored = sertx::migration_status(db).applied.at(1).checksum;

    std::vector<sertx::migration> code = accounts;
    code[1].sql = "insert into account values (1, 100), (2, 60)";
    code.push_back({3, "later", "create table later (x int)"});
    const std::string now = checksum_in_code<Backend>(code, 1);
    REQUIRE(now != stored);
    for (bool dry : {false, true}) {
        try {
            if (dry)
                sertx::migrate(db, code, sertx::dry_run);
            else
                sertx::migrate(db, code);
            FAIL("migrate did not refuse");
        } catch (const sertx::migration_error& e) {
            const std::string what = e.what();
            INFO(what);
            CHECK_THAT(what, Catch::Matchers::StartsWith("sertx: migrate refused"));
            CHECK_THAT(what, has_text("migration 2 'opening balances' was applied with checksum " + stored));
            CHECK_THAT(what, has_text("now has checksum " + now));
            CHECK_THAT(what, has_text("Nothing was applied"));
        }
    }
    CHECK(b.catalog() == catalog_before);
    const auto status = sertx::migration_status(db, code);
    CHECK(status.problems.size() == 1);
    CHECK(status.pending.size() == 1);
}

template <class Backend>
void database_newer_than_the_code_is_refused(Backend&& b) {
    auto db = b.open(1);
    std::vector<sertx::migration> newer = accounts;
    newer.push_back({3, "ledger", "create table ledger (amount bigint)"});
    sertx::migrate(db, newer);
    const std::string catalog_before = b.catalog();

    try {
        sertx::migrate(db, accounts);
        FAIL("migrate did not refuse");
    } catch (const sertx::migration_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what,
                   has_text("migration 3 'ledger' (checksum " + checksum_in_code<Backend>(newer, 2) + ") is applied"));
        CHECK_THAT(what, has_text("newest migration this code knows is 2"));
        CHECK_THAT(what, has_text("newer than the code"));
    }
    CHECK(b.catalog() == catalog_before);
}

template <class Backend>
void unordered_versions_are_refused_untouched(Backend&& b) {
    auto db = b.open(1);
    const std::vector<sertx::migration> code = {{2, "b", "create table b (x int)"}, {1, "a", "create table a (x int)"}};
    CHECK_THROWS_AS(sertx::migrate(db, code), sertx::migration_error);
    CHECK(b.object_count() == "0");
}

template <class Backend>
void two_processes_migrate_a_fresh_database_once(Backend&& b) {
    const std::vector<sertx::migration> code = {
        {1, "ledger", "create table ledger (entry integer not null)"},
        {2, "first entry", "insert into ledger values (2)"},
        {3, "second entry", "create table extra (x int); insert into ledger values (3)"},
    };
    for (int round = 0; round < 20; ++round) {
        INFO("round " << round);
        const auto codes = in_two_processes([&](auto start) {
            auto db = b.open(1);
            start();
            return static_cast<int>(sertx::migrate(db, code).size());
        });
        REQUIRE(codes.size() == 2);
        CHECK(codes[0] <= 3);
        CHECK(codes[1] <= 3);
        CHECK(codes[0] + codes[1] == 3);  // each migration applied by exactly one of them
        CHECK(b.column_in_order("entry", "ledger") == "2,3");
        CHECK(b.column_in_order("version", "sertx_schema") == "1,2,3");
        b.start_afresh("ledger, extra, sertx_schema");
    }
}

template <class Backend>
void threads_sharing_a_database_migrate_it_once(Backend&& b) {
    const std::vector<sertx::migration> code = {
        {1, "ledger", "create table ledger (entry integer not null)"},
        {2, "entries", "insert into ledger values (1); insert into ledger values (2)"},
    };
    for (int round = 0; round < 5; ++round) {
        INFO("round " << round);
        {
            auto db = b.open(4);
            std::vector<std::size_t> applied(4);
            std::vector<std::exception_ptr> errors(4);
            {
                std::vector<std::jthread> threads;
                for (std::size_t t = 0; t < 4; ++t)
                    threads.emplace_back([&, t] {
                        try {
                            applied[t] = sertx::migrate(db, code).size();
                        } catch (...) {
                            errors[t] = std::current_exception();
                        }
                    });
            }
            for (auto& e : errors) CHECK_NOTHROW(e ? std::rethrow_exception(e) : void());
            CHECK(applied[0] + applied[1] + applied[2] + applied[3] == 2);
            CHECK(b.value("select count(*) from ledger") == "2");
        }
        b.start_afresh("ledger, sertx_schema");
    }
}

}  // namespace sertx::test

/// Registers the cases above for one backend; its test file calls it once:
/// SERTX_MIGRATE_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_MIGRATE_CASES(Fixture, backend_tag)                                                                      \
    TEMPLATE_TEST_CASE("migrate applies each migration once with its version row, then nothing", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::migrate_applies_each_once_then_nothing(TestType{});                                             \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("migration_status reports applied and pending migrations", backend_tag "[migrate]", Fixture) {  \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::migration_status_reports_applied_and_pending(TestType{});                                       \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("the dry run reports what would be applied and changes nothing", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::dry_run_reports_and_changes_nothing(TestType{});                                                \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a migration whose third statement fails is rolled back whole, and the error names it", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::failed_statement_rolls_back_whole(TestType{}, &TestType::names_missing_table);                  \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("an applied migration whose checksum changed is refused, and nothing is applied", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::changed_checksum_is_refused(TestType{});                                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a database newer than the code is refused, and nothing is applied", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::database_newer_than_the_code_is_refused(TestType{});                                            \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("versions that do not strictly increase are refused before the database is touched", backend_tag "[migrate]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::unordered_versions_are_refused_untouched(TestType{});                                           \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("two processes migrating the same fresh database at once apply each migration once", backend_tag "[migrate][concurrency]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::two_processes_migrate_a_fresh_database_once(TestType{});                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("threads sharing one database migrate it once", backend_tag "[migrate][concurrency]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        ::sertx::test::threads_sharing_a_database_migrate_it_once(TestType{});                                         \
    }

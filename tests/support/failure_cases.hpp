// SPDX-License-Identifier: BSL-1.0
#pragma once
// What transact does on PostgreSQL and SQLite alike when the body fails or
// nests, written and registered once (SERTX_FAILURE_CASES, at the end) and
// run by tests/*/failure_handling_test.cpp. Each takes the backend as a
// fixture that the test file defines, deriving from sertx::test::sqlite3_backend
// or postgresql_backend (support/databases.hpp):
//
//     Fixture(), Fixture(std::size_t pool_size)  a fresh database of its own
//     db              a sertx database with an empty table item(id integer primary key, note text)
//     long long items(const std::string& where = ...);  committed rows of item where `where` holds
//     using soci_error = ...;                   the error SOCI throws for a failed statement
//     static ... code_of(const soci_error&);    the database's code in it
//     static constexpr ... unique_violation;    that code for a unique violation
//     static sertx::database_error retried_failure();  a failure transact retries, for a body to throw

#include "catch.hpp"
#include "databases.hpp"

#include <sertx/sertx.hpp>

#include <string>
#include <vector>

namespace sertx::test {

template <class Backend>
void unique_violation_propagates_without_retry(Backend&& b) {
    sertx::transact(b.db, [](auto& tx) { tx.sql() << "insert into item values (1, 'first')"; });
    int runs = 0;
    try {
        sertx::transact(b.db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (2, 'before the failure')";
            tx.sql() << "insert into item values (1, 'duplicate')";
        });
        FAIL("no error");
    } catch (const typename Backend::soci_error& e) {
        CHECK(Backend::code_of(e) == Backend::unique_violation);
    }
    CHECK(runs == 1);
    CHECK(b.items() == 1);
    CHECK(b.items("id = 2") == 0);
    CHECK(b.db.stats().total_retries() == 0);
}

template <class Backend>
void own_exception_propagates_without_retry(Backend&& b) {
    struct insufficient_funds {
        long long missing;
    };
    int runs = 0;
    try {
        sertx::transact(b.db, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into item values (1, 'before the throw')";
            throw insufficient_funds{42};
        });
        FAIL("no exception");
    } catch (const insufficient_funds& e) {
        CHECK(e.missing == 42);
    }
    CHECK(runs == 1);
    CHECK(b.items() == 0);
    CHECK(b.db.stats().total_retries() == 0);
}

template <class Backend>
void after_commit_runs_once_after_the_commit(Backend&& b) {
    std::vector<std::string> ran;
    sertx::transact<sertx::policy<sertx::max_attempts<3>, sertx::no_backoff>>(b.db, [&](auto& tx) {
        const unsigned attempt = tx.attempt();
        tx.sql() << "insert into item values (1, 'paid')";
        tx.after_commit([&, attempt] {
            // Visible to another session: the commit is done when this runs.
            ran.push_back("attempt " + std::to_string(attempt) + " saw " + std::to_string(b.items()));
        });
        if (attempt == 1) throw Backend::retried_failure();
    });
    CHECK(ran == std::vector<std::string>{"attempt 2 saw 1"});

    ran.clear();
    CHECK_THROWS_AS(sertx::transact(b.db,
                                    [&](auto& tx) {
                                        tx.after_commit([&] { ran.push_back("must not run"); });
                                        tx.sql() << "insert into item values (1, 'duplicate')";
                                    }),
                    typename Backend::soci_error);
    CHECK(ran.empty());
}

template <class Backend>
void transact_inside_another_is_refused(Backend&& b) {
    std::string refused;
    sertx::transact(b.db, [&](auto& tx) {
        tx.sql() << "insert into item values (1, 'outer')";
        try {
            // On a one-writer database (SQLite) this inner writer would wait
            // for the outer one forever (busy_timeout, then again on every retry).
            sertx::transact(b.db, [](auto& inner) { inner.sql() << "insert into item values (2, 'inner')"; });
        } catch (const sertx::error& e) {
            refused = e.what();
        }
    });
    CHECK(refused.rfind("sertx:", 0) == 0);
    CHECK(refused.find("inside another transact()") != std::string::npos);
    CHECK(b.items() == 1);  // the outer one went on and committed; the inner never ran
    CHECK(b.items("id = 2") == 0);
}

template <class Backend>
void failed_savepoint_rolls_back_only_its_part(Backend&& b) {
    using inner = sertx::policy<sertx::nested<sertx::savepoint>>;
    bool inner_failed = false;
    sertx::transact(b.db, [&](auto& tx) {
        tx.sql() << "insert into item values (1, 'outer, before')";
        sertx::transact<inner>(b.db, [](auto& in) { in.sql() << "insert into item values (2, 'inner, kept')"; });
        try {
            sertx::transact<inner>(b.db, [](auto& in) {
                in.sql() << "insert into item values (3, 'inner, undone')";
                in.sql() << "insert into item values (1, 'duplicate')";
            });
        } catch (const typename Backend::soci_error& e) {
            inner_failed = Backend::code_of(e) == Backend::unique_violation;
        }
        tx.sql() << "insert into item values (4, 'outer, after')";
    });
    CHECK(inner_failed);
    CHECK(b.items() == 3);
    CHECK(b.items("id in (1, 2, 4)") == 3);
    CHECK(b.items("id = 3") == 0);
}

}  // namespace sertx::test

/// Registers the cases above for one backend; its test file calls it once:
/// SERTX_FAILURE_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_FAILURE_CASES(Fixture, backend_tag)                                                               \
    TEMPLATE_TEST_CASE("a unique violation propagates as SOCI's own error, after rollback, without a retry",     \
                       backend_tag "[failure]", Fixture) {                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                        \
        ::sertx::test::unique_violation_propagates_without_retry(TestType{});                                   \
    }                                                                                                           \
    TEMPLATE_TEST_CASE("an exception of the body's own propagates unchanged, after rollback, without a retry",   \
                       backend_tag "[failure]", Fixture) {                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                        \
        ::sertx::test::own_exception_propagates_without_retry(TestType{});                                      \
    }                                                                                                           \
    TEMPLATE_TEST_CASE("after_commit actions run once, after the commit, and never for an attempt that rolled back", \
                       backend_tag "[failure]", Fixture) {                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                        \
        ::sertx::test::after_commit_runs_once_after_the_commit(TestType{});                                     \
    }                                                                                                           \
    /* two sessions, so that an inner transact that was not refused would get one */                           \
    TEMPLATE_TEST_CASE("a transact inside another on the same thread is refused with sertx::error",             \
                       backend_tag "[failure]", Fixture) {                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                        \
        ::sertx::test::transact_inside_another_is_refused(TestType{2});                                         \
    }                                                                                                           \
    TEMPLATE_TEST_CASE("a nested transact with nested<savepoint> that fails rolls back only its own part",      \
                       backend_tag "[failure]", Fixture) {                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                        \
        ::sertx::test::failed_savepoint_rolls_back_only_its_part(TestType{});                                   \
    }

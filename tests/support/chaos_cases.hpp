// SPDX-License-Identifier: BSL-1.0
#pragma once
// What sertx::testing::chaos finds and keeps on PostgreSQL and SQLite alike,
// written and registered once (SERTX_CHAOS_CASES, at the end) and run by
// tests/*/chaos_test.cpp. Each case takes the chaos database, set up around
// its backend's database (a bank opened with `small`, where the case moves
// money) with the failures that backend has; the real database is its
// inner(). The backend comes as a fixture that the test file defines,
// deriving from sertx::test::sqlite3_backend or postgresql_backend
// (support/databases.hpp):
//
//     auto bank();      // a fresh database holding the bank `small`
//     auto empty();     // a fresh, empty database
//     static sertx::testing::chaos_options counting_failures();  // failures at COMMIT that this backend has
//     static sertx::testing::chaos_options swallowed_failure();  // one retryable failure at the first statement
//     static constexpr bool lost_commit_discards_session;        // a lost COMMIT costs the session

#include "catch.hpp"
#include "databases.hpp"
#include "chaos_workloads.hpp"
#include "keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/testing/chaos.hpp>

#include <atomic>
#include <exception>

namespace sertx::test::chaos_cases {

namespace workloads = chaos_workloads;

/// The bank of every case: few accounts, so that writers conflict.
inline const keyed_bank::workload small{.accounts = 10, .writers = 4, .transfers_per_writer = 0, .opening_balance = 1000};

/// A count kept in a captured variable counts the attempts that chaos made
/// fail: the bug chaos is there to find.
template <class ChaosDb>
void captured_count_exceeds_the_commits(ChaosDb& db) {
    const auto t = workloads::count_transfers(db, small, 200, [](auto&, long long& counted) { ++counted; });

    WARN("counted " << t.counted << ", committed " << t.logged << ", injected " << db.injected().total());
    CHECK(db.injected().total() > 0);
    CHECK(t.counted > t.logged);  // the bug, found
}

template <class ChaosDb>
void after_commit_count_matches_the_commits(ChaosDb& db) {
    const auto t = workloads::count_transfers(
        db, small, 200, [](auto& tx, long long& counted) { tx.after_commit([&counted] { ++counted; }); });

    CHECK(db.injected().total() > 0);
    CHECK(t.counted == t.logged);
}

/// Keyed writers on several threads: every answer holds against the books,
/// every kind of failure was injected and each lost commit was resolved by
/// its key. Returns what was injected, for the backend's own checks.
template <class Backend, class ChaosDb>
sertx::testing::chaos_stats keyed_writers_keep_every_invariant(ChaosDb& db) {
    const char* backend = Backend::name;
    auto& real = db.inner();
    keyed_bank::answers answers;
    const std::atomic<bool> stop{false};

    keyed_bank::run_writers<sertx::default_policy>(db, small, answers, stop, 150);

    const auto verdict = keyed_bank::audit(real, small, answers);
    const auto injected = db.injected();
    INFO(verdict.describe() << answers.failure_sample());
    CHECK(verdict.holds());
    CHECK(answers.acknowledged() == 600);
    CHECK(answers.count(keyed_bank::answers::failed) == 0);
    CHECK(answers.count(keyed_bank::answers::unknown) == 0);
    CHECK(answers.count(keyed_bank::answers::committed_before) == 0);  // each key is used by one call
    for (auto f : {failure::serialization, failure::deadlock, failure::busy, failure::connection_lost})
        CHECK(injected.injected_at_statement(f) + injected.injected_at_commit(f) > 0);
    CHECK(injected.lost_commits_applied > 0);
    CHECK(injected.lost_commits_rolled_back > 0);
    CHECK(real.stats().commit_resolved == injected.injected_at_commit(failure::commit_unknown));
    CHECK(real.stats().commit_unknown == 0);
    // On PostgreSQL a lost connection or COMMIT discards the session, as a
    // real loss does; a SQLite session is a file handle, kept.
    if constexpr (Backend::lost_commit_discards_session)
        CHECK(real.stats().sessions_discarded >= injected.injected_at_commit(failure::commit_unknown));
    WARN(backend << " under chaos: " << verdict.checked << " answers checked, " << injected.total()
                 << " failures injected (" << injected.lost_commits_applied << " commits lost after applying, "
                 << injected.lost_commits_rolled_back << " lost and rolled back); " << real.stats().total_retries()
                 << " retries, " << real.stats().sessions_discarded << " sessions discarded");
    return injected;
}

/// `db` injects a retryable failure at the first statement of the first
/// attempt; the body swallows it and goes on.
template <class ChaosDb>
void swallowed_failure_is_refused(ChaosDb& db) {
    auto careless = [](auto& tx) {
        try {
            tx.sql() << "update account set balance = balance - 1 where id = 0";
        } catch (const std::exception&) {  // the bug: a retryable failure swallowed
        }
        tx.sql() << "update account set balance = balance + 1 where id = 1";
    };
    CHECK_THROWS_AS(sertx::transact(db, careless), sertx::database_error);
    CHECK(db.injected().swallowed == 1);
    CHECK(keyed_bank::read_books(db.inner(), small).total == small.total());
}

/// `db` is around an empty database.
template <class ChaosDb>
void machinery_runs_each_step_once(ChaosDb& db) {
    const auto m = workloads::run_machinery(db, 60);

    CHECK(m.applied == 2);
    CHECK(m.applied_again == 0);
    CHECK(m.calls.size() == 60);
    for (const auto& [key, count] : m.calls) CHECK(count == 1);
    CHECK(db.injected().total() > 0);
}

}  // namespace sertx::test::chaos_cases

/// Registers the cases above for one backend; its test file calls it once:
/// SERTX_CHAOS_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_CHAOS_CASES(Fixture, backend_tag)                                                                        \
    TEMPLATE_TEST_CASE("chaos makes a body that counts in a captured variable count transfers that never committed",   \
                       backend_tag "[chaos]", Fixture) {                                                               \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        auto real = fixture.bank();                                                                                    \
        ::sertx::testing::chaos db(real, TestType::counting_failures());                                               \
        ::sertx::test::chaos_cases::captured_count_exceeds_the_commits(db);                                            \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("the same count kept in after_commit matches the committed transfers exactly under chaos",      \
                       backend_tag "[chaos]", Fixture) {                                                               \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        auto real = fixture.bank();                                                                                    \
        ::sertx::testing::chaos db(real, ::sertx::test::chaos_workloads::everywhere(7));                               \
        ::sertx::test::chaos_cases::after_commit_count_matches_the_commits(db);                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("keyed transfers on several threads under chaos keep every invariant, lost commits included",   \
                       backend_tag "[chaos][concurrency]", Fixture) {                                                  \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        auto real = fixture.bank();                                                                                    \
        ::sertx::testing::chaos db(real, ::sertx::test::chaos_workloads::everywhere(2024));                            \
        ::sertx::test::chaos_cases::keyed_writers_keep_every_invariant<TestType>(db);                                  \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a body that swallows an injected failure is refused, not committed",                           \
                       backend_tag "[chaos]", Fixture) {                                                               \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        auto real = fixture.bank();                                                                                    \
        ::sertx::testing::chaos db(real, TestType::swallowed_failure());                                               \
        ::sertx::test::chaos_cases::swallowed_failure_is_refused(db);                                                  \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("migrations and the effect journal under chaos apply each migration once and call each effect once", \
                       backend_tag "[chaos]", Fixture) {                                                               \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        auto real = fixture.empty();                                                                                   \
        ::sertx::testing::chaos db(real, ::sertx::test::chaos_workloads::everywhere(5));                               \
        ::sertx::test::chaos_cases::machinery_runs_each_step_once(db);                                                 \
    }

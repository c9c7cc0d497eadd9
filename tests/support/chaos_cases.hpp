// SPDX-License-Identifier: BSL-1.0
#pragma once
// What sertx::testing::chaos finds and keeps on PostgreSQL and SQLite alike,
// written once and run by tests/*/chaos_test.cpp. Each case takes the chaos
// database, which the test file sets up around its backend's database (a bank
// opened with `small`, where the case moves money) with the failures that
// backend has; the real database is its inner().

#include "catch.hpp"
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
template <class ChaosDb>
sertx::testing::chaos_stats keyed_writers_keep_every_invariant(const char* backend, ChaosDb& db) {
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

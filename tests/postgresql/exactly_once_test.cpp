// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on PostgreSQL.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/lock_step.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#define SERTX_PG_DB(var)  \
    SERTX_REQUIRE_PG(pg); \
    auto var = sertx::postgresql::open(pg.conninfo(), {.pool_size = 8})

using namespace sertx::test;

TEST_CASE("install creates sertx's tables on PostgreSQL and may be called again", "[postgresql][exactly_once]") {
    SERTX_PG_DB(db);
    install_twice(db);
}

TEST_CASE("concurrent installs on PostgreSQL all succeed", "[postgresql][exactly_once][concurrency]") {
    SERTX_PG_DB(db);
    concurrent_installs(db);
}

TEST_CASE("a keyed body commits once on PostgreSQL and a repeat returns empty", "[postgresql][exactly_once]") {
    SERTX_PG_DB(db);
    keyed_body_commits_once(db);
}

TEST_CASE("a keyed body that throws leaves its key free on PostgreSQL", "[postgresql][exactly_once]") {
    SERTX_PG_DB(db);
    keyed_body_that_throws_leaves_no_key(db);
}

TEST_CASE("idempotency keys are any bytes up to the limit on PostgreSQL", "[postgresql][exactly_once]") {
    SERTX_PG_DB(db);
    keys_are_any_bytes_within_a_limit(db);
}

TEST_CASE("the same key from 8 threads at once applies once on PostgreSQL", "[postgresql][exactly_once][concurrency]") {
    SERTX_PG_DB(db);
    same_key_from_eight_threads(db, 25);
}

TEST_CASE("prune_commit_log forgets only keys older than the age on PostgreSQL", "[postgresql][exactly_once]") {
    SERTX_PG_DB(db);
    prune_forgets_old_keys_only(db);
}

TEST_CASE("an intent exists only if its transaction committed on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    schedule_commits_with_the_transaction(db);
}

TEST_CASE("dispatch records done, failed and in-doubt outcomes on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    dispatch_records_each_outcome(db);
}

TEST_CASE("dispatch runs the oldest intents up to its limit on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    dispatch_stops_at_its_limit_oldest_first(db);
}

TEST_CASE("effect keys, payloads and results are any bytes up to the limit on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    payloads_and_results_are_any_bytes_within_a_limit(db);
}

TEST_CASE("recover puts started at-most-once effects in doubt and re-runs idempotent ones on PostgreSQL",
          "[postgresql][effects]") {
    SERTX_PG_DB(db);
    recover_after_a_stop_at_each_point(db);
}

TEST_CASE("recover leaves rows of other dispatchers alone on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    recover_leaves_other_dispatchers_rows(db);
}

TEST_CASE("resolve settles only in-doubt effects and records who and why on PostgreSQL", "[postgresql][effects]") {
    SERTX_PG_DB(db);
    resolve_settles_only_what_is_in_doubt(db);
}

TEST_CASE("four dispatcher threads call each of 400 effects once on PostgreSQL", "[postgresql][effects][concurrency]") {
    SERTX_PG_DB(db);
    concurrent_dispatchers_call_each_once(db, 4, 400);
}

TEST_CASE("keyed calls that all read their key as absent commit once, and the others are re-run and return empty",
          "[postgresql][exactly_once][concurrency]") {
    SERTX_PG_DB(db);
    sertx::install(db);
    exec(db, "create table applied (round integer not null, thread integer not null)");
    constexpr int threads = 8;
    for (int round = 0; round < 5; ++round) {
        // Every first attempt has looked the key up (absent) and written its
        // row before any of them writes the key and commits.
        sertx::test::lock_step steps(threads);
        one_value_the_rest_empty(threads, [&](int t) {
            return sertx::transact(db, sertx::idempotency_key{"k" + std::to_string(round)}, [&](auto& tx) {
                auto me = steps.join(tx);
                tx.sql() << "insert into applied (round, thread) values (:r, :t)", soci::use(round), soci::use(t);
                me.step();
                return t;
            });
        });
    }
    CHECK(count(db, "select count(*) from applied") == 5);
    // Each of the 7 losers of a round read the key as absent, so its first
    // attempt could not commit: it failed (a serialization failure when it
    // wrote the key) and was re-run, and the re-run found the key.
    CHECK(db.stats().total_retries() >= 5 * (threads - 1));
}

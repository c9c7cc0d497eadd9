// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on a SQLite file.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace {

struct lite {
    sertx::test::temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("eo.db"), {.pool_size = 8});
};

}  // namespace

using namespace sertx::test;

TEST_CASE("install creates sertx's tables on SQLite and may be called again", "[sqlite3][exactly_once]") {
    lite l;
    install_twice(l.db);
}

TEST_CASE("concurrent installs on SQLite all succeed", "[sqlite3][exactly_once][concurrency]") {
    lite l;
    concurrent_installs(l.db);
}

TEST_CASE("a keyed body commits once on SQLite and a repeat returns empty", "[sqlite3][exactly_once]") {
    lite l;
    keyed_body_commits_once(l.db);
}

TEST_CASE("a keyed body that throws leaves its key free on SQLite", "[sqlite3][exactly_once]") {
    lite l;
    keyed_body_that_throws_leaves_no_key(l.db);
}

TEST_CASE("idempotency keys are any bytes up to the limit on SQLite", "[sqlite3][exactly_once]") {
    lite l;
    keys_are_any_bytes_within_a_limit(l.db);
}

TEST_CASE("the same key from 8 threads at once applies once on SQLite", "[sqlite3][exactly_once][concurrency]") {
    lite l;
    same_key_from_eight_threads(l.db, 25);
}

TEST_CASE("prune_commit_log forgets only keys older than the age on SQLite", "[sqlite3][exactly_once]") {
    lite l;
    prune_forgets_old_keys_only(l.db);
}

TEST_CASE("an intent exists only if its transaction committed on SQLite", "[sqlite3][effects]") {
    lite l;
    schedule_commits_with_the_transaction(l.db);
}

TEST_CASE("dispatch records done, failed and in-doubt outcomes on SQLite", "[sqlite3][effects]") {
    lite l;
    dispatch_records_each_outcome(l.db);
}

TEST_CASE("dispatch runs the oldest intents up to its limit on SQLite", "[sqlite3][effects]") {
    lite l;
    dispatch_stops_at_its_limit_oldest_first(l.db);
}

TEST_CASE("effect keys, payloads and results are any bytes up to the limit on SQLite", "[sqlite3][effects]") {
    lite l;
    payloads_and_results_are_any_bytes_within_a_limit(l.db);
}

TEST_CASE("recover puts started at-most-once effects in doubt and re-runs idempotent ones on SQLite",
          "[sqlite3][effects]") {
    lite l;
    recover_after_a_stop_at_each_point(l.db);
}

TEST_CASE("recover leaves rows of other dispatchers alone on SQLite", "[sqlite3][effects]") {
    lite l;
    recover_leaves_other_dispatchers_rows(l.db);
}

TEST_CASE("resolve settles only in-doubt effects and records who and why on SQLite", "[sqlite3][effects]") {
    lite l;
    resolve_settles_only_what_is_in_doubt(l.db);
}

TEST_CASE("four dispatcher threads call each of 400 effects once on SQLite", "[sqlite3][effects][concurrency]") {
    lite l;
    concurrent_dispatchers_call_each_once(l.db, 4, 400);
}

TEST_CASE("tx.perform runs idempotent and read-only operations, handing over the handle when asked",
          "[sqlite3][exactly_once]") {
    lite l;
    perform_runs_repeatable_operations(l.db);
}

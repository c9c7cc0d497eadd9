// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on PostgreSQL.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/lock_step.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

namespace {

/// A fresh PostgreSQL database, as support/exactly_once.hpp uses it.
struct PostgreSQL : sertx::test::postgresql_backend {
    sertx::test::pg_database pg;
    sertx::postgresql::database db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 8});
};

}  // namespace

using namespace sertx::test;

SERTX_EXACTLY_ONCE_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("keyed calls that all read their key as absent commit once, and the others are re-run and return empty",
          "[postgresql][exactly_once][concurrency]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    PostgreSQL fixture;
    auto& db = fixture.db;
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

TEST_CASE("a session prepares the key's statements at its first keyed call, and they follow a commit log made anew",
          "[postgresql][exactly_once]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});  // one session: every call shares it
    auto body = [](auto&) {};
    // Before install, the PREPARE fails like the lookup would, naming the table.
    REQUIRE_THROWS_WITH(sertx::transact(db, sertx::idempotency_key{"k"}, body), has_text("sertx_commit_log"));
    sertx::install(db);
    CHECK(sertx::transact(db, sertx::idempotency_key{"k"}, body));
    CHECK(count(db, "select count(*) from pg_prepared_statements where name in ('sertx_find_key', 'sertx_record_key')") ==
          2);
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"k"}, body));
    // The prepared statements are planned again against the new table.
    exec(db, "drop table sertx_commit_log");
    sertx::install(db);
    CHECK(sertx::transact(db, sertx::idempotency_key{"k"}, body));
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"k"}, body));
    CHECK(count(db, "select count(*) from sertx_commit_log") == 1);
}

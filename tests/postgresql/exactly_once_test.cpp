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

TEST_CASE("a session prepares the journal's INSERT at its first intent sent with COMMIT, and one EXECUTE carries "
          "a COMMIT's intents as schedule would write them",
          "[postgresql][effects]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});  // one session: every call shares it
    sertx::install(db);
    sertx::effects journal(db);
    const auto prepared = [&] {
        return count(db, "select count(*) from pg_prepared_statements where name = 'sertx_schedule_effects'");
    };
    CHECK(prepared() == 0);
    const auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
    // Bytes that would end an element, an array or a literal, in names,
    // keys and payloads; the results of schedule never asked, so every
    // intent travels with COMMIT.
    const std::string odd_key = std::string("k\"}{,'\\") + '\0' + "x", odd_payload = "p\"}', '{\\";
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<pay>(tx, "a", "first");
        journal.template schedule<awkwardly_named>(tx, odd_key, odd_payload, {.not_before = later});
        journal.template schedule<pay>(tx, "a", "second");  // the same key: the first is kept
        journal.template schedule<pay>(tx, "e", "");  // an empty payload
    });
    CHECK(prepared() == 1);
    // A body that throws sends nothing, and the session's statement stays.
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        journal.template schedule<pay>(tx, "b", "b");
                                        throw std::logic_error("changed my mind");
                                    }),
                    std::logic_error);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, "c", "third"); });
    CHECK(prepared() == 1);

    CHECK_FALSE(journal.find("b").has_value());
    const auto a = journal.find("a"), odd = journal.find(odd_key), empty = journal.find("e"), c = journal.find("c");
    REQUIRE(a.has_value());
    REQUIRE(odd.has_value());
    REQUIRE(empty.has_value());
    REQUIRE(c.has_value());
    CHECK(a->payload == "first");
    CHECK(a->operation == "pay");
    CHECK(a->effect == "at_most_once");
    CHECK(a->state == sertx::effect_state::pending);
    CHECK(odd->payload == odd_payload);
    CHECK(odd->operation == awkwardly_named::name);
    CHECK(odd->effect == "idempotent");
    REQUIRE(odd->not_before.has_value());
    CHECK(std::chrono::abs(*odd->not_before - later) < std::chrono::milliseconds(1));
    CHECK(empty->payload.empty());
    CHECK(c->payload == "third");
    REQUIRE(a->scheduled_at.has_value());
    REQUIRE(c->scheduled_at.has_value());
    CHECK(*a->scheduled_at <= *c->scheduled_at);
    CHECK(count(db, "select count(*) from sertx_effect") == 4);
}

TEST_CASE("behind a transaction pooler the journal's intents travel as text, and nothing is left prepared",
          "[postgresql][effects]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(),
                                      {.pool_size = 1, .pooler = sertx::postgresql::pooler_mode::transaction});
    sertx::install(db);
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<pay>(tx, "a", "first");
        journal.template schedule<pay>(tx, "a", "second");
    });
    CHECK(count(db, "select count(*) from pg_prepared_statements") == 0);
    const auto a = journal.find("a");
    REQUIRE(a.has_value());
    CHECK(a->payload == "first");
}

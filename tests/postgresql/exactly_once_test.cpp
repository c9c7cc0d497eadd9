// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on PostgreSQL.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/lock_step.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

namespace {

/// The access method of the commit log's age index, and how many indexes
/// of that name the table has.
std::pair<std::string, long long> commit_log_age_index(sertx::postgresql::database& db) {
    std::string kind;
    long long indexes = 0;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "select coalesce(min(a.amname), ''), count(*) from pg_index i join pg_class c on c.oid = "
                    "i.indexrelid join pg_am a on a.oid = c.relam where i.indrelid = 'sertx_commit_log'::regclass "
                    "and c.relname = 'sertx_commit_log_age'",
            soci::into(kind), soci::into(indexes);
    });
    return {kind, indexes};
}

}  // namespace

TEST_CASE("install replaces an older sertx's btree on the commit log's committed_at by BRIN, once, with concurrent "
          "installers, and pruning still finds the old keys",
          "[postgresql][exactly_once]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 8});
    // The schema of sertx before issue 15, made by hand, with keys of two ages.
    exec(db, "create table sertx_commit_log (key text primary key, attempt text not null, committed_at bigint not "
             "null, request text not null default '')");
    exec(db, "create index sertx_commit_log_age on sertx_commit_log (committed_at)");
    exec(db, "insert into sertx_commit_log (key, attempt, committed_at) select 'old' || g, 'a', g from "
             "generate_series(1, 500) g");
    exec(db, "insert into sertx_commit_log (key, attempt, committed_at) values ('" + sertx::detail::to_hex("recent") +
                 "', 'a', " + std::to_string(sertx::detail::unix_micros_now()) + ")");
    REQUIRE(commit_log_age_index(db) == std::pair<std::string, long long>{"btree", 1});

    std::vector<std::thread> installers;
    std::atomic<int> failed{0};
    for (int i = 0; i < 4; ++i)
        installers.emplace_back([&] {
            try {
                sertx::install(db);
            } catch (...) {
                ++failed;
            }
        });
    for (auto& t : installers) t.join();
    CHECK(failed == 0);
    CHECK(commit_log_age_index(db) == std::pair<std::string, long long>{"brin", 1});
    sertx::install(db);  // again: nothing left to change
    CHECK(commit_log_age_index(db) == std::pair<std::string, long long>{"brin", 1});

    // The keys kept their meaning, and the range delete still finds the old ones.
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"recent"}, [](auto&) { return 1; }));
    CHECK(sertx::prune_commit_log(db, std::chrono::hours(1)) == 500);
    CHECK(count(db, "select count(*) from sertx_commit_log") == 1);
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"recent"}, [](auto&) { return 1; }));
}

TEST_CASE("a new install makes the commit log's age index BRIN", "[postgresql][exactly_once]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    sertx::install(db);
    CHECK(commit_log_age_index(db) == std::pair<std::string, long long>{"brin", 1});
}

TEST_CASE("install drops the journal's index on scheduled_at that an older sertx made, and claims still use an index",
          "[postgresql][effects]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    sertx::test::pg_database pg;
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    sertx::install(db);
    const std::string queue_index = "select count(*) from pg_indexes where tablename = 'sertx_effect' and indexname = "
                                    "'sertx_effect_queue'";
    CHECK(count(db, queue_index) == 0);
    exec(db, "create index sertx_effect_queue on sertx_effect (operation, state, scheduled_at)");  // as before issue 15
    sertx::install(db);
    CHECK(count(db, queue_index) == 0);
    sertx::install(db);
    // The claim's pick reads sertx_effect_due, the index that stays.
    std::string plan;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "set local enable_seqscan = off";
        soci::rowset<std::string> rows = (tx.sql().prepare << "explain select key from sertx_effect where operation = "
                                                              "'pay' and state = 'pending' and not_before <= 1 order "
                                                              "by not_before, scheduled_at, key limit 8");
        for (const auto& line : rows) plan += line + "\n";
    });
    CHECK_THAT(plan, has_text("sertx_effect_due"));
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, "a", "first"); });
    call_log log;
    CHECK(journal.dispatch(pay{&log}, 10).done == 1);
    CHECK(log.calls("first") == 1);
}

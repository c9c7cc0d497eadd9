// SPDX-License-Identifier: BSL-1.0
#pragma once
// A COMMIT whose answer is lost, or that never reaches the server, for any
// way of reaching PostgreSQL through tests/support/fault_proxy.hpp: directly
// (tests/postgresql/lost_commit_test.cpp) or behind PgBouncer
// (tests/postgresql/pooler_test.cpp). A fixture gives `db` (the database
// reached through the proxy), `proxy`, `rows()` and `distinct_rows()` (rows
// of table t and distinct values of its n, counted on the server directly)
// and what SERTX_REQUIRE_BACKEND asks of it; its constructor installs
// sertx's tables and creates `t (n integer not null)`.

#include "catch.hpp"
#include "databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace sertx::test::lost_commit {

/// The other way to settle a lost COMMIT: ask the server about its transaction id.
using resolved_by_txid = sertx::policy<sertx::resolve_unknown<sertx::by_txid>>;

/// One insert whose COMMIT answer the proxy drops, run by transact_with(body)
/// (a keyed transact, or resolved_by_txid): it applies once and returns the body's value.
template <class Fixture, class TransactWith>
void lost_answer_applies_once(Fixture& p, TransactWith transact_with) {
    int runs = 0, actions = 0;
    p.proxy.drop_after_commit(1);
    const std::optional<int> r = transact_with([&](auto& tx) {
        ++runs;
        tx.sql() << "insert into t (n) values (1)";
        tx.after_commit([&] { ++actions; });
        return 7;
    });
    CHECK(p.proxy.commits_dropped_after_forward() == 1);
    CHECK(r == 7);
    CHECK(runs == 1);
    CHECK(actions == 1);
    CHECK(p.rows() == 1);
    CHECK(p.db.stats().commit_resolved == 1);
}

/// One insert whose COMMIT the proxy drops before the server sees it, run by
/// transact_with(body): the body runs again and applies once.
template <class Fixture, class TransactWith>
void unsent_commit_runs_again_and_applies_once(Fixture& p, TransactWith transact_with) {
    int runs = 0;
    p.proxy.drop_before_commit(1);
    const std::optional<int> r = transact_with([&](auto& tx) {
        ++runs;
        tx.sql() << "insert into t (n) values (1)";
        return runs;
    });
    CHECK(p.proxy.commits_dropped_before_forward() == 1);
    CHECK(r == 2);  // the second run's value: the first never committed
    CHECK(runs == 2);
    CHECK(p.rows() == 1);
}

template <class Fixture>
void unresolvable_lost_commit_is_unknown(Fixture& p) {
    int runs = 0, actions = 0;
    p.proxy.drop_after_commit(1);
    CHECK_THROWS_AS(sertx::transact(p.db,
                                    [&](auto& tx) {
                                        ++runs;
                                        tx.sql() << "insert into t (n) values (1)";
                                        tx.after_commit([&] { ++actions; });
                                    }),
                    sertx::commit_unknown);
    CHECK(p.proxy.commits_dropped_after_forward() == 1);
    CHECK(runs == 1);
    CHECK(actions == 0);
    CHECK(p.rows() == 1);  // it did apply; the caller was told it cannot know
    CHECK(p.db.stats().commit_unknown == 1);
}

template <class Fixture>
void twenty_lost_commits_apply_once_each(Fixture& p) {
    int runs = 0;
    for (int i = 0; i < 20; ++i) {
        if (i % 2 == 0)
            p.proxy.drop_after_commit(1);
        else
            p.proxy.drop_before_commit(1);
        const std::optional<int> r =
            sertx::transact(p.db, sertx::idempotency_key{"t-" + std::to_string(i)}, [&](auto& tx) {
                ++runs;
                tx.sql() << "insert into t (n) values (:n)", soci::use(i);
                return i;
            });
        CHECK(r == i);
    }
    CHECK(runs == 30);  // once per lost answer, twice per COMMIT that never arrived
    CHECK(p.rows() == 20);
    CHECK(p.distinct_rows() == 20);
}

/// What the intent tests schedule: nothing runs it.
struct noted {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "noted";
    void operator()(const std::string&) const {}
};

/// An intent scheduled without asking travels in COMMIT's batch: with its
/// answer lost (resolved by transact_with's key or transaction id), or with
/// COMMIT never arriving (the body runs again), it exists exactly once, with
/// the body's row.
template <class Fixture, class TransactWith>
void lost_commit_with_a_scheduled_intent_applies_it_once(Fixture& p, TransactWith transact_with) {
    sertx::effects journal(p.db);
    for (const bool answer_lost : {true, false}) {
        const std::string key = answer_lost ? "answer-lost" : "never-arrived";
        INFO(key);
        if (answer_lost)
            p.proxy.drop_after_commit(1);
        else
            p.proxy.drop_before_commit(1);
        int runs = 0;
        const std::optional<int> r = transact_with(key, [&](auto& tx) {
            ++runs;
            tx.sql() << "insert into t (n) values (1)";
            journal.template schedule<noted>(tx, key, "payload of " + key);
            return runs;
        });
        CHECK(r == runs);
        CHECK(runs == (answer_lost ? 1 : 2));
        const std::optional<sertx::effect_record> e = journal.find(key);
        REQUIRE(e.has_value());
        CHECK(e->payload == "payload of " + key);
    }
    CHECK(p.proxy.commits_dropped_after_forward() == 1);
    CHECK(p.proxy.commits_dropped_before_forward() == 1);
    CHECK(p.rows() == 2);
    CHECK(journal.pending().size() == 2);
}

}  // namespace sertx::test::lost_commit

/// Registers the scenarios above for one way of reaching the server; its
/// test file calls it once: SERTX_LOST_COMMIT_CASES(Proxied, "[postgresql]").
#define SERTX_LOST_COMMIT_CASES(Fixture, backend_tag)                                                               \
    TEST_CASE("a lost COMMIT with a key applies once and returns the body's value",            \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::lost_answer_applies_once(                                                       \
            p, [&](auto body) { return sertx::transact(p.db, sertx::idempotency_key{"transfer-1"}, body); });      \
        /* Asked again, the key says it is done. */                                                                 \
        CHECK_FALSE(sertx::transact(p.db, sertx::idempotency_key{"transfer-1"}, [&](auto&) { return 8; })          \
                        .has_value());                                                                              \
    }                                                                                                               \
    TEST_CASE("a lost COMMIT with resolve_unknown<by_txid> applies once and returns the body's value", \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::lost_answer_applies_once(p, [&](auto body) {                                    \
            return sertx::transact<::sertx::test::lost_commit::resolved_by_txid>(p.db, body);                       \
        });                                                                                                         \
    }                                                                                                               \
    TEST_CASE("a lost COMMIT without a key or by_txid throws commit_unknown and does not re-run the body", \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::unresolvable_lost_commit_is_unknown(p);                                         \
    }                                                                                                               \
    TEST_CASE("a COMMIT that never reached the server is run again with a key, and applies once", \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::unsent_commit_runs_again_and_applies_once(                                      \
            p, [&](auto body) { return sertx::transact(p.db, sertx::idempotency_key{"transfer-2"}, body); });      \
    }                                                                                                               \
    TEST_CASE("a COMMIT that never reached the server is run again with by_txid, and applies once", \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::unsent_commit_runs_again_and_applies_once(p, [&](auto body) {                   \
            return sertx::transact<::sertx::test::lost_commit::resolved_by_txid>(p.db, body);                       \
        });                                                                                                         \
    }                                                                                                               \
    TEST_CASE("a lost COMMIT carrying a scheduled intent, with a key: the intent exists once", \
              backend_tag "[lost_commit][effects]") {                                                               \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::lost_commit_with_a_scheduled_intent_applies_it_once(                            \
            p, [&](const std::string& key, auto body) {                                                            \
                return sertx::transact(p.db, sertx::idempotency_key{"transfer-" + key}, body);                     \
            });                                                                                                     \
    }                                                                                                               \
    TEST_CASE("a lost COMMIT carrying a scheduled intent, with by_txid: the intent exists once", \
              backend_tag "[lost_commit][effects]") {                                                               \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::lost_commit_with_a_scheduled_intent_applies_it_once(                            \
            p, [&](const std::string&, auto body) {                                                                \
                return std::optional<int>(                                                                          \
                    sertx::transact<::sertx::test::lost_commit::resolved_by_txid>(p.db, body));                     \
            });                                                                                                     \
    }                                                                                                               \
    TEST_CASE("twenty keyed transfers each losing their COMMIT apply once each",              \
              backend_tag "[lost_commit]") {                                                                        \
        SERTX_REQUIRE_BACKEND(Fixture);                                                                             \
        Fixture p;                                                                                                  \
        ::sertx::test::lost_commit::twenty_lost_commits_apply_once_each(p);                                         \
    }

// SPDX-License-Identifier: BSL-1.0
// A COMMIT whose answer is lost: a loopback proxy between sertx and
// PostgreSQL forwards COMMIT, lets the server apply it, and drops the
// connection before the answer reaches the client.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/fault_proxy.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>

namespace {

using sertx::test::pg_admin_value;

/// A database reached through a fault proxy, and the same database reached
/// directly, to count what really committed.
struct proxied {
    sertx::test::pg_database& pg;
    sertx::test::fault_proxy proxy;
    sertx::postgresql::database db;

    explicit proxied(sertx::test::pg_database& database)
        : pg(database),
          proxy("127.0.0.1", upstream_port()),
          db(sertx::postgresql::open(pg.conninfo() + " host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                                         " sslmode=disable gssencmode=disable",
                                     {.pool_size = 2})) {
        sertx::install(db);
        sertx::test::exec(db, "create table t (n integer not null)");
    }

    long long rows() const { return std::stoll(pg_admin_value(pg.conninfo(), "select count(*) from t")); }

    static unsigned short upstream_port() {
        char* error = nullptr;
        std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
            PQconninfoParse(sertx::test::pg_admin().c_str(), &error), &PQconninfoFree);
        if (!options) throw std::runtime_error("test: SERTX_PG is not a connection string");
        for (auto* o = options.get(); o->keyword; ++o)
            if (std::string(o->keyword) == "port" && o->val && *o->val)
                return static_cast<unsigned short>(std::stoi(o->val));
        return 5432;
    }
};

/// The other way to settle a lost COMMIT: ask the server about its transaction id.
using resolved_by_txid = sertx::policy<sertx::resolve_unknown<sertx::by_txid>>;

/// One insert whose COMMIT answer the proxy drops, run by transact_with(body)
/// (a keyed transact, or resolved_by_txid): it applies once and returns the body's value.
template <class TransactWith>
void lost_answer_applies_once(proxied& p, TransactWith transact_with) {
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
template <class TransactWith>
void unsent_commit_runs_again_and_applies_once(proxied& p, TransactWith transact_with) {
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

}  // namespace

TEST_CASE("a lost COMMIT with a key applies once and returns the body's value", "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    lost_answer_applies_once(
        p, [&](auto body) { return sertx::transact(p.db, sertx::idempotency_key{"transfer-1"}, body); });
    // Asked again, the key says it is done.
    CHECK_FALSE(sertx::transact(p.db, sertx::idempotency_key{"transfer-1"}, [&](auto&) { return 8; }).has_value());
}

TEST_CASE("a lost COMMIT with resolve_unknown<by_txid> applies once and returns the body's value",
          "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    lost_answer_applies_once(p, [&](auto body) { return sertx::transact<resolved_by_txid>(p.db, body); });
}

TEST_CASE("a lost COMMIT without a key or by_txid throws commit_unknown and does not re-run the body",
          "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
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

TEST_CASE("a COMMIT that never reached the server is run again with a key, and applies once",
          "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    unsent_commit_runs_again_and_applies_once(
        p, [&](auto body) { return sertx::transact(p.db, sertx::idempotency_key{"transfer-2"}, body); });
}

TEST_CASE("a COMMIT that never reached the server is run again with by_txid, and applies once",
          "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    unsent_commit_runs_again_and_applies_once(p,
                                              [&](auto body) { return sertx::transact<resolved_by_txid>(p.db, body); });
}

TEST_CASE("twenty keyed transfers each losing their COMMIT apply once each", "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
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
    CHECK(std::stoll(pg_admin_value(pg.conninfo(), "select count(distinct n) from t")) == 20);
}

TEST_CASE("lost COMMITs while claiming and settling an effect do not call it twice",
          "[postgresql][lost_commit][effects]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    sertx::test::call_log log;
    sertx::effects journal(p.db);
    sertx::test::schedule_all(p.db, journal, {"after", "before"});
    p.proxy.drop_after_commit(2);  // the claim of "after", then its outcome
    CHECK(journal.dispatch(sertx::test::pay{&log}, 1).done == 1);
    CHECK(p.proxy.commits_dropped_after_forward() == 2);
    p.proxy.drop_before_commit(1);  // the claim of "before" never arrives: it is claimed again
    CHECK(journal.dispatch(sertx::test::pay{&log}, 1).done == 1);
    CHECK(p.proxy.commits_dropped_before_forward() == 1);
    for (const char* k : {"after", "before"}) {
        INFO(k);
        CHECK(log.calls(k) == 1);
        CHECK(journal.find(k)->state == sertx::effect_state::done);
    }
    CHECK(journal.find("before")->attempts == 1);
}

TEST_CASE(
    "a COMMIT still running when its key is looked up applies once, and the value of the attempt that "
    "committed is returned",
    "[postgresql][lost_commit]") {
    SERTX_REQUIRE_PG(pg);
    proxied p(pg);
    // The first COMMIT outlasts the proxy's wait for its answer: the client
    // hears nothing and resolves while the server is still committing.
    sertx::test::exec(p.db, "create table slow_once (done boolean)");
    sertx::test::exec(p.db, R"(create function slow_commit() returns trigger language plpgsql as $$
        begin
            if not exists (select 1 from slow_once) then
                insert into slow_once values (true);
                perform pg_sleep(7);
            end if;
            return null;
        end $$)");
    sertx::test::exec(p.db,
                      "create constraint trigger slow after insert on t deferrable initially deferred "
                      "for each row execute function slow_commit()");
    int runs = 0;
    p.proxy.drop_after_commit(1);
    const std::optional<int> r = sertx::transact(p.db, sertx::idempotency_key{"slow"}, [&](auto& tx) {
        ++runs;
        const int attempt = static_cast<int>(tx.attempt());
        tx.sql() << "insert into t (n) values (:n)", soci::use(attempt);
        return attempt;
    });
    CHECK(p.proxy.commits_dropped_after_forward() == 1);
    CHECK(p.rows() == 1);
    REQUIRE(r.has_value());
    CHECK(std::to_string(*r) == pg_admin_value(pg.conninfo(), "select n from t"));
    CHECK(*r == 1);    // the server finished the first COMMIT
    CHECK(runs <= 2);  // a re-run, if any, found the key and did not apply
}

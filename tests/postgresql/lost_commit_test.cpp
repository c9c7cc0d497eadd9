// SPDX-License-Identifier: BSL-1.0
// A COMMIT whose answer is lost: a loopback proxy between sertx and
// PostgreSQL forwards COMMIT, lets the server apply it, and drops the
// connection before the answer reaches the client. The cases shared with
// the pooler's tests are in support/lost_commit_cases.hpp.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/fault_proxy.hpp"
#include "support/lost_commit_cases.hpp"

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
    long long distinct_rows() const {
        return std::stoll(pg_admin_value(pg.conninfo(), "select count(distinct n) from t"));
    }

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

/// The shared cases' fixture: a database of its own, reached through the proxy.
struct Proxied : sertx::test::postgresql_backend {
    sertx::test::pg_database pg;
    proxied through{pg};
    sertx::test::fault_proxy& proxy = through.proxy;
    sertx::postgresql::database& db = through.db;
    long long rows() const { return through.rows(); }
    long long distinct_rows() const { return through.distinct_rows(); }
};

}  // namespace

SERTX_LOST_COMMIT_CASES(Proxied, "[postgresql]")

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

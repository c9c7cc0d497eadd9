// SPDX-License-Identifier: BSL-1.0
// require_synchronous_standby against real servers of the test's own: a
// primary alone, a primary whose synchronous_commit does not wait, and a
// primary with a streaming standby that fails over (pg_ctl promote) to a
// new primary without one, then gets one again (DESIGN §9, docs/deployment.md).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/pg_server.hpp"
#include "support/wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <chrono>
#include <string>

using sertx::test::pg_admin_exec;
using sertx::test::pg_admin_value;
using sertx::test::pg_server;

namespace {

// Catch2 3 calls it ContainsSubstring, Catch2 2 Contains.
#if defined(SERTX_CATCH2_V3)
auto has_text(const std::string& part) { return Catch::Matchers::ContainsSubstring(part); }
#else
auto has_text(const std::string& part) { return Catch::Matchers::Contains(part); }
#endif

constexpr auto patience = std::chrono::seconds(30);

void set_and_reload(const pg_server& server, const std::string& setting, const std::string& value) {
    pg_admin_exec(server.conninfo(), "alter system set " + setting + " = '" + value + "'");
    pg_admin_exec(server.conninfo(), "select pg_reload_conf()");
    INFO("waiting for " << setting << " = '" << value << "' on port " << server.port());
    REQUIRE(sertx::test::wait_until(
        [&] { return pg_admin_value(server.conninfo(), "show " + setting) == value; }, patience));
}

void wait_for_synchronous_standby(const pg_server& primary) {
    INFO("waiting for a synchronous standby of port " << primary.port());
    REQUIRE(sertx::test::wait_until(
        [&] {
            return pg_admin_value(primary.conninfo(),
                                  "select count(*) from pg_stat_replication where sync_state = 'sync'") == "1";
        },
        patience));
}

template <class Db>
void insert_keyed(Db& db, const std::string& key, int n) {
    sertx::transact(db, sertx::idempotency_key{key},
                    [&](auto& tx) { tx.sql() << "insert into transfer (n) values (:n)", soci::use(n); });
}

}  // namespace

TEST_CASE("require_synchronous_standby refuses a primary whose commits would not wait for a standby",
          "[postgresql][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    pg_server alone;
    try {
        (void)sertx::postgresql::open(alone.conninfo(), {.require_synchronous_standby = true});
        FAIL("a primary without a standby was accepted");
    } catch (const sertx::durability_error& e) {
        CHECK_THAT(e.what(), has_text("synchronous_standby_names is empty"));
        CHECK_THAT(e.what(), has_text("require_synchronous_standby"));
    }
    auto plain = sertx::postgresql::open(alone.conninfo());  // without the option: one machine is accepted
    CHECK_FALSE(plain.stats().synchronous_replication);

    // Standbys named, but a commit acknowledged once written, not flushed, on them.
    set_and_reload(alone, "synchronous_standby_names", "*");
    set_and_reload(alone, "synchronous_commit", "remote_write");
    CHECK_THROWS_WITH(sertx::postgresql::open(alone.conninfo(), {.require_synchronous_standby = true}),
                      has_text("synchronous_commit=remote_write"));
}

TEST_CASE("with a synchronous standby writes run and after a failover to a primary alone they are refused "
          "while reads run until a new standby is attached",
          "[postgresql][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    sertx::test::pg_server_options naming_a_standby;
    naming_a_standby.settings = {"synchronous_standby_names = '*'"};
    pg_server primary(naming_a_standby);
    pg_server standby(sertx::test::standby_of{primary});
    wait_for_synchronous_standby(primary);

    const std::string both = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(primary.port()) + "," +
                             std::to_string(standby.port()) +
                             " user=postgres dbname=postgres target_session_attrs=read-write sslmode=disable "
                             "connect_timeout=5";
    auto db = sertx::postgresql::open(both, {.pool_size = 2, .require_synchronous_standby = true});
    CHECK(db.stats().synchronous_replication);
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table transfer (n integer not null)"; });
    insert_keyed(db, "before-failover", 1);
    // Acknowledged, so flushed on the standby; visible there once replayed.
    REQUIRE(sertx::test::wait_until(
        [&] { return pg_admin_value(standby.conninfo(), "select count(*) from transfer") == "1"; }, patience));

    // Failover: the primary dies, the standby is promoted and, as Patroni's
    // synchronous_mode does when no standby is healthy, stops naming one.
    primary.stop("immediate");
    standby.promote();
    set_and_reload(standby, "synchronous_standby_names", "");

    CHECK_THROWS_AS(insert_keyed(db, "alone", 2), sertx::durability_error);
    CHECK_FALSE(db.stats().synchronous_replication);
    const int seen = sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        int n = 0;
        tx.sql() << "select count(*) from transfer", soci::into(n);
        return n;
    });
    CHECK(seen == 1);

    // A standby of the new primary: writes are acknowledged again.
    pg_server second(sertx::test::standby_of{standby});
    set_and_reload(standby, "synchronous_standby_names", "*");
    wait_for_synchronous_standby(standby);
    insert_keyed(db, "with-a-new-standby", 3);
    CHECK(db.stats().synchronous_replication);
    CHECK(pg_admin_value(standby.conninfo(), "select count(*) from transfer") == "2");
    CHECK(pg_admin_value(standby.conninfo(), "select count(*) from sertx_commit_log") == "2");
}

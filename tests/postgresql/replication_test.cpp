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

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <optional>
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

/// Whether `server` shows `rows` rows in table transfer; false while the
/// table itself is not replayed there yet.
bool shows_transfers(const pg_server& server, const std::string& rows) {
    try {
        return pg_admin_value(server.conninfo(), "select count(*) from transfer") == rows;
    } catch (const std::exception&) {
        return false;
    }
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
    REQUIRE(sertx::test::wait_until([&] { return shows_transfers(standby, "1"); }, patience));

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

TEST_CASE("a session whose primary turned read-only is discarded and the attempt runs again on the new primary, "
          "while a standby or a read-only server reached directly refuses writes with a clear error",
          "[postgresql][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    pg_server primary;
    pg_server standby(sertx::test::standby_of{primary});
    const std::string both = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(primary.port()) + "," +
                             std::to_string(standby.port()) +
                             " user=postgres dbname=postgres target_session_attrs=read-write sslmode=disable "
                             "connect_timeout=5";
    auto db = sertx::postgresql::open(both, {.pool_size = 1});
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table transfer (n integer not null, port integer)"; });
    insert_keyed(db, "on-the-first-primary", 1);  // the pool's one session is on the primary now

    // A standby reached directly: refused when its session is checked (it
    // cannot run SERIALIZABLE), and said so.
    CHECK_THROWS_WITH(sertx::postgresql::open(standby.conninfo(), {.pool_size = 1}), has_text("hot standby"));

    // The demotion, as a fencing HA manager does it to a primary it cannot
    // stop: the old primary keeps accepting connections but refuses writes
    // (default_transaction_read_only, so a pooled session gets 25006 on its
    // first write); the standby is promoted.
    set_and_reload(primary, "default_transaction_read_only", "on");
    standby.promote();

    int runs = 0;
    int ran_on = 0;
    const auto before = db.stats();
    const std::optional<int> r = sertx::transact(db, sertx::idempotency_key{"after-demotion"}, [&](auto& tx) {
        ++runs;
        tx.sql() << "select inet_server_port()", soci::into(ran_on);
        tx.sql() << "insert into transfer (n, port) values (3, inet_server_port())";
        return ran_on;
    });
    CHECK(r == standby.port());  // ran again, on the new primary
    CHECK(runs == 2);
    const auto after = db.stats();
    CHECK(after.retries_of(sertx::failure::connection_lost) == before.retries_of(sertx::failure::connection_lost) + 1);
    CHECK(after.sessions_discarded == before.sessions_discarded + 1);
    CHECK(pg_admin_value(standby.conninfo(), "select count(*) from transfer where n = 3") == "1");
    CHECK(pg_admin_value(primary.conninfo(), "select count(*) from transfer where n = 3") == "0");

    // The read-only server reached directly: a clear refusal, not a retry loop.
    auto on_read_only = sertx::postgresql::open(primary.conninfo(), {.pool_size = 1});
    int refused_runs = 0;
    try {
        sertx::transact(on_read_only, [&](auto& tx) {
            ++refused_runs;
            tx.sql() << "insert into transfer (n) values (4)";
        });
        FAIL("a read-only server took a write");
    } catch (const sertx::error& e) {
        CHECK_THAT(e.what(), has_text("default_transaction_read_only=on"));
    }
    CHECK(refused_runs == 0);
}

namespace {

/// A primary that acknowledges a commit once it is on its own disk, and a
/// standby streaming from it asynchronously: the setup
/// require_synchronous_standby refuses.
struct asynchronous_pair {
    pg_server primary{sertx::test::pg_server_options{.settings = {"synchronous_commit = local"}}};
    pg_server standby{sertx::test::standby_of{primary}};
    sertx::postgresql::database db = sertx::postgresql::open(primary.conninfo(), {.pool_size = 1});

    asynchronous_pair() {
        sertx::install(db);
        sertx::transact(db, [](auto& tx) { tx.sql() << "create table transfer (n integer not null)"; });
        insert_keyed(db, "replicated", 0);
        REQUIRE(sertx::test::wait_until([&] { return shows_transfers(standby, "1"); }, patience));
    }
    /// Commits `n` keyed rows on the primary; each is acknowledged.
    int commit_rows(int n) {
        for (int i = 1; i <= n; ++i) insert_keyed(db, "acknowledged-" + std::to_string(i), i);
        return n;
    }
    /// Rows on the standby beyond the one replicated before the test.
    int rows_on_standby() const {
        return std::stoi(pg_admin_value(standby.conninfo(), "select count(*) from transfer")) - 1;
    }
};

}  // namespace

TEST_CASE("negative control: with asynchronous replication a failover loses acknowledged commits, and "
          "require_synchronous_standby refuses to acknowledge them",
          "[postgresql][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    // The standby is down while the primary acknowledges: what it never
    // received, the promoted standby cannot have.
    {
        asynchronous_pair pair;
        CHECK_THROWS_AS(sertx::postgresql::open(pair.primary.conninfo(), {.require_synchronous_standby = true}),
                        sertx::durability_error);
        pair.standby.stop("fast");
        const int acknowledged = pair.commit_rows(20);
        pair.primary.stop("immediate");
        pair.standby.start();
        pair.standby.promote();
        const int kept = pair.rows_on_standby();
        std::printf("sertx-ha: negative control, standby stopped: %d commits acknowledged, %d on the promoted standby, "
                    "%d lost\n",
                    acknowledged, kept, acknowledged - kept);
        CHECK(kept == 0);
    }
    // The standby's WAL receiver paused (SIGSTOP), as a lagging standby:
    // what it has not read yet may or may not reach it before promotion.
    {
        asynchronous_pair pair;
        const std::string receiver = pg_admin_value(pair.standby.conninfo(), "select pid from pg_stat_wal_receiver");
        REQUIRE_FALSE(receiver.empty());
        const pid_t pid = static_cast<pid_t>(std::stol(receiver));
        REQUIRE(::kill(pid, SIGSTOP) == 0);
        const int acknowledged = pair.commit_rows(20);
        pair.primary.stop("immediate");
        ::kill(pid, SIGCONT);
        pair.standby.promote();
        const int kept = pair.rows_on_standby();
        std::printf("sertx-ha: negative control, WAL receiver paused: %d commits acknowledged, %d on the promoted "
                    "standby, %d lost\n",
                    acknowledged, kept, acknowledged - kept);
        CHECK(kept <= acknowledged);
    }
    std::fflush(stdout);
}

TEST_CASE("a pooled session stops writing when its primary stops naming a synchronous standby, and writes again "
          "when it names one",
          "[postgresql][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    pg_server primary(sertx::test::pg_server_options{.settings = {"synchronous_standby_names = '*'"}});
    pg_server standby(sertx::test::standby_of{primary});
    wait_for_synchronous_standby(primary);
    auto db = sertx::postgresql::open(primary.conninfo(), {.pool_size = 1, .require_synchronous_standby = true});
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table transfer (n integer not null)"; });
    insert_keyed(db, "with-a-standby", 1);  // the pool's one session, checked when it opened

    // What Patroni's synchronous_mode does when its standby turns unhealthy:
    // the primary stays, and stops waiting for a standby. The same session
    // must not acknowledge a commit from one machine now.
    set_and_reload(primary, "synchronous_standby_names", "");
    CHECK_THROWS_AS(insert_keyed(db, "alone", 2), sertx::durability_error);
    CHECK_FALSE(db.stats().synchronous_replication);
    CHECK(db.stats().sessions_opened == 1);  // the same session, not a new one
    set_and_reload(primary, "synchronous_standby_names", "*");
    wait_for_synchronous_standby(primary);
    insert_keyed(db, "standby-named-again", 3);
    CHECK(db.stats().synchronous_replication);
    CHECK(pg_admin_value(primary.conninfo(), "select count(*) from transfer") == "2");
}

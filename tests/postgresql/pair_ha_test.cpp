// SPDX-License-Identifier: BSL-1.0
// A streaming pair failing over under keyed load, without an HA manager: the
// primary stopped with -m immediate, the standby promoted with pg_ctl and,
// as Patroni's synchronous_mode does when no standby is left, made to stop
// waiting for one. Figures print on lines that start "sertx-ha:".
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/failover_load.hpp"
#include "support/keyed_bank.hpp"
#include "support/pg_server.hpp"
#include "support/wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace keyed_bank = sertx::test::keyed_bank;
namespace failover_load = sertx::test::failover_load;
using sertx::test::pg_admin_exec;
using sertx::test::pg_admin_value;
using sertx::test::pg_server;
using sertx::test::wait_until;
using namespace std::chrono_literals;

namespace {

using failover_load::patient;
const keyed_bank::workload& eight = failover_load::eight_workers;

}  // namespace

TEST_CASE("keyed transfers through a failover of a streaming pair: every acknowledged one is on the promoted "
          "standby once and money is conserved",
          "[postgresql][ha][replication]") {
    SERTX_REQUIRE_PG_SERVER();
    pg_server primary(sertx::test::pg_server_options{.settings = {"synchronous_standby_names = '*'"}});
    pg_server standby(sertx::test::standby_of{primary});
    REQUIRE(wait_until(
        [&] {
            return pg_admin_value(primary.conninfo(),
                                  "select count(*) from pg_stat_replication where sync_state = 'sync'") == "1";
        },
        30s));
    const std::string both = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(primary.port()) + "," +
                             std::to_string(standby.port()) +
                             " user=postgres dbname=postgres target_session_attrs=read-write sslmode=disable "
                             "gssencmode=disable connect_timeout=2";
    auto db = sertx::postgresql::open(both, {.pool_size = 8});
    keyed_bank::open(db, eight);

    failover_load::record seen;
    failover_load::writers<patient, decltype(db)> writers(db, eight, seen);

    REQUIRE(wait_until([&] { return seen.commits() >= 300; }, 60s));
    const long long at = failover_load::unix_ms();
    primary.stop("immediate");
    standby.promote();
    // Alone, it would wait for a standby forever: as Patroni does, stop naming one.
    pg_admin_exec(standby.conninfo(), "alter system set synchronous_standby_names = ''");
    pg_admin_exec(standby.conninfo(), "select pg_reload_conf()");
    long long first = -1;
    REQUIRE(wait_until([&] { return (first = seen.first_commit_on(standby.port(), at)) >= 0; }, 60s));
    const std::size_t after = seen.commits();
    REQUIRE(wait_until([&] { return seen.commits() >= after + 300; }, 60s));
    writers.stop();

    const auto v = keyed_bank::audit(db, eight, seen.final_answers);
    INFO(v.describe() << seen.final_answers.failure_sample());
    CHECK(v.holds());
    CHECK(seen.final_answers.count(keyed_bank::answers::failed) == 0);
    CHECK(seen.final_answers.count(keyed_bank::answers::unknown) == 0);
    CHECK(pg_admin_value(standby.conninfo(), "select sum(balance) from account") == std::to_string(eight.total()));
    CHECK(std::stoul(pg_admin_value(standby.conninfo(), "select count(*) from sertx_commit_log")) ==
          seen.final_answers.acknowledged());
    const auto s = db.stats();
    std::printf("sertx-ha: pair failover (stop -m immediate, pg_ctl promote): unavailable %lld ms (kill to first "
                "commit on the promoted standby); %zu transfers acknowledged, %lld resubmissions by clients (%lld "
                "after commit_unknown); sertx: %llu retries (%llu connection_lost), %llu commit_unknown resolved\n",
                first - at, seen.final_answers.acknowledged(), seen.resubmissions.load(), seen.unknown_answers.load(),
                static_cast<unsigned long long>(s.total_retries()),
                static_cast<unsigned long long>(s.retries_of(sertx::failure::connection_lost)),
                static_cast<unsigned long long>(s.commit_resolved));
    std::fflush(stdout);
}

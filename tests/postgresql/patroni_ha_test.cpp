// SPDX-License-Identifier: BSL-1.0
// A Patroni cluster on etcd (scripts/cluster: three PostgreSQL nodes,
// synchronous_mode, failover in seconds), reached as applications reach it:
// a multi-host connection string with target_session_attrs=read-write and
// {.require_synchronous_standby = true}. Failovers are SIGKILLs of the
// leader's postmaster or of its Patroni; switchovers are patronictl's.
// Figures are printed on lines that start "sertx-ha:" (docs/deployment.md).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/failover_load.hpp"
#include "support/keyed_bank.hpp"
#include "support/patroni_cluster.hpp"
#include "support/wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace keyed_bank = sertx::test::keyed_bank;
namespace failover_load = sertx::test::failover_load;
using sertx::test::patroni_cluster;
using sertx::test::pg_admin_value;
using sertx::test::wait_until;
using namespace std::chrono_literals;

namespace {

using failover_load::patient;
const keyed_bank::workload& eight = failover_load::eight_workers;

}  // namespace

TEST_CASE("keyed transfers through 3 failovers and 2 switchovers of a Patroni cluster: every acknowledged one "
          "is on the final primary once and money is conserved",
          "[postgresql][ha][patroni]") {
    SERTX_REQUIRE_PATRONI();
    const auto started = std::chrono::steady_clock::now();
    patroni_cluster cluster;
    const char* unfenced_env = std::getenv("SERTX_HA_UNFENCED");
    const bool unfenced = unfenced_env && std::string(unfenced_env) == "1";
    auto db = sertx::postgresql::open(cluster.conninfo(), {.pool_size = 8, .require_synchronous_standby = true});
    keyed_bank::open(db, eight);

    failover_load::record seen;
    failover_load::writers<patient, decltype(db)> writers(db, eight, seen);

    const char* events[] = {"failover postmaster", "switchover", "failover patroni", "switchover",
                            "failover postmaster"};
    std::vector<std::string> windows;
    std::vector<long long> event_times;
    auto last_event_at = [&](long long t) {
        long long last = 0;
        for (long long e : event_times)
            if (e <= t) last = e;
        return last;
    };
    for (const char* event : events) {
        // Each event lands on a cluster that is whole again (a synchronous
        // standby named: Patroni promotes only a node known synchronous) and
        // carries load since the last one.
        cluster.wait_healthy(2);
        const std::size_t before = seen.commits();
        INFO("before " << event << ": " << cluster.status());
        REQUIRE(wait_until([&] { return seen.commits() >= before + 100; }, 60s));
        const auto old_leader = cluster.leader();
        const std::string what = event;
        const long long at = what == "switchover" ? cluster.switchover()
                                                  : cluster.failover(what.substr(what.find(' ') + 1));
        event_times.push_back(at);
        std::printf("sertx-ha: patroni %s of %s (port %d) at %lld\n", event, old_leader.first.c_str(), old_leader.second, at);
        std::pair<std::string, int> now{"", 0};
        REQUIRE(wait_until(
            [&] {
                now = cluster.leader();
                return !now.first.empty() && now.first != old_leader.first;
            },
            90s));
        // A Patroni killed leaves its PostgreSQL running as a primary nobody
        // manages; it is fenced (SIGKILL, as Patroni's watchdog would do),
        // then a new Patroni brings the node back as a replica. Unfenced
        // (SERTX_HA_UNFENCED=1), the new Patroni releases the commits that
        // wait for a standby, and the audit finds them lost
        // (docs/deployment.md).
        cluster.heal(unfenced);
        long long first = -1;
        INFO("after " << event << ": " << cluster.status());
        REQUIRE(wait_until([&] { return (first = seen.first_commit_on(now.second, at)) >= 0; }, 90s));
        windows.push_back(std::string(event) + " " + old_leader.first + " -> " + now.first + ": " +
                          std::to_string(first - at) + " ms");
        std::printf("sertx-ha: patroni %s, %s -> %s: unavailable %lld ms (kill to first commit on the new primary)\n",
                    event, old_leader.first.c_str(), now.first.c_str(), first - at);
    }
    cluster.wait_healthy(2);
    writers.stop();

    const auto v = keyed_bank::audit(db, eight, seen.final_answers);
    if (!v.holds()) {
        // Which acknowledged commits are missing: where and when they were acknowledged.
        const auto books = keyed_bank::read_books(db, eight);
        std::set<long long> missing;
        for (long long id : seen.final_answers.ids(keyed_bank::answers::moved))
            if (!books.transfers.count(id)) missing.insert(id);
        for (const auto& c : seen.commits_of(missing))
            std::printf("sertx-ha: missing transfer %lld acknowledged by port %d at %lld (%+lld ms from the last event)\n",
                        c.id, c.port, c.at_ms, c.at_ms - last_event_at(c.at_ms));
    }
    INFO(v.describe() << seen.final_answers.failure_sample());
    CHECK(v.holds());
    CHECK(seen.final_answers.count(keyed_bank::answers::failed) == 0);
    CHECK(seen.final_answers.count(keyed_bank::answers::unknown) == 0);
    // Read on the final primary itself, not through the pool.
    const auto leader = cluster.leader();
    REQUIRE(leader.second != 0);
    const std::string direct = cluster.node_conninfo(leader.second);
    CHECK(pg_admin_value(direct, "select sum(balance) from account") == std::to_string(eight.total()));
    CHECK(std::stoul(pg_admin_value(direct, "select count(*) from sertx_commit_log")) ==
          seen.final_answers.acknowledged());
    const auto s = db.stats();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("sertx-ha: patroni %zu transfers acknowledged (%zu moved, %zu refused for funds, %zu found committed "
                "before); %lld resubmissions by clients (%lld after commit_unknown, %lld after a durability_error); "
                "sertx: %llu retries (%llu connection_lost), %llu commit_unknown resolved, %llu sessions discarded; "
                "%.1f s\n",
                seen.final_answers.acknowledged(), seen.final_answers.count(keyed_bank::answers::moved),
                seen.final_answers.count(keyed_bank::answers::refused),
                seen.final_answers.count(keyed_bank::answers::committed_before), seen.resubmissions.load(),
                seen.unknown_answers.load(), seen.durability_refusals.load(),
                static_cast<unsigned long long>(s.total_retries()),
                static_cast<unsigned long long>(s.retries_of(sertx::failure::connection_lost)),
                static_cast<unsigned long long>(s.commit_resolved),
                static_cast<unsigned long long>(s.sessions_discarded), seconds);
    std::fflush(stdout);
    CHECK(windows.size() == 5);
}

TEST_CASE("on Patroni's synchronous_mode a failover that leaves the new primary alone empties "
          "synchronous_standby_names, and sertx refuses writes, runs reads, and writes again once a standby is back",
          "[postgresql][ha][patroni]") {
    SERTX_REQUIRE_PATRONI();
    patroni_cluster cluster;
    cluster.wait_healthy(2);
    auto db = sertx::postgresql::open(cluster.conninfo(), {.pool_size = 2, .require_synchronous_standby = true});
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t (n integer not null)"; });
    auto insert = [&](const std::string& key, int n) {
        sertx::transact<patient>(db, sertx::idempotency_key{key},
                                 [&](auto& tx) { tx.sql() << "insert into t (n) values (:n)", soci::use(n); });
    };
    auto count = [&] {
        return sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
            int n = 0;
            tx.sql() << "select count(*) from t", soci::into(n);
            return n;
        });
    };
    insert("with-standbys", 1);
    CHECK(db.stats().synchronous_replication);

    // Two machines lost: first the asynchronous replica, then the leader;
    // Patroni promotes the synchronous standby, which has no standby left,
    // and (not strict) stops naming one so that it accepts writes alone.
    const auto leader = cluster.with_role("leader");
    const auto survivor = cluster.with_role("sync_standby");
    const auto replica = cluster.with_role("replica");
    REQUIRE(!leader.name.empty());
    REQUIRE(!survivor.name.empty());
    REQUIRE(!replica.name.empty());
    cluster.kill_node(replica.name);
    cluster.kill_node(leader.name);
    const std::string direct = cluster.node_conninfo(survivor.port);
    INFO("waiting for " << survivor.name << " to lead alone: " << cluster.status());
    REQUIRE(wait_until(
        [&] {
            try {
                return cluster.leader().first == survivor.name &&
                       pg_admin_value(direct, "select pg_is_in_recovery()::text") == "false" &&
                       pg_admin_value(direct, "show synchronous_standby_names").empty();
            } catch (const std::exception&) {
                return false;
            }
        },
        90s));

    CHECK_THROWS_AS(insert("alone", 2), sertx::durability_error);
    CHECK_FALSE(db.stats().synchronous_replication);
    CHECK(count() == 1);
    CHECK(pg_admin_value(direct, "select count(*) from sertx_commit_log") == "1");

    // The lost machines come back as replicas; Patroni names one synchronous.
    cluster.heal();
    cluster.wait_healthy(2);
    insert("standby-back", 3);
    CHECK(db.stats().synchronous_replication);
    CHECK(count() == 2);
    std::fflush(stdout);
}

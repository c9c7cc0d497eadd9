// SPDX-License-Identifier: BSL-1.0
// The effect journal as a worker fleet (leases, rescue, retries, dead
// letters, reconciliation, wake-ups) on PostgreSQL.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/journal_fleet_cases.hpp"
#include "support/pg_server.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

namespace {

/// A fresh PostgreSQL database, as support/journal_fleet_cases.hpp uses it.
struct PostgreSQL : sertx::test::postgresql_backend {
    sertx::test::pg_database pg;
    sertx::postgresql::database db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 8});
};

}  // namespace

SERTX_JOURNAL_FLEET_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("journal: run is woken by NOTIFY when another pool (another process) schedules",
          "[postgresql][journal][concurrency]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    using namespace std::chrono_literals;
    using namespace sertx::test;
    using namespace sertx::test::fleet;
    PostgreSQL fixture;
    sertx::install(fixture.db);
    // A second pool: its own in-process signal, so only the server's
    // notification can wake a run on it before its 30 s poll.
    sertx::postgresql::database other = sertx::postgresql::open(fixture.pg.conninfo(), {.pool_size = 2});
    call_log log;
    gate called;
    sertx::effects scheduler(fixture.db, "scheduler", {.lease = 30s, .poll = 30s});
    sertx::effects dispatcher(other, "pod-elsewhere", {.lease = 30s, .poll = 30s});
    {
        runner run(dispatcher, signalled{&log, &called});
        schedule_all<signalled>(fixture.db, scheduler, {"warm-up"});  // the listener may not be listening yet
        REQUIRE(called.wait_for(soon));
        REQUIRE(wait_until([&] { return record_of(dispatcher, "warm-up").state == sertx::effect_state::done; }, soon));
        // A schedule that rolls back sends nothing; one that commits wakes it.
        try {
            sertx::transact(fixture.db, [&](auto& tx) {
                scheduler.template schedule<signalled>(tx, "rolled-back", "rolled-back");
                throw std::runtime_error("test: roll back");
            });
        } catch (const std::runtime_error&) {
        }
        schedule_all<signalled>(fixture.db, scheduler, {"notified"});
        REQUIRE(wait_until([&] { return log.calls("notified") == 1; }, soon));
        const sertx::run_report report = run.stop();
        CHECK(run.returned_promptly());
        CHECK(report.database_errors == 0);
    }
    CHECK(log.calls("rolled-back") == 0);
    CHECK_FALSE(scheduler.find("rolled-back").has_value());
}

TEST_CASE("journal: run survives a server restart: its listener reconnects and NOTIFY wakes it again",
          "[postgresql][journal]") {
    SERTX_REQUIRE_PG_SERVER();
    using namespace std::chrono_literals;
    using namespace sertx::test;
    using namespace sertx::test::fleet;
    pg_server server;
    auto db = sertx::postgresql::open(server.conninfo(), {.pool_size = 4});
    sertx::install(db);
    // Scheduled on another pool: only the server's notification (or the
    // 30 s poll, which the bound below rules out) can wake the run.
    auto elsewhere = sertx::postgresql::open(server.conninfo(), {.pool_size = 2});
    call_log log;
    event_counts events;
    sertx::effects scheduler(elsewhere, "scheduler", {.lease = 30s, .poll = 30s});
    sertx::effects dispatcher(db, "pod-1", {.lease = 30s, .poll = 30s});
    runner run(dispatcher, signalled{&log}, &events);
    schedule_all<signalled>(elsewhere, scheduler, {"before"});
    REQUIRE(wait_until([&] { return log.calls("before") == 1; }, soon));
    server.restart("fast");  // every session ends, the listener's too
    schedule_all<signalled>(elsewhere, scheduler, {"after"});
    REQUIRE(wait_until([&] { return log.calls("after") == 1; }, soon));
    REQUIRE(wait_until([&] { return scheduler.stats().started == 0; }, soon));
    const sertx::run_report report = run.stop();
    CHECK(run.returned_promptly());
    CHECK(report.database_errors >= 1);  // at least the listener's lost connection
    CHECK(events.errors >= 1);
    CHECK(record_of(scheduler, "after").state == sertx::effect_state::done);
}

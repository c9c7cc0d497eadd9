// SPDX-License-Identifier: BSL-1.0
// Client crashes on PostgreSQL: a load generator killed with SIGKILL twenty
// times in a row, each restart beginning with recover(). Every acknowledged
// transfer survives exactly once, and no effect is performed twice.
#include "support/catch.hpp"
#include "support/crash_load.hpp"
#include "support/databases.hpp"
#include "support/keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

namespace crash = sertx::test::crash;
namespace keyed_bank = sertx::test::keyed_bank;

TEST_CASE("a load generator killed twenty times loses no acknowledged transfer and performs no effect twice",
          "[postgresql][faults][crash]") {
    SERTX_REQUIRE_PG(pg);
    sertx::test::temp_dir dir;
    const keyed_bank::workload w{.accounts = 10, .writers = 1, .transfers_per_writer = 0, .opening_balance = 1000};
    const std::string acks = dir.file("acks.log"), calls = dir.file("calls.log");
    {
        auto db = sertx::postgresql::open(pg.conninfo());
        keyed_bank::open(db, w);
    }  // closed before any fork: a child must not share the parent's connections

    const auto kills =
        crash::kill_repeatedly([&] { return sertx::postgresql::open(pg.conninfo(), {.pool_size = 2}); }, w, 20, acks, calls);
    CHECK(kills.child_failure.empty());
    CHECK(kills.kills == 20);

    auto db = sertx::postgresql::open(pg.conninfo());
    std::string errors;
    keyed_bank::answers answers;
    crash::read_acks(acks, answers, errors);
    CHECK(errors.empty());
    const auto verdict = keyed_bank::audit(db, w, answers);
    const auto effects = crash::settle_and_check(db, w, calls);

    INFO(verdict.describe() << "\n" << effects.describe() << "\n" << errors);
    CHECK(verdict.holds());
    CHECK(effects.holds());
    CHECK(answers.acknowledged() > 0);
    CHECK(effects.intents > 0);
    WARN("PostgreSQL client crashes: " << kills.kills << " SIGKILLs; " << answers.acknowledged()
                                       << " acknowledged transfers all present once; " << effects.intents
                                       << " effects, none performed twice, " << effects.in_doubt
                                       << " left in doubt by a kill and settled by hand");
}

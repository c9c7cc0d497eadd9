// SPDX-License-Identifier: BSL-1.0
// The effect journal on PostgreSQL survives SIGKILL of its dispatcher
// processes at every step (support/effects_crash.hpp).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/effects_crash.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

using namespace sertx::test;

TEST_CASE("a dispatcher killed at each step leaves PostgreSQL effects settled or in doubt, never called twice",
          "[postgresql][effects][crash]") {
    SERTX_REQUIRE_PG(pg);
    temp_dir dir;
    auto db = sertx::postgresql::open(pg.conninfo());
    crash_at_every_step(db, "postgresql", pg.conninfo(), dir.file("calls.log"));
}

TEST_CASE("two dispatcher processes call each of 1000 effects once on PostgreSQL",
          "[postgresql][effects][crash][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    temp_dir dir;
    auto db = sertx::postgresql::open(pg.conninfo());
    two_processes_call_each_once(db, "postgresql", pg.conninfo(), dir.file("calls.log"), 1000);
}

TEST_CASE("dispatcher processes killed at random moments never call an effect twice on PostgreSQL",
          "[postgresql][effects][crash][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    temp_dir dir;
    auto db = sertx::postgresql::open(pg.conninfo());
    random_kills_keep_at_most_once(db, "postgresql", pg.conninfo(), dir.file("calls.log"), 300, 20, 20240601);
}

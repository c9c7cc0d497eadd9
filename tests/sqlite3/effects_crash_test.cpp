// SPDX-License-Identifier: BSL-1.0
// The effect journal on a SQLite file survives SIGKILL of its dispatcher
// processes at every step (support/effects_crash.hpp).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/effects_crash.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

using namespace sertx::test;

TEST_CASE("a dispatcher killed at each step leaves SQLite effects settled or in doubt, never called twice",
          "[sqlite3][effects][crash]") {
    temp_dir dir;
    const std::string path = dir.file("journal.db");
    auto db = sertx::sqlite3::open(path);
    crash_at_every_step(db, "sqlite3", path, dir.file("calls.log"));
}

TEST_CASE("two dispatcher processes call each of 1000 effects once on SQLite",
          "[sqlite3][effects][crash][concurrency]") {
    temp_dir dir;
    const std::string path = dir.file("journal.db");
    auto db = sertx::sqlite3::open(path);
    two_processes_call_each_once(db, "sqlite3", path, dir.file("calls.log"), 1000);
}

TEST_CASE("dispatcher processes killed at random moments never call an effect twice on SQLite",
          "[sqlite3][effects][crash][concurrency]") {
    temp_dir dir;
    const std::string path = dir.file("journal.db");
    auto db = sertx::sqlite3::open(path);
    random_kills_keep_at_most_once(db, "sqlite3", path, dir.file("calls.log"), 300, 20, 20240601);
}

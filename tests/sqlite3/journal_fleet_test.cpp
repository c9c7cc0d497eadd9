// SPDX-License-Identifier: BSL-1.0
// The effect journal as a worker fleet (leases, rescue, retries, dead
// letters, reconciliation, wake-ups) on a SQLite file.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/journal_fleet_cases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace {

/// A fresh SQLite file, as support/journal_fleet_cases.hpp uses it.
struct SQLite : sertx::test::sqlite3_backend {
    sertx::test::temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("journal.db"), {.pool_size = 8});
};

}  // namespace

SERTX_JOURNAL_FLEET_CASES(SQLite, "[sqlite3]")

// SPDX-License-Identifier: BSL-1.0
// The effect journal as a worker fleet (leases, rescue, retries, dead
// letters, reconciliation, wake-ups) on PostgreSQL.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/journal_fleet_cases.hpp"

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

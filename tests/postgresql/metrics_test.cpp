// SPDX-License-Identifier: BSL-1.0
// The metrics of a real PostgreSQL database, through the shared cases of
// support/metrics_cases.hpp.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/metrics_cases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/testing/chaos.hpp>

namespace {

struct PostgreSQL : sertx::test::postgresql_backend {
    sertx::test::pg_database pg;
    sertx::postgresql::database db = sertx::postgresql::open(pg.conninfo());
    static sertx::testing::chaos_options failures() {
        return {.seed = 7, .at_commit = {.serialization = 0.2, .deadlock = 0.1}};
    }
};

}  // namespace

SERTX_METRICS_CASES(PostgreSQL, "[postgresql]")

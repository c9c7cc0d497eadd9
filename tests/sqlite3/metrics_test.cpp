// SPDX-License-Identifier: BSL-1.0
// The metrics of a real SQLite database, through the shared cases of
// support/metrics_cases.hpp.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/metrics_cases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>
#include <sertx/testing/chaos.hpp>

namespace {

struct SQLite : sertx::test::sqlite3_backend {
    sertx::test::temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("app.db"));
    static sertx::testing::chaos_options failures() {
        return {.seed = 7, .at_commit = {.serialization = 0.2, .busy = 0.1}};
    }
};

}  // namespace

SERTX_METRICS_CASES(SQLite, "[sqlite3]")

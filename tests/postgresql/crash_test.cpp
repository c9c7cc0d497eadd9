// SPDX-License-Identifier: BSL-1.0
// Client crashes on PostgreSQL: a load generator killed with SIGKILL twenty
// times in a row, each restart beginning with recover(). Every acknowledged
// transfer survives exactly once, and no effect is performed twice
// (support/crash_load.hpp).
#include "support/catch.hpp"
#include "support/crash_load.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <optional>
#include <string>

namespace {

/// A fresh PostgreSQL database; the server checks its own files (no
/// integrity_check to ask).
struct PostgreSQL : sertx::test::postgresql_backend {
    sertx::postgresql::database open(std::size_t pool_size) const {
        return sertx::postgresql::open(pg.conninfo(), {.pool_size = pool_size});
    }
    std::string file(const std::string& name) const { return dir.file(name); }
    static std::optional<std::string> integrity(sertx::postgresql::database&) { return std::nullopt; }

    sertx::test::pg_database pg;
    sertx::test::temp_dir dir;
};

}  // namespace

SERTX_CRASH_CASES(PostgreSQL, "[postgresql]")

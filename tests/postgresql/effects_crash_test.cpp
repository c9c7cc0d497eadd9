// SPDX-License-Identifier: BSL-1.0
// The effect journal on PostgreSQL survives SIGKILL of its dispatcher
// processes at every step (support/effects_crash.hpp).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/effects_crash.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <string>

namespace {

/// A fresh PostgreSQL database the children open by its connection string.
struct PostgreSQL : sertx::test::postgresql_backend {
    static constexpr const char* child_backend = "postgresql";
    std::string target() const { return pg.conninfo(); }
    sertx::postgresql::database open() const { return sertx::postgresql::open(target()); }
    std::string file(const std::string& name) const { return dir.file(name); }

    sertx::test::pg_database pg;
    sertx::test::temp_dir dir;
};

}  // namespace

SERTX_EFFECTS_CRASH_CASES(PostgreSQL, "[postgresql]")

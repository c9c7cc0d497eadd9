// SPDX-License-Identifier: BSL-1.0
// The journal on PostgreSQL under real process churn: dispatchers SIGKILLed,
// replaced and SIGSTOPped past their lease (support/journal_churn.hpp).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/journal_churn.hpp"

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

SERTX_JOURNAL_CHURN_CASES(PostgreSQL, "[postgresql]")

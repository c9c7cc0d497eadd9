// SPDX-License-Identifier: BSL-1.0
#pragma once
// The PostgreSQL fixture of the families whose child processes open the
// database themselves (effects_crash, journal_churn): a fresh database they
// reach by its connection string, and a directory for their files.

#include "databases.hpp"

#include <sertx/soci/postgresql.hpp>

#include <string>

namespace sertx::test {

struct postgresql_for_children : postgresql_backend {
    static constexpr const char* child_backend = "postgresql";
    std::string target() const { return pg.conninfo(); }
    sertx::postgresql::database open() const { return sertx::postgresql::open(target()); }
    std::string file(const std::string& name) const { return dir.file(name); }

    pg_database pg;
    temp_dir dir;
};

}  // namespace sertx::test

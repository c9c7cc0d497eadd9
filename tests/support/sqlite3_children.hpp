// SPDX-License-Identifier: BSL-1.0
#pragma once
// The SQLite fixture of the families whose child processes open the
// database themselves (effects_crash, journal_churn): a file they open by
// its path, in a directory for their files.

#include "databases.hpp"

#include <sertx/soci/sqlite3.hpp>

#include <string>

namespace sertx::test {

struct sqlite3_for_children : sqlite3_backend {
    static constexpr const char* child_backend = "sqlite3";
    std::string target() const { return dir.file("journal.db"); }
    sertx::sqlite3::database open() const { return sertx::sqlite3::open(target()); }
    std::string file(const std::string& name) const { return dir.file(name); }

    temp_dir dir;
};

}  // namespace sertx::test

// SPDX-License-Identifier: BSL-1.0
// The journal on a SQLite file under real process churn: dispatchers
// SIGKILLed, replaced and SIGSTOPped past their lease
// (support/journal_churn.hpp).
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/journal_churn.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <string>

namespace {

/// A SQLite file the children open by its path.
struct SQLite : sertx::test::sqlite3_backend {
    static constexpr const char* child_backend = "sqlite3";
    std::string target() const { return dir.file("journal.db"); }
    sertx::sqlite3::database open() const { return sertx::sqlite3::open(target()); }
    std::string file(const std::string& name) const { return dir.file(name); }

    sertx::test::temp_dir dir;
};

}  // namespace

SERTX_JOURNAL_CHURN_CASES(SQLite, "[sqlite3]")

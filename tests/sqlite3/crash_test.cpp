// SPDX-License-Identifier: BSL-1.0
// Client crashes on SQLite: a load generator killed with SIGKILL twenty times
// in a row, each restart beginning with recover(). Every acknowledged
// transfer survives exactly once, the file stays intact, and no effect is
// performed twice (support/crash_load.hpp).
#include "support/catch.hpp"
#include "support/crash_load.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <optional>
#include <string>

namespace {

/// A SQLite file the children open by its path; its integrity_check is part
/// of the verdict.
struct SQLite : sertx::test::sqlite3_backend {
    sertx::sqlite3::database open(std::size_t pool_size) const {
        return sertx::sqlite3::open(dir.file("bank.db"), {.pool_size = pool_size});
    }
    std::string file(const std::string& name) const { return dir.file(name); }
    static std::optional<std::string> integrity(sertx::sqlite3::database& db) {
        std::string ok;
        sertx::transact(db, [&](auto& tx) { tx.sql() << "PRAGMA integrity_check", soci::into(ok); });
        return ok;
    }

    sertx::test::temp_dir dir;
};

}  // namespace

SERTX_CRASH_CASES(SQLite, "[sqlite3]")

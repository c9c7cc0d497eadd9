// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on a SQLite file.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace {

/// A fresh SQLite file, as support/exactly_once.hpp uses it.
struct SQLite : sertx::test::sqlite3_backend {
    sertx::test::temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("eo.db"), {.pool_size = 8});
};

}  // namespace

SERTX_EXACTLY_ONCE_CASES(SQLite, "[sqlite3]")

// SPDX-License-Identifier: BSL-1.0
// The bank (support/bank.hpp) on one SQLite file.
#include "support/bank.hpp"
#include "support/bank_invariants.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <cstddef>

namespace {

struct SQLite : sertx::test::sqlite3_backend {
    // 500 transfers per writer, not 1,000 as on PostgreSQL: writers waiting in
    // SQLite's busy handler poll for the lock (sleeping 1, 2, 5, 10... ms), so
    // on a loaded machine throughput fell from ~3,000 to ~350 tx/s.
    static constexpr sertx::test::bank::workload load{
        .accounts = 10, .writers = 8, .transfers_per_writer = 500, .opening_balance = 1000};
    // BEGIN IMMEDIATE already waits in SQLite's busy handler: no backoff on top.
    using writers = sertx::policy<sertx::max_attempts<100>, sertx::no_backoff>;
    // One writer at a time, waited for before BEGIN: no conflict to retry.
    static constexpr bool writers_collide = false;

    sertx::sqlite3::database open(std::size_t pool_size) const {
        return sertx::sqlite3::open(dir.file("bank.db"), {.pool_size = pool_size});
    }

    sertx::test::temp_dir dir;
};

}  // namespace

SERTX_BANK_CASES(SQLite, "[sqlite3]")

// SPDX-License-Identifier: BSL-1.0
#include "support/bank.hpp"
#include "support/bank_invariants.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace bank = sertx::test::bank;

TEST_CASE("concurrent read-check-write transfers on one SQLite file conserve money, with every read consistent",
          "[sqlite3][concurrency]") {
    sertx::test::temp_dir dir;
    // 500 transfers per writer, not 2,000 as on PostgreSQL: writers waiting in
    // SQLite's busy handler poll for the lock (sleeping 1, 2, 5, 10... ms), so
    // on a loaded machine throughput fell from ~3,000 to ~350 tx/s.
    const bank::workload w{.accounts = 10, .writers = 8, .transfers_per_writer = 500, .opening_balance = 1000};
    auto db = sertx::sqlite3::open(dir.file("bank.db"), {.pool_size = static_cast<std::size_t>(w.writers) + 1});
    bank::open_accounts(db, w);

    // BEGIN IMMEDIATE already waits in SQLite's busy handler: no backoff on top.
    const auto o = bank::run<sertx::policy<sertx::max_attempts<100>, sertx::no_backoff>>(db, w);
    WARN(bank::summary("SQLite", w, o));

    bank::check_invariants(w, o);
}

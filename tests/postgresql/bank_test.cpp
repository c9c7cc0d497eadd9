// SPDX-License-Identifier: BSL-1.0
// The bank (support/bank.hpp) on PostgreSQL.
#include "support/bank.hpp"
#include "support/bank_invariants.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <cstddef>

namespace {

struct PostgreSQL : sertx::test::postgresql_backend {
    // 1,000 transfers per writer: 2,000 took 35 s on an idle 2-core machine
    // and 122 s on a loaded one, past the minute a test may take.
    static constexpr sertx::test::bank::workload load{
        .accounts = 10, .writers = 8, .transfers_per_writer = 1000, .opening_balance = 1000};
    // Two transfers that share an account both update it, so under SERIALIZABLE
    // the second fails (40001) once the first commits: waiting for its row
    // lock only delays the retry, and opposite transfers (a->b, b->a) would
    // wait a whole deadlock_timeout (1 s). Measured on 2 cores: ~95 tx/s
    // without lock_timeout, ~450 tx/s with lock_timeout<20>.
    using writers = sertx::policy<sertx::max_attempts<100>, sertx::lock_timeout<20>>;
    static constexpr bool writers_collide = true;

    sertx::postgresql::database open(std::size_t pool_size) const {
        return sertx::postgresql::open(pg.conninfo(), {.pool_size = pool_size});
    }

    sertx::test::pg_database pg;
};

}  // namespace

SERTX_BANK_CASES(PostgreSQL, "[postgresql]")

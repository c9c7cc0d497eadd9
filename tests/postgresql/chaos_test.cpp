// SPDX-License-Identifier: BSL-1.0
// sertx::testing::chaos on PostgreSQL: it finds a body that is not safe to
// re-run, the keyed bank keeps every invariant under it, and lost commits are
// resolved by key and by txid.
#include "support/catch.hpp"
#include "support/chaos_cases.hpp"
#include "support/chaos_workloads.hpp"
#include "support/databases.hpp"
#include "support/keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/testing/chaos.hpp>

#include <set>

namespace keyed_bank = sertx::test::keyed_bank;
namespace workloads = sertx::test::chaos_workloads;
using sertx::failure;
using sertx::test::chaos_cases::small;

namespace {
sertx::postgresql::database bank_on(const sertx::test::pg_database& pg) {
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 6});
    keyed_bank::open(db, small);
    return db;
}

/// PostgreSQL as support/chaos_cases.hpp uses it: a fresh database, and the
/// failures PostgreSQL has (deadlocks, not SQLite's busy).
struct PostgreSQL : sertx::test::postgresql_backend {
    static constexpr bool lost_commit_discards_session = true;
    static sertx::testing::chaos_options counting_failures() {
        return {.seed = 7, .at_commit = {.serialization = 0.1, .deadlock = 0.05}};
    }
    static sertx::testing::chaos_options swallowed_failure() {
        return {.at_statement = {.deadlock = 1.0}, .faulty_attempts = 1};
    }
    sertx::postgresql::database bank() const { return bank_on(pg); }
    sertx::postgresql::database empty() const { return sertx::postgresql::open(pg.conninfo()); }

    sertx::test::pg_database pg;
};
}  // namespace

SERTX_CHAOS_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("a lost commit is resolved by txid: an applied one is not run again, a rolled-back one is",
          "[postgresql][chaos]") {
    SERTX_REQUIRE_PG(pg);
    auto real = bank_on(pg);
    using by_txid = sertx::policy<sertx::resolve_unknown<sertx::by_txid>>;
    int runs = 0;
    auto insert = [&runs](long long id) {
        return [id, &runs](auto& tx) {
            ++runs;  // counts attempts on purpose
            keyed_bank::transfer_body(tx, id, 0, 1, 5);
        };
    };

    sertx::testing::chaos applied(real, {.at_commit = {.lost_commit_applied = 1.0}, .faulty_attempts = 1});
    sertx::transact<by_txid>(applied, insert(1));
    CHECK(runs == 1);
    sertx::testing::chaos rolled_back(real, {.at_commit = {.lost_commit_rolled_back = 1.0}, .faulty_attempts = 1});
    runs = 0;
    sertx::transact<by_txid>(rolled_back, insert(2));
    CHECK(runs == 2);

    CHECK(keyed_bank::read_books(real, small).transfers == std::set<long long>{1, 2});
    CHECK(real.stats().commit_resolved == 2);
}

TEST_CASE("a lost commit without a key or txid reaches the caller as commit_unknown when chaos is asked to lose it",
          "[postgresql][chaos]") {
    SERTX_REQUIRE_PG(pg);
    auto real = bank_on(pg);
    sertx::testing::chaos db(real, {.at_commit = {.lost_commit_applied = 0.5, .lost_commit_rolled_back = 0.5},
                                    .faulty_attempts = 1,
                                    .lose_commits_only_when_resolvable = false});

    for (long long id = 0; id < 10; ++id)
        CHECK_THROWS_AS(sertx::transact(db, [id](auto& tx) { keyed_bank::transfer_body(tx, id, 0, 1, 5); }),
                        sertx::commit_unknown);

    const auto injected = db.injected();
    CHECK(injected.lost_commits_applied + injected.lost_commits_rolled_back == 10);
    CHECK(keyed_bank::read_books(real, small).transfers.size() == injected.lost_commits_applied);
    CHECK(real.stats().commit_unknown == 10);
}


// SPDX-License-Identifier: BSL-1.0
#pragma once
// Workloads run through sertx::testing::chaos by the PostgreSQL and SQLite
// chaos tests: the same scenario on each backend.

#include "keyed_bank.hpp"

#include <sertx/effects.hpp>
#include <sertx/migrate.hpp>
#include <sertx/sertx.hpp>
#include <sertx/testing/chaos.hpp>

#include <soci/soci.h>

#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <random>
#include <vector>

namespace sertx::test::chaos_workloads {

using keyed_bank::workload;

/// Failures at every place chaos can put them, at rates that disturb about a
/// third of the attempts of a bank transfer (five statements and a COMMIT).
inline sertx::testing::chaos_options everywhere(std::uint64_t seed) {
    return {.seed = seed,
            .at_statement = {.serialization = 0.01, .deadlock = 0.01, .busy = 0.01, .connection_lost = 0.01},
            .at_commit = {.serialization = 0.04,
                          .deadlock = 0.02,
                          .busy = 0.02,
                          .connection_lost = 0.03,
                          .lost_commit_applied = 0.04,
                          .lost_commit_rolled_back = 0.04}};
}

/// How many transfers a body believed it made, against how many the
/// database holds.
struct tally {
    long long counted = 0;
    long long logged = 0;
};

/// Unkeyed transfers on one thread, one after the other; `count` is the
/// caller's bookkeeping, given the transaction and the running count.
template <class ChaosDb, class Count>
tally count_transfers(ChaosDb& db, const workload& w, int transfers, Count count) {
    tally t;
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> account(0, w.accounts - 1);
    for (int id = 0; id < transfers; ++id) {
        const int src = account(rng), dst = (src + 1) % w.accounts;
        sertx::transact(db, [&](auto& tx) {
            if (keyed_bank::transfer_body(tx, id, src, dst, 1)) count(tx, t.counted);
        });
    }
    sertx::transact(db.inner(), [&](auto& tx) { tx.sql() << "select count(*) from transfer", soci::into(t.logged); });
    return t;
}

/// The attempt each call committed on, for one thread: the same seed must
/// give the same list.
template <class ChaosDb>
std::vector<unsigned> attempts_of(ChaosDb& db, int transfers) {
    std::vector<unsigned> attempts;
    for (int id = 0; id < transfers; ++id) {
        unsigned last = 0;
        sertx::transact(db, sertx::idempotency_key{keyed_bank::key_of(id)}, [&](auto& tx) {
            last = tx.attempt();  // read after the call: only the committed attempt's value counts
            return keyed_bank::transfer_body(tx, id, id % 10, (id + 1) % 10, 1);
        });
        attempts.push_back(last);
    }
    return attempts;
}

/// An at-most-once operation that counts its calls by payload.
struct counted_call {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "counted_call";
    std::map<std::string, int>* calls;
    void operator()(const std::string& payload) const { ++(*calls)[payload]; }
};

/// What sertx's own machinery did under chaos: migrations applied, effects
/// scheduled and dispatched.
struct machinery {
    std::size_t applied = 0;          ///< migrations applied by the first migrate
    std::size_t applied_again = 0;    ///< by the second: must be none
    std::map<std::string, int> calls;  ///< calls of each effect
};

/// Migrates, installs, schedules `effects` intents in keyed transactions and
/// dispatches them, all through the chaos database.
template <class ChaosDb>
machinery run_machinery(ChaosDb& db, int effects) {
    machinery m;
    const std::vector<sertx::migration> schema = {
        {1, "two tables", "create table a (x integer); create table b (y integer)"},
        {2, "an index", "create index a_x on a (x)"},
    };
    m.applied = sertx::migrate(db, schema).size();
    m.applied_again = sertx::migrate(db, schema).size();
    sertx::install(db);
    sertx::effects journal(db, "chaos");
    for (int i = 0; i < effects; ++i) {
        const std::string key = "effect-" + std::to_string(i);
        sertx::transact(db, sertx::idempotency_key{key}, [&](auto& tx) {
            tx.sql() << "insert into a (x) values (:x)", soci::use(i);
            journal.template schedule<counted_call>(tx, key, key);
        });
    }
    while (journal.dispatch(counted_call{&m.calls}, 1000).claimed() > 0) {
    }
    return m;
}

}  // namespace sertx::test::chaos_workloads

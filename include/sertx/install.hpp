// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// `sertx::install(db)`: creates sertx's own tables, and
/// `sertx::prune_commit_log(db, older_than)`: forgets old idempotency keys,
/// and `sertx::prune_effects(db, older_than)`: forgets settled effects.
///
/// \code
/// auto db = sertx::postgresql::open(conninfo);
/// sertx::install(db);   // at start-up, every time: it changes nothing when the tables exist
/// sertx::prune_commit_log(db, std::chrono::days{30});   // from a daily job
/// \endcode
///
/// The tables (docs/exactly-once.md describes them column by column):
/// - `sertx_commit_log`: idempotency keys of committed transactions;
/// - `sertx_effect`: the effect journal (`sertx::effects`);
/// - `sertx_schema`: applied migrations (`sertx::migrate` makes it too).
///
/// `install` runs in one serializable transaction, so it applies whole or not
/// at all, and concurrent calls (several processes starting at once) are
/// safe. Call it before the first keyed `transact` or journal call; they fail
/// on a missing table otherwise.

#include <sertx/adapter.hpp>
#include <sertx/failure.hpp>
#include <sertx/transact.hpp>
#include <sertx/transaction.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sertx {

/// Creates sertx's tables where they are missing; idempotent.
template <class Db>
void install(Db& db) {
    if constexpr (detail::check_journal_adapter<Db>() && detail::check_migration_adapter<Db>()) {
        transact(db, [](auto& tx) {
            auto& c = tx.connection(detail::internal_access{});
            c.journal().install_exactly_once();
            // migrate() would make it too; here all of sertx's tables come at once
            c.migrations().create_migration_table();
        });
    }
}

namespace detail {
/// Unix microseconds `older_than` before now, by this machine's clock.
template <class Rep, class Period>
std::int64_t unix_micros_before(std::chrono::duration<Rep, Period> older_than, const char* caller) {
    if (older_than < older_than.zero())
        throw error(std::string("sertx: ") + caller + " needs a duration >= 0; it removes what is older than that.");
    const auto cutoff = std::chrono::system_clock::now() - older_than;
    return std::chrono::duration_cast<std::chrono::microseconds>(cutoff.time_since_epoch()).count();
}
}  // namespace detail

/// Removes the idempotency keys committed more than `older_than` ago, by this
/// machine's clock; returns how many. A request retried with a pruned key
/// runs again: keep keys longer than any client may retry.
template <class Db, class Rep, class Period>
std::size_t prune_commit_log(Db& db, std::chrono::duration<Rep, Period> older_than) {
    static_assert(detail::check_journal_adapter<Db>());
    const std::int64_t before = detail::unix_micros_before(older_than, "prune_commit_log");
    return transact(db, [&](auto& tx) { return tx.connection(detail::internal_access{}).journal().prune_keys(before); });
}

/// Removes settled effects (done or failed, by a dispatcher or by hand)
/// settled more than `older_than` ago; never one that is pending, started,
/// in doubt or dead. Returns how many it removed.
template <class Db, class Rep, class Period>
std::size_t prune_effects(Db& db, std::chrono::duration<Rep, Period> older_than) {
    static_assert(detail::check_journal_adapter<Db>());
    const std::int64_t before = detail::unix_micros_before(older_than, "prune_effects");
    return transact(db,
                    [&](auto& tx) { return tx.connection(detail::internal_access{}).journal().prune_effects(before); });
}

}  // namespace sertx

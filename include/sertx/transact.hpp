// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// `sertx::transact`: run a body in a serializable transaction, re-running the
/// whole body on a retryable failure, as the policy says (DESIGN §6).
///
/// \code
/// long total = sertx::transact(db, [&](auto& tx) {
///     long t = 0;
///     tx.sql() << "select sum(balance) from account", soci::into(t);
///     return t;
/// });
/// std::optional<long> once = sertx::transact(db, sertx::idempotency_key{"transfer-42"}, body);
/// \endcode
///
/// **The body** may be run several times, each time on a fresh transaction:
/// it must not change anything outside the database except through
/// `tx.after_commit` or idempotent operations. Whatever it throws that is not
/// a retryable failure propagates unchanged, after rollback.
///
/// **The database** is an adapter's `database` (sertx::postgresql,
/// sertx::sqlite3); docs/backends.md describes what an adapter provides.

#include <sertx/backend.hpp>
#include <sertx/detail/random.hpp>
#include <sertx/failure.hpp>
#include <sertx/observe.hpp>
#include <sertx/policy.hpp>
#include <sertx/transaction.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx {

/// A key that makes a transaction commit at most once: written in the same
/// transaction, looked up before the body runs. Any bytes; at most
/// `max_length` of them.
struct idempotency_key {
    static constexpr std::size_t max_length = 256;
    std::string value;
};

namespace detail {

/// The transaction running on this thread, for nested-call detection.
struct active_transaction {
    const void* database;
    void* lease;
    std::vector<std::function<void()>>* after_commit;
    unsigned attempt;
    unsigned depth;
};
inline thread_local active_transaction* active = nullptr;

class active_scope {
public:
    explicit active_scope(active_transaction& now) noexcept : previous_(active) { active = &now; }
    ~active_scope() { active = previous_; }
    active_scope(const active_scope&) = delete;
    active_scope& operator=(const active_scope&) = delete;

private:
    active_transaction* previous_;
};

template <class Db, class Policy>
constexpr void check_transact_requirements() {
    using B = backend_of<Db>;
    static_assert(backend<B>,
                  "sertx: transact() needs a database whose backend is described by sertx::backend_traits "
                  "(a name and the capabilities isolation, transactional_ddl, read_only_deferrable, savepoints); "
                  "pass a sertx::postgresql or sertx::sqlite3 database, or specialize sertx::backend_traits.");
    if constexpr (backend<B>) {
        static_assert(serializable_backend<B>,
                      "sertx: this backend cannot guarantee SERIALIZABLE isolation, so transact() would allow "
                      "races (write skew, lost updates); use a serializable backend or describe one in "
                      "sertx::backend_traits.");
        static_assert(!Policy::savepoint_when_nested || has_capability<B, cap::savepoints>,
                      "sertx: nested<savepoint> needs a backend with savepoints; use nested<forbid>.");
        static_assert(!Policy::resolve_by_txid || has_capability<B, cap::commit_status>,
                      "sertx: resolve_unknown<by_txid> needs a backend that can report a transaction's "
                      "status by id (PostgreSQL txid_status); use an idempotency_key instead.");
    }
}

template <class T>
struct outcome {
    using type = std::optional<T>;
};
template <>
struct outcome<void> {
    using type = bool;
};

/// Runs the actions registered with after_commit; the first exception is
/// rethrown after all have run, since each was promised to run once.
inline void run_after_commit(std::vector<std::function<void()>>& actions) {
    std::exception_ptr first;
    for (auto& action : actions) {
        try {
            action();
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }
    if (first) std::rethrow_exception(first);
}

/// A random name for one attempt of a keyed transaction, written with the
/// key: after a lost COMMIT it tells this call's commit from another call's.
inline std::string new_attempt_id() {
    static constexpr char digits[] = "0123456789abcdef";
    unsigned char bits[16];
    os_random(bits, sizeof bits);
    std::string id;
    id.reserve(2 * sizeof bits);
    for (const unsigned char byte : bits) {
        id.push_back(digits[byte >> 4]);
        id.push_back(digits[byte & 0xf]);
    }
    return id;
}

/// An attempt whose COMMIT's answer was lost, kept until it is known whether
/// it committed: then its value and after_commit actions are the call's.
template <class Value>
struct lost_attempt {
    std::string id;
    Value value;
    std::vector<std::function<void()>> actions;
};

[[noreturn]] inline void give_up(const std::exception_ptr& cause, unsigned attempts, failure last, const char* why) {
    try {
        std::rethrow_exception(cause);
    } catch (...) {
        std::throw_with_nested(retries_exhausted(
            attempts, last,
            std::string("sertx: transaction gave up after ") + std::to_string(attempts) + " attempt" +
                (attempts == 1 ? "" : "s") + " (" + why + "); last failure: " + std::string(to_string(last))));
    }
}

inline void check_key(const idempotency_key& key) {
    if (key.value.empty()) throw error("sertx: an idempotency_key must not be empty.");
    if (key.value.size() > idempotency_key::max_length)
        throw error("sertx: an idempotency_key is at most " + std::to_string(idempotency_key::max_length) +
                    " bytes; this one has " + std::to_string(key.value.size()) + ".");
}

/// Runs the body as a savepoint of the transaction already running on this
/// thread. A retryable failure propagates: the outer body is re-run whole.
template <class Policy, class Db, class Body>
auto run_nested(Db& db, Body& body)
    -> std::invoke_result_t<Body&, transaction<typename Db::connection_type, Policy>&> {
    active_transaction& outer = *active;
    if constexpr (!Policy::savepoint_when_nested) {
        throw error(
            "sertx: transact() was called inside another transact() on the same thread; that would deadlock a "
            "one-writer database or commit part of the outer work alone. Pass the outer tx down instead, or "
            "use sertx::nested<sertx::savepoint> in the inner policy.");
    } else {
        if (outer.database != db.identity())
            throw error("sertx: a nested transact() must use the same database as the transaction around it.");
        using connection_t = typename Db::connection_type;
        using tx_t = transaction<connection_t, Policy>;
        auto& lease = *static_cast<connection_t*>(outer.lease);
        active_transaction inner{outer.database, outer.lease, outer.after_commit, outer.attempt, outer.depth + 1};
        active_scope scope(inner);
        lease.savepoint(inner.depth);
        try {
            tx_t tx(lease, outer.attempt, *outer.after_commit);
            if constexpr (std::is_void_v<std::invoke_result_t<Body&, tx_t&>>) {
                body(tx);
                lease.release(inner.depth);
            } else {
                auto result = body(tx);
                lease.release(inner.depth);
                return result;
            }
        } catch (...) {
            if (!is_retryable(lease.classify(std::current_exception()))) lease.rollback_to(inner.depth);
            throw;
        }
    }
}

/// `Keyed`: `key` is given; without one, the key's steps are not compiled.
template <class Policy, bool Keyed, class Db, class Body>
auto run(Db& db, const idempotency_key* key, Body& body) {
    using tx_t = transaction<typename Db::connection_type, Policy>;
    using result_t = std::invoke_result_t<Body&, tx_t&>;
    static_assert(!std::is_reference_v<result_t>,
                  "sertx: the body returns a reference; return a value, since what it refers to may not "
                  "outlive the transaction.");
    using keyed_t = typename outcome<result_t>::type;

    if (active) {
        if constexpr (Keyed) throw error("sertx: an idempotency_key cannot be used by a nested transact().");
        if constexpr (std::is_void_v<result_t>) {
            run_nested<Policy>(db, body);
            return keyed_t{};
        } else {
            return keyed_t{run_nested<Policy>(db, body)};
        }
    }

    detail::counters& counters = db.counters();
    typename Policy::backoff backoff{};
    observer_set<typename Policy::observers> observers{};
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = Policy::deadline.count() > 0 ? started + Policy::deadline
                                                       : std::chrono::steady_clock::time_point::max();
    std::vector<std::function<void()>> after_commit;
    struct no_value {};  // what a void body produces
    using value_t = std::conditional_t<std::is_void_v<result_t>, no_value, result_t>;
    std::vector<lost_attempt<value_t>> lost;  // attempts whose COMMIT's answer was lost
    // The call's outcome once one of its attempts committed: its after_commit
    // actions run after the session went back, outside any transaction (an
    // action may start a transaction of its own, and its failure must never
    // make the committed body run again).
    const auto deliver = [](value_t& value, std::vector<std::function<void()>>& actions) -> keyed_t {
        run_after_commit(actions);
        if constexpr (std::is_void_v<result_t>) return true;
        else return keyed_t{std::move(value)};
    };
    // The key is in the commit log: the outcome of this call's attempt that
    // wrote it, or empty when another call did.
    const auto committed_as = [&](const std::string& id) -> keyed_t {
        for (auto& l : lost)
            if (l.id == id) return deliver(l.value, l.actions);
        return keyed_t{};
    };

    for (unsigned attempt = 1;; ++attempt) {
        observers.begin(attempt);
        failure failed = failure::permanent;
        std::exception_ptr cause;
        std::int64_t txid = 0;
        // A session that cannot be opened (the server restarting) fails
        // before anything was sent: as safe to retry as a lost connection.
        std::optional<decltype(db.acquire(deadline))> leased;
        try {
            leased.emplace(db.acquire(deadline));
        } catch (const connection_error&) {
            cause = std::current_exception();
            failed = failure::connection_lost;
        }
        std::string attempt_id;
        if constexpr (Keyed) attempt_id = new_attempt_id();
        std::optional<value_t> produced;          // the body's value, until COMMIT's outcome is known
        std::optional<std::string> committed_by;  // the attempt that wrote the key, found at the start
        bool commit_sent = false, committed = false;
        if (leased) {
            auto& lease = leased->connection();
            active_transaction now{db.identity(), &lease, &after_commit, attempt, 0};
            active_scope scope(now);
            const auto forward_notices = [&] { lease.take_notices([&](std::string_view n) { observers.notice(n); }); };
            try {
                lease.begin(Policy::writes, Policy::lock_wait);
                if constexpr (Policy::verify_every_transaction) lease.verify_isolation();
                if constexpr (Keyed) committed_by = lease.key_committed(key->value);
                if (committed_by) {
                    lease.rollback();  // committed before: the body is not run
                } else {
                    tx_t tx(lease, attempt, after_commit);
                    if constexpr (std::is_void_v<result_t>) {
                        body(tx);
                        produced.emplace();
                    } else {
                        produced.emplace(body(tx));
                    }
                    if constexpr (Keyed) lease.record_key(key->value, attempt_id);
                    if constexpr (Policy::resolve_by_txid) txid = lease.current_txid();
                    commit_sent = true;
                    lease.commit();
                    committed = true;
                    counters.add(counters.commits);
                    observers.commit(attempt);
                }
            } catch (...) {
                cause = std::current_exception();
                failed = lease.classify(cause);
                lease.abandon(failed);
            }
            forward_notices();
        }
        leased.reset();
        if (committed_by) return committed_as(*committed_by);
        if (committed) return deliver(*produced, after_commit);

        // Nothing can have committed before COMMIT was sent.
        if (failed == failure::commit_unknown && !commit_sent) failed = failure::connection_lost;
        if (failed == failure::commit_unknown) {
            // The lost attempt may have committed: find out before anything
            // is re-run, or stop. A blind retry could apply it twice. Its
            // value and actions are kept: they are the call's if it did.
            lost.push_back({attempt_id, std::move(*produced), std::move(after_commit)});
            std::optional<bool> applied;  // by this attempt
            if constexpr (Policy::resolve_by_txid) applied = db.txid_committed(txid, deadline);
            if constexpr (Keyed) {
                if (!applied) {
                    if (auto written_by = db.key_committed_elsewhere(key->value, deadline)) {
                        if (*written_by) {
                            counters.add(counters.commit_resolved);
                            return committed_as(**written_by);
                        }
                        // Absent: rolled back, or its COMMIT is still in
                        // flight on the server; then the retry conflicts on
                        // the key and finds it at its start.
                        applied = false;
                    }
                }
            }
            if (!applied) {
                counters.add(counters.commit_unknown);
                try {
                    std::rethrow_exception(cause);
                } catch (...) {
                    std::throw_with_nested(sertx::commit_unknown(
                        "sertx: the connection was lost while COMMIT was in flight, so whether the transaction "
                        "applied is unknown; it was not re-run. Use an idempotency_key (or "
                        "resolve_unknown<by_txid> on PostgreSQL) to have sertx find out."));
                }
            }
            counters.add(counters.commit_resolved);
            if (*applied) return deliver(lost.back().value, lost.back().actions);
            failed = failure::connection_lost;  // rolled back: safe to run again
        }
        after_commit.clear();

        if (!is_retryable(failed)) std::rethrow_exception(cause);
        if (attempt >= Policy::max_attempts) {
            counters.add(counters.give_ups);
            observers.give_up(failed, attempt);
            give_up(cause, attempt, failed, "max_attempts reached");
        }
        const auto delay = backoff.delay(attempt, thread_rng());
        if (std::chrono::steady_clock::now() + delay >= deadline) {
            counters.add(counters.give_ups);
            observers.give_up(failed, attempt);
            give_up(cause, attempt, failed, "deadline reached");
        }
        counters.retry(failed);  // only now: an attempt given up on counts as a give-up
        observers.conflict(failed, attempt, delay);
        if (delay.count() > 0) std::this_thread::sleep_for(delay);
    }
}

}  // namespace detail

/// Runs `body(tx)` in a serializable transaction and returns its value; the
/// body is re-run on a retryable failure as `Policy` says.
template <class Policy = default_policy, class Db, class Body>
auto transact(Db& db, Body&& body) {
    detail::check_transact_requirements<Db, Policy>();
    if constexpr (serializable_backend<backend_of<Db>>) {
        using tx_t = transaction<typename Db::connection_type, Policy>;
        using result_t = std::invoke_result_t<Body&, tx_t&>;
        if constexpr (std::is_void_v<result_t>) {
            detail::run<Policy, false>(db, nullptr, body);
        } else {
            return *detail::run<Policy, false>(db, nullptr, body);
        }
    }
}

/// Commits `body(tx)` at most once for `key`, ever: the key is written into
/// `sertx_commit_log` (made by `sertx::install`) in the same transaction.
/// Returns the body's value (true for a void body) when this call committed
/// it, or empty (false) when another call had committed the key and the body
/// was not run. When the connection is lost while COMMIT is in flight, the
/// key is looked up on a fresh session: this call's own commit still returns
/// the body's value and runs its after_commit actions; a COMMIT that did not
/// apply is retried (a late one cannot apply twice: the retry conflicts on
/// the key); when the database cannot be asked, `commit_unknown` is thrown.
template <class Policy = default_policy, class Db, class Body>
auto transact(Db& db, const idempotency_key& key, Body&& body) {
    detail::check_transact_requirements<Db, Policy>();
    static_assert(Policy::writes, "sertx: an idempotency_key needs a read_write policy: the key is written.");
    if constexpr (serializable_backend<backend_of<Db>>) {
        detail::check_key(key);
        return detail::run<Policy, true>(db, &key, body);
    }
}

}  // namespace sertx

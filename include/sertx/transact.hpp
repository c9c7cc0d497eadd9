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
/// sertx::sqlite3); sertx/adapter.hpp says what an adapter provides.
///
/// **The loop** (`detail::retry_loop`) is four named steps: one attempt,
/// ending committed, committed before (the key was found) or failed (with
/// its failure, cause and whether COMMIT was sent); the resolution of a lost
/// COMMIT; the retry budget (attempts, deadline, the one give-up path); and
/// the delivery of the committed attempt's value and after_commit actions.

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/detail/effect_buffer.hpp>
#include <sertx/detail/hex.hpp>
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
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx {

/// A key that makes a transaction commit at most once: written in the same
/// transaction, looked up before the body runs. Any bytes; at most
/// `max_length` of them.
///
/// `request` optionally identifies the request the key was made for (a hash
/// of its parameters, any bytes, at most `max_request_length`). A later call
/// with the same key and a different request throws `idempotency_mismatch`
/// instead of returning empty; requests are compared only when both calls
/// carried one (keys committed before fingerprints existed have none).
struct idempotency_key {
    static constexpr std::size_t max_length = 256;
    static constexpr std::size_t max_request_length = 256;
    std::string value;
    std::string request{};  // the initializer keeps idempotency_key{"k"} free of -Wmissing-field-initializers
};

namespace detail {

/// The transaction running on this thread, for nested-call detection.
struct active_transaction {
    const void* database;
    void* connection;  // the database's connection_type
    std::vector<std::function<void()>>* after_commit;
    effect_buffer* effects;
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

/// The compile-time checks of a `transact` call, one `static_assert` each;
/// true when all hold, so that the loop is compiled only then.
template <class Db, class Policy>
constexpr bool check_transact_requirements() {
    using B = backend_of<Db>;
    static_assert(backend<B>,
                  "sertx: transact() needs a database whose backend is described by sertx::backend_traits "
                  "(a name and the capabilities isolation, transactional_ddl, read_only_deferrable, savepoints); "
                  "pass a sertx::postgresql or sertx::sqlite3 database, or specialize sertx::backend_traits.");
    if constexpr (!backend<B>) {
        return false;
    } else {
        static_assert(serializable_backend<B>,
                      "sertx: this backend cannot guarantee SERIALIZABLE isolation, so transact() would allow "
                      "races (write skew, lost updates); use a serializable backend or describe one in "
                      "sertx::backend_traits.");
        static_assert(!Policy::savepoint_when_nested || has_capability<B, cap::savepoints>,
                      "sertx: nested<savepoint> needs a backend with savepoints; use nested<forbid>.");
        static_assert(!Policy::resolve_by_txid || has_capability<B, cap::commit_status>,
                      "sertx: resolve_unknown<by_txid> needs a backend that can report a transaction's "
                      "status by id (PostgreSQL txid_status); use an idempotency_key instead.");
        if constexpr (!serializable_backend<B> || !check_transact_adapter<Db>()) {
            return false;
        } else {
            static_assert(!Policy::savepoint_when_nested || savepoint_adapter<Db>,
                          "sertx: the adapter's connection has no savepoint(n), release(n) and rollback_to(n); "
                          "nested<savepoint> runs an inner transact() in one (see sertx/adapter.hpp).");
            static_assert(!Policy::resolve_by_txid || txid_adapter<Db>,
                          "sertx: the adapter has no current_txid() on its connection or txid_committed(id, "
                          "deadline) on its database; resolve_unknown<by_txid> records and asks a transaction id "
                          "with them (see sertx/adapter.hpp).");
            return (!Policy::savepoint_when_nested || savepoint_adapter<Db>) &&
                   (!Policy::resolve_by_txid || txid_adapter<Db>);
        }
    }
}

/// What a call returns: the body's value, or for a keyed call empty when
/// another call had committed the key (bool for a void body).
template <class T>
struct keyed_result {
    using type = std::optional<T>;
};
template <>
struct keyed_result<void> {
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
    if (key.request.size() > idempotency_key::max_request_length)
        throw error("sertx: an idempotency_key's request fingerprint is at most " +
                    std::to_string(idempotency_key::max_request_length) + " bytes (a hash of the request); this "
                    "one has " + std::to_string(key.request.size()) + ".");
}

/// The idempotency key's steps of an unkeyed call: none.
struct no_key {
    static constexpr bool present = false;
    void new_attempt() noexcept {}
    std::string_view attempt_id() const noexcept { return {}; }
    /// Begins; no key to look up, so never committed before.
    template <class C>
    std::optional<std::string> begin(C& c, const transaction_start& start) {
        c.begin(start);
        return std::nullopt;
    }
    template <class C>
    void commit(C& c) {
        c.commit();
    }
    template <class Db>
    std::optional<std::optional<std::string>> written_by(Db&, std::chrono::steady_clock::time_point) noexcept {
        return std::nullopt;
    }
};

/// The idempotency key's steps of a keyed call: looked up after BEGIN,
/// written with a random attempt id before COMMIT, and asked for on a fresh
/// session after a lost COMMIT.
class key_steps {
public:
    static constexpr bool present = true;
    explicit key_steps(const idempotency_key& key) noexcept : key_(key) {}

    /// A random name for this attempt, written with the key: after a lost
    /// COMMIT it tells this call's commit from another call's. Its hex is
    /// written in place, so that a keyed call allocates nothing for it.
    void new_attempt() {
        char bits[attempt_bytes];
        os_random(bits, sizeof bits);
        write_hex(attempt_id_, std::string_view(bits, sizeof bits));
    }
    std::string_view attempt_id() const noexcept { return {attempt_id_, sizeof attempt_id_}; }

    /// Begins, and returns the attempt that committed the key before, if
    /// any (`idempotency_mismatch` when it was committed for another
    /// request); in BEGIN's round trip where the adapter can.
    template <class C>
    std::optional<std::string> begin(C& c, const transaction_start& start) {
        if constexpr (requires { c.begin_and_find_key(start, key_.value); }) {
            return attempt_of(c.begin_and_find_key(start, key_.value));
        } else {
            c.begin(start);
            return attempt_of(c.journal().key_committed(key_.value));
        }
    }
    /// Writes the key with this attempt's id, and commits; in COMMIT's round
    /// trip where the adapter can.
    template <class C>
    void commit(C& c) {
        if constexpr (requires { c.commit_with_key(key_.value, attempt_id(), key_.request); }) {
            c.commit_with_key(key_.value, attempt_id(), key_.request);
        } else {
            c.journal().record_key(key_.value, attempt_id(), key_.request);
            c.commit();
        }
    }
    /// After a lost COMMIT: the attempt that wrote the key (an empty inner
    /// optional: none did), or empty when the database cannot be asked.
    template <class Db>
    std::optional<std::optional<std::string>> written_by(Db& db, std::chrono::steady_clock::time_point deadline) {
        std::optional<std::optional<committed_key>> asked = db.key_committed_elsewhere(key_.value, deadline);
        if (!asked) return std::nullopt;
        return attempt_of(std::move(*asked));
    }

private:
    std::optional<std::string> attempt_of(std::optional<committed_key> written) const {
        if (!written) return std::nullopt;
        if (!key_.request.empty() && !written->request.empty() && written->request != key_.request)
            throw idempotency_mismatch("sertx: idempotency key '" + printable(key_.value) +
                                       "' was committed before for a different request; a reused key is a "
                                       "client bug: give each request its own key.");
        return std::move(written->attempt);
    }

    static constexpr std::size_t attempt_bytes = 16;
    const idempotency_key& key_;
    char attempt_id_[2 * attempt_bytes] = {};
};

/// The txid steps without resolve_unknown<by_txid>: none.
struct no_txid {
    static constexpr bool present = false;
    template <class C>
    void record(C&) noexcept {}
    template <class Db>
    std::optional<bool> committed(Db&, std::chrono::steady_clock::time_point) noexcept {
        return std::nullopt;
    }
};

/// resolve_unknown<by_txid>: the transaction id is read before COMMIT and,
/// after a lost one, its status asked on a fresh session.
class txid_steps {
public:
    static constexpr bool present = true;
    template <class C>
    void record(C& c) {
        txid_ = c.current_txid();
    }
    template <class Db>
    std::optional<bool> committed(Db& db, std::chrono::steady_clock::time_point deadline) {
        return db.txid_committed(txid_, deadline);
    }

private:
    std::int64_t txid_ = 0;
};

/// How an attempt ended.
enum class attempt_end { committed, committed_before, failed };

struct attempt_outcome {
    attempt_end end = attempt_end::committed;
    failure failed = failure::permanent;      // when failed
    std::exception_ptr cause;                 // when failed
    bool commit_sent = false;                 // when failed: COMMIT had been sent
    std::optional<std::string> committed_by;  // when committed before: the attempt that wrote the key

    static attempt_outcome failure_of(failure f, std::exception_ptr cause, bool commit_sent) noexcept {
        attempt_outcome o;
        o.end = attempt_end::failed;
        o.failed = f;
        o.cause = std::move(cause);
        o.commit_sent = commit_sent;
        return o;
    }
    static attempt_outcome found_key(std::string committed_by) noexcept {
        attempt_outcome o;
        o.end = attempt_end::committed_before;
        o.committed_by = std::move(committed_by);
        return o;
    }
};

/// The attempts and the time a call may spend.
template <class Policy>
class retry_budget {
public:
    std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }

    /// The wait before the attempt after `attempt`, which failed retryably;
    /// or, when no attempt is left or the wait would pass the deadline, the
    /// one give-up path: counted, observed, `retries_exhausted`.
    template <class Observers>
    std::chrono::microseconds next_wait(unsigned attempt, const attempt_outcome& o, counters& counts,
                                        Observers& observers) {
        const char* why = nullptr;
        std::chrono::microseconds delay{};
        if (attempt >= Policy::max_attempts) {
            why = "max_attempts reached";
        } else {
            delay = backoff_.delay(attempt, thread_rng());
            if (std::chrono::steady_clock::now() + delay >= deadline_) why = "deadline reached";
        }
        if (why) {
            counters::add(counts.give_ups);
            observers.give_up(o.failed, attempt);
            give_up(o.cause, attempt, o.failed, why);
        }
        return delay;
    }

private:
    typename Policy::backoff backoff_{};
    std::chrono::steady_clock::time_point deadline_ = Policy::deadline.count() > 0
                                                          ? std::chrono::steady_clock::now() + Policy::deadline
                                                          : std::chrono::steady_clock::time_point::max();
};

/// One `transact` call: attempts until one commits, the budget is spent, or
/// a failure is not retryable (DESIGN §6, §7).
template <class Policy, class Db, class Key, class Body>
class retry_loop {
    using connection_t = typename Db::connection_type;
    using tx_t = transaction<connection_t, Policy>;
    using result_t = std::invoke_result_t<Body&, tx_t&>;
    struct no_value {};  // what a void body produces
    using value_t = std::conditional_t<std::is_void_v<result_t>, no_value, result_t>;
    using txid_t = std::conditional_t<Policy::resolve_by_txid, txid_steps, no_txid>;

    /// An attempt whose COMMIT's answer was lost, kept until it is known
    /// whether it committed: then its value and actions are the call's.
    struct lost_attempt {
        std::string id;
        value_t value;
        std::vector<std::function<void()>> actions;
    };

    static constexpr access_mode access = Policy::writes ? access_mode::read_write
                                          : has_capability<backend_of<Db>, cap::read_only_deferrable>
                                              ? access_mode::read_only_deferrable
                                              : access_mode::read_only;

public:
    using call_result = typename keyed_result<result_t>::type;

    retry_loop(Db& db, Key key, Body& body) : db_(db), counters_(db.counters()), key_(std::move(key)), body_(body) {}

    call_result run() {
        for (unsigned attempt = 1;; ++attempt) {
            attempt_outcome o = try_attempt(attempt);
            if (o.end == attempt_end::committed) return deliver(*produced_, after_commit_);
            if (o.end == attempt_end::committed_before) return committed_as(*o.committed_by);
            if (o.failed == failure::commit_unknown) {
                if (auto resolved = resolve_lost_commit(o)) return std::move(*resolved);
                o.failed = failure::connection_lost;  // rolled back: safe to run again
            }
            after_commit_.clear();
            if (!is_retryable(o.failed)) std::rethrow_exception(o.cause);
            const auto delay = budget_.next_wait(attempt, o, counters_, observers_);
            counters_.retry(o.failed);  // only now: an attempt given up on counts as a give-up
            observers_.conflict(o.failed, attempt, delay);
            if (delay.count() > 0) std::this_thread::sleep_for(delay);
        }
    }

private:
    /// One attempt on a pooled connection, returned to the pool before the
    /// call's outcome is delivered: after_commit actions run outside any
    /// transaction (an action may start one of its own, and its failure
    /// must never make the committed body run again).
    attempt_outcome try_attempt(unsigned attempt) {
        observers_.begin(attempt);
        key_.new_attempt();
        produced_.reset();
        // A connection that cannot be opened (the server restarting) fails
        // before anything was sent: as safe to retry as a lost connection.
        std::optional<decltype(db_.acquire(budget_.deadline()))> lease;
        try {
            lease.emplace(db_.acquire(budget_.deadline()));
        } catch (const connection_error&) {
            return attempt_outcome::failure_of(failure::connection_lost, std::current_exception(), false);
        }
        connection_t& connection = lease->connection();
        attempt_outcome o = run_body(connection, attempt);
        connection.take_notices([&](std::string_view n) { observers_.notice(n); });
        return o;
    }

    attempt_outcome run_body(connection_t& connection, unsigned attempt) {
        effect_buffer effects(connection);
        active_transaction now{db_.identity(), &connection, &after_commit_, &effects, attempt, 0};
        active_scope scope(now);
        bool commit_sent = false;
        try {
            const transaction_start start{access, Policy::lock_wait, attempt, Key::present || txid_t::present,
                                          Policy::verify_every_transaction};
            if (std::optional<std::string> by = key_.begin(connection, start)) {
                connection.rollback();  // committed before: the body is not run
                return attempt_outcome::found_key(std::move(*by));
            }
            tx_t tx(connection, attempt, after_commit_, effects);
            if constexpr (std::is_void_v<result_t>) {
                body_(tx);
                produced_.emplace();
            } else {
                produced_.emplace(body_(tx));
            }
            effects.before_commit();  // the scheduled intents: with COMMIT where the adapter can
            txid_.record(connection);
            commit_sent = true;  // the key's row may travel with COMMIT
            key_.commit(connection);
        } catch (...) {
            attempt_outcome o = attempt_outcome::failure_of(connection.classify(std::current_exception()),
                                                            std::current_exception(), commit_sent);
            connection.abandon(o.failed);
            // Nothing can have committed before COMMIT was sent.
            if (o.failed == failure::commit_unknown && !commit_sent) o.failed = failure::connection_lost;
            return o;
        }
        counters::add(counters_.commits);
        observers_.commit(attempt);
        return attempt_outcome{};
    }

    /// The lost attempt may have committed: find out before anything is
    /// re-run, or stop, since a blind retry could apply it twice. Its value
    /// and actions are kept: they are the call's if it did. Empty when it
    /// did not commit, so that the body is run again.
    std::optional<call_result> resolve_lost_commit(const attempt_outcome& o) {
        lost_.push_back({std::string(key_.attempt_id()), std::move(*produced_), std::move(after_commit_)});
        std::optional<bool> applied = txid_.committed(db_, budget_.deadline());  // by this attempt
        if (!applied) {
            if (auto written_by = key_.written_by(db_, budget_.deadline())) {
                if (*written_by) {
                    counters::add(counters_.commit_resolved);
                    return committed_as(**written_by);
                }
                // Absent: rolled back, or its COMMIT is still in flight on
                // the server; then the retry conflicts on the key and finds
                // it at its start.
                applied = false;
            }
        }
        if (!applied) {
            counters::add(counters_.commit_unknown);
            try {
                std::rethrow_exception(o.cause);
            } catch (...) {
                std::throw_with_nested(sertx::commit_unknown(
                    "sertx: the connection was lost while COMMIT was in flight, so whether the transaction "
                    "applied is unknown; it was not re-run. Use an idempotency_key (or "
                    "resolve_unknown<by_txid> on PostgreSQL) to have sertx find out."));
            }
        }
        counters::add(counters_.commit_resolved);
        if (*applied) return deliver(lost_.back().value, lost_.back().actions);
        return std::nullopt;
    }

    /// The call's outcome once one of its attempts committed.
    static call_result deliver(value_t& value, std::vector<std::function<void()>>& actions) {
        run_after_commit(actions);
        if constexpr (std::is_void_v<result_t>)
            return true;
        else
            return call_result{std::move(value)};
    }

    /// The key is in the commit log: the outcome of this call's attempt that
    /// wrote it, or empty when another call did.
    call_result committed_as(const std::string& attempt_id) {
        for (auto& l : lost_)
            if (l.id == attempt_id) return deliver(l.value, l.actions);
        return call_result{};
    }

    Db& db_;
    counters& counters_;
    Key key_;
    txid_t txid_{};
    Body& body_;
    retry_budget<Policy> budget_{};
    observer_set<typename Policy::observers> observers_{};
    std::vector<std::function<void()>> after_commit_;
    std::optional<value_t> produced_;  // the body's value, until COMMIT's outcome is known
    std::vector<lost_attempt> lost_;   // attempts whose COMMIT's answer was lost
};

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
        auto& connection = *static_cast<connection_t*>(outer.connection);
        active_transaction inner{outer.database, outer.connection, outer.after_commit, outer.effects,
                                 outer.attempt, outer.depth + 1};
        active_scope scope(inner);
        // The outer body's buffered intents are written before the savepoint,
        // so that a rollback to it drops exactly the inner body's.
        outer.effects->flush();
        connection.savepoint(inner.depth);
        try {
            tx_t tx(connection, outer.attempt, *outer.after_commit, *outer.effects);
            if constexpr (std::is_void_v<std::invoke_result_t<Body&, tx_t&>>) {
                body(tx);
                connection.release(inner.depth);
            } else {
                auto result = body(tx);
                connection.release(inner.depth);
                return result;
            }
        } catch (...) {
            if (!is_retryable(connection.classify(std::current_exception()))) {
                outer.effects->drop();
                connection.rollback_to(inner.depth);
            }
            throw;
        }
    }
}

/// A call: nested in the transaction running on this thread, or a loop of
/// its own. `Key` is `no_key` or `key_steps`.
template <class Policy, class Db, class Key, class Body>
auto run(Db& db, Key key, Body& body) {
    using result_t = std::invoke_result_t<Body&, transaction<typename Db::connection_type, Policy>&>;
    static_assert(!std::is_reference_v<result_t>,
                  "sertx: the body returns a reference; return a value, since what it refers to may not "
                  "outlive the transaction.");
    using call_result = typename keyed_result<result_t>::type;
    if (active) {
        if constexpr (Key::present) throw error("sertx: an idempotency_key cannot be used by a nested transact().");
        if constexpr (std::is_void_v<result_t>) {
            run_nested<Policy>(db, body);
            return call_result{};
        } else {
            return call_result{run_nested<Policy>(db, body)};
        }
    }
    return retry_loop<Policy, Db, Key, Body>(db, std::move(key), body).run();
}

}  // namespace detail

/// Runs `body(tx)` in a serializable transaction and returns its value; the
/// body is re-run on a retryable failure as `Policy` says.
template <class Policy = default_policy, class Db, class Body>
auto transact(Db& db, Body&& body) {
    if constexpr (detail::check_transact_requirements<Db, Policy>()) {
        using result_t = std::invoke_result_t<Body&, transaction<typename Db::connection_type, Policy>&>;
        if constexpr (std::is_void_v<result_t>)
            detail::run<Policy>(db, detail::no_key{}, body);
        else
            return *detail::run<Policy>(db, detail::no_key{}, body);
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
    static_assert(Policy::writes, "sertx: an idempotency_key needs a read_write policy: the key is written.");
    if constexpr (detail::check_transact_requirements<Db, Policy>() && detail::check_keyed_adapter<Db>()) {
        detail::check_key(key);
        return detail::run<Policy>(db, detail::key_steps(key), body);
    }
}

}  // namespace sertx

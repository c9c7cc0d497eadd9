// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The adapter contract: what `transact`, `effects`, `migrate` and
/// `testing::chaos` need from a database and its connection, as concepts.
///
/// **What it is.** An adapter (sertx::postgresql and sertx::sqlite3 on SOCI;
/// a libpq-only or a distributed-SQL adapter tomorrow) gives a *database*
/// type: a thread-safe pool that lends *connections*. The core knows nothing
/// else of it. Each requirement below is one concept, and each is checked
/// where it is first needed by a `static_assert` whose `sertx:` sentence names
/// the missing member and what it is for, so that an incomplete adapter fails
/// at the call, not deep inside the retry loop.
///
/// **Minimal complete definition.** A database `Db` (its connection `C`,
/// `c` one of them, `s` a `std::string_view`, `d` a
/// `std::chrono::steady_clock::time_point` deadline):
/// | for          | member                                   | what it is for |
/// |--------------|------------------------------------------|----------------|
/// | transact     | `Db::backend`                            | the tag `sertx::backend_traits` describes (backend.hpp) |
/// |              | `Db::connection_type`                    | the connection a body's transaction runs on |
/// |              | `db.acquire(d).connection()`             | a pooled connection, returned when the lease ends |
/// |              | `db.counters()` → `sertx::counters&`     | the counters `db.stats()` reads |
/// |              | `db.identity()` → `const void*`          | tells a nested `transact` on the same database |
/// |              | `C::session_type`, `c.session()`         | what `tx.sql()` returns |
/// |              | `c.begin(const transaction_start&)`      | opens an attempt's serializable transaction (and checks its level when `verify_isolation` asks) |
/// |              | `c.commit()`, `c.rollback()`             | ends the transaction; a lost COMMIT throws what `classify` calls `commit_unknown` |
/// |              | `c.abandon(failure)` (noexcept)          | after a failed attempt: roll back, or mark the connection broken |
/// |              | `c.classify(std::exception_ptr)` → `failure` | the one classification table of the adapter (DESIGN §5) |
/// |              | `c.take_notices(f)`                      | server notices, to the observers' `on_notice` |
/// | nested<savepoint> | `c.savepoint(n)`, `c.release(n)`, `c.rollback_to(n)` | savepoints named by depth |
/// | idempotency_key | `c.journal()` (see below), `db.key_committed_elsewhere(s, d)` → `std::optional<std::optional<committed_key>>` | the attempt that wrote a key (and its request's fingerprint), asked on a fresh session after a lost COMMIT; empty when it cannot be asked |
/// | (optional) fewer round trips | `c.begin_and_find_key(start, s)`, `c.commit_with_key(key, attempt, request)` | the key's statements folded into BEGIN's and COMMIT's round trips (`folded_key_adapter`) |
/// | (optional) effects in COMMIT's round trip | `c.schedule_with_commit(key, operation, effect, payload, not_before)` | an intent `effects::schedule` left unasked, written by the next `commit()` or `commit_with_key()` in its round trip (and dropped by `rollback`/`abandon`); without it, `journal().schedule_effect` runs just before COMMIT |
/// | resolve_unknown<by_txid> | `c.current_txid()` → `std::int64_t`, `db.txid_committed(id, d)` → `std::optional<bool>` | a lost COMMIT's outcome by transaction id |
/// | effects, install | `c.journal()`, an object with the statements of `journal_statements` | sertx's own tables: the commit log and the effect journal |
/// | migrate      | `c.migrations()`, an object with the statements of `migration_statements`; `c.execute(const char*)` | sertx_schema, and each statement of a migration |
/// | testing::chaos | `C::failure_code(failure)` → `std::string`, `c.before_each_statement(std::function<void()>)` | the database's own code for an injected failure (so logs read as for a real one), and where to inject it |
///
/// **Laws.**
/// - `begin` starts a transaction at the strongest level the backend's traits
///   claim (checked when a connection is opened), with the access of
///   `transaction_start::access`; a connection that cannot is never lent.
/// - A connection whose server connection failed is never lent again: the
///   pool discards it when the lease ends (`abandon` marks it).
/// - `classify` never reads message text; only the database's codes and the
///   connection's state.
/// - Every statement of `journal()` and `migrations()` runs inside the
///   transaction `transact` opened on that connection.
///
/// **Models.** `sertx::postgresql::database`, `sertx::sqlite3::database`,
/// `sertx::testing::chaos<Db>`; docs/backends.md walks through them.

#include <sertx/backend.hpp>
#include <sertx/effect_record.hpp>
#include <sertx/failure.hpp>
#include <sertx/observe.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sertx {

/// How a transaction is to be opened: read-write, read-only, or read-only on
/// a snapshot that cannot fail serialization (PostgreSQL's DEFERRABLE). The
/// core picks `read_only_deferrable` only where the backend's traits say
/// `cap::read_only_deferrable`.
enum class access_mode : std::uint8_t { read_write, read_only, read_only_deferrable };

/// What `transact` tells an adapter's `begin`.
struct transaction_start {
    access_mode access = access_mode::read_write;
    /// The policy's lock_timeout; 0: the server's own setting. An adapter
    /// whose database cannot bound a lock wait documents it as ignored.
    std::chrono::milliseconds lock_timeout{0};
    /// 1 for the first attempt of a `transact` call, 2 for the first retry...
    unsigned attempt = 1;
    /// A lost COMMIT of this attempt can be resolved (an idempotency key is
    /// written, or the txid recorded).
    bool commit_resolvable = false;
    /// Check inside the new transaction that it runs at SERIALIZABLE
    /// (`verify_isolation<every_transaction>`), throwing `isolation_error`
    /// if not; an adapter may do it in BEGIN's round trip.
    bool verify_isolation = false;
};

/// A key's row in the commit log: the attempt that committed it, and the
/// request's fingerprint it was committed with (empty when none was given).
struct committed_key {
    std::string attempt;
    std::string request;
};

namespace detail {
struct ignore_notice {
    void operator()(std::string_view) const noexcept {}
};
}  // namespace detail

// ---- transact -------------------------------------------------------------

template <class Db>
concept database_names_connection = requires { typename Db::connection_type; };

template <class Db>
concept database_lends_connections = requires(Db& db, std::chrono::steady_clock::time_point d) {
    { db.acquire(d).connection() } -> std::same_as<typename Db::connection_type&>;
};

template <class Db>
concept database_counts = requires(Db& db, const Db& cdb) {
    { db.counters() } -> std::same_as<counters&>;
    { cdb.identity() } -> std::convertible_to<const void*>;
    { cdb.stats() } -> std::same_as<stats>;
};

template <class Db>
concept connection_has_session = requires(typename Db::connection_type& c) {
    typename Db::connection_type::session_type;
    { c.session() } -> std::same_as<typename Db::connection_type::session_type&>;
};

template <class Db>
concept connection_begins = requires(typename Db::connection_type& c, const transaction_start& start) {
    c.begin(start);
};

template <class Db>
concept connection_ends = requires(typename Db::connection_type& c, failure f) {
    c.commit();
    c.rollback();
    { c.abandon(f) } noexcept;
};

template <class Db>
concept connection_classifies = requires(const typename Db::connection_type& c, std::exception_ptr e) {
    { c.classify(e) } -> std::same_as<failure>;
};

template <class Db>
concept connection_passes_notices = requires(typename Db::connection_type& c) {
    c.take_notices(detail::ignore_notice{});
};

/// Everything `transact` needs.
template <class Db>
concept transact_adapter = database_names_connection<Db> && database_lends_connections<Db> &&
                           database_counts<Db> && connection_has_session<Db> && connection_begins<Db> &&
                           connection_ends<Db> && connection_classifies<Db> && connection_passes_notices<Db>;

template <class Db>
concept savepoint_adapter = requires(typename Db::connection_type& c, unsigned depth) {
    c.savepoint(depth);
    c.release(depth);
    c.rollback_to(depth);
};

// ---- sertx's own tables -----------------------------------------------------

/// The statements on the commit log and the effect journal that
/// `transact` (with a key), `install`, `prune_commit_log` and `effects` run,
/// each inside the caller's transaction (see soci/detail/effect_statements.hpp).
template <class J>
concept journal_statements = requires(J& j, std::string_view s, effect_state st, std::size_t n, unsigned a,
                                      std::int64_t t) {
    j.install_exactly_once();  // creates the tables when missing
    { j.key_committed(s) } -> std::same_as<std::optional<committed_key>>;  // who wrote the key
    j.record_key(s, s, s);                                     // key, attempt, request fingerprint
    { j.prune_keys(t) } -> std::convertible_to<std::size_t>;   // committed before t (unix µs)
    { j.prune_effects(t) } -> std::convertible_to<std::size_t>;  // done or failed, settled before t
    // key, operation, effect, payload, not_before (unix µs, 0: now); false: existed
    { j.schedule_effect(s, s, s, s, t) } -> std::same_as<bool>;
    // operation, dispatcher, lease (µs), limit: the earliest due pending intents, now started
    { j.claim_effects(s, s, t, n) } -> std::same_as<std::vector<claimed_effect>>;
    { j.renew_effect(s, a, t) } -> std::same_as<bool>;          // key, claim's attempts (the fence), lease (µs)
    { j.settle_effect(s, a, st, s, s) } -> std::same_as<bool>;  // key, fence, state, result, error
    { j.retry_effect(s, a, st, t, s) } -> std::same_as<bool>;   // key, fence, pending|dead, not_before, error
    { j.release_effect(s, a) } -> std::same_as<bool>;           // key, fence: back to pending, uncalled
    { j.mark_call_began(s, a, t) } -> std::same_as<bool>;       // key, fence, lease (µs): about to call (at-most-once)
    { j.next_effect_due(s) } -> std::convertible_to<std::int64_t>;  // operation: next due intent or lease end (µs)
    // operation, dispatcher ('' : any, lease ended before t), t, limit
    { j.expired_effects(s, s, t, n) } -> std::same_as<std::vector<expired_claim>>;
    // key, fence, the call_began read with it, state, result, error, note, by
    { j.rescue_effect(s, a, t, st, s, s, s, s) } -> std::same_as<bool>;
    { j.requeue_effect(s, s, s) } -> std::same_as<bool>;              // key, note, by: dead|failed → pending
    { j.effect_stats() } -> std::same_as<journal_stats>;
    { j.recover_effects(s) } -> std::same_as<recover_report>;   // dispatcher
    { j.effects_in(st, n) } -> std::same_as<std::vector<effect_record>>;
    { j.find_effect(s) } -> std::same_as<std::optional<effect_record>>;
    { j.resolve_effect(s, st, s, s) } -> std::same_as<bool>;  // key, state, by, note
};

template <class Db>
concept journal_adapter = requires(typename Db::connection_type& c) {
    { c.journal() } -> journal_statements;
};

/// Optional: wake-ups of `effects::run` from other processes. Blocks until
/// `stop`, calling `woken` when an intent may have committed elsewhere (and
/// once when it starts listening); throws when the database fails (the
/// journal retries); returns false at once when it cannot listen here.
/// Without it, `run` is woken by the in-process signal and its poll only.
/// PostgreSQL: LISTEN/NOTIFY (soci/detail/postgresql/effect_listener.hpp).
template <class Db>
concept effect_wakeups = requires(Db& db, std::stop_token stop, const std::function<void()>& woken) {
    { db.listen_for_effects(stop, woken) } -> std::same_as<bool>;
};

template <class Db>
concept keyed_adapter =
    journal_adapter<Db> && requires(Db& db, std::string_view key, std::chrono::steady_clock::time_point d) {
        { db.key_committed_elsewhere(key, d) } -> std::same_as<std::optional<std::optional<committed_key>>>;
    };

/// Optional, for an idempotency key without round trips of its own: the
/// key's lookup sent with BEGIN, and its row with COMMIT. Without these,
/// `transact` runs `journal().key_committed` after `begin` and
/// `journal().record_key` before `commit`; with them, the adapter keeps the
/// same semantics in fewer round trips (a failure of the batched insert is
/// the commit's failure; a connection lost while the batch is in flight is
/// `commit_unknown`).
template <class Db>
concept folded_key_adapter = requires(typename Db::connection_type& c, const transaction_start& start,
                                      std::string_view s) {
    { c.begin_and_find_key(start, s) } -> std::same_as<std::optional<committed_key>>;  // start, key
    c.commit_with_key(s, s, s);                                                       // key, attempt, request
};

template <class Db>
concept txid_adapter =
    requires(Db& db, typename Db::connection_type& c, std::int64_t id, std::chrono::steady_clock::time_point d) {
        { c.current_txid() } -> std::same_as<std::int64_t>;
        { db.txid_committed(id, d) } -> std::same_as<std::optional<bool>>;
    };

namespace detail {
struct each_migration_row {
    void operator()(std::int64_t, const std::string&, const std::string&, std::int64_t) const noexcept {}
};
}  // namespace detail

/// The statements of schema migrations (see soci/detail/migration_statements.hpp).
template <class M>
concept migration_statements = requires(M& m, std::string_view script, const std::string& text, std::int64_t n) {
    { m.migration_table_exists() } -> std::same_as<bool>;
    m.create_migration_table();
    m.lock_migration_table();  // waits for other migrators; their work is visible after it
    m.read_migrations(detail::each_migration_row{});  // version, name, checksum, applied_at (unix µs)
    m.record_migration(n, text, text, n);
    // A script's statements, split where the database's own shell splits it.
    { m.split_script(script) } -> std::same_as<std::vector<std::string_view>>;
};

template <class Db>
concept migration_adapter = requires(typename Db::connection_type& c, const char* sql) {
    { c.migrations() } -> migration_statements;
    c.execute(sql);
};

template <class Db>
concept chaos_adapter = requires(typename Db::connection_type& c, failure f, std::function<void()> hook) {
    { Db::connection_type::failure_code(f) } -> std::same_as<std::string>;
    c.before_each_statement(hook);  // an empty hook removes it
};

namespace detail {

/// The checks behind `transact`, one `static_assert` per member; true when
/// all hold, so that the caller compiles the retry loop only then.
template <class Db>
constexpr bool check_transact_adapter() {
    static_assert(database_names_connection<Db>,
                  "sertx: the database has no connection_type; an adapter's database names the connection it "
                  "lends (see sertx/adapter.hpp).");
    if constexpr (database_names_connection<Db>) {
        static_assert(database_lends_connections<Db>,
                      "sertx: the database has no acquire(deadline) returning a lease with connection(); "
                      "transact() takes each attempt's connection from it (see sertx/adapter.hpp).");
        static_assert(database_counts<Db>,
                      "sertx: the database has no counters(), identity() or stats(); transact() counts commits "
                      "and retries there, and tells a nested call on the same database by identity() (see "
                      "sertx/adapter.hpp).");
        static_assert(connection_has_session<Db>,
                      "sertx: the adapter's connection has no session_type and session(); tx.sql() returns "
                      "it (see sertx/adapter.hpp).");
        static_assert(connection_begins<Db>,
                      "sertx: the adapter's connection has no begin(const sertx::transaction_start&); "
                      "transact() opens each attempt's serializable transaction with it (see sertx/adapter.hpp).");
        static_assert(connection_ends<Db>,
                      "sertx: the adapter's connection has no commit(), rollback() or noexcept "
                      "abandon(sertx::failure); transact() ends each attempt with them (see sertx/adapter.hpp).");
        static_assert(connection_classifies<Db>,
                      "sertx: the adapter's connection has no classify(std::exception_ptr) returning "
                      "sertx::failure; transact() decides from it whether to retry (see sertx/adapter.hpp).");
        static_assert(connection_passes_notices<Db>,
                      "sertx: the adapter's connection has no take_notices(f); transact() passes the server's "
                      "notices to the observers with it (see sertx/adapter.hpp).");
    }
    return transact_adapter<Db>;
}

template <class Db>
constexpr bool check_keyed_adapter() {
    static_assert(journal_adapter<Db>,
                  "sertx: the adapter's connection has no journal() with the statements of "
                  "sertx::journal_statements; an idempotency_key and the effect journal are written with them "
                  "(see sertx/adapter.hpp).");
    static_assert(!journal_adapter<Db> || keyed_adapter<Db>,
                  "sertx: the database has no key_committed_elsewhere(key, deadline); after a lost COMMIT, "
                  "transact() asks it whether the key was written (see sertx/adapter.hpp).");
    return keyed_adapter<Db>;
}

template <class Db>
constexpr bool check_journal_adapter() {
    static_assert(journal_adapter<Db>,
                  "sertx: the adapter's connection has no journal() with the statements of "
                  "sertx::journal_statements; an idempotency_key and the effect journal are written with them "
                  "(see sertx/adapter.hpp).");
    return journal_adapter<Db>;
}

template <class Db>
constexpr bool check_migration_adapter() {
    static_assert(migration_adapter<Db>,
                  "sertx: the adapter's connection has no migrations() with the statements of "
                  "sertx::migration_statements, or no execute(const char*); migrate() keeps sertx_schema and "
                  "runs each statement with them (see sertx/adapter.hpp).");
    return migration_adapter<Db>;
}

}  // namespace detail
}  // namespace sertx

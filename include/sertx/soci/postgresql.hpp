// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The PostgreSQL adapter, on SOCI's postgresql backend and libpq.
///
/// \code
/// sertx::postgresql::database pg = sertx::postgresql::open("host=127.0.0.1 dbname=app", {.pool_size = 8});
/// \endcode
///
/// What it guarantees, and how:
/// - every transaction starts with its own `BEGIN ISOLATION LEVEL SERIALIZABLE`
///   (SOCI's `begin()` sends a plain BEGIN, which a server default of READ
///   COMMITTED would weaken); read-only policies add `READ ONLY DEFERRABLE`;
/// - each new session is checked: SERIALIZABLE really in force, `fsync`,
///   `synchronous_commit` and `full_page_writes` on (else `durability_error`),
///   and a hot standby is refused for writes; a session whose server turns
///   read-only under it (25006, a demoted primary) is discarded and the
///   attempt retried on a fresh one;
/// - COMMIT is sent only when libpq says the transaction is still open:
///   PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and
///   success, which must never be reported as a commit;
/// - failures are classified by SQLSTATE and the connection's state, in the
///   one table of sertx/postgresql/backend.hpp, never by message text; a connection lost before COMMIT is retried on a new
///   session, one lost during COMMIT is `failure::commit_unknown`;
/// - server notices (NOTICE, WARNING) are kept from stderr and passed to the
///   policy's observers (`on_notice`).

#include <sertx/adapter.hpp>
#include <sertx/detail/config.hpp>
#include <sertx/failure.hpp>
#include <sertx/postgresql/backend.hpp>
#include <sertx/soci/common.hpp>
#include <sertx/soci/detail/effect_statements.hpp>
#include <sertx/soci/detail/migration_statements.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

// libpq's handles, named without <libpq-fe.h> (its own typedefs, repeated):
// in separate compilation only impl/postgresql.ipp calls libpq.
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace sertx::postgresql {

/// What stands between sertx and the server.
enum class pooler_mode : std::uint8_t {
    /// Each session is one server connection: a session's settings are kept
    /// (lock_timeout is set when it changes) and `sertx::prepared` objects
    /// live as long as it.
    none,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// consecutive transactions of a session may run on different server
    /// connections, so sertx keeps nothing in the server session between
    /// transactions. Each transaction sets its policy's lock_timeout with
    /// SET LOCAL, in BEGIN's round trip, and `sertx::prepared` objects are
    /// made again in each transaction and destroyed before its COMMIT.
    transaction,
};

/// How `open` sets up the pool.
struct options {
    /// Sessions kept open at most; each is one server connection.
    std::size_t pool_size = 4;
    /// How long a transaction waits for a free session before `pool_exhausted`.
    std::chrono::milliseconds acquire_timeout{5'000};
    /// Accept fsync, synchronous_commit or full_page_writes off (throwaway
    /// data only); `stats().durable` then reads false.
    bool accept_weaker_durability = false;
    /// Refuse to acknowledge a commit that lives on one machine only: `open`
    /// throws `durability_error` unless the primary's commits wait for a
    /// synchronous standby (synchronous_standby_names set, synchronous_commit
    /// on or remote_apply), and every writing transaction checks it again
    /// (in BEGIN's round trip), so that after a failover to a primary without
    /// a standby, or once the primary stops naming one, writes are refused
    /// (reads still run) until one is named (docs/deployment.md).
    bool require_synchronous_standby = false;
    /// Say `pooler_mode::transaction` when sessions go through a pooler in
    /// transaction mode (docs/deployment.md).
    pooler_mode pooler = pooler_mode::none;
};

namespace detail {

struct pg_result_deleter {
    void operator()(PGresult* r) const noexcept;
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

/// What a connection string says, parsed by libpq itself; the password is
/// kept apart so that no message ever shows it.
struct config {
    std::string conninfo;
    std::string password;
    std::string description;  // host, port, dbname, user: for messages
    options opts;
};

bool is_conninfo_keyword(std::string_view word);

/// libpq's parse errors quote the offending input, which may hold the
/// password and may itself hold quotes, so its quote pairs cannot be
/// trusted: everything from the first quoted input to the last quote goes.
/// Kept: a leading "=" or "]" (libpq's own wording: `missing "=" after`,
/// `matching "]" in`), and the keyword in `missing "=" after "port" in
/// connection info string`. The fuzz target tests/fuzz/conninfo_fuzz.cpp
/// checks that no part of a password gets through.
std::string redact_quoted(std::string_view text);

/// `text` with each occurrence of `secret` replaced by "***".
std::string without(std::string text, const std::string& secret);

/// Parses `conninfo` with libpq and keeps apart its password (`config`).
config parse_conninfo(std::string conninfo, const options& opts);



/// The session's lock_timeout, changed only when a transaction's policy
/// differs from what the session has: SET LOCAL in every transaction cost
/// the server ~14,000 instructions each (docs/benchmarks.md). Set inside the
/// transaction, it holds from its COMMIT on, and a rollback undoes it.
class session_lock_timeout {
public:
    void opened_with(std::chrono::milliseconds server) noexcept { server_ = current_ = pending_ = server; }

    /// The value to set with this transaction's BEGIN for a policy's
    /// `lock_timeout` (0: the server's own), or empty when the session has it.
    std::optional<std::chrono::milliseconds> change_for(std::chrono::milliseconds policy) noexcept {
        pending_ = policy.count() > 0 ? policy : server_;
        if (pending_ == current_) return std::nullopt;
        return pending_;
    }
    void committed() noexcept { current_ = pending_; }

private:
    std::chrono::milliseconds server_{0};   // as the session opened
    std::chrono::milliseconds current_{0};  // what the session has now
    std::chrono::milliseconds pending_{0};  // what it has once this transaction commits
};

/// One server connection: a SOCI session plus its libpq handle.
class connection : public sertx::detail::soci_connection<connection> {
public:
    using session_type = ::soci::session;
    using dialect = postgresql::dialect;

    static std::unique_ptr<connection> open(const config& c, sertx::counters& counters);

    session_type& session() noexcept { return *session_; }
    PGconn* native_handle() const noexcept { return native_; }
    sertx::detail::session_objects& objects() noexcept { return objects_; }
    sertx::detail::effect_statements<connection>& journal() noexcept { return journal_; }
    sertx::detail::migration_statements<connection>& migrations() noexcept { return migrations_; }

    /// Taken from the pool: still connected and outside any transaction.
    /// Reading what the server may have sent while idle (a termination
    /// notice) finds a dead connection before a transaction is wasted on it.
    bool healthy() noexcept;
    bool reusable() const noexcept;

    /// BEGIN, with the policy's lock_timeout (when the session's differs),
    /// the isolation check (when asked) and the replication check (with
    /// require_synchronous_standby) in the same round trip.
    void begin(const transaction_start& start);

    /// The lookup of an idempotency key, then BEGIN, in one round trip; the
    /// lookup runs before the transaction (`dialect::append_find_key` says
    /// why it cannot answer wrong there).
    std::optional<committed_key> begin_and_find_key(const transaction_start& start, std::string_view key);

    /// COMMIT only while libpq says the transaction is open: PostgreSQL
    /// answers COMMIT of a failed transaction with ROLLBACK and success.
    void commit() { commit_batch("COMMIT"); }

    /// With require_synchronous_standby: throws `durability_error` unless
    /// this session's commits wait for a synchronous standby (`open` asks it
    /// of its first session). Every writing transaction asks it again, in
    /// BEGIN's batch (`check_begun`): an HA manager empties
    /// synchronous_standby_names under a primary whose standby turned
    /// unhealthy (Patroni's synchronous_mode), and a session checked only
    /// when it opened would then acknowledge commits from one machine; a
    /// refused session writes again once a standby is named.
    void require_synchronous_standby();

    /// The key's row and COMMIT in one round trip: a failed insert (another
    /// attempt committed the key: 40001, or 23505 when it did so after the
    /// lookup) skips the COMMIT, and a connection lost while the batch is in
    /// flight leaves the outcome to the key's lookup.
    void commit_with_key(std::string_view key, std::string_view attempt, std::string_view request);

    /// An intent of the effect journal, written by this transaction's COMMIT
    /// batch (`commit` or `commit_with_key`), before the key's row: one
    /// INSERT for all of them; a failed insert skips the COMMIT.
    void schedule_with_commit(std::string_view key, std::string_view operation, std::string_view effect,
                              std::string_view payload, std::int64_t not_before);

    /// Wakes the dispatchers of `operation` listening in other processes
    /// (NOTIFY sertx_effect) once this transaction has committed: sent in
    /// COMMIT's batch, after COMMIT, so it costs no round trip and goes only
    /// if the transaction committed. Not inside the transaction: PostgreSQL
    /// commits the transactions that notify one at a time (a lock held from
    /// the notification's queueing through the commit's WAL flush), which
    /// made every scheduling commit wait for the others' flushes. The
    /// notification's own transaction writes nothing to keep, so it commits
    /// without waiting for a flush (`synchronous_commit` off in it alone).
    void notify_after_commit(std::string_view operation);

    /// Whether after_commit_ notifies `operation` already: its name, in
    /// hex, follows one of the NOTIFY's `decode('`.
    bool notifies(std::string_view operation) const noexcept;

    void rollback();

    /// After a failed attempt: roll back what is open; a session whose
    /// connection failed is marked so that the pool discards it.
    void abandon(failure f) noexcept;

    /// A failure of the body or of sertx's statements, by the one table:
    /// the SQLSTATE SOCI reports, or the kind already given by `fail`.
    failure classify(const std::exception_ptr& e) const noexcept;

    static std::string failure_code(failure f) { return std::string(sqlstate_of(f)); }

    std::int64_t current_txid();

    /// 'committed', 'aborted', 'in progress', or empty (unknown to the server).
    std::string txid_status(std::int64_t txid);

    template <class F>
    void take_notices(F&& f) {
        for (const auto& n : notices_) {
            sertx::counters::add(counters_->notices);
            f(std::string_view(n));
        }
        notices_.clear();
    }

    /// Runs a statement that returns nothing the caller needs; throws a
    /// classified `database_error`.
    void execute(const char* sql);

private:
    connection(std::unique_ptr<::soci::session> s, sertx::counters& counters);

    static void keep_notice(void* self, const char* message);

    failure_context context(bool commit_sent = false) const noexcept;

    std::string last_error(const PGresult* r = nullptr) const;

    /// The one way a failed statement is reported: classified by the table,
    /// the session marked broken when its connection went.
    [[noreturn]] void fail(const PGresult* r, const char* sql, bool commit_sent = false);

    /// The adapter's own refusal, with the SQLSTATE the server would give.
    [[noreturn]] void refuse(const char* sqlstate, const std::string& why) const;

    void refuse_unless_open() const;

    /// Prepares the key's statements the first time this session runs a
    /// keyed transaction (one round trip, outside any transaction); false
    /// behind a transaction pooler, where a prepared statement does not
    /// outlive the transaction, and the text statements are sent instead.
    /// PREPARE is not undone by a failure: a session whose PREPAREs failed
    /// (no commit log yet) may hold one of them, and is not reused.
    bool prepare_key_statements();

    /// Prepares the journal's INSERT (`dialect::prepare_schedule_effects`)
    /// the first time this session schedules an intent with COMMIT, as
    /// prepare_key_statements does the key's, but inside the transaction:
    /// a PREPARE is not undone by its ROLLBACK. Left as text behind a
    /// transaction pooler, and in a transaction that has failed already,
    /// whose COMMIT is refused anyway.
    void prepare_schedule_effects();
    /// Ends the intents' statement in with_commit_, in the form it began.
    void close_scheduled_effects();

    bool transaction_pooling() const noexcept {
        return config_ && config_->opts.pooler == pooler_mode::transaction;
    }

    /// Behind a transaction pooler, what the transaction prepared goes
    /// before it ends, on the server connection it prepared it on (a
    /// statement left there would meet another session's of the same name).
    void end_of_transaction() noexcept {
        if (transaction_pooling()) objects_.clear();
    }
    /// An aborted transaction refuses the DEALLOCATEs of end_of_transaction:
    /// behind a transaction pooler, ROLLBACK takes DEALLOCATE ALL along in
    /// the same round trip, which the pooler runs on the same server
    /// connection before it hands that connection to another client.
    const char* rollback_statement() const noexcept {
        return transaction_pooling() ? "ROLLBACK; DEALLOCATE ALL" : "ROLLBACK";
    }

    /// Whether this session's commits wait for a synchronous standby; with
    /// require_synchronous_standby, the refusal its writes get when not.
    void note_replication(const config& c, std::string_view standby_names, std::string_view sync_commit);

    /// BEGIN for `start`, then SET lock_timeout when the session's differs,
    /// then SHOW transaction_isolation when asked, then the replication
    /// settings when a write must wait for a standby: statements of one
    /// batch, whose answers `check_begun` reads.
    /// BEGIN alone (the common case) is the dialect's constant text; a batch
    /// of more, or one after `before` statements already in the connection's
    /// buffer (the key's lookup), is written into that buffer, which keeps
    /// its capacity: no transaction allocates its batch text.
    const char* begin_batch(const transaction_start& start, std::size_t before = 0);


    /// The answer of SHOW transaction_isolation.
    static void check_isolation(const PGresult* shown);

    /// The answers of the key's lookup transaction (BEGIN, the lookup,
    /// COMMIT), ahead of BEGIN's in a keyed transaction's first batch.
    static constexpr std::size_t lookup_answers = 3;

    /// The results of one batch, kept on the stack: sertx's batches hold at
    /// most `capacity` statements (the key's lookup transaction, BEGIN, SET,
    /// SHOW and the replication settings; the journal's intents, the key's
    /// insert, COMMIT and the NOTIFY after it).
    class batch_results {
    public:
        static constexpr std::size_t capacity = 7;
        bool push(pg_result r) noexcept {
            if (size_ == capacity) return false;
            slots_[size_++] = std::move(r);
            return true;
        }
        std::size_t size() const noexcept { return size_; }
        bool empty() const noexcept { return size_ == 0; }
        PGresult* operator[](std::size_t i) const noexcept { return slots_[i].get(); }
        PGresult* back() const noexcept { return slots_[size_ - 1].get(); }

    private:
        std::array<pg_result, capacity> slots_{};
        std::size_t size_ = 0;
    };

    /// Reads the answers of BEGIN's batch that check something; a write
    /// refused for want of a standby rolls back the transaction it began.
    void check_begun(const batch_results& results);

    /// Statements separated by ';' in one round trip (one simple query); the
    /// result of each, or the first failure through fail(). The server skips
    /// what follows a failed statement.
    /// The results of `batch`'s statements, or the first failure thrown.
    /// `after_commit`: statements after the batch's COMMIT may fail without
    /// undoing it (a NOTIFY refused, its queue full: the wake-up is lost, and
    /// the dispatchers' poll makes up for it).
    batch_results run_batch(const char* batch, bool commit_sent = false, bool after_commit = false);

    /// A batch that ends with COMMIT, sent only while the transaction is open.
    /// `batch` (ending with COMMIT), after the journal's intents and before
    /// their NOTIFY (notify_after_commit).
    void commit_batch(const char* batch);
    static bool ended_transaction(PGresult* r);
    void forget_commit_extras() noexcept;

    std::string query_text(const char* sql);

    /// Isolation and durability, once per session (DESIGN §4).
    void check_server(const config& c);

    static constexpr std::size_t max_kept_notices = 64;

    std::unique_ptr<::soci::session> session_;
    PGconn* native_;
    sertx::counters* counters_;
    std::vector<std::string> notices_;
    session_lock_timeout lock_timeout_;
    // When a transaction with a lock_timeout began; empty: it has none.
    std::optional<std::chrono::steady_clock::time_point> lock_timeout_since_;
    std::chrono::milliseconds statement_timeout_{0};  // the session's, as it opened; 0: none
    bool broken_ = false;
    bool standby_ = false;
    bool read_only_ = false;  // default_transaction_read_only=on when the session opened
    bool key_prepared_ = false;  // the key's statements are prepared in this session
    bool effects_prepared_ = false;  // so is the journal's INSERT (prepare_schedule_effects)
    // The transaction in progress (or the last one) was begun read-write on
    // a writable server: a 25006 in it means the server turned read-only
    // (a demoted primary), and the attempt is retried on a fresh session.
    bool writing_ = false;
    const config* config_ = nullptr;   // the pool's, which outlives its sessions
    std::string replication_refusal_;  // why writes are refused; empty: they are not
    // Where in BEGIN's batch the answers that check_begun reads are.
    static constexpr std::size_t no_answer = batch_results::capacity;
    std::size_t isolation_answer_ = no_answer, replication_answer_ = no_answer;
    std::string batch_;  // the text of a batch beyond BEGIN alone; reused, so that it keeps its capacity
    std::string with_commit_;  // the journal's intents for the next COMMIT batch (schedule_with_commit)
    std::string after_commit_;  // the NOTIFY after that COMMIT (notify_after_commit)
    sertx::detail::effect_statements<connection> journal_{*this};
    sertx::detail::migration_statements<connection> migrations_{*this};
    sertx::detail::session_objects objects_;  // after session_: destroyed first
};

}  // namespace detail
}  // namespace sertx::postgresql

#if !defined(SERTX_HEADER_ONLY)
// Instantiated once, in impl/postgresql.ipp.
SERTX_SOCI_ADAPTER_TEMPLATES(extern template, sertx::postgresql::backend, sertx::postgresql::detail::connection,
                             sertx::postgresql::detail::config);
#endif

namespace sertx::postgresql {

/// A thread-safe pool of checked PostgreSQL sessions; copies share the pool.
class database : public sertx::detail::soci_database<backend, detail::connection, detail::config> {
public:
    using soci_database::soci_database;

    /// After a lost COMMIT without a key: whether transaction `txid`
    /// committed, asked on a fresh session; empty when it cannot be known.
    std::optional<bool> txid_committed(std::int64_t txid, std::chrono::steady_clock::time_point deadline);

    /// The effect journal's wake-ups from other processes
    /// (`sertx::effect_wakeups`): LISTEN on a session of its own until
    /// `stop`; false at once behind a transaction pooler, where a LISTEN does
    /// not hold (`run` then polls).
    bool listen_for_effects(std::stop_token stop, const std::function<void()>& woken);
};

/// Opens a pool on `conninfo` (libpq "key=value" or a postgresql:// URI) and
/// checks one session at once, so that a wrong connection string, a server
/// that is down or a weak setting fails here, with a clear `sertx::error`.
database open(std::string conninfo, options opts = {});

}  // namespace sertx::postgresql

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/impl/postgresql.ipp>
#endif

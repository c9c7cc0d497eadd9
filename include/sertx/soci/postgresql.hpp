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
#include <sertx/detail/hex.hpp>
#include <sertx/failure.hpp>
#include <sertx/postgresql/backend.hpp>
#include <sertx/soci/common.hpp>
#include <sertx/soci/detail/postgresql/effect_listener.hpp>
#include <sertx/soci/detail/effect_statements.hpp>
#include <sertx/soci/detail/migration_statements.hpp>

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

struct conninfo_deleter {
    void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

/// What a connection string says, parsed by libpq itself; the password is
/// kept apart so that no message ever shows it.
struct config {
    std::string conninfo;
    std::string password;
    std::string description;  // host, port, dbname, user: for messages
    options opts;
};

inline bool is_conninfo_keyword(std::string_view word) {
    std::unique_ptr<PQconninfoOption, conninfo_deleter> defaults(PQconndefaults());
    for (auto* o = defaults.get(); o && o->keyword; ++o)
        if (word == o->keyword) return true;
    return false;
}

/// libpq's parse errors quote the offending input, which may hold the
/// password and may itself hold quotes, so its quote pairs cannot be
/// trusted: everything from the first quoted input to the last quote goes.
/// Kept: a leading "=" or "]" (libpq's own wording: `missing "=" after`,
/// `matching "]" in`), and the keyword in `missing "=" after "port" in
/// connection info string`. The fuzz target tests/fuzz/conninfo_fuzz.cpp
/// checks that no part of a password gets through.
inline std::string redact_quoted(std::string_view text) {
    constexpr std::string_view missing = "missing \"=\" after \"", tail = "\" in connection info string";
    std::string_view line = text;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
    if (line.size() > missing.size() + tail.size() && line.starts_with(missing) && line.ends_with(tail) &&
        is_conninfo_keyword(line.substr(missing.size(), line.size() - missing.size() - tail.size())))
        return std::string(text);
    std::size_t from = text.find('"');
    const std::size_t last = text.rfind('"');
    if (from == text.npos) return std::string(text);
    if (from + 2 < text.size() && (text[from + 1] == '=' || text[from + 1] == ']') && text[from + 2] == '"') {
        from = text.find('"', from + 3);
        if (from == text.npos) return std::string(text);
    }
    return std::string(text.substr(0, from)) + "\"***\"" + std::string(text.substr(last + 1));
}

inline std::string without(std::string text, const std::string& secret) {
    if (secret.empty()) return text;
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3))
        text.replace(at, secret.size(), "***");
    return text;
}

inline config parse_conninfo(std::string conninfo, const options& opts) {
    if (conninfo.find('\0') != std::string::npos)  // libpq would read it cut short there; quote none of it
        throw connection_error("sertx: the PostgreSQL connection string holds a NUL byte; give it without one.");
    char* message = nullptr;
    std::unique_ptr<PQconninfoOption, conninfo_deleter> parsed(PQconninfoParse(conninfo.c_str(), &message));
    if (!parsed) {
        std::string why = message ? redact_quoted(message) : std::string("out of memory");
        PQfreemem(message);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        throw connection_error("sertx: the PostgreSQL connection string is malformed: " + why +
                               " (expected \"key=value ...\" or a postgresql:// URI)");
    }
    config c{std::move(conninfo), {}, {}, opts};
    for (auto* o = parsed.get(); o->keyword; ++o) {
        if (!o->val || !*o->val) continue;
        const std::string_view key = o->keyword;
        if (key == "password") c.password = o->val;
        if (key == "host" || key == "hostaddr" || key == "port" || key == "dbname" || key == "user")
            c.description.append(c.description.empty() ? "" : " ").append(key).append("=").append(o->val);
    }
    if (c.description.empty()) c.description = "(libpq defaults)";
    return c;
}


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

    static std::unique_ptr<connection> open(const config& c, sertx::counters& counters) {
        std::unique_ptr<::soci::session> session;
        try {
            session = std::make_unique<::soci::session>(::soci::postgresql, c.conninfo);
        } catch (const std::exception& e) {
            throw connection_error("sertx: cannot connect to PostgreSQL (" + c.description +
                                   "): " + without(e.what(), c.password));
        }
        auto self = std::unique_ptr<connection>(new connection(std::move(session), counters));
        try {
            self->check_server(c);
        } catch (const database_error& e) {
            // Lost while checking the new session (a server going down): as
            // safe to retry as a refused connection, and reported as one.
            if (e.kind() != failure::connection_lost) throw;
            throw connection_error("sertx: cannot connect to PostgreSQL (" + c.description +
                                   "): the connection was lost while checking it: " + without(e.what(), c.password));
        }
        return self;
    }

    session_type& session() noexcept { return *session_; }
    PGconn* native_handle() const noexcept { return native_; }
    sertx::detail::session_objects& objects() noexcept { return objects_; }
    sertx::detail::effect_statements<connection>& journal() noexcept { return journal_; }
    sertx::detail::migration_statements<connection>& migrations() noexcept { return migrations_; }

    /// Taken from the pool: still connected and outside any transaction.
    /// Reading what the server may have sent while idle (a termination
    /// notice) finds a dead connection before a transaction is wasted on it.
    bool healthy() noexcept {
        if (PQstatus(native_) != CONNECTION_OK) return false;
        // Twice: one read may fetch only the termination message, the next
        // sees the connection closed.
        if (!PQconsumeInput(native_) || !PQconsumeInput(native_)) return false;
        return PQstatus(native_) == CONNECTION_OK && PQtransactionStatus(native_) == PQTRANS_IDLE;
    }
    bool reusable() const noexcept { return !broken_ && PQstatus(native_) == CONNECTION_OK; }

    /// BEGIN, with the policy's lock_timeout (when the session's differs),
    /// the isolation check (when asked) and the replication check (with
    /// require_synchronous_standby) in the same round trip.
    void begin(const transaction_start& start) { check_begun(run_batch(begin_batch(start))); }

    /// The lookup of an idempotency key, then BEGIN, in one round trip; the
    /// lookup runs before the transaction (`dialect::append_find_key` says
    /// why it cannot answer wrong there).
    std::optional<committed_key> begin_and_find_key(const transaction_start& start, std::string_view key) {
        const bool prepared = prepare_key_statements();
        batch_.assign(dialect::key_lookup_begin);
        dialect::append_find_key(batch_, key, prepared);
        batch_.append(dialect::key_lookup_end);
        begin_batch(start, lookup_answers);
        const batch_results results = run_batch(batch_.c_str());
        if (results.size() <= lookup_answers) fail(nullptr, batch_.c_str());
        check_begun(results);
        const PGresult* found = results[1];
        if (PQntuples(found) == 0) return std::nullopt;
        return committed_key{PQgetvalue(found, 0, 0),
                             sertx::detail::column_bytes(PQgetvalue(found, 0, 1), "request", "sertx_commit_log")};
    }

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
    void require_synchronous_standby() {
        if (!config_ || !config_->opts.require_synchronous_standby) return;
        pg_result r(PQexec(native_, dialect::replication_settings));
        if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(r.get(), "reading the replication settings");
        note_replication(*config_, PQgetvalue(r.get(), 0, 0), PQgetvalue(r.get(), 0, 1));
        if (!replication_refusal_.empty()) throw durability_error(replication_refusal_);
    }

    /// The key's row and COMMIT in one round trip: a failed insert (another
    /// attempt committed the key: 40001, or 23505 when it did so after the
    /// lookup) skips the COMMIT, and a connection lost while the batch is in
    /// flight leaves the outcome to the key's lookup.
    void commit_with_key(std::string_view key, std::string_view attempt, std::string_view request) {
        batch_.clear();
        dialect::append_record_key(batch_, key, attempt, request, sertx::detail::unix_micros_now(), key_prepared_);
        batch_.append("; COMMIT");
        commit_batch(batch_.c_str());
    }

    /// An intent of the effect journal, written by this transaction's COMMIT
    /// batch (`commit` or `commit_with_key`), before the key's row: one
    /// INSERT for all of them; a failed insert skips the COMMIT.
    void schedule_with_commit(std::string_view key, std::string_view operation, std::string_view effect,
                              std::string_view payload, std::int64_t not_before) {
        if (with_commit_.empty()) prepare_schedule_effects();
        if (effects_prepared_) {
            const std::int64_t now = sertx::detail::unix_micros_now();
            dialect::append_scheduled_effect(with_commit_, key, operation, effect, payload, now,
                                             not_before > 0 ? not_before : now);
        } else {
            sertx::detail::effect_statements<connection>::append_effect_row(with_commit_, key, operation, effect,
                                                                             payload, not_before);
        }
        notify_after_commit(operation);
    }

    /// Wakes the dispatchers of `operation` listening in other processes
    /// (NOTIFY sertx_effect) once this transaction has committed: sent in
    /// COMMIT's batch, after COMMIT, so it costs no round trip and goes only
    /// if the transaction committed. Not inside the transaction: PostgreSQL
    /// commits the transactions that notify one at a time (a lock held from
    /// the notification's queueing through the commit's WAL flush), which
    /// made every scheduling commit wait for the others' flushes. The
    /// notification's own transaction writes nothing to keep, so it commits
    /// without waiting for a flush (`synchronous_commit` off in it alone).
    void notify_after_commit(std::string_view operation) {
        if (notifies(operation)) return;
        after_commit_.append(after_commit_.empty() ? "; SET LOCAL synchronous_commit TO off; SELECT " : ", ");
        after_commit_.append("pg_notify('sertx_effect', convert_from(decode('");
        sertx::detail::append_hex(after_commit_, operation);
        after_commit_.append("', 'hex'), 'UTF8'))");
    }

    /// Whether after_commit_ notifies `operation` already: its name, in
    /// hex, follows one of the NOTIFY's `decode('`.
    bool notifies(std::string_view operation) const noexcept {
        static constexpr std::string_view opening = "decode('";
        const std::string_view text(after_commit_);
        for (auto at = text.find(opening); at != std::string_view::npos; at = text.find(opening, at + 1)) {
            const std::string_view hex = text.substr(at + opening.size());
            if (hex.size() <= 2 * operation.size() || hex[2 * operation.size()] != '\'') continue;
            bool same = true;
            for (std::size_t i = 0; same && i < operation.size(); ++i)
                same = sertx::detail::hex_nibble(hex[2 * i]) * 16 + sertx::detail::hex_nibble(hex[2 * i + 1]) ==
                       static_cast<unsigned char>(operation[i]);
            if (same) return true;
        }
        return false;
    }

    void rollback() {
        forget_commit_extras();
        end_of_transaction();
        execute(rollback_statement());
    }

    /// After a failed attempt: roll back what is open; a session whose
    /// connection failed is marked so that the pool discards it.
    void abandon(failure f) noexcept {
        forget_commit_extras();
        end_of_transaction();
        if (f == failure::connection_lost || f == failure::commit_unknown || PQstatus(native_) != CONNECTION_OK) {
            broken_ = true;
            return;
        }
        if (PQtransactionStatus(native_) == PQTRANS_IDLE) return;
        pg_result r(PQexec(native_, rollback_statement()));
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) broken_ = true;
    }

    /// A failure of the body or of sertx's statements, by the one table:
    /// the SQLSTATE SOCI reports, or the kind already given by `fail`.
    failure classify(const std::exception_ptr& e) const noexcept {
        try {
            std::rethrow_exception(e);
        } catch (const database_error& d) {
            return d.kind();
        } catch (const ::soci::postgresql_soci_error& p) {
            return classify_sqlstate(p.sqlstate(), context());
        } catch (const ::soci::soci_error&) {
            return classify_sqlstate("", context());
        } catch (...) {
            return failure::permanent;
        }
    }

    static std::string failure_code(failure f) { return std::string(sqlstate_of(f)); }

    std::int64_t current_txid() {
        const std::string text = query_text("select txid_current()");
        errno = 0;
        char* end = nullptr;
        const long long id = std::strtoll(text.c_str(), &end, 10);
        if (errno != 0 || end == text.c_str() || *end != '\0')
            throw error("sertx: PostgreSQL answered txid_current() with '" + text + "', not a transaction id.");
        return id;
    }

    /// 'committed', 'aborted', 'in progress', or empty (unknown to the server).
    std::string txid_status(std::int64_t txid) {
        return query_text(("select coalesce(txid_status(" + std::to_string(txid) + "), '')").c_str());
    }

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
    void execute(const char* sql) {
        pg_result r(PQexec(native_, sql));
        if (r && (PQresultStatus(r.get()) == PGRES_COMMAND_OK || PQresultStatus(r.get()) == PGRES_TUPLES_OK)) return;
        fail(r.get(), sql);
    }

private:
    connection(std::unique_ptr<::soci::session> s, sertx::counters& counters)
        : session_(std::move(s)),
          native_(static_cast<::soci::postgresql_session_backend*>(session_->get_backend())->conn_),
          counters_(&counters) {
        PQsetNoticeProcessor(native_, &connection::keep_notice, this);
    }

    static void keep_notice(void* self, const char* message) {
        auto& c = *static_cast<connection*>(self);
        if (c.notices_.size() < max_kept_notices) c.notices_.emplace_back(message);
    }

    failure_context context(bool commit_sent = false) const noexcept {
        return {PQstatus(native_) == CONNECTION_OK, commit_sent,
                lock_timeout_since_ && (statement_timeout_.count() == 0 ||
                                        std::chrono::steady_clock::now() - *lock_timeout_since_ < statement_timeout_),
                writing_ && !standby_ && !read_only_};
    }

    std::string last_error(const PGresult* r = nullptr) const {
        std::string m = r ? PQresultErrorMessage(r) : PQerrorMessage(native_);
        while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
        return m;
    }

    /// The one way a failed statement is reported: classified by the table,
    /// the session marked broken when its connection went.
    [[noreturn]] void fail(const PGresult* r, const char* sql, bool commit_sent = false) {
        const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
        failure_context now = context(commit_sent);
        const char* constraint = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : nullptr;
        now.key_taken = constraint && constraint == dialect::key_constraint;
        if (commit_sent && !r) now.connected = false;  // COMMIT got no answer at all
        const failure kind = classify_sqlstate(state ? state : "", now);
        if (kind == failure::connection_lost || kind == failure::commit_unknown) broken_ = true;
        if (commit_sent && !now.connected)
            throw database_error(kind, state ? state : "08006",
                                 "sertx: the connection was lost while COMMIT was in flight: " + last_error());
        throw database_error(kind, state ? state : "", sql, last_error(r));
    }

    /// The adapter's own refusal, with the SQLSTATE the server would give.
    [[noreturn]] void refuse(const char* sqlstate, const std::string& why) const {
        throw database_error(classify_sqlstate(sqlstate, context()), sqlstate, why);
    }

    void refuse_unless_open() const {
        switch (PQtransactionStatus(native_)) {
            case PQTRANS_INTRANS: return;
            case PQTRANS_INERROR:
                refuse("25P02",
                       "sertx: a statement in the body failed and the body caught its error; PostgreSQL had "
                       "already aborted the transaction, so it was rolled back, not committed. Let the error "
                       "propagate (sertx re-runs retryable ones), or run the risky part in a nested<savepoint>.");
            case PQTRANS_IDLE:
                refuse("25000",
                       "sertx: the body ended the transaction itself (COMMIT or ROLLBACK); leave that to "
                       "transact().");
            default: refuse("08006", "sertx: the connection was lost before COMMIT was sent.");
        }
    }

    /// Prepares the key's statements the first time this session runs a
    /// keyed transaction (one round trip, outside any transaction); false
    /// behind a transaction pooler, where a prepared statement does not
    /// outlive the transaction, and the text statements are sent instead.
    /// PREPARE is not undone by a failure: a session whose PREPAREs failed
    /// (no commit log yet) may hold one of them, and is not reused.
    bool prepare_key_statements() {
        if (transaction_pooling()) return false;
        if (key_prepared_) return true;
        pg_result r(PQexec(native_, dialect::prepare_key_statements));
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
            broken_ = true;
            fail(r.get(), dialect::prepare_key_statements);
        }
        key_prepared_ = true;
        return true;
    }

    /// Prepares the journal's INSERT (`dialect::prepare_schedule_effects`)
    /// the first time this session schedules an intent with COMMIT, as
    /// prepare_key_statements does the key's, but inside the transaction:
    /// a PREPARE is not undone by its ROLLBACK. Left as text behind a
    /// transaction pooler, and in a transaction that has failed already,
    /// whose COMMIT is refused anyway.
    void prepare_schedule_effects() {
        if (effects_prepared_ || transaction_pooling() || PQtransactionStatus(native_) != PQTRANS_INTRANS) return;
        pg_result r(PQexec(native_, dialect::prepare_schedule_effects));
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail(r.get(), dialect::prepare_schedule_effects);
        effects_prepared_ = true;
    }
    /// Ends the intents' statement in with_commit_, in the form it began.
    void close_scheduled_effects() {
        if (effects_prepared_)
            with_commit_.append(dialect::end_scheduled_effects);
        else
            sertx::detail::effect_statements<connection>::close_effect_rows(with_commit_);
    }

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
    void note_replication(const config& c, std::string_view standby_names, std::string_view sync_commit) {
        std::string gap;
        if (standby_names.empty())
            gap = "synchronous_standby_names is empty, so a commit is acknowledged before any standby has it; "
                  "name the standbys in it (Patroni: synchronous_mode)";
        else if (sync_commit != "on" && sync_commit != "remote_apply")
            gap = "synchronous_commit=" + std::string(sync_commit) +
                  " acknowledges a commit before a standby has flushed it; set it to on (or remote_apply)";
        counters_->synchronous_replication.store(gap.empty(), std::memory_order_relaxed);
        replication_refusal_.clear();
        if (!gap.empty() && c.opts.require_synchronous_standby)
            replication_refusal_ = "sertx: PostgreSQL (" + c.description + ") would acknowledge commits that live on "
                                   "one machine only: " + gap + ". Writes are refused while "
                                   "{.require_synchronous_standby = true}; reads still run.";
    }

    /// BEGIN for `start`, then SET lock_timeout when the session's differs,
    /// then SHOW transaction_isolation when asked, then the replication
    /// settings when a write must wait for a standby: statements of one
    /// batch, whose answers `check_begun` reads.
    /// BEGIN alone (the common case) is the dialect's constant text; a batch
    /// of more, or one after `before` statements already in the connection's
    /// buffer (the key's lookup), is written into that buffer, which keeps
    /// its capacity: no transaction allocates its batch text.
    const char* begin_batch(const transaction_start& start, std::size_t before = 0) {
        writing_ = false;
        if (start.access == access_mode::read_write && standby_)
            refuse("25006",
                   "sertx: this PostgreSQL server is a hot standby (in recovery) and cannot run writing "
                   "transactions; connect to the primary, or use a read_only policy.");
        if (start.access == access_mode::read_write && read_only_)
            refuse("25006",
                   "sertx: this PostgreSQL server runs with default_transaction_read_only=on and cannot run "
                   "writing transactions; connect to the primary (target_session_attrs=read-write), or use a "
                   "read_only policy.");
        writing_ = start.access == access_mode::read_write;
        lock_timeout_since_.reset();
        if (start.lock_timeout.count() > 0) lock_timeout_since_ = std::chrono::steady_clock::now();
        const char* begin = dialect::begin[static_cast<std::size_t>(start.access)];
        std::optional<std::chrono::milliseconds> set, set_local;
        if (transaction_pooling()) {
            // The server connection is not ours past COMMIT: set it for this
            // transaction only.
            if (start.lock_timeout.count() > 0) set_local = start.lock_timeout;
        } else {
            set = lock_timeout_.change_for(start.lock_timeout);
        }
        const bool replication = writing_ && config_ && config_->opts.require_synchronous_standby;
        std::size_t answers = before + 1;  // BEGIN's
        if (set || set_local) ++answers;
        isolation_answer_ = start.verify_isolation ? answers++ : no_answer;
        replication_answer_ = replication ? answers++ : no_answer;
        if (answers == 1) return begin;
        if (before == 0) batch_.clear();
        batch_.append(begin);
        if (set_local) sertx::detail::append_number(batch_.append("; SET LOCAL lock_timeout = "), set_local->count());
        if (set) sertx::detail::append_number(batch_.append("; SET lock_timeout = "), set->count());
        if (start.verify_isolation) batch_.append("; SHOW transaction_isolation");
        if (replication) batch_.append("; ").append(dialect::replication_settings);
        return batch_.c_str();
    }

    /// The answer of SHOW transaction_isolation.
    static void check_isolation(const PGresult* shown) {
        const std::string level = PQntuples(shown) > 0 ? PQgetvalue(shown, 0, 0) : "";
        if (level != "serializable")
            throw isolation_error("sertx: PostgreSQL runs this transaction at " + level +
                                  ", not serializable; something between sertx and the server (a pooler, a "
                                  "session setting) changed it.");
    }

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
    void check_begun(const batch_results& results) {
        if (isolation_answer_ != no_answer) check_isolation(results[isolation_answer_]);
        if (replication_answer_ == no_answer) return;
        const PGresult* settings = results[replication_answer_];
        note_replication(*config_, PQgetvalue(settings, 0, 0), PQgetvalue(settings, 0, 1));
        if (replication_refusal_.empty()) return;
        rollback();
        throw durability_error(replication_refusal_);
    }

    /// Statements separated by ';' in one round trip (one simple query); the
    /// result of each, or the first failure through fail(). The server skips
    /// what follows a failed statement.
    /// The results of `batch`'s statements, or the first failure thrown.
    /// `after_commit`: statements after the batch's COMMIT may fail without
    /// undoing it (a NOTIFY refused, its queue full: the wake-up is lost, and
    /// the dispatchers' poll makes up for it).
    batch_results run_batch(const char* batch, bool commit_sent = false, bool after_commit = false) {
        if (!PQsendQuery(native_, batch)) fail(nullptr, batch);  // not sent: nothing can commit
        batch_results results;
        pg_result failed;
        bool overflow = false;
        while (PGresult* r = PQgetResult(native_)) {
            pg_result result(r);
            const auto status = PQresultStatus(r);
            if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
                overflow |= !results.push(std::move(result));
            else if (!failed)
                failed = std::move(result);
        }
        bool committed = false;
        for (std::size_t i = 0; after_commit && i < results.size(); ++i)
            committed |= std::strcmp(PQcmdStatus(results[i]), "COMMIT") == 0;
        if ((failed && !committed) || results.empty()) fail(failed.get(), batch, commit_sent);
        if (overflow)  // sertx's own batches never are: a bug, reported before anything relies on it
            throw error("sertx: internal error: a batch returned more than " +
                        std::to_string(batch_results::capacity) + " results: " + batch);
        return results;
    }

    /// A batch that ends with COMMIT, sent only while the transaction is open.
    /// `batch` (ending with COMMIT), after the journal's intents and before
    /// their NOTIFY (notify_after_commit).
    void commit_batch(const char* batch) {
        refuse_unless_open();
        end_of_transaction();
        if (!with_commit_.empty()) {
            close_scheduled_effects();
            with_commit_.append("; ").append(batch);
            batch = with_commit_.c_str();
        }
        if (!after_commit_.empty()) {
            if (batch != with_commit_.c_str()) with_commit_.assign(batch);
            with_commit_.append(after_commit_);
            batch = with_commit_.c_str();
        }
        const batch_results results = run_batch(batch, true, !after_commit_.empty());
        forget_commit_extras();
        std::size_t commit = results.size() - 1;
        while (commit > 0 && !ended_transaction(results[commit])) --commit;
        if (std::strcmp(PQcmdStatus(results[commit]), "COMMIT") != 0)
            refuse("25P02", "sertx: PostgreSQL answered COMMIT with ROLLBACK: the transaction had failed.");
        lock_timeout_.committed();
    }
    static bool ended_transaction(PGresult* r) {
        return std::strcmp(PQcmdStatus(r), "COMMIT") == 0 || std::strcmp(PQcmdStatus(r), "ROLLBACK") == 0;
    }
    void forget_commit_extras() noexcept {
        with_commit_.clear();
        after_commit_.clear();
    }

    std::string query_text(const char* sql) {
        pg_result r(PQexec(native_, sql));
        if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) fail(r.get(), sql);
        return PQgetvalue(r.get(), 0, 0);
    }

    /// Isolation and durability, once per session (DESIGN §4).
    void check_server(const config& c) {
        config_ = &c;
        pg_result r(PQexec(native_,
                           "select current_setting('fsync'), current_setting('synchronous_commit'), "
                           "current_setting('full_page_writes'), pg_is_in_recovery(), "
                           "(select setting from pg_settings where name = 'statement_timeout'), "
                           "(select setting from pg_settings where name = 'lock_timeout'), "
                           "current_setting('synchronous_standby_names'), "
                           "current_setting('default_transaction_read_only')"));
        if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(r.get(), "reading the server's settings");
        const std::string fsync = PQgetvalue(r.get(), 0, 0), sync_commit = PQgetvalue(r.get(), 0, 1),
                          full_pages = PQgetvalue(r.get(), 0, 2);
        standby_ = std::string_view(PQgetvalue(r.get(), 0, 3)) == "t";
        read_only_ = std::string_view(PQgetvalue(r.get(), 0, 7)) == "on";
        statement_timeout_ = std::chrono::milliseconds(std::strtoll(PQgetvalue(r.get(), 0, 4), nullptr, 10));
        lock_timeout_.opened_with(std::chrono::milliseconds(std::strtoll(PQgetvalue(r.get(), 0, 5), nullptr, 10)));
        note_replication(c, PQgetvalue(r.get(), 0, 6), sync_commit);
        std::string weak;
        if (fsync != "on") weak = "fsync=" + fsync + " (a crash can lose or corrupt committed data)";
        else if (sync_commit == "off")
            weak = "synchronous_commit=off (a crash can lose transactions already reported committed)";
        else if (full_pages != "on")
            weak = "full_page_writes=" + full_pages + " (a crash can leave torn pages)";
        if (!weak.empty()) {
            if (!c.opts.accept_weaker_durability)
                throw durability_error("sertx: PostgreSQL (" + c.description + ") runs with " + weak +
                                       "; turn it on in postgresql.conf, or open with "
                                       "{.accept_weaker_durability = true} for data you can lose.");
            counters_->durable.store(false, std::memory_order_relaxed);
        }
        execute(dialect::begin[0]);
        const std::string level = query_text("SHOW transaction_isolation");
        execute("ROLLBACK");
        if (level != "serializable")
            throw isolation_error("sertx: PostgreSQL (" + c.description + ") did not start a SERIALIZABLE "
                                  "transaction when asked (it reports " + level + "); sertx cannot guarantee "
                                  "serializability through this server or pooler.");
    }

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

/// A thread-safe pool of checked PostgreSQL sessions; copies share the pool.
class database : public sertx::detail::soci_database<backend, detail::connection, detail::config> {
public:
    using soci_database::soci_database;

    /// After a lost COMMIT without a key: whether transaction `txid`
    /// committed, asked on a fresh session; empty when it cannot be known.
    std::optional<bool> txid_committed(std::int64_t txid, std::chrono::steady_clock::time_point deadline) {
        return ask_until(deadline, [&](detail::connection& c) -> std::optional<bool> {
            const std::string status = c.txid_status(txid);
            if (status == "committed") return true;
            if (status == "aborted") return false;
            return std::nullopt;  // in progress: the server has not finished it yet
        });
    }

    /// The effect journal's wake-ups from other processes
    /// (`sertx::effect_wakeups`): LISTEN on a session of its own until
    /// `stop`; false at once behind a transaction pooler, where a LISTEN does
    /// not hold (`run` then polls).
    bool listen_for_effects(std::stop_token stop, const std::function<void()>& woken) {
        const detail::config& c = pool_->config();
        if (c.opts.pooler == pooler_mode::transaction) return false;
        detail::listen_for_effects(c.conninfo, c.password, std::move(stop), woken);
        return true;
    }
};

/// Opens a pool on `conninfo` (libpq "key=value" or a postgresql:// URI) and
/// checks one session at once, so that a wrong connection string, a server
/// that is down or a weak setting fails here, with a clear `sertx::error`.
inline database open(std::string conninfo, options opts = {}) {
    if (opts.pool_size == 0) throw error("sertx: postgresql::open needs pool_size >= 1.");
    detail::config c = detail::parse_conninfo(std::move(conninfo), opts);
    std::string what = "PostgreSQL (" + c.description + ")";
    database db = sertx::detail::open_database<database>(std::move(c), opts.pool_size, opts.acquire_timeout,
                                                         std::move(what));
    if (opts.require_synchronous_standby)
        db.acquire(std::chrono::steady_clock::time_point::max()).connection().require_synchronous_standby();
    return db;
}

}  // namespace sertx::postgresql

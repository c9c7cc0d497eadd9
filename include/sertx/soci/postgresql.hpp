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
///   and a hot standby is refused for writes;
/// - COMMIT is sent only when libpq says the transaction is still open:
///   PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and
///   success, which must never be reported as a commit;
/// - failures are classified by SQLSTATE (detail/postgresql_codes.hpp), never
///   by message text; a connection lost before COMMIT is retried on a new
///   session, one lost during COMMIT is `failure::commit_unknown`;
/// - server notices (NOTICE, WARNING) are kept from stderr and passed to the
///   policy's observers (`on_notice`).

#include <sertx/backend.hpp>
#include <sertx/detail/postgresql_codes.hpp>
#include <sertx/failure.hpp>
#include <sertx/soci/common.hpp>

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>

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
/// The backend tag of the PostgreSQL adapter.
struct backend {};
}  // namespace sertx::postgresql

namespace sertx {
/// PostgreSQL: SERIALIZABLE (SSI), transactional DDL, READ ONLY DEFERRABLE,
/// savepoints, and `txid_status` to resolve a lost COMMIT.
template <>
struct backend_traits<postgresql::backend> {
    static constexpr std::string_view name = "postgresql";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::commit_status>, boost::hana::true_c));
};
}  // namespace sertx

namespace sertx::postgresql {

/// How `open` sets up the pool.
struct options {
    /// Sessions kept open at most; each is one server connection.
    std::size_t pool_size = 4;
    /// How long a transaction waits for a free session before `pool_exhausted`.
    std::chrono::milliseconds acquire_timeout{5'000};
    /// Accept fsync, synchronous_commit or full_page_writes off (throwaway
    /// data only); `stats().durable` then reads false.
    bool accept_weaker_durability = false;
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

/// One server connection: a SOCI session plus its libpq handle.
class connection : public sertx::detail::soci_statements<connection> {
public:
    using session_type = ::soci::session;
    static constexpr sertx::detail::sql_dialect dialect = sertx::detail::sql_dialect::postgresql;

    static std::unique_ptr<connection> open(const config& c, sertx::detail::counters& counters) {
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

    void begin(bool writes, std::chrono::milliseconds lock_wait) {
        if (writes && standby_)
            throw database_error(failure::permanent, "25006",
                                 "sertx: this PostgreSQL server is a hot standby (in recovery) and cannot run "
                                 "writing transactions; connect to the primary, or use a read_only policy.");
        lock_wait_set_ = lock_wait.count() > 0;
        if (lock_wait_set_) begun_ = std::chrono::steady_clock::now();
        const char* begin =
            writes ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE";
        // lock_timeout is set for the session, and only when the policy's
        // differs from what the session has: SET LOCAL in every transaction
        // cost the server ~14,000 instructions each (docs/benchmarks.md).
        // Set inside the transaction, it holds from its COMMIT on and a
        // rollback undoes it; commit() keeps the cache in step.
        const std::chrono::milliseconds wanted = lock_wait_set_ ? lock_wait : server_lock_wait_;
        pending_lock_wait_ = wanted;
        if (wanted == session_lock_wait_) return execute(begin);
        execute((std::string(begin) + "; SET lock_timeout = " + std::to_string(wanted.count())).c_str());
    }

    void verify_isolation() {
        const std::string level = query_text("SHOW transaction_isolation");
        if (level != "serializable")
            throw isolation_error("sertx: PostgreSQL runs this transaction at " + level +
                                  ", not serializable; something between sertx and the server (a pooler, a "
                                  "session setting) changed it.");
    }

    void commit() {
        switch (PQtransactionStatus(native_)) {
            case PQTRANS_INTRANS: break;
            case PQTRANS_INERROR:
                throw database_error(
                    failure::permanent, "25P02",
                    "sertx: a statement in the body failed and the body caught its error; PostgreSQL had "
                    "already aborted the transaction, so it was rolled back, not committed. Let the error "
                    "propagate (sertx re-runs retryable ones), or run the risky part in a nested<savepoint>.");
            case PQTRANS_IDLE:
                throw database_error(failure::permanent, "25000",
                                     "sertx: the body ended the transaction itself (COMMIT or ROLLBACK); leave "
                                     "that to transact().");
            default:
                throw database_error(failure::connection_lost, "08006",
                                     "sertx: the connection was lost before COMMIT was sent.");
        }
        pg_result r(PQexec(native_, "COMMIT"));
        if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
            if (std::strcmp(PQcmdStatus(r.get()), "COMMIT") == 0) {
                session_lock_wait_ = pending_lock_wait_;
                return;
            }
            throw database_error(failure::permanent, "25P02",
                                 "sertx: PostgreSQL answered COMMIT with ROLLBACK: the transaction had failed.");
        }
        const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        if (!r || PQstatus(native_) != CONNECTION_OK) {
            broken_ = true;
            throw database_error(failure::commit_unknown, state ? state : "08006",
                                 "sertx: the connection was lost while COMMIT was in flight: " + last_error());
        }
        throw database_error(classify_state(state), state ? state : "", "sertx: COMMIT failed: " + last_error(r.get()));
    }

    void rollback() { execute("ROLLBACK"); }

    /// After a failed attempt: roll back what is open; a session whose
    /// connection failed is marked so that the pool discards it.
    void abandon(failure f) noexcept {
        if (f == failure::connection_lost || f == failure::commit_unknown || PQstatus(native_) != CONNECTION_OK) {
            broken_ = true;
            return;
        }
        if (PQtransactionStatus(native_) == PQTRANS_IDLE) return;
        pg_result r(PQexec(native_, "ROLLBACK"));
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) broken_ = true;
    }

    failure classify(const std::exception_ptr& e) const noexcept {
        const bool lost = PQstatus(native_) != CONNECTION_OK;
        try {
            std::rethrow_exception(e);
        } catch (const database_error& d) {
            return d.kind();
        } catch (const ::soci::postgresql_soci_error& p) {
            if (lost) return failure::connection_lost;
            const std::string state = p.sqlstate();
            // A lock timeout that fires as the lock is granted, just before a
            // second wait in the same statement (an UPDATE waiting for a tuple,
            // then for its writer), loses its reason: the second wait clears
            // it, and the server reports a cancel (57014, "due to user
            // request"); seen under contention (docs/benchmarks.md). Retried
            // like 55P03 when it cannot be the session's statement_timeout
            // (also 57014): the transaction began less than that long ago.
            if (lock_wait_set_ && state == "57014" &&
                (statement_timeout_.count() == 0 || std::chrono::steady_clock::now() - begun_ < statement_timeout_))
                return failure::busy;
            return sertx::detail::classify_sqlstate(state);
        } catch (const ::soci::soci_error&) {
            return lost ? failure::connection_lost : failure::permanent;
        } catch (...) {
            return failure::permanent;
        }
    }

    std::int64_t current_txid() { return std::stoll(query_text("select txid_current()")); }

    /// 'committed', 'aborted', 'in progress', or empty (unknown to the server).
    std::string txid_status(std::int64_t txid) {
        return query_text(("select coalesce(txid_status(" + std::to_string(txid) + "), '')").c_str());
    }

    template <class F>
    void take_notices(F&& f) {
        for (const auto& n : notices_) {
            sertx::detail::counters::add(counters_->notices);
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
    connection(std::unique_ptr<::soci::session> s, sertx::detail::counters& counters)
        : session_(std::move(s)),
          native_(static_cast<::soci::postgresql_session_backend*>(session_->get_backend())->conn_),
          counters_(&counters) {
        PQsetNoticeProcessor(native_, &connection::keep_notice, this);
    }

    static void keep_notice(void* self, const char* message) {
        auto& c = *static_cast<connection*>(self);
        if (c.notices_.size() < max_kept_notices) c.notices_.emplace_back(message);
    }

    failure classify_state(const char* state) const noexcept {
        if (PQstatus(native_) != CONNECTION_OK) return failure::connection_lost;
        return state ? sertx::detail::classify_sqlstate(state) : failure::permanent;
    }

    std::string last_error(const PGresult* r = nullptr) const {
        std::string m = r ? PQresultErrorMessage(r) : PQerrorMessage(native_);
        while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
        return m;
    }

    [[noreturn]] void fail(const PGresult* r, const char* sql) {
        const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
        const failure kind = classify_state(state);
        if (kind == failure::connection_lost) broken_ = true;
        throw database_error(kind, state ? state : "",
                             std::string("sertx: ") + sql + " failed: " + last_error(r));
    }

    std::string query_text(const char* sql) {
        pg_result r(PQexec(native_, sql));
        if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) fail(r.get(), sql);
        return PQgetvalue(r.get(), 0, 0);
    }

    /// Isolation and durability, once per session (DESIGN §4).
    void check_server(const config& c) {
        pg_result r(PQexec(native_,
                           "select current_setting('fsync'), current_setting('synchronous_commit'), "
                           "current_setting('full_page_writes'), pg_is_in_recovery(), "
                           "(select setting from pg_settings where name = 'statement_timeout'), "
                           "(select setting from pg_settings where name = 'lock_timeout')"));
        if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(r.get(), "reading the server's settings");
        const std::string fsync = PQgetvalue(r.get(), 0, 0), sync_commit = PQgetvalue(r.get(), 0, 1),
                          full_pages = PQgetvalue(r.get(), 0, 2);
        standby_ = std::string_view(PQgetvalue(r.get(), 0, 3)) == "t";
        statement_timeout_ = std::chrono::milliseconds(std::strtoll(PQgetvalue(r.get(), 0, 4), nullptr, 10));
        server_lock_wait_ = session_lock_wait_ = pending_lock_wait_ =
            std::chrono::milliseconds(std::strtoll(PQgetvalue(r.get(), 0, 5), nullptr, 10));
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
        execute("BEGIN ISOLATION LEVEL SERIALIZABLE");
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
    sertx::detail::counters* counters_;
    std::vector<std::string> notices_;
    std::chrono::milliseconds server_lock_wait_{0};   // lock_timeout as the session opened
    std::chrono::milliseconds session_lock_wait_{0};  // what the session has now
    std::chrono::milliseconds pending_lock_wait_{0};  // what it has once this transaction commits
    bool lock_wait_set_ = false;  // this transaction runs with a lock_timeout
    std::chrono::steady_clock::time_point begun_;  // when it began, if so
    std::chrono::milliseconds statement_timeout_{0};  // the session's, as it opened; 0: none
    bool broken_ = false;
    bool standby_ = false;
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
};

/// Opens a pool on `conninfo` (libpq "key=value" or a postgresql:// URI) and
/// checks one session at once, so that a wrong connection string, a server
/// that is down or a weak setting fails here, with a clear `sertx::error`.
inline database open(std::string conninfo, options opts = {}) {
    if (opts.pool_size == 0) throw error("sertx: postgresql::open needs pool_size >= 1.");
    detail::config c = detail::parse_conninfo(std::move(conninfo), opts);
    const std::string what = "PostgreSQL (" + c.description + ")";
    database db(std::make_shared<database::pool_type>(std::move(c), opts.pool_size, opts.acquire_timeout, what));
    db.acquire(std::chrono::steady_clock::time_point::max());
    return db;
}

}  // namespace sertx::postgresql

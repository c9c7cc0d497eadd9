// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The SQLite adapter, on SOCI's sqlite3 backend.
///
/// \code
/// sertx::sqlite3::database lite = sertx::sqlite3::open("app.db", {.pool_size = 4});
/// \endcode
///
/// SQLite runs one writer at a time, which makes every transaction
/// serializable as long as writers take the write lock when they begin:
/// - writing transactions start with `BEGIN IMMEDIATE` (a deferred one that
///   reads first and then writes fails with SQLITE_BUSY_SNAPSHOT when another
///   writer committed in between); read-only ones with `BEGIN DEFERRED` on a
///   WAL snapshot;
/// - each session is set up and read back: `journal_mode=WAL`,
///   `synchronous=FULL`, `foreign_keys=ON`, `read_uncommitted=0`, a busy
///   timeout (SQLite's default is 0, which would surface SQLITE_BUSY at once);
/// - extended result codes are enabled, so BUSY_SNAPSHOT is told from BUSY;
/// - a read-only file, a file that is not a database and a database that
///   cannot enter WAL are refused when opened, with the path in the message;
/// - `:memory:` works but is not durable (`stats().durable` is false);
/// - a policy's `lock_timeout` is ignored: SQLite has no row locks to bound,
///   and the one wait it has, for the write lock, is bounded by
///   `options::busy_timeout` (tests/sqlite3/open_test.cpp shows it).

#include <sertx/adapter.hpp>
#include <sertx/detail/hex.hpp>
#include <sertx/failure.hpp>
#include <sertx/soci/common.hpp>
#include <sertx/soci/detail/effect_statements.hpp>
#include <sertx/soci/detail/migration_statements.hpp>
#include <sertx/sqlite3/backend.hpp>

#include <soci/sqlite3/soci-sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace sertx::sqlite3 {

/// How `open` sets up the pool.
struct options {
    /// Connections kept open at most. SQLite runs one writer at a time; more
    /// connections help concurrent readers.
    std::size_t pool_size = 4;
    /// How long a transaction waits for a free connection before `pool_exhausted`.
    std::chrono::milliseconds acquire_timeout{5'000};
    /// How long BEGIN IMMEDIATE waits for another writer before SQLITE_BUSY.
    std::chrono::milliseconds busy_timeout{5'000};
    /// Accept a journal mode other than WAL (a file system without shared
    /// memory); `stats().durable` then reads false.
    bool accept_weaker_durability = false;
};

namespace detail {

/// The writers of one pool, served first come, first served. SQLite lets one
/// writer in at a time and makes the others poll in its busy handler, with
/// sleeps growing to 100 ms: a writer that just committed nearly always wins
/// again, and the others (an effect dispatcher among them) starve. Queueing
/// in the process first bounds that: a writer that comes back while others
/// wait may take the free turn ahead of them at most `overtakes` times in a
/// row, then the turn is handed to the first waiter. Handing it over at every
/// turn cost a quarter to a third of the throughput at 4 and 8 threads: each
/// turn then waited for a thread to wake, and ran on another connection,
/// whose page cache SQLite drops when another connection wrote (measured:
/// 5-6 page cache misses per transfer, 2 now). Leaving the turn wakes the
/// first waiter (alone: waking all cost a tenth at 4 and 8 threads), which
/// takes it when it is still free, so a writer that does not come back
/// holds nobody up.
class writer_queue {
public:
    /// Turns a returning writer may take ahead of the first waiter.
    static constexpr unsigned overtakes = 8;

    /// False when `timeout` passed first.
    bool enter(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        if (!busy_) {  // nobody waits, or the first waiter was woken and has not taken it yet
            busy_ = true;
            if (!waiting_.empty()) ++overtaken_;
            return true;
        }
        return waiting_
            .wait(lock, std::chrono::steady_clock::now() + timeout,
                  [this]() -> std::optional<turn> {
                      if (busy_) return std::nullopt;
                      take_as_waiter();
                      return turn{};
                  })
            .has_value();
    }

    /// Whether a writer waits (what a test waits for before it counts).
    bool waited_on() {
        std::lock_guard lock(mutex_);
        return !waiting_.empty();
    }

    void leave() noexcept {
        std::lock_guard lock(mutex_);
        if (waiting_.empty()) {
            busy_ = false;
            overtaken_ = 0;
        } else if (overtaken_ >= overtakes) {
            take_as_waiter();
            waiting_.hand_over(turn{});
        } else {
            busy_ = false;
            waiting_.nudge();
        }
    }

private:
    struct turn {};
    void take_as_waiter() noexcept {
        busy_ = true;
        overtaken_ = 0;
    }
    std::mutex mutex_;
    sertx::detail::handoff_queue<turn> waiting_;
    bool busy_ = false;
    unsigned overtaken_ = 0;  // turns taken ahead of the first waiter since a waiter last got one
};

struct config {
    std::string path;
    options opts;
    std::shared_ptr<writer_queue> writers = std::make_shared<writer_queue>();
};

/// SOCI's sqlite3 connection string takes `db="..."`: quoting keeps spaces,
/// and it has no escape for a quote inside the path.
inline std::string soci_connect_string(const std::string& path) {
    if (path.find('"') != std::string::npos)
        throw connection_error("sertx: SQLite path '" + path +
                               "' contains a double quote, which SOCI's connection string cannot carry; "
                               "rename the file or its directory.");
    return "db=\"" + path + "\"";
}

class connection : public sertx::detail::soci_connection<connection> {
public:
    using session_type = ::soci::session;
    using dialect = sqlite3::dialect;

    static std::unique_ptr<connection> open(const config& c, sertx::counters& counters) {
        const std::string connect_string = soci_connect_string(c.path);
        std::unique_ptr<::soci::session> session;
        try {
            session = std::make_unique<::soci::session>(::soci::sqlite3, connect_string);
        } catch (const std::exception& e) {
            throw connection_error("sertx: cannot open SQLite database '" + c.path + "': " + e.what());
        }
        auto self = std::unique_ptr<connection>(new connection(std::move(session), c));
        self->set_up(c, counters);
        return self;
    }

    session_type& session() noexcept { return *session_; }
    sqlite_api::sqlite3* native_handle() const noexcept { return native_; }
    sertx::detail::session_objects& objects() noexcept { return objects_; }
    sertx::detail::effect_statements<connection>& journal() noexcept { return journal_; }
    sertx::detail::migration_statements<connection>& migrations() noexcept { return migrations_; }

    bool healthy() noexcept { return sqlite_api::sqlite3_get_autocommit(native_) != 0; }
    bool reusable() const noexcept { return !broken_; }

    /// Writers queue in the process first (writer_queue), then take the
    /// write lock with BEGIN IMMEDIATE. `start.lock_timeout` is ignored (see
    /// the top of this file).
    void begin(const transaction_start& start) {
        if (start.verify_isolation) verify_isolation();
        statement& begin = begin_[static_cast<std::size_t>(start.access)];
        if (start.access != access_mode::read_write) return run(begin.get());
        if (!writers_->enter(busy_timeout_))
            refuse(result_busy,
                   "sertx: another writer of this database in this process kept it longer than busy_timeout.");
        writing_ = true;
        try {
            run(begin.get());
        } catch (...) {
            leave_writers();
            throw;
        }
    }

    /// BEGIN, then the lookup of an idempotency key: a statement prepared
    /// once per connection, not parsed by SOCI in every transaction.
    std::optional<committed_key> begin_and_find_key(const transaction_start& start, std::string_view key) {
        begin(start);
        sqlite_api::sqlite3_stmt* find = kept(find_key_, dialect::find_key);
        bind_hex(find, 1, key_hex_, key);
        const int rc = sqlite_api::sqlite3_step(find);
        if (rc == SQLITE_DONE) {
            sqlite_api::sqlite3_reset(find);
            return std::nullopt;
        }
        if (rc != SQLITE_ROW) failed_step(find);
        committed_key found{text_column(find, 0), text_column(find, 1)};
        sqlite_api::sqlite3_reset(find);
        found.request = sertx::detail::column_bytes(found.request, "request", "sertx_commit_log");
        return found;
    }

    /// The key's row, by a statement prepared once per connection, then
    /// COMMIT. A failed insert fails the commit, as `record_key` would.
    void commit_with_key(std::string_view key, std::string_view attempt, std::string_view request) {
        require_open();
        sqlite_api::sqlite3_stmt* record = kept(record_key_, dialect::record_key);
        bind_hex(record, 1, key_hex_, key);
        sqlite_api::sqlite3_bind_text(record, 2, attempt.data(), static_cast<int>(attempt.size()), SQLITE_STATIC);
        sqlite_api::sqlite3_bind_int64(record, 3, sertx::detail::unix_micros_now());
        bind_hex(record, 4, request_hex_, request);
        run(record);
        commit();
    }

    void commit() {
        require_open();
        finish_statements();
        committing_ = true;
        struct done {
            bool& flag;
            ~done() { flag = false; }
        } reset{committing_};
        run(commit_.get());
        leave_writers();
    }

    void rollback() {
        finish_statements();
        run(rollback_.get());
        leave_writers();
    }

    void abandon(failure) noexcept {
        finish_statements();
        if (sqlite_api::sqlite3_get_autocommit(native_) == 0) {
            if (sqlite_api::sqlite3_step(rollback_.get()) != SQLITE_DONE) broken_ = true;
            sqlite_api::sqlite3_reset(rollback_.get());
        }
        if (sqlite_api::sqlite3_get_autocommit(native_) != 0) leave_writers();
    }

    ~connection() { leave_writers(); }

    failure classify(const std::exception_ptr& e) const noexcept {
        try {
            std::rethrow_exception(e);
        } catch (const database_error& d) {
            return d.kind();
        } catch (const ::soci::sqlite3_soci_error& s) {
            return classify_result(s.result());
        } catch (...) {
            return failure::permanent;
        }
    }

    static std::string failure_code(failure f) { return result_code_of(f); }

    template <class F>
    void take_notices(F&&) noexcept {}  // SQLite sends none

    void execute(const char* sql) {
        char* message = nullptr;
        const int rc = sqlite_api::sqlite3_exec(native_, sql, nullptr, nullptr, &message);
        if (rc == SQLITE_OK) return;
        const std::string why = message ? message : sqlite_api::sqlite3_errmsg(native_);
        sqlite_api::sqlite3_free(message);
        fail(sql, why);
    }

private:
    void require_open() const {
        if (sqlite_api::sqlite3_get_autocommit(native_) != 0)
            refuse(SQLITE_ABORT,
                   "sertx: the transaction had already been rolled back inside the body (a failed statement "
                   "SQLite undoes whole, or a ROLLBACK), so it was not committed.");
    }

    struct statement_finalizer {
        void operator()(sqlite_api::sqlite3_stmt* s) const noexcept { sqlite_api::sqlite3_finalize(s); }
    };
    using statement = std::unique_ptr<sqlite_api::sqlite3_stmt, statement_finalizer>;

    /// The one way a failed statement is reported: its extended result code
    /// (the connection's latest, unless given), classified by the table.
    [[noreturn]] void fail(const std::string& what, const std::string& why, int code) const {
        throw database_error(classify_result(code), std::to_string(code), what, why);
    }
    [[noreturn]] void fail(const std::string& what, const std::string& why) const {
        fail(what, why, sqlite_api::sqlite3_extended_errcode(native_));
    }
    [[noreturn]] void fail(const std::string& what) const { fail(what, sqlite_api::sqlite3_errmsg(native_)); }

    /// The adapter's own refusal, with the result code SQLite would give.
    [[noreturn]] static void refuse(int code, const std::string& why) {
        throw database_error(classify_result(code), std::to_string(code), why);
    }

    /// Transaction control is prepared once per connection: parsing BEGIN
    /// and COMMIT again in every transaction cost more than the rest of
    /// sertx's work on an in-memory database (docs/benchmarks.md).
    statement prepare(const char* sql) {
        sqlite_api::sqlite3_stmt* s = nullptr;
        if (sqlite_api::sqlite3_prepare_v2(native_, sql, -1, &s, nullptr) != SQLITE_OK)
            fail(std::string("preparing ") + sql);
        return statement(s);
    }

    void run(sqlite_api::sqlite3_stmt* s) {
        if (sqlite_api::sqlite3_step(s) == SQLITE_DONE) {
            sqlite_api::sqlite3_reset(s);
            return;
        }
        failed_step(s);
    }

    [[noreturn]] void failed_step(sqlite_api::sqlite3_stmt* s) {
        const std::string why = sqlite_api::sqlite3_errmsg(native_);
        const int code = sqlite_api::sqlite3_extended_errcode(native_);
        sqlite_api::sqlite3_reset(s);  // after reading the error: reset may change it
        fail(sqlite_api::sqlite3_sql(s), why, code);
    }

    /// A statement of sertx's own tables, prepared on first use (the tables
    /// may be installed after the connection opened) and kept.
    sqlite_api::sqlite3_stmt* kept(statement& s, const char* sql) {
        if (!s) s = prepare(sql);
        return s.get();
    }

    /// Binds `bytes` as hex text, written into `buffer`, which the connection
    /// keeps (SQLITE_STATIC: no copy) and whose capacity it reuses.
    static void bind_hex(sqlite_api::sqlite3_stmt* s, int index, std::string& buffer, std::string_view bytes) {
        buffer.clear();
        sertx::detail::append_hex(buffer, bytes);
        sqlite_api::sqlite3_bind_text(s, index, buffer.data(), static_cast<int>(buffer.size()), SQLITE_STATIC);
    }

    static std::string text_column(sqlite_api::sqlite3_stmt* s, int column) {
        const auto* text = reinterpret_cast<const char*>(sqlite_api::sqlite3_column_text(s, column));
        return text ? std::string(text, static_cast<std::size_t>(sqlite_api::sqlite3_column_bytes(s, column)))
                    : std::string();
    }

    /// A prepared SELECT left before its last row keeps its read transaction
    /// open past COMMIT, on an old snapshot: this connection's next BEGIN
    /// IMMEDIATE then fails with SQLITE_BUSY instead of waiting, and
    /// checkpoints stall. Every statement still running is reset.
    void finish_statements() noexcept {
        for (auto* s = sqlite_api::sqlite3_next_stmt(native_, nullptr); s; s = sqlite_api::sqlite3_next_stmt(native_, s))
            if (sqlite_api::sqlite3_stmt_busy(s)) sqlite_api::sqlite3_reset(s);
    }

    connection(std::unique_ptr<::soci::session> s, const config& c)
        : writers_(c.writers),
          busy_timeout_(c.opts.busy_timeout),
          session_(std::move(s)),
          native_(static_cast<::soci::sqlite3_session_backend*>(session_->get_backend())->conn_) {}

    void verify_isolation() {
        if (pragma_text("PRAGMA read_uncommitted") != "0")
            throw isolation_error("sertx: this SQLite connection has read_uncommitted on; it would read other "
                                  "transactions' uncommitted changes in shared-cache mode.");
    }

    std::string pragma_text(const char* sql) {
        sqlite_api::sqlite3_stmt* raw = nullptr;
        if (sqlite_api::sqlite3_prepare_v2(native_, sql, -1, &raw, nullptr) != SQLITE_OK) fail(sql);
        const statement stmt(raw);
        const int rc = sqlite_api::sqlite3_step(raw);
        if (rc == SQLITE_DONE) return {};
        if (rc != SQLITE_ROW) fail(sql);
        const auto* text = sqlite_api::sqlite3_column_text(raw, 0);
        return text ? reinterpret_cast<const char*>(text) : "";
    }

    /// Switching a new file to WAL needs a moment alone with it, and SQLite
    /// answers SQLITE_BUSY at once, without its busy handler, while another
    /// connection is opening it too: wait as busy_timeout would.
    std::string enter_wal(std::chrono::milliseconds busy_timeout) {
        const auto give_up = std::chrono::steady_clock::now() + busy_timeout;
        for (;;) {
            try {
                return pragma_text("PRAGMA journal_mode=WAL");
            } catch (const database_error& e) {
                if (e.kind() != failure::busy || std::chrono::steady_clock::now() >= give_up) throw;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    /// WAL, or a clear refusal naming the file: not a database, not
    /// writable, or (without accept_weaker_durability) no WAL.
    void require_wal(const config& c, sertx::counters& counters) {
        const bool in_memory = c.path == ":memory:" || c.path.empty();
        std::string mode;
        try {
            mode = enter_wal(c.opts.busy_timeout);
        } catch (const database_error& e) {
            const int primary = static_cast<int>(std::strtol(e.code().c_str(), nullptr, 10)) & 0xff;
            if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
                throw connection_error("sertx: '" + c.path +
                                       "' is not a SQLite database, or it is corrupt (" + e.what() +
                                       "); restore it from a backup or point sertx at another file.");
            if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM)
                throw connection_error("sertx: SQLite database '" + c.path + "' cannot be written (" + e.what() +
                                       "); sertx needs write access to the file and its directory (for the "
                                       "-wal and -shm files).");
            throw;
        }
        if (!in_memory && sqlite_api::sqlite3_db_readonly(native_, "main") == 1)
            throw connection_error("sertx: SQLite database '" + c.path +
                                   "' was opened read-only (file or directory permissions); sertx needs write "
                                   "access to the file and its directory (for the -wal and -shm files).");
        if (in_memory) {
            counters.durable.store(false, std::memory_order_relaxed);  // gone with the process, by design
        } else if (mode != "wal") {
            if (!c.opts.accept_weaker_durability)
                throw durability_error("sertx: SQLite database '" + c.path + "' could not enter WAL mode (it is in " +
                                       mode + " mode); sertx needs WAL for readers that do not block the "
                                       "writer. Use a local file system, or open with "
                                       "{.accept_weaker_durability = true}.");
            counters.durable.store(false, std::memory_order_relaxed);
        }
    }

    /// The other guarantees, each set and read back.
    void require_settings(const config& c) {
        execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA read_uncommitted=0");
        if (pragma_text("PRAGMA synchronous") != "2")
            throw durability_error("sertx: SQLite database '" + c.path + "' did not accept synchronous=FULL.");
        if (pragma_text("PRAGMA foreign_keys") != "1")
            throw error("sertx: SQLite database '" + c.path + "' did not accept foreign_keys=ON.");
        if (pragma_text("PRAGMA busy_timeout") != std::to_string(c.opts.busy_timeout.count()))
            throw error("sertx: SQLite database '" + c.path + "' did not accept busy_timeout.");
        verify_isolation();
    }

    /// Sets each guarantee and reads it back (DESIGN §4), then prepares
    /// transaction control.
    void set_up(const config& c, sertx::counters& counters) {
        sqlite_api::sqlite3_extended_result_codes(native_, 1);
        sqlite_api::sqlite3_busy_timeout(native_, static_cast<int>(c.opts.busy_timeout.count()));
        require_wal(c, counters);
        require_settings(c);
        for (std::size_t i = 0; i < std::size(begin_); ++i) begin_[i] = prepare(dialect::begin[i]);
        commit_ = prepare("COMMIT");
        rollback_ = prepare("ROLLBACK");
        sqlite_api::sqlite3_commit_hook(native_, &connection::only_our_commit, this);
    }

    /// SQLite rolls a transaction back by itself on some errors (ON CONFLICT
    /// ROLLBACK, RAISE(ROLLBACK), SQLITE_FULL); a body that swallows the error
    /// then runs its next statements in autocommit mode, each committing
    /// alone. So only sertx's own COMMIT may commit: any other fails.
    static int only_our_commit(void* self) noexcept { return static_cast<connection*>(self)->committing_ ? 0 : 1; }

    void leave_writers() noexcept {
        if (!writing_) return;
        writing_ = false;
        writers_->leave();
    }

    std::shared_ptr<writer_queue> writers_;  // shared by the pool's connections
    std::chrono::milliseconds busy_timeout_;
    bool writing_ = false;
    std::unique_ptr<::soci::session> session_;
    sqlite_api::sqlite3* native_;
    bool broken_ = false;
    bool committing_ = false;
    // After session_, so destroyed first: SQLite does not close a connection
    // whose statements are not finalized.
    statement begin_[std::size(dialect::begin)], commit_, rollback_;
    statement find_key_, record_key_;  // prepared on first use
    std::string key_hex_, request_hex_;  // what the key's statements bind
    sertx::detail::effect_statements<connection> journal_{*this};
    sertx::detail::migration_statements<connection> migrations_{*this};
    sertx::detail::session_objects objects_;
};

}  // namespace detail

/// A thread-safe pool of checked SQLite connections to one file; copies
/// share the pool.
class database : public sertx::detail::soci_database<backend, detail::connection, detail::config> {
public:
    using soci_database::soci_database;
};

/// Opens a pool on the SQLite file at `path` (created when missing;
/// ":memory:" for a private in-memory database, one per connection) and
/// checks one connection at once.
inline database open(std::string path, options opts = {}) {
    if (opts.pool_size == 0) throw error("sertx: sqlite3::open needs pool_size >= 1.");
    if (const auto nul = path.find('\0'); nul != std::string::npos)  // SQLite would open the path cut short there
        throw connection_error("sertx: SQLite path '" + path.substr(0, nul) +
                               "' is followed by a NUL byte; give the path without it.");
    std::string what = "SQLite database '" + path + "'";
    return sertx::detail::open_database<database>(detail::config{std::move(path), opts}, opts.pool_size,
                                                  opts.acquire_timeout, std::move(what));
}

}  // namespace sertx::sqlite3

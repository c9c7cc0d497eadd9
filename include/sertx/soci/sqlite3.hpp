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
#include <sertx/detail/config.hpp>
#include <sertx/failure.hpp>
#include <sertx/soci/common.hpp>
#include <sertx/soci/detail/effect_statements.hpp>
#include <sertx/soci/detail/migration_statements.hpp>
#include <sertx/sqlite3/backend.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

// SQLite's handles, as soci-sqlite3.h declares them (sqlite3.h inside
// namespace sqlite_api): the C API itself is needed only by impl/sqlite3.ipp.
namespace sqlite_api {
struct sqlite3;
struct sqlite3_stmt;
}  // namespace sqlite_api

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
    bool enter(std::chrono::milliseconds timeout);

    /// Whether a writer waits (what a test waits for before it counts).
    bool waited_on();

    void leave() noexcept;

private:
    struct turn {};
    void take_as_waiter() noexcept;
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
SERTX_DECL std::string soci_connect_string(const std::string& path);

class connection : public sertx::detail::soci_connection<connection> {
public:
    using session_type = ::soci::session;
    using dialect = sqlite3::dialect;

    static std::unique_ptr<connection> open(const config& c, sertx::counters& counters);

    session_type& session() noexcept { return *session_; }
    sqlite_api::sqlite3* native_handle() const noexcept { return native_; }
    sertx::detail::session_objects& objects() noexcept { return objects_; }
    sertx::detail::effect_statements<connection>& journal() noexcept { return journal_; }
    sertx::detail::migration_statements<connection>& migrations() noexcept { return migrations_; }

    bool healthy() noexcept;
    bool reusable() const noexcept { return !broken_; }

    /// Writers queue in the process first (writer_queue), then take the
    /// write lock with BEGIN IMMEDIATE. `start.lock_timeout` is ignored (see
    /// the top of this file).
    void begin(const transaction_start& start);

    /// BEGIN, then the lookup of an idempotency key: a statement prepared
    /// once per connection, not parsed by SOCI in every transaction.
    std::optional<committed_key> begin_and_find_key(const transaction_start& start, std::string_view key);

    /// The key's row, by a statement prepared once per connection, then
    /// COMMIT. A failed insert fails the commit, as `record_key` would.
    void commit_with_key(std::string_view key, std::string_view attempt, std::string_view request);

    void commit();

    void rollback();

    void abandon(failure) noexcept;

    ~connection();

    failure classify(const std::exception_ptr& e) const noexcept;

    static std::string failure_code(failure f) { return result_code_of(f); }

    template <class F>
    void take_notices(F&&) noexcept {}  // SQLite sends none

    void execute(const char* sql);

private:
    void require_open() const;

    struct statement_finalizer {
        void operator()(sqlite_api::sqlite3_stmt* s) const noexcept;
    };
    using statement = std::unique_ptr<sqlite_api::sqlite3_stmt, statement_finalizer>;

    /// The one way a failed statement is reported: its extended result code
    /// (the connection's latest, unless given), classified by the table.
    [[noreturn]] void fail(const std::string& what, const std::string& why, int code) const;
    [[noreturn]] void fail(const std::string& what, const std::string& why) const;
    [[noreturn]] void fail(const std::string& what) const;

    /// The adapter's own refusal, with the result code SQLite would give.
    [[noreturn]] static void refuse(int code, const std::string& why);

    /// Transaction control is prepared once per connection: parsing BEGIN
    /// and COMMIT again in every transaction cost more than the rest of
    /// sertx's work on an in-memory database (docs/benchmarks.md).
    statement prepare(const char* sql);

    void run(sqlite_api::sqlite3_stmt* s);

    [[noreturn]] void failed_step(sqlite_api::sqlite3_stmt* s);

    /// A statement of sertx's own tables, prepared on first use (the tables
    /// may be installed after the connection opened) and kept.
    sqlite_api::sqlite3_stmt* kept(statement& s, const char* sql);

    /// Binds `bytes` as hex text, written into `buffer`, which the connection
    /// keeps (SQLITE_STATIC: no copy) and whose capacity it reuses.
    static void bind_hex(sqlite_api::sqlite3_stmt* s, int index, std::string& buffer, std::string_view bytes);

    static std::string text_column(sqlite_api::sqlite3_stmt* s, int column);

    /// A prepared SELECT left before its last row keeps its read transaction
    /// open past COMMIT, on an old snapshot: this connection's next BEGIN
    /// IMMEDIATE then fails with SQLITE_BUSY instead of waiting, and
    /// checkpoints stall. Every statement still running is reset.
    void finish_statements() noexcept;

    connection(std::unique_ptr<::soci::session> s, const config& c);

    void verify_isolation();

    std::string pragma_text(const char* sql);

    /// Switching a new file to WAL needs a moment alone with it, and SQLite
    /// answers SQLITE_BUSY at once, without its busy handler, while another
    /// connection is opening it too: wait as busy_timeout would.
    std::string enter_wal(std::chrono::milliseconds busy_timeout);

    /// WAL, or a clear refusal naming the file: not a database, not
    /// writable, or (without accept_weaker_durability) no WAL.
    void require_wal(const config& c, sertx::counters& counters);

    /// The other guarantees, each set and read back.
    void require_settings(const config& c);

    /// Sets each guarantee and reads it back (DESIGN §4), then prepares
    /// transaction control.
    void set_up(const config& c, sertx::counters& counters);

    /// SQLite rolls a transaction back by itself on some errors (ON CONFLICT
    /// ROLLBACK, RAISE(ROLLBACK), SQLITE_FULL); a body that swallows the error
    /// then runs its next statements in autocommit mode, each committing
    /// alone. So only sertx's own COMMIT may commit: any other fails.
    static int only_our_commit(void* self) noexcept { return static_cast<connection*>(self)->committing_ ? 0 : 1; }

    void leave_writers() noexcept;

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
}  // namespace sertx::sqlite3

#if defined(SERTX_SEPARATE_COMPILATION)
// Instantiated once, by impl/sqlite3.ipp.
extern template class sertx::detail::handoff_queue<sertx::sqlite3::detail::writer_queue::turn>;
SERTX_SOCI_ADAPTER_TEMPLATES(extern template, sertx::sqlite3::backend, sertx::sqlite3::detail::connection,
                             sertx::sqlite3::detail::config);
#endif

namespace sertx::sqlite3 {

/// A thread-safe pool of checked SQLite connections to one file; copies
/// share the pool.
class database : public sertx::detail::soci_database<backend, detail::connection, detail::config> {
public:
    using soci_database::soci_database;
};

/// Opens a pool on the SQLite file at `path` (created when missing;
/// ":memory:" for a private in-memory database, one per connection) and
/// checks one connection at once.
SERTX_DECL database open(std::string path, options opts = {});

}  // namespace sertx::sqlite3

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/impl/sqlite3.ipp>
#endif

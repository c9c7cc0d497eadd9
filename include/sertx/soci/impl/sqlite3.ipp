// SPDX-License-Identifier: BSL-1.0
#pragma once
// The SQLite adapter's definitions: included by soci/sqlite3.hpp when
// header-only, else by the one unit that builds the adapters
// (detail/config.hpp), which this file also gives the adapter's
// instantiations of the shared templates.

#include <sertx/soci/sqlite3.hpp>

#include <sertx/detail/hex.hpp>
#include <sertx/soci/detail/impl/effect_statements.ipp>
#include <sertx/soci/detail/impl/migration_statements.ipp>
#include <sertx/soci/detail/impl/pool.ipp>

#include <soci/sqlite3/soci-sqlite3.h>

#include <cstdlib>
#include <thread>

namespace sertx::sqlite3 {
namespace detail {

SERTX_DECL bool writer_queue::enter(std::chrono::milliseconds timeout) {
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

SERTX_DECL bool writer_queue::waited_on() {
    std::lock_guard lock(mutex_);
    return !waiting_.empty();
}

SERTX_DECL void writer_queue::leave() noexcept {
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

SERTX_DECL void writer_queue::take_as_waiter() noexcept {
    busy_ = true;
    overtaken_ = 0;
}

SERTX_DECL connection::connection(std::unique_ptr<::soci::session> s, const config& c)
    : writers_(c.writers),
      busy_timeout_(c.opts.busy_timeout),
      session_(std::move(s)),
      native_(static_cast<::soci::sqlite3_session_backend*>(session_->get_backend())->conn_) {}

SERTX_DECL std::unique_ptr<connection> connection::open(const config& c, sertx::counters& counters) {
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

SERTX_DECL void connection::begin(const transaction_start& start) {
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

SERTX_DECL std::optional<committed_key> connection::begin_and_find_key(const transaction_start& start,
                                                                      std::string_view key) {
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

SERTX_DECL void connection::commit_with_key(std::string_view key, std::string_view attempt,
                                           std::string_view request) {
    require_open();
    sqlite_api::sqlite3_stmt* record = kept(record_key_, dialect::record_key);
    bind_hex(record, 1, key_hex_, key);
    sqlite_api::sqlite3_bind_text(record, 2, attempt.data(), static_cast<int>(attempt.size()), SQLITE_STATIC);
    sqlite_api::sqlite3_bind_int64(record, 3, sertx::detail::unix_micros_now());
    bind_hex(record, 4, request_hex_, request);
    run(record);
    commit();
}

SERTX_DECL void connection::commit() {
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

SERTX_DECL void connection::rollback() {
    finish_statements();
    run(rollback_.get());
    leave_writers();
}

SERTX_DECL void connection::abandon(failure) noexcept {
    finish_statements();
    if (sqlite_api::sqlite3_get_autocommit(native_) == 0) {
        if (sqlite_api::sqlite3_step(rollback_.get()) != SQLITE_DONE) broken_ = true;
        sqlite_api::sqlite3_reset(rollback_.get());
    }
    if (sqlite_api::sqlite3_get_autocommit(native_) != 0) leave_writers();
}

SERTX_DECL failure connection::classify(const std::exception_ptr& e) const noexcept {
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

SERTX_DECL void connection::execute(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite_api::sqlite3_exec(native_, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return;
    const std::string why = message ? message : sqlite_api::sqlite3_errmsg(native_);
    sqlite_api::sqlite3_free(message);
    fail(sql, why);
}

SERTX_DECL void connection::require_open() const {
    if (sqlite_api::sqlite3_get_autocommit(native_) != 0)
        refuse(SQLITE_ABORT,
               "sertx: the transaction had already been rolled back inside the body (a failed statement "
               "SQLite undoes whole, or a ROLLBACK), so it was not committed.");
}

SERTX_DECL void connection::fail(const std::string& what, const std::string& why, int code) const {
    throw database_error(classify_result(code), std::to_string(code), what, why);
}

SERTX_DECL void connection::fail(const std::string& what, const std::string& why) const {
    fail(what, why, sqlite_api::sqlite3_extended_errcode(native_));
}

SERTX_DECL void connection::refuse(int code, const std::string& why) {
    throw database_error(classify_result(code), std::to_string(code), why);
}

SERTX_DECL connection::statement connection::prepare(const char* sql) {
    sqlite_api::sqlite3_stmt* s = nullptr;
    if (sqlite_api::sqlite3_prepare_v2(native_, sql, -1, &s, nullptr) != SQLITE_OK)
        fail(std::string("preparing ") + sql);
    return statement(s);
}

SERTX_DECL void connection::run(sqlite_api::sqlite3_stmt* s) {
    if (sqlite_api::sqlite3_step(s) == SQLITE_DONE) {
        sqlite_api::sqlite3_reset(s);
        return;
    }
    failed_step(s);
}

SERTX_DECL void connection::failed_step(sqlite_api::sqlite3_stmt* s) {
    const std::string why = sqlite_api::sqlite3_errmsg(native_);
    const int code = sqlite_api::sqlite3_extended_errcode(native_);
    sqlite_api::sqlite3_reset(s);  // after reading the error: reset may change it
    fail(sqlite_api::sqlite3_sql(s), why, code);
}

SERTX_DECL sqlite_api::sqlite3_stmt* connection::kept(statement& s, const char* sql) {
    if (!s) s = prepare(sql);
    return s.get();
}

SERTX_DECL void connection::bind_hex(sqlite_api::sqlite3_stmt* s, int index, std::string& buffer,
                                    std::string_view bytes) {
    buffer.clear();
    sertx::detail::append_hex(buffer, bytes);
    sqlite_api::sqlite3_bind_text(s, index, buffer.data(), static_cast<int>(buffer.size()), SQLITE_STATIC);
}

SERTX_DECL std::string connection::text_column(sqlite_api::sqlite3_stmt* s, int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite_api::sqlite3_column_text(s, column));
    return text ? std::string(text, static_cast<std::size_t>(sqlite_api::sqlite3_column_bytes(s, column)))
                : std::string();
}

SERTX_DECL void connection::finish_statements() noexcept {
    for (auto* s = sqlite_api::sqlite3_next_stmt(native_, nullptr); s; s = sqlite_api::sqlite3_next_stmt(native_, s))
        if (sqlite_api::sqlite3_stmt_busy(s)) sqlite_api::sqlite3_reset(s);
}

SERTX_DECL void connection::verify_isolation() {
    if (pragma_text("PRAGMA read_uncommitted") != "0")
        throw isolation_error("sertx: this SQLite connection has read_uncommitted on; it would read other "
                              "transactions' uncommitted changes in shared-cache mode.");
}

SERTX_DECL std::string connection::pragma_text(const char* sql) {
    sqlite_api::sqlite3_stmt* raw = nullptr;
    if (sqlite_api::sqlite3_prepare_v2(native_, sql, -1, &raw, nullptr) != SQLITE_OK) fail(sql);
    const statement stmt(raw);
    const int rc = sqlite_api::sqlite3_step(raw);
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) fail(sql);
    const auto* text = sqlite_api::sqlite3_column_text(raw, 0);
    return text ? reinterpret_cast<const char*>(text) : "";
}

SERTX_DECL std::string connection::enter_wal(std::chrono::milliseconds busy_timeout) {
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

SERTX_DECL void connection::require_wal(const config& c, sertx::counters& counters) {
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

SERTX_DECL void connection::require_settings(const config& c) {
    execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA read_uncommitted=0");
    if (pragma_text("PRAGMA synchronous") != "2")
        throw durability_error("sertx: SQLite database '" + c.path + "' did not accept synchronous=FULL.");
    if (pragma_text("PRAGMA foreign_keys") != "1")
        throw error("sertx: SQLite database '" + c.path + "' did not accept foreign_keys=ON.");
    if (pragma_text("PRAGMA busy_timeout") != std::to_string(c.opts.busy_timeout.count()))
        throw error("sertx: SQLite database '" + c.path + "' did not accept busy_timeout.");
    verify_isolation();
}

SERTX_DECL void connection::set_up(const config& c, sertx::counters& counters) {
    sqlite_api::sqlite3_extended_result_codes(native_, 1);
    sqlite_api::sqlite3_busy_timeout(native_, static_cast<int>(c.opts.busy_timeout.count()));
    require_wal(c, counters);
    require_settings(c);
    for (std::size_t i = 0; i < std::size(begin_); ++i) begin_[i] = prepare(dialect::begin[i]);
    commit_ = prepare("COMMIT");
    rollback_ = prepare("ROLLBACK");
    sqlite_api::sqlite3_commit_hook(native_, &connection::only_our_commit, this);
}

SERTX_DECL void connection::leave_writers() noexcept {
    if (!writing_) return;
    writing_ = false;
    writers_->leave();
}

SERTX_DECL bool connection::healthy() noexcept { return sqlite_api::sqlite3_get_autocommit(native_) != 0; }

SERTX_DECL connection::~connection() { leave_writers(); }

SERTX_DECL void connection::statement_finalizer::operator()(sqlite_api::sqlite3_stmt* s) const noexcept {
    sqlite_api::sqlite3_finalize(s);
}

SERTX_DECL void connection::fail(const std::string& what) const { fail(what, sqlite_api::sqlite3_errmsg(native_)); }

SERTX_DECL std::string soci_connect_string(const std::string& path) {
    if (path.find('"') != std::string::npos)
        throw connection_error("sertx: SQLite path '" + path +
                               "' contains a double quote, which SOCI's connection string cannot carry; "
                               "rename the file or its directory.");
    return "db=\"" + path + "\"";
}

}  // namespace detail

SERTX_DECL database open(std::string path, options opts) {
    if (opts.pool_size == 0) throw error("sertx: sqlite3::open needs pool_size >= 1.");
    if (const auto nul = path.find('\0'); nul != std::string::npos)  // SQLite would open the path cut short there
        throw connection_error("sertx: SQLite path '" + path.substr(0, nul) +
                               "' is followed by a NUL byte; give the path without it.");
    std::string what = "SQLite database '" + path + "'";
    return sertx::detail::open_database<database>(detail::config{std::move(path), opts}, opts.pool_size,
                                                  opts.acquire_timeout, std::move(what));
}

}  // namespace sertx::sqlite3

#if defined(SERTX_SEPARATE_COMPILATION)
template class sertx::detail::handoff_queue<sertx::sqlite3::detail::writer_queue::turn>;
SERTX_SOCI_ADAPTER_TEMPLATES(template, sertx::sqlite3::backend, sertx::sqlite3::detail::connection,
                             sertx::sqlite3::detail::config);
#endif

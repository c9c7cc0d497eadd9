// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The PostgreSQL adapter's non-template code: included by its header when
/// header-only (SERTX_DECL is `inline`), or compiled once, by one source file,
/// with SERTX_SEPARATE_COMPILATION (src/compiled.cpp, or a user's own), which
/// also instantiates the shared templates for the adapter's types.

#include <sertx/soci/postgresql.hpp>

#include <sertx/detail/hex.hpp>
#include <sertx/soci/detail/impl/effect_statements.ipp>
#include <sertx/soci/detail/impl/migration_statements.ipp>
#include <sertx/soci/detail/impl/pool.ipp>
#include <sertx/soci/detail/postgresql/impl/effect_listener.ipp>

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sertx::postgresql {
namespace detail {

SERTX_DECL void pg_result_deleter::operator()(PGresult* r) const noexcept { PQclear(r); }

struct conninfo_deleter {
    void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

SERTX_DECL bool is_conninfo_keyword(std::string_view word) {
    std::unique_ptr<PQconninfoOption, conninfo_deleter> defaults(PQconndefaults());
    for (auto* o = defaults.get(); o && o->keyword; ++o)
        if (word == o->keyword) return true;
    return false;
}

SERTX_DECL std::string redact_quoted(std::string_view text) {
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

SERTX_DECL std::string without(std::string text, const std::string& secret) {
    if (secret.empty()) return text;
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3))
        text.replace(at, secret.size(), "***");
    return text;
}

SERTX_DECL config parse_conninfo(std::string conninfo, const options& opts) {
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

SERTX_DECL std::unique_ptr<connection> connection::open(const config& c, sertx::counters& counters) {
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

SERTX_DECL bool connection::healthy() noexcept {
    if (PQstatus(native_) != CONNECTION_OK) return false;
    // Twice: one read may fetch only the termination message, the next
    // sees the connection closed.
    if (!PQconsumeInput(native_) || !PQconsumeInput(native_)) return false;
    return PQstatus(native_) == CONNECTION_OK && PQtransactionStatus(native_) == PQTRANS_IDLE;
}

SERTX_DECL bool connection::reusable() const noexcept { return !broken_ && PQstatus(native_) == CONNECTION_OK; }

SERTX_DECL void connection::begin(const transaction_start& start) { check_begun(run_batch(begin_batch(start))); }

SERTX_DECL std::optional<committed_key> connection::begin_and_find_key(const transaction_start& start,
                                                                   std::string_view key) {
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

SERTX_DECL void connection::require_synchronous_standby() {
    if (!config_ || !config_->opts.require_synchronous_standby) return;
    pg_result r(PQexec(native_, dialect::replication_settings));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(r.get(), "reading the replication settings");
    note_replication(*config_, PQgetvalue(r.get(), 0, 0), PQgetvalue(r.get(), 0, 1));
    if (!replication_refusal_.empty()) throw durability_error(replication_refusal_);
}

SERTX_DECL void connection::commit_with_key(std::string_view key, std::string_view attempt, std::string_view request) {
    batch_.clear();
    dialect::append_record_key(batch_, key, attempt, request, sertx::detail::unix_micros_now(), key_prepared_);
    batch_.append("; COMMIT");
    commit_batch(batch_.c_str());
}

SERTX_DECL void connection::schedule_with_commit(std::string_view key, std::string_view operation,
                                                 std::string_view effect, std::string_view payload,
                                                 std::int64_t not_before) {
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

SERTX_DECL void connection::notify_after_commit(std::string_view operation) {
    if (notifies(operation)) return;
    after_commit_.append(after_commit_.empty() ? "; SET LOCAL synchronous_commit TO off; SELECT " : ", ");
    after_commit_.append("pg_notify('sertx_effect', convert_from(decode('");
    sertx::detail::append_hex(after_commit_, operation);
    after_commit_.append("', 'hex'), 'UTF8'))");
}

SERTX_DECL bool connection::notifies(std::string_view operation) const noexcept {
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

SERTX_DECL void connection::rollback() {
    forget_commit_extras();
    end_of_transaction();
    execute(rollback_statement());
}

SERTX_DECL void connection::abandon(failure f) noexcept {
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

SERTX_DECL failure connection::classify(const std::exception_ptr& e) const noexcept {
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

SERTX_DECL std::int64_t connection::current_txid() {
    const std::string text = query_text("select txid_current()");
    errno = 0;
    char* end = nullptr;
    const long long id = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0')
        throw error("sertx: PostgreSQL answered txid_current() with '" + text + "', not a transaction id.");
    return id;
}

SERTX_DECL std::string connection::txid_status(std::int64_t txid) {
    return query_text(("select coalesce(txid_status(" + std::to_string(txid) + "), '')").c_str());
}

SERTX_DECL void connection::execute(const char* sql) {
    pg_result r(PQexec(native_, sql));
    if (r && (PQresultStatus(r.get()) == PGRES_COMMAND_OK || PQresultStatus(r.get()) == PGRES_TUPLES_OK)) return;
    fail(r.get(), sql);
}

SERTX_DECL connection::connection(std::unique_ptr<::soci::session> s, sertx::counters& counters)
    : session_(std::move(s)),
      native_(static_cast<::soci::postgresql_session_backend*>(session_->get_backend())->conn_),
      counters_(&counters) {
    PQsetNoticeProcessor(native_, &connection::keep_notice, this);
}

SERTX_DECL void connection::keep_notice(void* self, const char* message) {
    auto& c = *static_cast<connection*>(self);
    if (c.notices_.size() < max_kept_notices) c.notices_.emplace_back(message);
}

SERTX_DECL failure_context connection::context(bool commit_sent) const noexcept {
    return {PQstatus(native_) == CONNECTION_OK, commit_sent,
            lock_timeout_since_ && (statement_timeout_.count() == 0 ||
                                    std::chrono::steady_clock::now() - *lock_timeout_since_ < statement_timeout_),
            writing_ && !standby_ && !read_only_};
}

SERTX_DECL std::string connection::last_error(const PGresult* r) const {
    std::string m = r ? PQresultErrorMessage(r) : PQerrorMessage(native_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
}

[[noreturn]] SERTX_DECL void connection::fail(const PGresult* r, const char* sql, bool commit_sent) {
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

[[noreturn]] SERTX_DECL void connection::refuse(const char* sqlstate, const std::string& why) const {
    throw database_error(classify_sqlstate(sqlstate, context()), sqlstate, why);
}

SERTX_DECL void connection::refuse_unless_open() const {
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

SERTX_DECL bool connection::prepare_key_statements() {
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

SERTX_DECL void connection::prepare_schedule_effects() {
    if (effects_prepared_ || transaction_pooling() || PQtransactionStatus(native_) != PQTRANS_INTRANS) return;
    pg_result r(PQexec(native_, dialect::prepare_schedule_effects));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail(r.get(), dialect::prepare_schedule_effects);
    effects_prepared_ = true;
}

SERTX_DECL void connection::close_scheduled_effects() {
    if (effects_prepared_)
        with_commit_.append(dialect::end_scheduled_effects);
    else
        sertx::detail::effect_statements<connection>::close_effect_rows(with_commit_);
}

SERTX_DECL void connection::note_replication(const config& c, std::string_view standby_names,
                                             std::string_view sync_commit) {
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

SERTX_DECL const char* connection::begin_batch(const transaction_start& start, std::size_t before) {
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

SERTX_DECL void connection::check_isolation(const PGresult* shown) {
    const std::string level = PQntuples(shown) > 0 ? PQgetvalue(shown, 0, 0) : "";
    if (level != "serializable")
        throw isolation_error("sertx: PostgreSQL runs this transaction at " + level +
                              ", not serializable; something between sertx and the server (a pooler, a "
                              "session setting) changed it.");
}

SERTX_DECL void connection::check_begun(const batch_results& results) {
    if (isolation_answer_ != no_answer) check_isolation(results[isolation_answer_]);
    if (replication_answer_ == no_answer) return;
    const PGresult* settings = results[replication_answer_];
    note_replication(*config_, PQgetvalue(settings, 0, 0), PQgetvalue(settings, 0, 1));
    if (replication_refusal_.empty()) return;
    rollback();
    throw durability_error(replication_refusal_);
}

SERTX_DECL connection::batch_results connection::run_batch(const char* batch, bool commit_sent, bool after_commit) {
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

SERTX_DECL void connection::commit_batch(const char* batch) {
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

SERTX_DECL bool connection::ended_transaction(PGresult* r) {
    return std::strcmp(PQcmdStatus(r), "COMMIT") == 0 || std::strcmp(PQcmdStatus(r), "ROLLBACK") == 0;
}

SERTX_DECL void connection::forget_commit_extras() noexcept {
    with_commit_.clear();
    after_commit_.clear();
}

SERTX_DECL std::string connection::query_text(const char* sql) {
    pg_result r(PQexec(native_, sql));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) fail(r.get(), sql);
    return PQgetvalue(r.get(), 0, 0);
}

SERTX_DECL void connection::check_server(const config& c) {
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

}  // namespace detail

SERTX_DECL std::optional<bool> database::txid_committed(std::int64_t txid,
                                                        std::chrono::steady_clock::time_point deadline) {
    return ask_until(deadline, [&](detail::connection& c) -> std::optional<bool> {
        const std::string status = c.txid_status(txid);
        if (status == "committed") return true;
        if (status == "aborted") return false;
        return std::nullopt;  // in progress: the server has not finished it yet
    });
}

SERTX_DECL bool database::listen_for_effects(std::stop_token stop, const std::function<void()>& woken) {
    const detail::config& c = pool_->config();
    if (c.opts.pooler == pooler_mode::transaction) return false;
    detail::listen_for_effects(c.conninfo, c.password, std::move(stop), woken);
    return true;
}

SERTX_DECL database open(std::string conninfo, options opts) {
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

#if !defined(SERTX_HEADER_ONLY)
SERTX_SOCI_ADAPTER_TEMPLATES(template, sertx::postgresql::backend, sertx::postgresql::detail::connection,
                             sertx::postgresql::detail::config);
#endif

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The SQL of sertx's exactly-once tables on a SOCI session: the commit log
/// of idempotency keys (`sertx_commit_log`) and the effect journal
/// (`sertx_effect`): what each SOCI adapter's connection returns from
/// `journal()` (`sertx::journal_statements`, adapter.hpp). One text serves
/// both dialects; where they differ, the connection's `dialect` says. Keys, payloads and results are bound parameters, stored as
/// hex text, so that any bytes (NUL included) are valid on every backend and
/// readable in every tool; times are microseconds since 1970 (UTC), 0 for
/// "not yet".

#include <sertx/adapter.hpp>
#include <sertx/detail/hex.hpp>
#include <sertx/effect_record.hpp>
#include <sertx/failure.hpp>

#include <soci/soci.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sertx::detail {

/// The bytes of a column that `to_hex` wrote; a value that is not hex was
/// written by something other than sertx.
inline std::string column_bytes(std::string_view hex, const char* column, const char* table = "sertx_effect") {
    if (std::optional<std::string> bytes = from_hex(hex)) return std::move(*bytes);
    throw error(std::string("sertx: column ") + column + " of " + table +
                " holds a value that is not hex; the row was changed outside sertx.");
}

/// `'a', 'b', 'c'`: the names of a CHECK constraint's list.
template <std::size_t N>
std::string quoted_list(const std::string_view (&names)[N]) {
    std::string out;
    for (const std::string_view name : names) out.append(out.empty() ? "'" : ", '").append(name).append("'");
    return out;
}

inline std::int64_t unix_micros_now() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// `Connection` provides `session()`, `execute(const char*)` and a
/// `dialect` (its backend's, e.g. sertx::postgresql::dialect). The
/// statements run inside a transaction the caller opened (`transact`); see
/// `sertx::journal_statements` in adapter.hpp for what each one means.
template <class Connection>
class effect_statements {
public:
    explicit effect_statements(Connection& connection) noexcept : connection_(connection) {}

    /// Creates the tables when missing; the effect states and tags allowed by
    /// the CHECK constraints are the lists of effect_record.hpp.
    void install_exactly_once() {
        if constexpr (Connection::dialect::serialize_install != nullptr)
            self().execute(Connection::dialect::serialize_install);
        self().execute((
            "create table if not exists sertx_commit_log ("
            " key text primary key,"           // the idempotency key, hex
            " attempt text not null,"          // the attempt that committed it (resolves a lost COMMIT)
            " committed_at bigint not null,"   // for prune_commit_log
            " request text not null default '');"  // the request's fingerprint, hex; '' when none was given
            "create index if not exists sertx_commit_log_age on sertx_commit_log (committed_at);"
            "create table if not exists sertx_effect ("
            " key text primary key,"
            " operation text not null,"
            " effect text not null check (effect in (" + quoted_list(effect_tag_names) + ")),"
            " payload text not null,"
            " state text not null check (state in (" + quoted_list(effect_state_names) + ")),"
            " result text not null default '',"
            " error text not null default '',"
            " attempts integer not null default 0,"
            " dispatcher text not null default '',"
            " scheduled_at bigint not null,"
            " started_at bigint not null default 0,"
            " settled_at bigint not null default 0,"
            " resolved_by text not null default '',"
            " note text not null default '');"
            "create index if not exists sertx_effect_queue on sertx_effect (operation, state, scheduled_at)")
                           .c_str());
        // A commit log made before request fingerprints existed gains the column.
        int has_request = 0;
        if constexpr (Connection::dialect::commit_log_has_request != nullptr)
            self().session() << Connection::dialect::commit_log_has_request, ::soci::into(has_request);
        if (has_request == 0) self().execute(Connection::dialect::add_request_column);
    }

    // ---- the commit log ----

    std::optional<committed_key> key_committed(std::string_view key) {
        std::string hex = to_hex(key), attempt, request;
        ::soci::statement st = once("select attempt, request from sertx_commit_log where key = :k",
                                    ::soci::into(attempt), ::soci::into(request), ::soci::use(hex));
        if (!st.execute(true)) return std::nullopt;
        return committed_key{std::move(attempt), column_bytes(request, "request", "sertx_commit_log")};
    }

    void record_key(std::string_view key, std::string_view attempt, std::string_view request) {
        std::string hex = to_hex(key), id(attempt), fingerprint = to_hex(request);
        long long now = unix_micros_now();
        self().session()
            << "insert into sertx_commit_log (key, attempt, committed_at, request) values (:k, :a, :t, :r)",
            ::soci::use(hex), ::soci::use(id), ::soci::use(now), ::soci::use(fingerprint);
    }

    std::size_t prune_keys(std::int64_t committed_before) {
        long long before = committed_before;
        return changed(once("delete from sertx_commit_log where committed_at < :t", ::soci::use(before)));
    }

    // ---- the effect journal ----

    /// Settled effects (done or failed, by a dispatcher or by hand) settled
    /// before `settled_before`; never one that is pending, started or in doubt.
    std::size_t prune_effects(std::int64_t settled_before) {
        long long before = settled_before;
        return changed(once("delete from sertx_effect where state in ('done', 'failed') and settled_at > 0 and "
                            "settled_at < :t",
                            ::soci::use(before)));
    }

    bool schedule_effect(std::string_view key, std::string_view operation, std::string_view effect,
                         std::string_view payload) {
        std::string k = to_hex(key), o(operation), e(effect), p = to_hex(payload);
        long long now = unix_micros_now();
        return changed(once("insert into sertx_effect (key, operation, effect, payload, state, scheduled_at) "
                            "values (:k, :o, :e, :p, 'pending', :t) on conflict (key) do nothing",
                            ::soci::use(k), ::soci::use(o), ::soci::use(e), ::soci::use(p), ::soci::use(now))) == 1;
    }

    /// The oldest pending intent of `operation`, now started by `dispatcher`.
    /// Two dispatchers that pick the same row conflict (PostgreSQL 40001 on
    /// the update; SQLite lets one writer in at a time) and the loser's
    /// transaction is re-run by `transact`, picking another.
    std::optional<claimed_effect> claim_effect(std::string_view operation, std::string_view dispatcher) {
        std::string o(operation), d(dispatcher), key, payload;
        int attempts = 0;
        ::soci::statement pick = once(
            "select key, payload, attempts from sertx_effect where operation = :o and state = 'pending' "
            "order by scheduled_at, key limit 1",
            ::soci::into(key), ::soci::into(payload), ::soci::into(attempts), ::soci::use(o));
        if (!pick.execute(true)) return std::nullopt;
        long long now = unix_micros_now();
        if (changed(once("update sertx_effect set state = 'started', attempts = attempts + 1, "
                         "dispatcher = :d, started_at = :t where key = :k and state = 'pending'",
                         ::soci::use(d), ::soci::use(now), ::soci::use(key))) != 1)
            throw database_error(failure::serialization, "",
                                 "sertx: another dispatcher claimed the same intent first.");  // re-run: pick again
        return claimed_effect{column_bytes(key, "key"), column_bytes(payload, "payload"),
                              static_cast<unsigned>(attempts) + 1};
    }

    /// Records the outcome of the claim that raised `attempts` to its value:
    /// a row claimed again since (after recover) is not overwritten.
    bool settle_effect(std::string_view key, unsigned attempts, effect_state state, std::string_view result,
                       std::string_view why) {
        std::string k = to_hex(key), s(to_string(state)), r = to_hex(result), e(why);
        int a = static_cast<int>(attempts);
        long long now = unix_micros_now();
        return changed(once("update sertx_effect set state = :s, result = :r, error = :e, settled_at = :t "
                            "where key = :k and attempts = :a and state = 'started'",
                            ::soci::use(s), ::soci::use(r), ::soci::use(e), ::soci::use(now), ::soci::use(k),
                            ::soci::use(a))) == 1;
    }

    recover_report recover_effects(std::string_view dispatcher) {
        std::string d(dispatcher);
        std::string why = "sertx: dispatcher '" + d +
                          "' stopped after marking it started and before recording its outcome, so it may or may "
                          "not have happened; recover() put it in doubt.";
        recover_report report;
        report.requeued =
            changed(once("update sertx_effect set state = 'pending' where state = 'started' and "
                         "dispatcher = :d and effect <> 'at_most_once'",
                         ::soci::use(d)));
        report.in_doubt =
            changed(once("update sertx_effect set state = 'in_doubt', error = :e where state = "
                         "'started' and dispatcher = :d and effect = 'at_most_once'",
                         ::soci::use(why), ::soci::use(d)));
        return report;
    }

    std::vector<effect_record> effects_in(effect_state state, std::size_t limit) {
        std::string s(to_string(state));
        long long n = static_cast<long long>(limit);
        return select_effects("where state = :s order by scheduled_at, key limit :n", s, n);
    }

    std::optional<effect_record> find_effect(std::string_view key) {
        std::string k = to_hex(key);
        std::vector<effect_record> found = select_effects("where key = :k", k);
        if (found.empty()) return std::nullopt;
        return std::move(found.front());
    }

    bool resolve_effect(std::string_view key, effect_state state, std::string_view by, std::string_view note) {
        std::string k = to_hex(key), s(to_string(state)), b(by), n(note);
        long long now = unix_micros_now();
        return changed(once("update sertx_effect set state = :s, resolved_by = :b, note = :n, settled_at = :t "
                            "where key = :k and state = 'in_doubt'",
                            ::soci::use(s), ::soci::use(b), ::soci::use(n), ::soci::use(now), ::soci::use(k))) == 1;
    }

private:
    Connection& self() noexcept { return connection_; }

    /// A statement to run once: one round trip. SOCI's `prepare <<` makes a
    /// named server-side statement on PostgreSQL, which costs three (prepare,
    /// execute, DEALLOCATE) for a statement run once per transaction.
    template <class... Exchange>
    ::soci::statement once(const std::string& sql, Exchange&&... exchanges) {
        ::soci::session& session = self().session();
        ::soci::statement st(session);
        (st.exchange(std::forward<Exchange>(exchanges)), ...);
        st.alloc();
        // Through the session's query stream, as SOCI's own statements go, so
        // that a query transformation set on the session (testing::chaos)
        // sees it.
        session.get_query_stream().str("");
        session.get_query_stream() << sql;
        st.prepare(session.get_query(), ::soci::details::st_one_time_query);
        st.define_and_bind();
        return st;
    }

    /// Runs a statement that returns no rows; the rows it changed.
    static std::size_t changed(::soci::statement st) {
        st.execute(true);
        return static_cast<std::size_t>(st.get_affected_rows());
    }

    struct effect_row {
        std::string key, operation, effect, payload, state, result, error, dispatcher, resolved_by, note;
        int attempts = 0;
        long long scheduled_at = 0, started_at = 0, settled_at = 0;

        static std::optional<std::chrono::system_clock::time_point> when(long long micros) {
            if (micros == 0) return std::nullopt;
            return std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(micros)));
        }
        effect_record record() const {
            effect_record r;
            r.key = column_bytes(key, "key");
            r.operation = operation;
            r.effect = effect;
            r.payload = column_bytes(payload, "payload");
            r.state = parse_state(state);
            r.result = column_bytes(result, "result");
            r.error = error;
            r.attempts = static_cast<unsigned>(attempts);
            r.dispatcher = dispatcher;
            r.scheduled_at = when(scheduled_at);
            r.started_at = when(started_at);
            r.settled_at = when(settled_at);
            r.resolved_by = resolved_by;
            r.note = note;
            return r;
        }
        static effect_state parse_state(std::string_view s) {
            if (const std::optional<effect_state> state = parse_effect_state(s)) return *state;
            throw sertx::error("sertx: sertx_effect holds an unknown state '" + std::string(s) +
                               "'; the row was changed outside sertx.");
        }
    };

    template <class... Params>
    std::vector<effect_record> select_effects(const std::string& where, Params&... params) {
        effect_row row;
        ::soci::statement st = once(
            "select key, operation, effect, payload, state, result, error, attempts, dispatcher, scheduled_at, "
            "started_at, settled_at, resolved_by, note from sertx_effect " +
                where,
            ::soci::into(row.key), ::soci::into(row.operation), ::soci::into(row.effect), ::soci::into(row.payload),
            ::soci::into(row.state), ::soci::into(row.result), ::soci::into(row.error), ::soci::into(row.attempts),
            ::soci::into(row.dispatcher), ::soci::into(row.scheduled_at), ::soci::into(row.started_at),
            ::soci::into(row.settled_at), ::soci::into(row.resolved_by), ::soci::into(row.note),
            ::soci::use(params)...);
        std::vector<effect_record> out;
        if (st.execute(true)) {
            do out.push_back(row.record());
            while (st.fetch());
        }
        return out;
    }

    Connection& connection_;
};

}  // namespace sertx::detail

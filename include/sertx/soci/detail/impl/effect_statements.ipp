// SPDX-License-Identifier: BSL-1.0
#pragma once
// The out-of-class members of soci/detail/effect_statements.hpp: included by
// that header when header-only, else by the adapters' .ipp files
// (detail/config.hpp).

#include <sertx/soci/detail/effect_statements.hpp>

#include <sertx/detail/hex.hpp>
#include <sertx/failure.hpp>

#include <algorithm>
#include <chrono>
#include <tuple>
#include <utility>

namespace sertx::detail {

SERTX_DECL std::string column_bytes(std::string_view hex, const char* column, const char* table) {
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

SERTX_DECL std::int64_t unix_micros_now() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

template <class Connection>
struct effect_statements<Connection>::effect_row {
    std::string key, operation, effect, payload, state, result, error, dispatcher, resolved_by, note;
    int attempts = 0, retries = 0;
    long long scheduled_at = 0, started_at = 0, settled_at = 0, lease_until = 0, not_before = 0, call_began = -1;

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
        r.retries = static_cast<unsigned>(retries);
        r.not_before = when(not_before);
        r.lease_until = when(lease_until);
        r.call_began = call_began > 0 ? when(call_began) : std::nullopt;
        return r;
    }
    static effect_state parse_state(std::string_view s) {
        if (const std::optional<effect_state> state = parse_effect_state(s)) return *state;
        throw sertx::error("sertx: sertx_effect holds an unknown state '" + std::string(s) +
                           "'; the row was changed outside sertx.");
    }
};

template <class Connection>
void effect_statements<Connection>::install_exactly_once() {
    if constexpr (Connection::dialect::serialize_install != nullptr)
        self().execute(Connection::dialect::serialize_install);
    self().execute((
        "create table if not exists sertx_commit_log ("
        " key text primary key,"           // the idempotency key, hex
        " attempt text not null,"          // the attempt that committed it (resolves a lost COMMIT)
        " committed_at bigint not null,"   // for prune_commit_log
        " request text not null default '');"  // the request's fingerprint, hex; '' when none was given
        + std::string(Connection::dialect::create_commit_log_age) + ";" + effect_table("sertx_effect"))
                       .c_str());
    upgrade_effect_table();
    upgrade_commit_log_age();
    // A commit log made before request fingerprints existed gains the column.
    int has_request = 0;
    if constexpr (Connection::dialect::commit_log_has_request != nullptr)
        self().session() << Connection::dialect::commit_log_has_request, ::soci::into(has_request);
    if (has_request == 0) self().execute(Connection::dialect::add_request_column);
}

template <class Connection>
std::string effect_statements<Connection>::effect_table(const std::string& name) {
    return "create table if not exists " + name + " ("
           " key text primary key,"
           " operation text not null,"
           " effect text not null check (effect in (" + quoted_list(effect_tag_names) + ")),"
           " payload text not null,"
           " state text not null check (state in (" + quoted_list(effect_state_names) + ")),"
           " result text not null default '',"
           " error text not null default '',"
           " attempts integer not null default 0,"  // claims so far: the fence of the latest one
           " dispatcher text not null default '',"
           " scheduled_at bigint not null,"
           " started_at bigint not null default 0,"
           " settled_at bigint not null default 0,"
           " resolved_by text not null default '',"
           " note text not null default '',"
           " lease_until bigint not null default 0,"  // started: the claim's lease (0: claimed without one)
           " not_before bigint not null default 0,"   // pending: not claimed before this time
           " retries integer not null default 0,"     // calls that ended retry_later
           // The claim's call: 0 not begun (set by each claim), else when it
           // began (mark_call_began); -1 not known (see release_effect).
           " call_began bigint not null default -1)";
}

template <class Connection>
void effect_statements<Connection>::upgrade_effect_table() {
    int has_leases = 0;
    self().session() << Connection::dialect::effect_has_leases, ::soci::into(has_leases);
    if (has_leases == 0) {
        static constexpr const char* old_columns =
            "key, operation, effect, payload, state, result, error, attempts, dispatcher, scheduled_at, "
            "started_at, settled_at, resolved_by, note";
        if constexpr (Connection::dialect::rebuild_to_widen_check) {
            self().execute((effect_table("sertx_effect_upgrade") + ";insert into sertx_effect_upgrade (" +
                            old_columns + ") select " + old_columns +
                            " from sertx_effect;drop table sertx_effect;"
                            "alter table sertx_effect_upgrade rename to sertx_effect")
                               .c_str());
        } else {
            self().execute((std::string("alter table sertx_effect add column if not exists lease_until bigint "
                                        "not null default 0, add column if not exists not_before bigint not "
                                        "null default 0, add column if not exists retries integer not null "
                                        "default 0, add column if not exists call_began bigint not null "
                                        "default -1;") +
                            "alter table sertx_effect drop constraint if exists sertx_effect_state_check;"
                            "alter table sertx_effect add constraint sertx_effect_state_check check (state in (" +
                            quoted_list(effect_state_names) + "))")
                               .c_str());
        }
    } else {
        // Every row gets -1, "not known": a claim still held by the
        // older sertx may have begun its call, so its rescue must not
        // take it as uncalled.
        int has_mark = 0;
        self().session() << Connection::dialect::effect_has_call_mark, ::soci::into(has_mark);
        if (has_mark == 0) self().execute(Connection::dialect::add_call_mark_column);
    }
    self().execute("create index if not exists sertx_effect_due on sertx_effect (operation, state, not_before)");
    // The index of sertx before issue 15 on (operation, state,
    // scheduled_at): every query of the journal that filters on operation
    // and state is served by sertx_effect_due (the claim's order starts
    // with not_before), so it only cost each intent's insert and each
    // change of state one more b-tree entry.
    self().execute("drop index if exists sertx_effect_queue");
}

template <class Connection>
void effect_statements<Connection>::upgrade_commit_log_age() {
    if constexpr (Connection::dialect::commit_log_age_is_btree != nullptr) {
        int old_kind = 0;
        self().session() << Connection::dialect::commit_log_age_is_btree, ::soci::into(old_kind);
        if (old_kind != 0) {
            self().execute(Connection::dialect::drop_commit_log_age);
            self().execute(Connection::dialect::create_commit_log_age);
        }
    }
}

template <class Connection>
std::optional<committed_key> effect_statements<Connection>::key_committed(std::string_view key) {
    std::string hex = to_hex(key), attempt, request;
    ::soci::statement st = once("select attempt, request from sertx_commit_log where key = :k",
                                ::soci::into(attempt), ::soci::into(request), ::soci::use(hex));
    if (!st.execute(true)) return std::nullopt;
    return committed_key{std::move(attempt), column_bytes(request, "request", "sertx_commit_log")};
}

template <class Connection>
void effect_statements<Connection>::record_key(std::string_view key, std::string_view attempt,
                                               std::string_view request) {
    std::string hex = to_hex(key), id(attempt), fingerprint = to_hex(request);
    long long now = unix_micros_now();
    self().session()
        << "insert into sertx_commit_log (key, attempt, committed_at, request) values (:k, :a, :t, :r)",
        ::soci::use(hex), ::soci::use(id), ::soci::use(now), ::soci::use(fingerprint);
}

template <class Connection>
std::size_t effect_statements<Connection>::prune_keys(std::int64_t committed_before) {
    long long before = committed_before;
    return changed(once("delete from sertx_commit_log where committed_at < :t", ::soci::use(before)));
}

template <class Connection>
std::size_t effect_statements<Connection>::prune_effects(std::int64_t settled_before) {
    long long before = settled_before;
    return changed(once("delete from sertx_effect where state in ('done', 'failed') and settled_at > 0 and "
                        "settled_at < :t",
                        ::soci::use(before)));
}

template <class Connection>
bool effect_statements<Connection>::schedule_effect(std::string_view key, std::string_view operation,
                                                    std::string_view effect, std::string_view payload,
                                                    std::int64_t not_before) {
    std::string k = to_hex(key), o(operation), e(effect), p = to_hex(payload);
    long long now = unix_micros_now();
    long long due = not_before > 0 ? not_before : now;
    // The wake-up of other processes' dispatchers goes after COMMIT
    // (PostgreSQL: the connection's notify_after_commit).
    if constexpr (Connection::dialect::notify_on_schedule) self().notify_after_commit(operation);
    if constexpr (keeps_schedule_statement)
        return schedule_kept(std::move(k), std::move(o), std::move(e), std::move(p), now, due);
    return changed(once(schedule_sql, ::soci::use(k), ::soci::use(o), ::soci::use(e), ::soci::use(p),
                        ::soci::use(now), ::soci::use(due))) == 1;
}

template <class Connection>
bool effect_statements<Connection>::schedule_kept(std::string key, std::string operation, std::string effect,
                                                  std::string payload, long long now, long long due) {
    auto& kept = self().objects().template get<schedule_statement>(self().session());
    kept.key = std::move(key);
    kept.operation = std::move(operation);
    kept.effect = std::move(effect);
    kept.payload = std::move(payload);
    kept.now = now;
    kept.due = due;
    kept.statement.execute(true);
    return kept.statement.get_affected_rows() == 1;
}

template <class Connection>
std::vector<claimed_effect> effect_statements<Connection>::claim_effects(
    std::string_view operation, std::string_view dispatcher, std::int64_t lease, std::size_t limit) {
    std::string o(operation), d(dispatcher);
    long long now = unix_micros_now(), until = now + lease, n = static_cast<long long>(limit);
    // Vectors of at least two rows: into vectors of one, SOCI 4.0's
    // SQLite backend fetches nothing. LIMIT keeps to `limit`.
    const std::size_t rows = std::max<std::size_t>(limit, 2);
    std::vector<std::string> keys(rows), payloads(rows);
    std::vector<int> attempts(rows), retries(rows);
    std::vector<claimed_effect> claimed;
    if constexpr (Connection::dialect::claim_effects != nullptr) {
        std::vector<long long> due(rows), scheduled(rows);
        if (!once(Connection::dialect::claim_effects, ::soci::into(keys), ::soci::into(payloads),
                  ::soci::into(attempts), ::soci::into(retries), ::soci::into(due), ::soci::into(scheduled),
                  ::soci::use(d), ::soci::use(now), ::soci::use(until), ::soci::use(o), ::soci::use(now),
                  ::soci::use(n))
                 .execute(true))
            return claimed;
        // RETURNING's order is the update's, not the pick's.
        std::vector<std::size_t> order(keys.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return std::tie(due[a], scheduled[a], keys[a]) < std::tie(due[b], scheduled[b], keys[b]);
        });
        for (const std::size_t i : order)
            claimed.push_back(claimed_effect{column_bytes(keys[i], "key"), column_bytes(payloads[i], "payload"),
                                             static_cast<unsigned>(attempts[i]), static_cast<unsigned>(retries[i])});
        return claimed;
    } else {
        if (!once("select key, payload, attempts, retries from sertx_effect where operation = :o and state = "
                  "'pending' and not_before <= :t order by not_before, scheduled_at, key limit :n",
                  ::soci::into(keys), ::soci::into(payloads), ::soci::into(attempts), ::soci::into(retries),
                  ::soci::use(o), ::soci::use(now), ::soci::use(n))
                 .execute(true))
            return claimed;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            // call_began = 0: this claim vouches that its call has not
            // begun (mark_call_began); a claim by a sertx that does not
            // mark leaves the column as it found it, never 0 (see
            // release_effect).
            if (changed(once("update sertx_effect set state = 'started', attempts = attempts + 1, "
                             "dispatcher = :d, started_at = :t, lease_until = :l, call_began = 0 where key = :k "
                             "and state = 'pending'",
                             ::soci::use(d), ::soci::use(now), ::soci::use(until), ::soci::use(keys[i]))) != 1)
                throw database_error(failure::serialization, "",
                                     "sertx: another dispatcher claimed the same intent first.");  // re-run
            claimed.push_back(claimed_effect{column_bytes(keys[i], "key"), column_bytes(payloads[i], "payload"),
                                             static_cast<unsigned>(attempts[i]) + 1,
                                             static_cast<unsigned>(retries[i])});
        }
        return claimed;
    }
}

template <class Connection>
void effect_statements<Connection>::append_effect_row(std::string& batch, std::string_view key,
                                                      std::string_view operation, std::string_view effect,
                                                      std::string_view payload, std::int64_t not_before) {
    const long long now = unix_micros_now();
    batch.append(batch.empty() ? "insert into sertx_effect (key, operation, effect, payload, state, "
                                 "scheduled_at, not_before) values ('"
                               : ", ('");
    append_hex(batch, key);
    batch.append("', convert_from(decode('");
    append_hex(batch, operation);
    batch.append("', 'hex'), 'UTF8'), convert_from(decode('");
    append_hex(batch, effect);
    batch.append("', 'hex'), 'UTF8'), '");
    append_hex(batch, payload);
    batch.append("', 'pending', ");
    append_number(batch, now);
    batch.append(", ");
    append_number(batch, not_before > 0 ? not_before : now);
    batch.push_back(')');
}

template <class Connection>
bool effect_statements<Connection>::renew_effect(std::string_view key, unsigned attempts, std::int64_t lease) {
    std::string k = to_hex(key);
    int a = static_cast<int>(attempts);
    long long until = unix_micros_now() + lease;
    return changed(once("update sertx_effect set lease_until = :l where key = :k and attempts = :a and "
                        "state = 'started'",
                        ::soci::use(until), ::soci::use(k), ::soci::use(a))) == 1;
}

template <class Connection>
bool effect_statements<Connection>::mark_call_began(std::string_view key, unsigned attempts, std::int64_t lease) {
    std::string k = to_hex(key);
    int a = static_cast<int>(attempts);
    long long now = unix_micros_now(), until = now + lease;
    return changed(once("update sertx_effect set call_began = :t, lease_until = :l where key = :k and "
                        "attempts = :a and state = 'started'",
                        ::soci::use(now), ::soci::use(until), ::soci::use(k), ::soci::use(a))) == 1;
}

template <class Connection>
std::int64_t effect_statements<Connection>::next_effect_due(std::string_view operation) {
    std::string o(operation);
    long long due = 0;
    once("select coalesce(min(case when state = 'pending' then not_before else lease_until end), 0) from "
         "sertx_effect where operation = :o and (state = 'pending' or (state = 'started' and lease_until > 0))",
         ::soci::into(due), ::soci::use(o))
        .execute(true);
    return due;
}

template <class Connection>
bool effect_statements<Connection>::settle_effect(std::string_view key, unsigned attempts, effect_state state,
                                                  std::string_view result, std::string_view why) {
    std::string k = to_hex(key), s(to_string(state)), r = to_hex(result), e(why);
    int a = static_cast<int>(attempts);
    long long now = unix_micros_now();
    return changed(once("update sertx_effect set state = :s, result = :r, error = :e, settled_at = :t, "
                        "lease_until = 0 where key = :k and attempts = :a and state = 'started'",
                        ::soci::use(s), ::soci::use(r), ::soci::use(e), ::soci::use(now), ::soci::use(k),
                        ::soci::use(a))) == 1;
}

template <class Connection>
bool effect_statements<Connection>::retry_effect(std::string_view key, unsigned attempts, effect_state state,
                                                 std::int64_t not_before, std::string_view why) {
    std::string k = to_hex(key), s(to_string(state)), e(why);
    int a = static_cast<int>(attempts);
    long long due = not_before, now = unix_micros_now();
    long long settled = state == effect_state::dead ? now : 0;
    return changed(once("update sertx_effect set state = :s, retries = retries + 1, not_before = :n, "
                        "error = :e, settled_at = :t, lease_until = 0 where key = :k and attempts = :a and "
                        "state = 'started'",
                        ::soci::use(s), ::soci::use(due), ::soci::use(e), ::soci::use(settled), ::soci::use(k),
                        ::soci::use(a))) == 1;
}

template <class Connection>
bool effect_statements<Connection>::release_effect(std::string_view key, unsigned attempts) {
    std::string k = to_hex(key);
    int a = static_cast<int>(attempts);
    return changed(once("update sertx_effect set state = 'pending', lease_until = 0, call_began = -1 where "
                        "key = :k and attempts = :a and state = 'started'",
                        ::soci::use(k), ::soci::use(a))) == 1;
}

template <class Connection>
std::vector<expired_claim> effect_statements<Connection>::expired_effects(
    std::string_view operation, std::string_view dispatcher, std::int64_t before, std::size_t limit) {
    std::string o(operation), d(dispatcher), key, payload, effect, holder;
    long long t = before, n = static_cast<long long>(limit), until = 0, began = -1;
    int attempts = 0;
    std::vector<expired_claim> out;
    auto collect = [&](::soci::statement st) {
        if (!st.execute(true)) return;
        do
            out.push_back({column_bytes(key, "key"), column_bytes(payload, "payload"), effect, holder,
                           static_cast<unsigned>(attempts), until, began});
        while (st.fetch());
    };
    const std::string sql = std::string("select key, payload, effect, dispatcher, attempts, lease_until, "
                                        "call_began from sertx_effect where operation = :o and state = 'started' and ") +
                            (d.empty() ? "lease_until > 0 and lease_until < :t" : "dispatcher = :d") +
                            " order by lease_until, key limit :n";
    if (d.empty())
        collect(once(sql, ::soci::into(key), ::soci::into(payload), ::soci::into(effect), ::soci::into(holder),
                     ::soci::into(attempts), ::soci::into(until), ::soci::into(began), ::soci::use(o),
                     ::soci::use(t),
                     ::soci::use(n)));
    else
        collect(once(sql, ::soci::into(key), ::soci::into(payload), ::soci::into(effect), ::soci::into(holder),
                     ::soci::into(attempts), ::soci::into(until), ::soci::into(began), ::soci::use(o),
                     ::soci::use(d),
                     ::soci::use(n)));
    return out;
}

template <class Connection>
bool effect_statements<Connection>::rescue_effect(std::string_view key, unsigned attempts, std::int64_t call_began,
                                                  effect_state state, std::string_view result, std::string_view why,
                                                  std::string_view note, std::string_view by) {
    std::string k = to_hex(key), s(to_string(state)), r = to_hex(result), e(why), n(note), b(by);
    int a = static_cast<int>(attempts);
    long long now = unix_micros_now(), began = call_began;
    long long settled = state == effect_state::pending ? 0 : now;
    return changed(once("update sertx_effect set state = :s, result = :r, error = :e, note = :n, "
                        "resolved_by = :b, settled_at = :t, lease_until = 0, call_began = case when call_began "
                        "= 0 then -1 else call_began end where key = :k and attempts = :a and state = 'started' and "
                        "call_began = :c",
                        ::soci::use(s), ::soci::use(r), ::soci::use(e), ::soci::use(n), ::soci::use(b),
                        ::soci::use(settled), ::soci::use(k), ::soci::use(a), ::soci::use(began))) == 1;
}

template <class Connection>
bool effect_statements<Connection>::requeue_effect(std::string_view key, std::string_view note, std::string_view by) {
    std::string k = to_hex(key), n(note), b(by);
    long long now = unix_micros_now();
    return changed(once("update sertx_effect set state = 'pending', retries = 0, not_before = :t, note = :n, "
                        "resolved_by = :b, settled_at = 0 where key = :k and state in ('dead', 'failed')",
                        ::soci::use(now), ::soci::use(n), ::soci::use(b), ::soci::use(k))) == 1;
}

template <class Connection>
journal_stats effect_statements<Connection>::effect_stats() {
    long long pending = 0, oldest = 0, started = 0, in_doubt = 0, dead = 0;
    once("select coalesce(sum(case when state = 'pending' then 1 else 0 end), 0), "
         "coalesce(min(case when state = 'pending' then (case when not_before > scheduled_at then not_before "
         "else scheduled_at end) end), 0), "
         "coalesce(sum(case when state = 'started' then 1 else 0 end), 0), "
         "coalesce(sum(case when state = 'in_doubt' then 1 else 0 end), 0), "
         "coalesce(sum(case when state = 'dead' then 1 else 0 end), 0) "
         "from sertx_effect where state in ('pending', 'started', 'in_doubt', 'dead')",
         ::soci::into(pending), ::soci::into(oldest), ::soci::into(started), ::soci::into(in_doubt),
         ::soci::into(dead))
        .execute(true);
    journal_stats out;
    out.pending = static_cast<std::uint64_t>(pending);
    out.started = static_cast<std::uint64_t>(started);
    out.in_doubt = static_cast<std::uint64_t>(in_doubt);
    out.dead = static_cast<std::uint64_t>(dead);
    const long long age = oldest == 0 ? 0 : unix_micros_now() - oldest;
    out.oldest_pending_age = std::chrono::microseconds(age > 0 ? age : 0);
    return out;
}

template <class Connection>
recover_report effect_statements<Connection>::recover_effects(std::string_view dispatcher) {
    std::string d(dispatcher);
    std::string why = "sertx: dispatcher '" + d +
                      "' stopped after marking it started and before recording its outcome, so it may or may "
                      "not have happened; recover() put it in doubt.";
    recover_report report;
    report.requeued =
        changed(once("update sertx_effect set state = 'pending', lease_until = 0, call_began = -1 where state "
                     "= 'started' and dispatcher = :d and effect <> 'at_most_once'",
                     ::soci::use(d)));
    report.in_doubt =
        changed(once("update sertx_effect set state = 'in_doubt', error = :e, lease_until = 0 where state = "
                     "'started' and dispatcher = :d and effect = 'at_most_once'",
                     ::soci::use(why), ::soci::use(d)));
    return report;
}

template <class Connection>
std::vector<effect_record> effect_statements<Connection>::effects_in(effect_state state, std::size_t limit) {
    std::string s(to_string(state));
    long long n = static_cast<long long>(limit);
    return select_effects("where state = :s order by scheduled_at, key limit :n", s, n);
}

template <class Connection>
std::optional<effect_record> effect_statements<Connection>::find_effect(std::string_view key) {
    std::string k = to_hex(key);
    std::vector<effect_record> found = select_effects("where key = :k", k);
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
}

template <class Connection>
bool effect_statements<Connection>::resolve_effect(std::string_view key, effect_state state, std::string_view by,
                                                   std::string_view note) {
    std::string k = to_hex(key), s(to_string(state)), b(by), n(note);
    long long now = unix_micros_now();
    return changed(once("update sertx_effect set state = :s, resolved_by = :b, note = :n, settled_at = :t "
                        "where key = :k and state = 'in_doubt'",
                        ::soci::use(s), ::soci::use(b), ::soci::use(n), ::soci::use(now), ::soci::use(k))) == 1;
}

template <class Connection>
template <class... Exchange>
::soci::statement effect_statements<Connection>::once(const std::string& sql, Exchange&&... exchanges) {
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

template <class Connection>
std::size_t effect_statements<Connection>::changed(::soci::statement st) {
    st.execute(true);
    return static_cast<std::size_t>(st.get_affected_rows());
}

template <class Connection>
template <class... Params>
std::vector<effect_record> effect_statements<Connection>::select_effects(const std::string& where, Params&... params) {
    effect_row row;
    ::soci::statement st = once(
        "select key, operation, effect, payload, state, result, error, attempts, dispatcher, scheduled_at, "
        "started_at, settled_at, resolved_by, note, retries, not_before, lease_until, call_began from "
        "sertx_effect " +
            where,
        ::soci::into(row.key), ::soci::into(row.operation), ::soci::into(row.effect), ::soci::into(row.payload),
        ::soci::into(row.state), ::soci::into(row.result), ::soci::into(row.error), ::soci::into(row.attempts),
        ::soci::into(row.dispatcher), ::soci::into(row.scheduled_at), ::soci::into(row.started_at),
        ::soci::into(row.settled_at), ::soci::into(row.resolved_by), ::soci::into(row.note),
        ::soci::into(row.retries), ::soci::into(row.not_before), ::soci::into(row.lease_until),
        ::soci::into(row.call_began), ::soci::use(params)...);
    std::vector<effect_record> out;
    if (st.execute(true)) {
        do out.push_back(row.record());
        while (st.fetch());
    }
    return out;
}

}  // namespace sertx::detail

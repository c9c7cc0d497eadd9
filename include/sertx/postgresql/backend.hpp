// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// PostgreSQL's facts, whatever the client library: its backend tag and
/// traits, the one table of its failures (SQLSTATE onto `sertx::failure`,
/// DESIGN §5) and the SQL that sertx writes differently for it. Free of libpq
/// and SOCI, so that any PostgreSQL adapter (sertx::postgresql on SOCI, a
/// libpq-only one) shares them and they are tested without a server.

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/detail/hex.hpp>
#include <sertx/failure.hpp>
#include <sertx/sql/split.hpp>

#include <boost/hana/bool.hpp>
#include <boost/hana/map.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/type.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

/// What the connection knew when a statement failed, beside its SQLSTATE.
struct failure_context {
    /// The server connection was still up after the failure.
    bool connected = true;
    /// The failed statement was COMMIT: a connection lost then leaves the
    /// outcome unknown.
    bool commit_sent = false;
    /// The transaction runs with a lock_timeout and began less than the
    /// session's statement_timeout ago, so a cancel (57014) cannot be the
    /// statement timeout's.
    bool lock_timeout_may_cancel = false;
    /// The transaction was begun read-write on a session that found a
    /// writable primary when it opened: a 25006 (read_only_sql_transaction)
    /// then says the server became read-only since (a demoted primary still
    /// accepting connections), not that the body wrote in a read-only
    /// transaction.
    bool writable_when_opened = false;
    /// The failure is a unique violation of sertx_commit_log's key: its
    /// lookup runs before the transaction's snapshot (`dialect::append_find_key`),
    /// so an attempt that committed the key after the lookup meets it here.
    /// A conflict like 40001: the re-run finds the key at its start.
    bool key_taken = false;
};

/// The one classification table of PostgreSQL (DESIGN §5): the SQLSTATE of a
/// failed statement (or of a refusal of the adapter's own, such as 25006 for
/// a write on a standby) and the connection's state, onto `sertx::failure`.
constexpr failure classify_sqlstate(std::string_view sqlstate, failure_context context = {}) noexcept {
    if (!context.connected) return context.commit_sent ? failure::commit_unknown : failure::connection_lost;
    if (sqlstate == "40001") return failure::serialization;  // serialization_failure
    if (sqlstate == "23505" && context.key_taken) return failure::serialization;  // unique_violation
    if (sqlstate == "40P01") return failure::deadlock;       // deadlock_detected
    if (sqlstate == "55P03") return failure::busy;           // lock_not_available (lock_timeout)
    // A lock timeout that fires as the lock is granted, just before a second
    // wait in the same statement (an UPDATE waiting for a tuple, then for its
    // writer), loses its reason: the second wait clears it, and the server
    // reports a cancel (57014, "due to user request"); seen under contention
    // (docs/benchmarks.md). Retried like 55P03 when it cannot be the
    // statement_timeout's (also 57014).
    if (sqlstate == "57014" && context.lock_timeout_may_cancel) return failure::busy;
    if (sqlstate == "40003") return failure::commit_unknown;  // statement_completion_unknown
    // A server that turned read-only under a writable session: nothing of
    // the attempt committed, and a fresh session (target_session_attrs=
    // read-write) finds the new primary, so it is retried as a lost
    // connection; the session is discarded.
    if (sqlstate == "25006" && context.writable_when_opened) return failure::connection_lost;
    if (sqlstate.size() == 5 && sqlstate.substr(0, 2) == "08") return failure::connection_lost;
    // admin_shutdown, crash_shutdown, cannot_connect_now: the session is gone
    if (sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") return failure::connection_lost;
    return failure::permanent;  // 23xxx, 42xxx, 22xxx, 25xxx, ...: the body decides
}

/// PostgreSQL's own SQLSTATE for a failure (the chaos injector's, so that
/// observers and logs read as for a real one).
inline constexpr std::string_view sqlstate_of(failure f) noexcept {
    switch (f) {
        case failure::serialization: return "40001";
        case failure::deadlock: return "40P01";
        case failure::busy: return "55P03";
        case failure::permanent: return "XX000";
        case failure::connection_lost:
        case failure::commit_unknown: break;  // both are a lost connection to the client
    }
    return "08006";
}

/// The SQL that sertx writes for PostgreSQL where it differs from SQLite's.
struct dialect {
    /// What says whether a commit waits for a synchronous standby
    /// (require_synchronous_standby): the standbys named, and how long a
    /// commit waits.
    static constexpr const char* replication_settings =
        "select current_setting('synchronous_standby_names'), current_setting('synchronous_commit')";
    /// BEGIN by `access_mode`: each transaction names SERIALIZABLE itself, so
    /// that a server default of READ COMMITTED cannot weaken it.
    static constexpr const char* begin[] = {"BEGIN ISOLATION LEVEL SERIALIZABLE",
                                            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
                                            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"};
    /// Two concurrent CREATE TABLE IF NOT EXISTS can both miss the table and
    /// one then fails on the catalog's unique index: creators of sertx's
    /// tables queue on an advisory lock first (the keys spell "sertx_eo" and
    /// "sertx_mg").
    static constexpr const char* serialize_install = "select pg_advisory_xact_lock(8315178131570779503)";
    static constexpr const char* serialize_migration_table = "select pg_advisory_xact_lock(8315178131570781543)";
    /// A catalog lookup, so it sees the latest committed table even inside an
    /// older snapshot.
    /// A commit log made before request fingerprints gains the column; the
    /// check spares install() ALTER TABLE's lock when it has it, and IF NOT
    /// EXISTS covers a concurrent installer, whose snapshot may not show
    /// another's new table.
    static constexpr const char* commit_log_has_request =
        "select count(*) from information_schema.columns where table_schema = current_schema() and "
        "table_name = 'sertx_commit_log' and column_name = 'request'";
    static constexpr const char* add_request_column =
        "alter table sertx_commit_log add column if not exists request text not null default ''";
    /// The commit log's age index, which prune_commit_log's range delete
    /// reads: BRIN, since keys are written in committed_at order, so block
    /// range summaries find old keys while an insert costs no btree descent
    /// nor page splits (10-40 µs of server time per keyed transaction,
    /// measured with pgbench scripts; issue 15).
    static constexpr const char* create_commit_log_age =
        "create index if not exists sertx_commit_log_age on sertx_commit_log using brin (committed_at)";
    /// A commit log installed before that has a btree index of that name,
    /// dropped and made again in the install's transaction: its DROP INDEX locks the table
    /// until install commits, so no keyed transaction runs without an index
    /// or sees half of it. A concurrent installer queued behind the advisory
    /// lock may have read the catalog before the other committed, and then
    /// replaces the new BRIN index by another: the same end, once more.
    static constexpr const char* commit_log_age_is_btree =
        "select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam "
        "where i.indrelid = to_regclass('sertx_commit_log') and c.relname = 'sertx_commit_log_age' and "
        "a.amname = 'btree'";
    static constexpr const char* drop_commit_log_age = "drop index if exists sertx_commit_log_age";
    /// A journal made before leases is altered in place: the columns added,
    /// the state CHECK (named by PostgreSQL's default,
    /// `sertx_effect_state_check`) dropped and made again with `dead`.
    static constexpr const char* effect_has_leases =
        "select count(*) from information_schema.columns where table_schema = current_schema() and "
        "table_name = 'sertx_effect' and column_name = 'lease_until'";
    static constexpr bool rebuild_to_widen_check = false;
    /// A journal made with leases but before the call-began mark gains its
    /// column (every existing row "not known": -1).
    static constexpr const char* effect_has_call_mark =
        "select count(*) from information_schema.columns where table_schema = current_schema() and "
        "table_name = 'sertx_effect' and column_name = 'call_began'";
    static constexpr const char* add_call_mark_column =
        "alter table sertx_effect add column if not exists call_began bigint not null default -1";
    /// A dispatcher's claim of up to :n due intents in one statement. SKIP
    /// LOCKED lets dispatchers that claim at once take different rows; the
    /// transaction stays SERIALIZABLE, so a row changed after its snapshot
    /// still fails it (40001) rather than be claimed twice. RETURNING gives
    /// the claims' new attempts, their fences.
    static constexpr const char* claim_effects =
        "update sertx_effect set state = 'started', attempts = sertx_effect.attempts + 1, dispatcher = :d, "
        "started_at = :t, lease_until = :l, call_began = 0 from (select key from sertx_effect where operation = :o "
        "and state = 'pending' and not_before <= :t2 order by not_before, scheduled_at, key limit :n for update skip "
        "locked) picked where sertx_effect.key = picked.key returning sertx_effect.key, sertx_effect.payload, "
        "sertx_effect.attempts, sertx_effect.retries, sertx_effect.not_before, sertx_effect.scheduled_at";
    /// A transaction that schedules an intent sends NOTIFY on channel
    /// sertx_effect (payload: the operation's name) right after its COMMIT,
    /// for the listeners of soci/detail/postgresql/effect_listener.hpp
    /// (the connection's `notify_after_commit`).
    static constexpr bool notify_on_schedule = true;
    static constexpr const char* migration_table_exists =
        "select case when to_regclass('sertx_schema') is null then 0 else 1 end";
    /// The first statement of every migration transaction. LOCK TABLE is one
    /// of the few statements that take no snapshot, so the transaction's
    /// snapshot is taken after the wait and shows what the other migrator
    /// committed; `SELECT pg_advisory_xact_lock(...)` here would take it before
    /// the wait, and the loser would apply the winner's migration again.
    /// EXCLUSIVE lets status readers (ACCESS SHARE) through.
    static constexpr const char* lock_migration_table = "LOCK TABLE sertx_schema IN EXCLUSIVE MODE";
    /// Scripts split as psql splits them.
    static constexpr sertx::detail::sql_dialect split_as = sertx::detail::sql_dialect::postgresql;

    /// The statements an idempotency key adds to BEGIN's and COMMIT's
    /// batches, so that it costs no round trip of its own. Everything of the
    /// caller's (key, request) travels as hex digits, and the attempt id must
    /// be hex already: the only characters that reach the SQL text between
    /// the quotes are [0-9a-f], which can neither end the literal nor escape
    /// anything, so nothing is spliced into it as itself
    /// (tests/fuzz/key_sql_fuzz.cpp checks it). The `append_` forms write
    /// into a buffer the connection keeps, so that a keyed transaction does
    /// not allocate its batch text anew each time.
    ///
    /// The lookup goes first in BEGIN's batch, in a READ COMMITTED
    /// transaction of its own (`key_lookup_begin`, `key_lookup_end`): read inside the
    /// SERIALIZABLE transaction, it would leave a predicate (SIREAD) lock on
    /// the key index's page, and concurrent keyed transactions with different
    /// keys on that page would fail each other with 40001 (docs/benchmarks.md).
    /// Outside the snapshot it cannot answer wrong: a key it finds is
    /// committed; one committed after it, even before the snapshot, makes the
    /// key's insert fail on the primary key (`failure_context::key_taken`).
    ///
    /// `prepared`: through the statements of `prepare_key_statements`, which
    /// a session outside a transaction pooler prepares once, so that the
    /// server neither parses nor plans them in every transaction.
    static void append_find_key(std::string& out, std::string_view key, bool prepared = false) {
        out.append(prepared ? "execute sertx_find_key('" : "select attempt, request from sertx_commit_log where key = '");
        sertx::detail::append_hex(out, key);
        out.append(prepared ? "')" : "'");
    }
    static constexpr const char* prepare_key_statements =
        "prepare sertx_find_key(text) as select attempt, request from sertx_commit_log where key = $1; "
        "prepare sertx_record_key(text, text, bigint, text) as "
        "insert into sertx_commit_log (key, attempt, committed_at, request) values ($1, $2, $3, $4)";
    /// The journal's intents of one COMMIT batch as one EXECUTE of a
    /// statement that a session outside a transaction pooler prepares once
    /// (the connection's `prepare_schedule_effects`), so that the server
    /// neither parses nor plans the INSERT in every scheduling transaction.
    /// The rows travel as one two-dimensional text array, in the order
    /// given (of two with one key the first is kept, as in the text form);
    /// every element is hex digits or a number in double quotes, so nothing
    /// in it can end an element, the array or the literal, and the names are
    /// decoded on the server as in `effect_statements::append_effect_row`.
    static constexpr const char* prepare_schedule_effects =
        "prepare sertx_schedule_effects(text[]) as insert into sertx_effect (key, operation, effect, payload, "
        "state, scheduled_at, not_before) select $1[i][1], convert_from(decode($1[i][2], 'hex'), 'UTF8'), "
        "convert_from(decode($1[i][3], 'hex'), 'UTF8'), $1[i][4], 'pending', $1[i][5]::bigint, "
        "$1[i][6]::bigint from generate_subscripts($1, 1) as i order by i on conflict (key) do nothing";
    /// One row of `prepare_schedule_effects`'s EXECUTE in `out` (empty: the
    /// statement starts); `end_scheduled_effects` ends it.
    static void append_scheduled_effect(std::string& out, std::string_view key, std::string_view operation,
                                        std::string_view effect, std::string_view payload,
                                        std::int64_t scheduled_at, std::int64_t not_before) {
        out.append(out.empty() ? "execute sertx_schedule_effects('{{\"" : ",{\"");
        for (const std::string_view hex : {key, operation, effect, payload}) {
            sertx::detail::append_hex(out, hex);
            out.append("\",\"");
        }
        sertx::detail::append_number(out, scheduled_at);
        out.append("\",\"");
        sertx::detail::append_number(out, not_before);
        out.append("\"}");
    }
    static constexpr const char* end_scheduled_effects = "}')";
    /// The lookup's own transaction. Explicit, because BEGIN after a bare
    /// lookup in the same batch would adopt its implicit transaction and then
    /// refuse ISOLATION LEVEL after a query (25001), and a COMMIT of that
    /// implicit transaction draws a WARNING; READ COMMITTED whatever the
    /// server's default_transaction_isolation, so that it takes no SIREAD lock.
    static constexpr const char* key_lookup_begin = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; ";
    static constexpr const char* key_lookup_end = "; COMMIT; ";
    /// The key's primary key constraint (PostgreSQL's default name).
    static constexpr std::string_view key_constraint = "sertx_commit_log_pkey";
    static void append_record_key(std::string& out, std::string_view key, std::string_view attempt,
                                  std::string_view request, std::int64_t committed_at_unix_micros,
                                  bool prepared = false) {
        if (!sertx::detail::is_hex(attempt))
            throw error("sertx: an attempt id is hex digits; this one is not, so it is not written into SQL.");
        out.append(prepared ? "execute sertx_record_key('"
                            : "insert into sertx_commit_log (key, attempt, committed_at, request) values ('");
        sertx::detail::append_hex(out, key);
        out.append("', '").append(attempt).append("', ");
        sertx::detail::append_number(out, committed_at_unix_micros);
        out.append(", '");
        sertx::detail::append_hex(out, request);
        out.append("')");
    }
    static std::string find_key(std::string_view key, bool prepared = false) {
        std::string out;
        append_find_key(out, key, prepared);
        return out;
    }
    static std::string record_key(std::string_view key, std::string_view attempt, std::string_view request,
                                  std::int64_t committed_at_unix_micros, bool prepared = false) {
        std::string out;
        append_record_key(out, key, attempt, request, committed_at_unix_micros, prepared);
        return out;
    }
};

}  // namespace sertx::postgresql

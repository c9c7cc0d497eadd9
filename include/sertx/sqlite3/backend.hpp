// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// SQLite's facts, whatever the client library: its backend tag and traits,
/// the one table of its failures (result codes onto `sertx::failure`, DESIGN
/// §5) and the SQL that sertx writes differently for it. Numbers rather than
/// SQLITE_* macros, so that no sqlite3.h is needed here; they are fixed by
/// SQLite's stable ABI.

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/failure.hpp>
#include <sertx/sql/split.hpp>

#include <boost/hana/bool.hpp>
#include <boost/hana/map.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/type.hpp>

#include <string>
#include <string_view>

namespace sertx::sqlite3 {
/// The backend tag of the SQLite adapter.
struct backend {};
}  // namespace sertx::sqlite3

namespace sertx {
/// SQLite: serializable (one writer, BEGIN IMMEDIATE), transactional DDL,
/// savepoints; a read-only transaction reads one snapshot, which is what
/// DEFERRABLE gives on PostgreSQL.
template <>
struct backend_traits<sqlite3::backend> {
    static constexpr std::string_view name = "sqlite3";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
};
}  // namespace sertx

namespace sertx::sqlite3 {

inline constexpr int result_busy = 5;
inline constexpr int result_locked = 6;
inline constexpr int result_busy_snapshot = result_busy | (2 << 8);

/// The one classification table of SQLite (DESIGN §5): an extended result
/// code onto `sertx::failure`.
constexpr failure classify_result(int extended_code) noexcept {
    // A deferred transaction that read an old snapshot cannot upgrade to a
    // writer: the whole body must be re-run on a new snapshot.
    if (extended_code == result_busy_snapshot) return failure::serialization;
    const int primary = extended_code & 0xff;
    // Reaching the caller means busy_timeout already expired.
    if (primary == result_busy || primary == result_locked) return failure::busy;
    return failure::permanent;
}

/// SQLite's own result code for a failure (the chaos injector's).
inline std::string result_code_of(failure f) {
    return std::to_string(f == failure::serialization ? result_busy_snapshot : result_busy);
}

/// The SQL that sertx writes for SQLite where it differs from PostgreSQL's.
struct dialect {
    /// BEGIN by `access_mode`: writers take the write lock up front, waiting
    /// in the busy handler, so that no transaction fails half-way on a lock
    /// upgrade (SQLITE_BUSY_SNAPSHOT); readers read one WAL snapshot.
    static constexpr const char* begin[] = {"BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN DEFERRED"};
    /// BEGIN IMMEDIATE has already serialized creators and migrators.
    static constexpr const char* serialize_install = nullptr;
    static constexpr const char* serialize_migration_table = nullptr;
    /// A commit log made before request fingerprints gains the column
    /// (SQLite's ADD COLUMN has no IF NOT EXISTS; installers are serialized).
    static constexpr const char* commit_log_has_request =
        "select count(*) from pragma_table_info('sertx_commit_log') where name = 'request'";
    static constexpr const char* add_request_column =
        "alter table sertx_commit_log add column request text not null default ''";
    /// The commit log's age index: SQLite's indexes are all b-trees, so
    /// there is nothing to upgrade.
    static constexpr const char* create_commit_log_age =
        "create index if not exists sertx_commit_log_age on sertx_commit_log (committed_at)";
    static constexpr const char* commit_log_age_is_btree = nullptr;
    static constexpr const char* drop_commit_log_age = nullptr;
    /// A journal made before leases (issue 14) is rebuilt: SQLite cannot
    /// alter a CHECK constraint.
    static constexpr const char* effect_has_leases =
        "select count(*) from pragma_table_info('sertx_effect') where name = 'lease_until'";
    static constexpr bool rebuild_to_widen_check = true;
    /// A journal made with leases but before the call-began mark gains its
    /// column (every existing row "not known": -1); no CHECK changes, so
    /// ADD COLUMN serves.
    static constexpr const char* effect_has_call_mark =
        "select count(*) from pragma_table_info('sertx_effect') where name = 'call_began'";
    static constexpr const char* add_call_mark_column =
        "alter table sertx_effect add column call_began bigint not null default -1";
    /// One writer at a time: claims read the due rows and update each.
    static constexpr const char* claim_effects = nullptr;
    /// No other process can be told; dispatchers poll (and those in the
    /// scheduling process are woken by the in-process signal).
    static constexpr bool notify_on_schedule = false;
    /// The journal's INSERT of an intent stays prepared with the connection
    /// (effect_statements::schedule_effect): no network, so preparing it was
    /// most of what an intent cost.
    static constexpr bool keep_schedule_statement = true;
    static constexpr const char* migration_table_exists =
        "select count(*) from sqlite_master where type = 'table' and name = 'sertx_schema'";
    static constexpr const char* lock_migration_table = nullptr;
    /// An idempotency key's lookup and insert, prepared once per connection
    /// and run with BEGIN's and COMMIT's steps (the same rows as
    /// effect_statements' `key_committed` and `record_key`: key and request
    /// as hex text, bound, never spliced).
    static constexpr const char* find_key = "select attempt, request from sertx_commit_log where key = ?1";
    static constexpr const char* record_key =
        "insert into sertx_commit_log (key, attempt, committed_at, request) values (?1, ?2, ?3, ?4)";
    /// Scripts split as the sqlite3 shell (sqlite3_complete) splits them.
    static constexpr sertx::detail::sql_dialect split_as = sertx::detail::sql_dialect::sqlite;
};

}  // namespace sertx::sqlite3

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The statements of schema migrations, on a SOCI session (mixed into each
/// adapter's connection); sertx/migrate.hpp calls them.

#include <sertx/detail/sql_dialect.hpp>

#include <soci/soci.h>

#include <cstdint>
#include <string>

namespace sertx::detail {

/// `Connection` provides `session()`, `execute(const char*)` and
/// `static constexpr sql_dialect dialect`.
template <class Connection>
class migration_statements {
public:
    /// Whether `sertx_schema` exists. A catalog lookup, so on PostgreSQL it
    /// sees the latest committed table even inside an older snapshot.
    bool migration_table_exists() {
        int found = 0;
        if constexpr (Connection::dialect == sql_dialect::postgresql)
            self().session() << "select case when to_regclass('sertx_schema') is null then 0 else 1 end",
                ::soci::into(found);
        else
            self().session() << "select count(*) from sqlite_master where type = 'table' and name = 'sertx_schema'",
                ::soci::into(found);
        return found != 0;
    }

    /// Creates `sertx_schema` unless it exists. On PostgreSQL two concurrent
    /// CREATE TABLE IF NOT EXISTS can both miss the table and one then fails
    /// on the catalog's unique index, so creators take an advisory lock
    /// first (the key spells "sertx_mg"); SQLite's BEGIN IMMEDIATE already
    /// serialized them. One DDL text serves both: SQLite reads bigint as
    /// INTEGER affinity.
    void create_migration_table() {
        if constexpr (Connection::dialect == sql_dialect::postgresql)
            self().execute("SELECT pg_advisory_xact_lock(8315178131570781543)");
        self().execute(
            "CREATE TABLE IF NOT EXISTS sertx_schema ("
            "version bigint PRIMARY KEY CHECK (version > 0), "
            "name text NOT NULL, "
            "checksum text NOT NULL, "
            "applied_at bigint NOT NULL)");  // microseconds since 1970-01-01 UTC
    }

    /// The first statement of every migration transaction: waits until no
    /// other migrator holds the table. On PostgreSQL, LOCK TABLE is one of
    /// the few statements that take no snapshot, so the snapshot of the
    /// transaction is taken after the wait and shows what the other migrator
    /// committed; `SELECT pg_advisory_xact_lock(...)` here would take it
    /// before the wait, and the loser would apply the winner's migration
    /// again. EXCLUSIVE lets status readers (ACCESS SHARE) through. On SQLite
    /// BEGIN IMMEDIATE has already taken the one write lock.
    void lock_migration_table() {
        if constexpr (Connection::dialect == sql_dialect::postgresql)
            self().execute("LOCK TABLE sertx_schema IN EXCLUSIVE MODE");
    }

    /// Calls `each(version, name, checksum, applied_at_micros)` for every row,
    /// in version order.
    template <class F>
    void read_migrations(F&& each) {
        long long version = 0, applied_at = 0;
        std::string name, checksum;
        ::soci::statement rows =
            (self().session().prepare << "select version, name, checksum, applied_at from sertx_schema order by version",
             ::soci::into(version), ::soci::into(name), ::soci::into(checksum), ::soci::into(applied_at));
        rows.execute();
        while (rows.fetch()) each(std::int64_t{version}, name, checksum, std::int64_t{applied_at});
    }

    void record_migration(std::int64_t version, const std::string& name, const std::string& checksum,
                          std::int64_t applied_at_micros) {
        const long long v = version, at = applied_at_micros;
        self().session() << "insert into sertx_schema(version, name, checksum, applied_at) values(:v, :n, :c, :t)",
            ::soci::use(v), ::soci::use(name), ::soci::use(checksum), ::soci::use(at);
    }

private:
    Connection& self() { return static_cast<Connection&>(*this); }
};

}  // namespace sertx::detail

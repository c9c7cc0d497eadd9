// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The statements of schema migrations on a SOCI session: what each SOCI
/// adapter's connection returns from `migrations()`
/// (`sertx::migration_statements`, adapter.hpp); sertx/migrate.hpp calls
/// them. Where the dialects differ, the connection's `dialect` says.

#include <sertx/sql/split.hpp>

#include <soci/soci.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sertx::detail {

/// `Connection` provides `session()`, `execute(const char*)` and a `dialect`.
template <class Connection>
class migration_statements {
public:
    explicit migration_statements(Connection& connection) noexcept : connection_(connection) {}

    bool migration_table_exists() {
        int found = 0;
        connection_.session() << Connection::dialect::migration_table_exists, ::soci::into(found);
        return found != 0;
    }

    /// Creates `sertx_schema` unless it exists. One DDL text serves both
    /// dialects: SQLite reads bigint as INTEGER affinity.
    void create_migration_table() {
        if constexpr (Connection::dialect::serialize_migration_table != nullptr)
            connection_.execute(Connection::dialect::serialize_migration_table);
        connection_.execute(
            "CREATE TABLE IF NOT EXISTS sertx_schema ("
            "version bigint PRIMARY KEY CHECK (version > 0), "
            "name text NOT NULL, "
            "checksum text NOT NULL, "
            "applied_at bigint NOT NULL)");  // microseconds since 1970-01-01 UTC
    }

    /// The first statement of every migration transaction: waits until no
    /// other migrator holds the table, so that what it committed is visible.
    void lock_migration_table() {
        if constexpr (Connection::dialect::lock_migration_table != nullptr)
            connection_.execute(Connection::dialect::lock_migration_table);
    }

    /// Calls `each(version, name, checksum, applied_at_micros)` for every row,
    /// in version order.
    template <class F>
    void read_migrations(F&& each) {
        long long version = 0, applied_at = 0;
        std::string name, checksum;
        ::soci::statement rows =
            (connection_.session().prepare
                 << "select version, name, checksum, applied_at from sertx_schema order by version",
             ::soci::into(version), ::soci::into(name), ::soci::into(checksum), ::soci::into(applied_at));
        rows.execute();
        while (rows.fetch()) each(std::int64_t{version}, name, checksum, std::int64_t{applied_at});
    }

    void record_migration(std::int64_t version, const std::string& name, const std::string& checksum,
                          std::int64_t applied_at_micros) {
        const long long v = version, at = applied_at_micros;
        connection_.session()
            << "insert into sertx_schema(version, name, checksum, applied_at) values(:v, :n, :c, :t)",
            ::soci::use(v), ::soci::use(name), ::soci::use(checksum), ::soci::use(at);
    }

    /// A migration script's statements, split where the database's own shell
    /// splits them (sql/split.hpp).
    static std::vector<std::string_view> split_script(std::string_view script) {
        return split_statements(script, Connection::dialect::split_as);
    }

private:
    Connection& connection_;
};

}  // namespace sertx::detail

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The statements of schema migrations on a SOCI session: what each SOCI
/// adapter's connection returns from `migrations()`
/// (`sertx::migration_statements`, adapter.hpp); sertx/migrate.hpp calls
/// them. Where the dialects differ, the connection's `dialect` says.

#include <sertx/detail/config.hpp>

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

    bool migration_table_exists();

    /// Creates `sertx_schema` unless it exists. One DDL text serves both
    /// dialects: SQLite reads bigint as INTEGER affinity.
    void create_migration_table();

    /// The first statement of every migration transaction: waits until no
    /// other migrator holds the table, so that what it committed is visible.
    void lock_migration_table();

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
                          std::int64_t applied_at_micros);

    /// A migration script's statements, split where the database's own shell
    /// splits them (sql/split.hpp).
    static std::vector<std::string_view> split_script(std::string_view script);

private:
    Connection& connection_;
};

}  // namespace sertx::detail

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/detail/impl/migration_statements.ipp>
#endif

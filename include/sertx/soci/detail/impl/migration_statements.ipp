// SPDX-License-Identifier: BSL-1.0
#pragma once
// The out-of-class members of soci/detail/migration_statements.hpp: included
// by that header when header-only, else by the adapters' .ipp files
// (detail/config.hpp).

#include <sertx/soci/detail/migration_statements.hpp>

#include <sertx/sql/split.hpp>

namespace sertx::detail {

template <class Connection>
bool migration_statements<Connection>::migration_table_exists() {
    int found = 0;
    connection_.session() << Connection::dialect::migration_table_exists, ::soci::into(found);
    return found != 0;
}

template <class Connection>
void migration_statements<Connection>::create_migration_table() {
    if constexpr (Connection::dialect::serialize_migration_table != nullptr)
        connection_.execute(Connection::dialect::serialize_migration_table);
    connection_.execute(
        "CREATE TABLE IF NOT EXISTS sertx_schema ("
        "version bigint PRIMARY KEY CHECK (version > 0), "
        "name text NOT NULL, "
        "checksum text NOT NULL, "
        "applied_at bigint NOT NULL)");  // microseconds since 1970-01-01 UTC
}

template <class Connection>
void migration_statements<Connection>::lock_migration_table() {
    if constexpr (Connection::dialect::lock_migration_table != nullptr)
        connection_.execute(Connection::dialect::lock_migration_table);
}

template <class Connection>
void migration_statements<Connection>::record_migration(std::int64_t version, const std::string& name,
                                                        const std::string& checksum, std::int64_t applied_at_micros) {
    const long long v = version, at = applied_at_micros;
    connection_.session()
        << "insert into sertx_schema(version, name, checksum, applied_at) values(:v, :n, :c, :t)",
        ::soci::use(v), ::soci::use(name), ::soci::use(checksum), ::soci::use(at);
}

template <class Connection>
std::vector<std::string_view> migration_statements<Connection>::split_script(std::string_view script) {
    return split_statements(script, Connection::dialect::split_as);
}

}  // namespace sertx::detail

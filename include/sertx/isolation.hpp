// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Isolation levels, as run-time values and as compile-time constants.
///
/// The levels are ordered from weakest to strongest so that a backend's
/// guarantee can be compared with what sertx needs (`serializable`).

#include <string_view>
#include <type_traits>

namespace sertx {

/// An isolation level, weakest first. `snapshot` is snapshot isolation (what
/// PostgreSQL calls REPEATABLE READ): it allows write skew, so it is below
/// `serializable`.
enum class isolation { read_uncommitted, read_committed, repeatable_read, snapshot, serializable };

/// A level as a type, for backend traits and policies.
template <isolation Level>
using isolation_constant = std::integral_constant<isolation, Level>;

template <isolation Level>
inline constexpr isolation_constant<Level> isolation_c{};

/// The SQL-standard name of a level ("SERIALIZABLE"), for messages.
constexpr std::string_view to_string(isolation level) noexcept {
    switch (level) {
        case isolation::read_uncommitted: return "READ UNCOMMITTED";
        case isolation::read_committed: return "READ COMMITTED";
        case isolation::repeatable_read: return "REPEATABLE READ";
        case isolation::snapshot: return "SNAPSHOT";
        case isolation::serializable: return "SERIALIZABLE";
    }
    return "unknown";
}

}  // namespace sertx

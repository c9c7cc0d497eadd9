// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The statements of schema migrations, on a SOCI session (mixed into each
/// adapter's connection).

#include <sertx/detail/sql_dialect.hpp>

namespace sertx::detail {

/// `Connection` provides `session()`, `execute(const char*)` and
/// `static constexpr sql_dialect dialect`.
template <class Connection>
class migration_statements {};

}  // namespace sertx::detail

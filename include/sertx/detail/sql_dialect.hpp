// SPDX-License-Identifier: BSL-1.0
#pragma once

namespace sertx::detail {
/// The SQL dialects sertx writes its own statements in.
enum class sql_dialect { postgresql, sqlite };
}  // namespace sertx::detail

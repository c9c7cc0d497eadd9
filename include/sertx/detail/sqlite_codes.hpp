// SPDX-License-Identifier: BSL-1.0
#pragma once
// SQLite's (extended) result codes onto sertx::failure: the one table
// (DESIGN §5). Numbers rather than SQLITE_* macros, so that no sqlite3.h is
// needed here; they are fixed by SQLite's stable ABI.

#include <sertx/failure.hpp>

namespace sertx::detail {

inline constexpr int sqlite_busy = 5;
inline constexpr int sqlite_locked = 6;
inline constexpr int sqlite_busy_snapshot = sqlite_busy | (2 << 8);

constexpr failure classify_sqlite_result(int extended_code) noexcept {
    // A deferred transaction that read an old snapshot cannot upgrade to a
    // writer: the whole body must be re-run on a new snapshot.
    if (extended_code == sqlite_busy_snapshot) return failure::serialization;
    const int primary = extended_code & 0xff;
    // Reaching the caller means busy_timeout already expired.
    if (primary == sqlite_busy || primary == sqlite_locked) return failure::busy;
    return failure::permanent;
}

}  // namespace sertx::detail

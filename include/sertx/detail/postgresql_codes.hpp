// SPDX-License-Identifier: BSL-1.0
#pragma once
// PostgreSQL's SQLSTATE codes onto sertx::failure: the one table (DESIGN §5).
// Kept free of libpq and SOCI so that it is tested without a server.

#include <sertx/failure.hpp>

#include <string_view>

namespace sertx::detail {

constexpr failure classify_sqlstate(std::string_view sqlstate) noexcept {
    if (sqlstate == "40001") return failure::serialization;  // serialization_failure
    if (sqlstate == "40P01") return failure::deadlock;       // deadlock_detected
    if (sqlstate == "55P03") return failure::busy;           // lock_not_available (lock_timeout)
    if (sqlstate == "40003") return failure::commit_unknown;  // statement_completion_unknown
    if (sqlstate.size() == 5 && sqlstate.substr(0, 2) == "08") return failure::connection_lost;
    // admin_shutdown, crash_shutdown, cannot_connect_now: the session is gone
    if (sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") return failure::connection_lost;
    return failure::permanent;  // 23xxx, 42xxx, 22xxx, ...: the body decides
}

}  // namespace sertx::detail

// SPDX-License-Identifier: BSL-1.0
#pragma once
// Catch2 2 (Debian) or 3 (vcpkg, Conan), whichever the build found.
#if defined(SERTX_CATCH2_V3)
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <cstddef>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace sertx::test {

/// Matches text that contains `part`, for CHECK_THAT: Catch2 3 calls it
/// ContainsSubstring, Catch2 2 Contains.
inline auto has_text(const std::string& part) {
#if defined(SERTX_CATCH2_V3)
    return Catch::Matchers::ContainsSubstring(part);
#else
    return Catch::Matchers::Contains(part);
#endif
}

/// A test case that could not run here (Catch2 2 only; Catch2 3 counts its
/// own SKIPs), and why.
struct skipped_case {
    std::string name, reason;
};

inline std::mutex& skipped_cases_mutex() {
    static std::mutex m;
    return m;
}

/// The test cases skipped so far in this process: support/catch_main.cpp
/// lists them at the end and makes the exit code say "skipped".
inline std::vector<skipped_case>& skipped_cases() {
    static std::vector<skipped_case> cases;
    return cases;
}

/// The exit code of a test process whose every test case was skipped: what
/// Catch2 3 returns then, and what ctest is told to report as "Skipped"
/// (SKIP_RETURN_CODE) rather than passed or failed.
inline constexpr int skipped_exit_code = 4;

}  // namespace sertx::test

/// Ends the test case as skipped, with a reason (streamable, as for INFO):
/// never a pass, never a failure. Catch2 3 has SKIP. Catch2 2 has none: the
/// skip is recorded, shown as a warning, and counted by the test main
/// (support/catch_main.cpp), which lists the skipped cases and exits with
/// sertx::test::skipped_exit_code when every case it ran was skipped. Under
/// Catch2 2 it returns from the enclosing function, so use it in the test
/// case's body itself (as SERTX_REQUIRE_PG does), not in a helper.
#if defined(SERTX_CATCH2_V3)
#define SERTX_SKIP(reason) SKIP(reason)
#else
#define SERTX_SKIP(reason)                                                                                   \
    do {                                                                                                     \
        std::ostringstream sertx_skip_reason_;                                                               \
        sertx_skip_reason_ << reason;                                                                        \
        {                                                                                                    \
            std::lock_guard<std::mutex> sertx_skip_lock_(::sertx::test::skipped_cases_mutex());              \
            ::sertx::test::skipped_cases().push_back(                                                        \
                {Catch::getResultCapture().getCurrentTestName(), sertx_skip_reason_.str()});                 \
        }                                                                                                    \
        WARN("SKIPPED: " << sertx_skip_reason_.str());                                                       \
        return;                                                                                              \
    } while (false)
#endif

// SPDX-License-Identifier: BSL-1.0
#pragma once
// Catch2 2 (Debian) or 3 (vcpkg, Conan), whichever the build found.
#if defined(SERTX_CATCH2_V3)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

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

}  // namespace sertx::test

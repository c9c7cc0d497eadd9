// SPDX-License-Identifier: BSL-1.0
#pragma once
// Catch2 2 (Debian) or 3 (vcpkg, Conan), whichever the build found.
#if defined(SERTX_CATCH2_V3)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif

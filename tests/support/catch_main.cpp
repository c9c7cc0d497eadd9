// SPDX-License-Identifier: BSL-1.0
// Catch2 2's main; Catch2 3 links Catch2::Catch2WithMain instead.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

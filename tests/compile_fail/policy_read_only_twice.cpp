// SPDX-License-Identifier: BSL-1.0
// expect: sertx: policy<...> names read_only or read_write twice
#include <sertx/policy.hpp>

constexpr bool misuse = sertx::policy<sertx::read_only, sertx::read_only>::writes;

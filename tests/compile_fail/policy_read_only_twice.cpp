// SPDX-License-Identifier: BSL-1.0
// expect: sertx: policy<...> names read_only or read_write twice
#include <sertx/policy.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
constexpr bool correct_use = sertx::policy<sertx::read_only>::writes;
#else
constexpr bool misuse = sertx::policy<sertx::read_only, sertx::read_only>::writes;
#endif

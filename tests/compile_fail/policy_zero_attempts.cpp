// SPDX-License-Identifier: BSL-1.0
// expect: sertx: max_attempts<0> would never run the body
#include <sertx/policy.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
constexpr unsigned correct_use = sertx::policy<sertx::max_attempts<1>>::max_attempts;
#else
constexpr unsigned misuse = sertx::policy<sertx::max_attempts<0>>::max_attempts;
#endif

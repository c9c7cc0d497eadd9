// SPDX-License-Identifier: BSL-1.0
// expect: sertx: policy<...> names two backoff strategies
#include <sertx/policy.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
using correct_use = sertx::policy<sertx::full_jitter<100, 1000>>;
constexpr bool used = correct_use::writes;
#else
using misuse = sertx::policy<sertx::no_backoff, sertx::full_jitter<100, 1000>>;
constexpr bool misused = misuse::writes;
#endif

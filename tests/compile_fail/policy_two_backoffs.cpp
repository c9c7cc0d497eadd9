// SPDX-License-Identifier: BSL-1.0
// expect: sertx: policy<...> names two backoff strategies
#include <sertx/policy.hpp>

using misuse = sertx::policy<sertx::no_backoff, sertx::full_jitter<100, 1000>>;
constexpr bool misused = misuse::writes;

// SPDX-License-Identifier: BSL-1.0
// expect: sertx: max_attempts<0> would never run the body
#include <sertx/policy.hpp>

constexpr unsigned misuse = sertx::policy<sertx::max_attempts<0>>::max_attempts;

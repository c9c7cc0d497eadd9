// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: with_sertx.cpp in separate compilation (the adapters'
// non-template code only declared: sertx::compiled defines it).

#define SERTX_SEPARATE_COMPILATION
#include "with_sertx.cpp"

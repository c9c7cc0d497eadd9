// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: include_sertx.cpp in separate compilation (the
// adapters' non-template code only declared: sertx::compiled defines it).

#define SERTX_SEPARATE_COMPILATION
#include "include_sertx.cpp"

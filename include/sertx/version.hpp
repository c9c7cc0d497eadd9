// SPDX-License-Identifier: BSL-1.0
#pragma once
// The one place the version is written; CMake reads these three lines.
#define SERTX_VERSION_MAJOR 0
#define SERTX_VERSION_MINOR 1
#define SERTX_VERSION_PATCH 0

namespace sertx {
inline constexpr int version_major = SERTX_VERSION_MAJOR;
inline constexpr int version_minor = SERTX_VERSION_MINOR;
inline constexpr int version_patch = SERTX_VERSION_PATCH;
}  // namespace sertx

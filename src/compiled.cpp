// SPDX-License-Identifier: BSL-1.0
// sertx::compiled: the adapters' non-template code, compiled once for a
// program whose every translation unit defines SERTX_SEPARATE_COMPILATION
// (the target's interface does). A build without CMake does the same: define
// the macro everywhere and include these .ipp files in one source file.

#if !defined(SERTX_SEPARATE_COMPILATION)
#error "sertx: src/compiled.cpp is the separately compiled part; build it with SERTX_SEPARATE_COMPILATION defined."
#endif

#if defined(SERTX_WITH_POSTGRESQL)
#include <sertx/soci/impl/postgresql.ipp>
#endif
#if defined(SERTX_WITH_SQLITE3)
#include <sertx/soci/impl/sqlite3.ipp>
#endif

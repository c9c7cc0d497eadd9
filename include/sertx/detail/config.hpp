// SPDX-License-Identifier: BSL-1.0
#pragma once
// Header-only (the default) or separately compiled. With
// SERTX_SEPARATE_COMPILATION defined for every translation unit of a program
// (the sertx::compiled target does it), the adapters' non-template code is
// only declared by the headers, and built once, by the one source file that
// includes the adapters' .ipp files (src/compiled.cpp, or a user's own). The
// two modes must not be mixed in one program: that would define the same
// functions twice, once inline.
#if defined(SERTX_SEPARATE_COMPILATION)
#define SERTX_DECL
#else
#define SERTX_HEADER_ONLY 1
#define SERTX_DECL inline
#endif

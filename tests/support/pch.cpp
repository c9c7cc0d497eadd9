// SPDX-License-Identifier: BSL-1.0
// The translation unit that builds the tests' precompiled header.

// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: sertx with both adapters, included and not used (the
// price of the headers alone; with_sertx.cpp adds one transfer on each).

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>

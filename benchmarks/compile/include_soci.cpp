// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: SOCI with both backends, included and not used (the
// baseline of include_sertx.cpp).

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

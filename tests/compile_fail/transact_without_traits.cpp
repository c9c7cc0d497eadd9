// SPDX-License-Identifier: BSL-1.0
// A type that no backend_traits describe (here a raw SOCI session) is not a
// database transact() can run on.
// expect: sertx: transact() needs a database whose backend is described by sertx::backend_traits
#include <sertx/sertx.hpp>
#include <soci/soci.h>

#ifdef SERTX_COMPILE_FAIL_CONTROL
#include <sertx/soci/sqlite3.hpp>

void correct_use(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto&) {});
}
#else
void misuse(soci::session& raw) {
    sertx::transact(raw, [](auto&) {});
}
#endif

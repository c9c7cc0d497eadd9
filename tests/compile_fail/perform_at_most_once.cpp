// SPDX-License-Identifier: BSL-1.0
// An at-most-once operation run inside a transact body (which may be re-run)
// does not compile: it must go through the effect journal.
// expect: sertx: an at_most_once operation cannot run inside transact
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
// An idempotent operation may run again when the body is re-run.
struct refresh_cache {
    using effect = sertx::idempotent;
    void operator()() const {}
};

void correct_use(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { tx.perform(refresh_cache{}); });
}
#else
struct broadcast {
    using effect = sertx::at_most_once;
    void operator()() const {}
};

void misuse(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { tx.perform(broadcast{}); });
}
#endif

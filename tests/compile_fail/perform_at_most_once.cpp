// SPDX-License-Identifier: BSL-1.0
// An at-most-once operation run inside a transact body (which may be re-run)
// does not compile: it must go through the effect journal.
// expect: sertx: an at_most_once operation cannot run inside transact
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

struct broadcast {
    using effect = sertx::at_most_once;
    void operator()() const {}
};

void misuse(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { tx.perform(broadcast{}); });
}

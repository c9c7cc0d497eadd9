// SPDX-License-Identifier: BSL-1.0
// An operation that does not say what re-running it would do does not
// compile in tx.perform: its author must choose a tag.
// expect: sertx: tx.perform(op) needs an operation that declares its effect
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
struct send_mail {
    using effect = sertx::idempotent;
    void operator()() const {}
};

void correct_use(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { tx.perform(send_mail{}); });
}
#else
struct send_mail {
    void operator()() const {}
};

void misuse(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { tx.perform(send_mail{}); });
}
#endif

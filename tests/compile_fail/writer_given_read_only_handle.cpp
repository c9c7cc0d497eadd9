// SPDX-License-Identifier: BSL-1.0
// A helper that writes, called from a read-only transaction, does not compile.
// expect-unsatisfied: writable_transaction
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

void debit(sertx::writable_transaction auto& tx, long) { tx.sql() << "update account set balance = balance - 1"; }

#ifdef SERTX_COMPILE_FAIL_CONTROL
void correct_use(sertx::sqlite3::database& db) {
    sertx::transact<sertx::policy<sertx::read_write>>(db, [](auto& tx) { debit(tx, 1); });
}
#else
void misuse(sertx::sqlite3::database& db) {
    sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) { debit(tx, 1); });
}
#endif

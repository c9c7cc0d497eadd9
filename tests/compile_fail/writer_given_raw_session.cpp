// SPDX-License-Identifier: BSL-1.0
// A raw soci::session is no transaction: a helper that writes refuses it.
// expect-unsatisfied: writable_transaction
#include <sertx/transaction.hpp>
#include <soci/soci.h>

void debit(sertx::writable_transaction auto& tx, long) { tx.sql() << "update account set balance = balance - 1"; }

#ifdef SERTX_COMPILE_FAIL_CONTROL
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

// The handle a read_write transact() gives its body.
void correct_use(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { debit(tx, 1); });
}
#else
void misuse(soci::session& raw) { debit(raw, 1); }
#endif

// SPDX-License-Identifier: BSL-1.0
// A raw soci::session is no transaction: a helper that writes refuses it.
// expect: (constraints not satisfied|writable_transaction)
#include <sertx/transaction.hpp>
#include <soci/soci.h>

void debit(sertx::writable_transaction auto& tx, long) { tx.sql() << "update account set balance = balance - 1"; }

void misuse(soci::session& raw) { debit(raw, 1); }

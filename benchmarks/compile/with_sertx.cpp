// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: sertx with both adapters, running one transfer on each
// backend. scripts/bench times this file against soci_only.cpp, which does
// the same with SOCI alone.

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace {
template <class Tx>
void transfer(Tx& tx, long long from, long long to, long long amount) {
    long long balance = 0;
    tx.sql() << "select balance from account where id = :id", soci::use(from), soci::into(balance);
    tx.sql() << "update account set balance = balance - :a where id = :id", soci::use(amount), soci::use(from);
    tx.sql() << "update account set balance = balance + :a where id = :id", soci::use(amount), soci::use(to);
}
}  // namespace

void probe_postgresql(sertx::postgresql::database& db) {
    sertx::transact(db, [](auto& tx) { transfer(tx, 1, 2, 5); });
}

void probe_sqlite(sertx::sqlite3::database& db) {
    sertx::transact(db, [](auto& tx) { transfer(tx, 1, 2, 5); });
}

// SPDX-License-Identifier: BSL-1.0
// Compile-time probe: SOCI alone with both backends, running one transfer on
// each in a hand-written retry loop (the baseline of with_sertx.cpp).

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <string>

namespace {
void transfer(soci::session& sql, long long from, long long to, long long amount) {
    long long balance = 0;
    sql << "select balance from account where id = :id", soci::use(from), soci::into(balance);
    sql << "update account set balance = balance - :a where id = :id", soci::use(amount), soci::use(from);
    sql << "update account set balance = balance + :a where id = :id", soci::use(amount), soci::use(to);
}
}  // namespace

void probe_postgresql(soci::session& sql) {
    for (int attempt = 1;; ++attempt) {
        try {
            sql << "BEGIN ISOLATION LEVEL SERIALIZABLE";
            transfer(sql, 1, 2, 5);
            sql.commit();
            return;
        } catch (const soci::postgresql_soci_error& e) {
            sql.rollback();
            const std::string state = e.sqlstate();
            if ((state != "40001" && state != "40P01") || attempt == 30) throw;
        }
    }
}

void probe_sqlite(soci::session& sql) {
    for (int attempt = 1;; ++attempt) {
        try {
            sql << "BEGIN IMMEDIATE";
            transfer(sql, 1, 2, 5);
            sql.commit();
            return;
        } catch (const soci::sqlite3_soci_error& e) {
            sql.rollback();
            if ((e.result() & 0xff) != 5 || attempt == 30) throw;
        }
    }
}

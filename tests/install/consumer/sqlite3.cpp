// SPDX-License-Identifier: BSL-1.0
// The smallest real use: a transaction on an in-memory SQLite database.
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#if defined(CONSUMER_COMPILED) && !defined(SERTX_SEPARATE_COMPILATION)
#error "consumer: linking sertx::compiled did not define SERTX_SEPARATE_COMPILATION"
#endif

#include <cstdio>

int main() {
    auto db = sertx::sqlite3::open(":memory:", {.pool_size = 1});
    const long total = sertx::transact(db, [](auto& tx) {
        tx.sql() << "create table account(id integer primary key, balance integer not null)";
        tx.sql() << "insert into account(balance) values (40), (2)";
        long sum = 0;
        tx.sql() << "select sum(balance) from account", soci::into(sum);
        return sum;
    });
    if (total != 42 || db.stats().commits != 1) {
        std::printf("consumer: expected 42 and one commit, got %ld and %llu\n", total,
                    static_cast<unsigned long long>(db.stats().commits));
        return 1;
    }
    std::printf("consumer: sertx on SQLite works (total %ld)\n", total);
    return 0;
}

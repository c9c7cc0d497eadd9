// SPDX-License-Identifier: BSL-1.0
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <cstdio>

int main() {
    auto db = sertx::sqlite3::open(":memory:", {.pool_size = 1});
    const int one = sertx::transact(db, [](auto& tx) {
        int n = 0;
        tx.sql() << "select 1", soci::into(n);
        return n;
    });
    std::printf("sertx %d.%d.%d: a serializable transaction on SQLite returned %d\n", sertx::version_major,
                sertx::version_minor, sertx::version_patch, one);
    return one == 1 ? 0 : 1;
}

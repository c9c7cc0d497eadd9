// SPDX-License-Identifier: BSL-1.0
// Built and linked, not run (no server is needed): proves the PostgreSQL
// adapter's link line (SOCI's postgresql backend, libpq) is complete.
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#if defined(CONSUMER_COMPILED) && !defined(SERTX_SEPARATE_COMPILATION)
#error "consumer: linking sertx::compiled did not define SERTX_SEPARATE_COMPILATION"
#endif

int main(int argc, char** argv) {
    if (argc < 2) return 0;
    auto db = sertx::postgresql::open(argv[1]);
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        int one = 0;
        tx.sql() << "select 1", soci::into(one);
        return one;
    }) == 1 ? 0 : 1;
}

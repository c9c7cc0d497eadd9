// SPDX-License-Identifier: BSL-1.0
// Capabilities drive behaviour: the BEGIN a read-only transaction sends
// follows cap::read_only_deferrable in the traits, so that a PostgreSQL-
// protocol engine without DEFERRABLE (CockroachDB, docs/distributed-sql.md)
// is described by its traits alone.
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <string>

namespace {

// PostgreSQL's traits, but without DEFERRABLE.
struct no_deferrable {};

// The PostgreSQL adapter's database, described by those traits.
struct no_deferrable_database : sertx::postgresql::database {
    using backend = no_deferrable;
};

template <class Db>
std::string read_only_flags(Db& db) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        std::string read_only, deferrable;
        tx.sql() << "show transaction_read_only", soci::into(read_only);
        tx.sql() << "show transaction_deferrable", soci::into(deferrable);
        return "read_only=" + read_only + " deferrable=" + deferrable;
    });
}

}  // namespace

template <>
struct sertx::backend_traits<no_deferrable> {
    static constexpr std::string_view name = "postgresql-without-deferrable";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
};

TEST_CASE("a read-only transaction says DEFERRABLE only where the traits have read_only_deferrable",
          "[postgresql]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    CHECK(read_only_flags(db) == "read_only=on deferrable=on");
    no_deferrable_database without{db};
    CHECK(read_only_flags(without) == "read_only=on deferrable=off");
    std::string level = sertx::transact(without, [](auto& tx) {
        std::string l;
        tx.sql() << "show transaction_isolation", soci::into(l);
        return l;
    });
    CHECK(level == "serializable");
}

// SPDX-License-Identifier: BSL-1.0
// A backend whose traits stop at REPEATABLE READ (snapshot isolation) cannot
// run transact(): it would allow write skew.
// expect: sertx: this backend cannot guarantee SERIALIZABLE isolation
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

struct snapshot_only {};
template <>
struct sertx::backend_traits<snapshot_only> {
    static constexpr std::string_view name = "snapshot-only";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::snapshot>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
};

struct snapshot_database : sertx::postgresql::database {
    using backend = snapshot_only;
};

void misuse(snapshot_database& db) {
    sertx::transact(db, [](auto&) {});
}

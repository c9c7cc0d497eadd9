// SPDX-License-Identifier: BSL-1.0
// A backend whose traits stop at REPEATABLE READ (snapshot isolation) cannot
// run transact(): it would allow write skew.
// expect: sertx: this backend cannot guarantee SERIALIZABLE isolation
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#ifdef SERTX_COMPILE_FAIL_CONTROL
// The same traits at SERIALIZABLE.
constexpr auto isolation_given = sertx::isolation::serializable;
#else
constexpr auto isolation_given = sertx::isolation::snapshot;
#endif

struct described_backend {};
template <>
struct sertx::backend_traits<described_backend> {
    static constexpr std::string_view name = "described";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation_given>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
};

struct described_database : sertx::postgresql::database {
    using backend = described_backend;
};

void use(described_database& db) {
    sertx::transact(db, [](auto&) {});
}

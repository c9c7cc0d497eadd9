// SPDX-License-Identifier: BSL-1.0
// A backend whose DDL commits implicitly (MySQL's InnoDB) cannot run
// migrate(): a migration failing half-way would leave half a schema.
// expect: sertx: migrate() needs a backend whose DDL is transactional
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <span>

#ifdef SERTX_COMPILE_FAIL_CONTROL
// PostgreSQL's DDL is transactional.
void correct_use(sertx::postgresql::database& db, std::span<const sertx::migration> schema) {
    sertx::migrate(db, schema);
}
#else
struct mysql_innodb {};
template <>
struct sertx::backend_traits<mysql_innodb> {
    static constexpr std::string_view name = "mysql-innodb";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
};

struct mysql_database : sertx::postgresql::database {
    using backend = mysql_innodb;
};

void misuse(mysql_database& db, std::span<const sertx::migration> schema) {
    sertx::migrate(db, schema);
}
#endif

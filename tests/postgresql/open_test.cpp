// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <string>

using sertx::test::pg_admin_exec;

TEST_CASE("a PostgreSQL database runs transactions at SERIALIZABLE", "[postgresql]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 2});
    std::string level = sertx::transact(db, [](auto& tx) {
        std::string l;
        tx.sql() << "show transaction_isolation", soci::into(l);
        return l;
    });
    CHECK(level == "serializable");
    std::string ro = sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        std::string a, d;
        tx.sql() << "show transaction_read_only", soci::into(a);
        tx.sql() << "show transaction_deferrable", soci::into(d);
        return a + d;
    });
    CHECK(ro == "onon");
    CHECK(db.stats().commits == 2);
    CHECK(db.stats().durable);
}

TEST_CASE("a server default of READ COMMITTED does not weaken a transaction", "[postgresql]") {
    SERTX_REQUIRE_PG(pg);
    pg_admin_exec(sertx::test::pg_admin(),
                  "alter database " + pg.name() + " set default_transaction_isolation = 'read committed'");
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    std::string session_default, level;
    sertx::transact<sertx::policy<sertx::verify_isolation<sertx::every_transaction>>>(db, [&](auto& tx) {
        tx.sql() << "show default_transaction_isolation", soci::into(session_default);
        tx.sql() << "show transaction_isolation", soci::into(level);
    });
    CHECK(session_default == "read committed");
    CHECK(level == "serializable");
}

TEST_CASE("a wrong PostgreSQL connection string gives a clear error without the password", "[postgresql]") {
    SERTX_REQUIRE_PG(pg);
    SECTION("malformed") {
        try {
            sertx::postgresql::open("host=127.0.0.1 password=s3cr3t-pw garbage");
            FAIL("opened");
        } catch (const sertx::connection_error& e) {
            const std::string what = e.what();
            CHECK(what.rfind("sertx:", 0) == 0);
            CHECK(what.find("malformed") != std::string::npos);
            CHECK(what.find("s3cr3t-pw") == std::string::npos);
        }
    }
    SECTION("nobody listening") {
        try {
            sertx::postgresql::open("host=127.0.0.1 port=1 user=postgres password=s3cr3t-pw dbname=x connect_timeout=2");
            FAIL("opened");
        } catch (const sertx::connection_error& e) {
            const std::string what = e.what();
            CHECK(what.rfind("sertx: cannot connect to PostgreSQL", 0) == 0);
            CHECK(what.find("port=1") != std::string::npos);
            CHECK(what.find("s3cr3t-pw") == std::string::npos);
        }
    }
    SECTION("unknown database") {
        try {
            sertx::postgresql::open(sertx::test::pg_admin() + " dbname=no_such_db_here");
            FAIL("opened");
        } catch (const sertx::connection_error& e) {
            CHECK(std::string(e.what()).find("no_such_db_here") != std::string::npos);
        }
    }
}

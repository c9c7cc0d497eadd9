// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <stdexcept>
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

// sertx sets lock_timeout for the session only when a policy's differs from
// what the session has; a rolled-back transaction undoes its SET.
TEST_CASE("every transaction runs with its policy's lock_timeout, or the server's when it has none", "[postgresql]") {
    SERTX_REQUIRE_PG(pg);
    pg_admin_exec(sertx::test::pg_admin(), "alter database " + pg.name() + " set lock_timeout = '7s'");
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    const auto lock_timeout_of = [&db]<class Policy>(Policy, bool fail_first = false) {
        int runs = 0;
        return sertx::transact<Policy>(db, [&](auto& tx) {
            std::string value;
            tx.sql() << "show lock_timeout", soci::into(value);
            if (fail_first && ++runs == 1)
                throw sertx::database_error(sertx::failure::serialization, "40001", "sertx: a test conflict");
            return value;
        });
    };
    using sertx::policy;
    // The default as PostgreSQL shows it (a whole number of seconds would
    // read "1s": keep the default below 1000 or change this line). The
    // explicit values below differ from it, or they would prove nothing.
    const std::string default_shown = std::to_string(sertx::default_lock_timeout_ms) + "ms";
    STATIC_REQUIRE(sertx::default_lock_timeout_ms % 1000 != 0);
    STATIC_REQUIRE(sertx::default_lock_timeout_ms != 50);
    STATIC_REQUIRE(sertx::default_lock_timeout_ms != 30);
    CHECK(lock_timeout_of(policy<>{}) == default_shown);
    CHECK(lock_timeout_of(policy<>{}) == default_shown);
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<0>>{}) == "7s");
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<0>>{}) == "7s");
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<50>, sertx::no_backoff>{}, true) == "50ms");
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<50>>{}) == "50ms");
    // A transaction that sets it and rolls back leaves the session as it was.
    try {
        sertx::transact<policy<sertx::lock_timeout<30>>>(db, [](auto&) { throw std::runtime_error("no"); });
    } catch (const std::runtime_error&) {
    }
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<50>>{}) == "50ms");
    CHECK(lock_timeout_of(policy<sertx::lock_timeout<30>>{}) == "30ms");
    CHECK(lock_timeout_of(policy<sertx::read_only, sertx::lock_timeout<0>>{}) == "7s");
    CHECK(lock_timeout_of(policy<sertx::read_only>{}) == default_shown);
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

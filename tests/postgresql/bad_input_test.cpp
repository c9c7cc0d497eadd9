// SPDX-License-Identifier: BSL-1.0
// Hostile and mistaken input on PostgreSQL: connection strings (malformed,
// unknown parameters, an unreachable server, a wrong password), idempotency
// keys and migration names with quotes, NUL bytes and great lengths, and a
// server whose durability settings would lose commits.
#include "support/bad_input_cases.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/pg_server.hpp"
#include "support/wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <vector>

using sertx::test::pg_admin_exec;

namespace {

const std::string secret = "Sup3r$ecretPassw0rd";

/// The text of an exception and of every exception nested in it.
std::string all_text(const std::exception& e) {
    std::string text = e.what();
    try {
        std::rethrow_if_nested(e);
    } catch (const std::exception& inner) {
        text += " | " + all_text(inner);
    } catch (...) {
    }
    return text;
}

/// Opens `conninfo`, which must fail with a connection_error; returns its text.
std::string open_error(const std::string& conninfo) {
    try {
        sertx::postgresql::open(conninfo);
    } catch (const sertx::connection_error& e) {
        return all_text(e);
    }
    FAIL("sertx::postgresql::open(\"" << conninfo << "\") did not throw connection_error");
    return {};
}

/// A fresh, empty PostgreSQL database, as support/bad_input_cases.hpp uses it.
struct PostgreSQL : sertx::test::postgresql_backend {
    sertx::test::pg_database pg;
    sertx::postgresql::database db = sertx::postgresql::open(pg.conninfo());
};

}  // namespace

TEST_CASE("a malformed connection string is a connection_error that never shows the password", "[postgresql][bad_input]") {
    const std::vector<std::string> malformed = {
        "host=127.0.0.1 password=" + secret + " port",
        "host=127.0.0.1 password='" + secret,
        "host=127.0.0.1 " + secret,
        "host=127.0.0.1 x" + secret + "=1",
        "password=" + secret + " host='127.0.0.1",
        "postgresql://postgres:" + secret + "@[::1",
        "postgresql://postgres:" + secret + "@127.0.0.1/db?colour=blue",
        "postgresql://postgres:" + secret + "@127.0.0.1:5432/db?sslmode",
        "host=127.0.0.1 password=" + secret + " colour=blue",
        // Quotes in the input shift libpq's quoting (found by tests/fuzz/conninfo_fuzz.cpp).
        "postgresql://postgres:" + secret + "@[::s\"\"s\"\t\"\"\"]\"\"",
        "password=" + secret + " host\"" + secret + "\"x",
        "postgresql://postgres:" + secret + "@[::1]=\"" + secret,
    };
    for (const auto& conninfo : malformed) {
        INFO(conninfo);
        const std::string text = open_error(conninfo);
        CHECK(text.rfind("sertx:", 0) == 0);
        CHECK(text.find(secret) == std::string::npos);
    }
}

TEST_CASE("a connection string with a NUL byte is refused, not read cut short", "[postgresql][bad_input]") {
    const std::string text = open_error("host=127.0.0.1 password=" + std::string("abc\0", 4) + secret);
    CHECK(text.find("NUL byte") != std::string::npos);
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find("abc") == std::string::npos);
}

TEST_CASE("an unknown connection parameter is refused before any connection is tried", "[postgresql][bad_input]") {
    const std::string text = open_error("host=127.0.0.1 port=1 colour=blue");
    CHECK(text.find("malformed") != std::string::npos);
    CHECK(text.find("invalid connection option") != std::string::npos);
}

TEST_CASE("a keyword missing its value is named in the error", "[postgresql][bad_input]") {
    CHECK(open_error("host=127.0.0.1 port").find("missing \"=\" after \"port\"") != std::string::npos);
}

TEST_CASE("an unreachable server is a connection_error naming host and port, without the password",
          "[postgresql][bad_input]") {
    const int closed = sertx::test::free_loopback_port();  // nothing listens there
    const std::string text = open_error("host=127.0.0.1 port=" + std::to_string(closed) +
                                        " user=postgres dbname=app connect_timeout=5 password=" + secret);
    CHECK(text.rfind("sertx: cannot connect to PostgreSQL", 0) == 0);
    CHECK(text.find("host=127.0.0.1") != std::string::npos);
    CHECK(text.find("port=" + std::to_string(closed)) != std::string::npos);
    CHECK(text.find(secret) == std::string::npos);
}

TEST_CASE("a wrong password is a connection_error that shows neither password, and the right one connects",
          "[postgresql][bad_input]") {
    SERTX_REQUIRE_PG_SERVER();
    sertx::test::pg_server server(sertx::test::pg_server_options{"scram-sha-256", secret, {}});
    const std::string wrong = "Wr0ngPassw0rd";

    for (const std::string& conninfo :
         {server.conninfo("postgres", false) + " password=" + wrong,
          "postgresql://postgres:" + wrong + "@127.0.0.1:" + std::to_string(server.port()) + "/postgres?sslmode=disable"}) {
        const std::string text = open_error(conninfo);
        CHECK(text.find("password authentication failed") != std::string::npos);
        CHECK(text.find(wrong) == std::string::npos);
        CHECK(text.find(secret) == std::string::npos);
    }
    CHECK(open_error(server.conninfo("postgres", false)).find(secret) == std::string::npos);  // none given

    auto db = sertx::postgresql::open(server.conninfo());
    CHECK(sertx::transact(db, [](auto& tx) {
              int one = 0;
              tx.sql() << "select 1", soci::into(one);
              return one;
          }) == 1);
}

SERTX_BAD_INPUT_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("a database with synchronous_commit off is refused with durability_error", "[postgresql][bad_input]") {
    SERTX_REQUIRE_PG(pg);
    pg_admin_exec(sertx::test::pg_admin(), "alter database " + pg.name() + " set synchronous_commit = off");
    try {
        sertx::postgresql::open(pg.conninfo());
        FAIL("synchronous_commit=off was accepted");
    } catch (const sertx::durability_error& e) {
        CHECK(std::string(e.what()).find("synchronous_commit=off") != std::string::npos);
        CHECK(std::string(e.what()).find("accept_weaker_durability") != std::string::npos);
    }
}

TEST_CASE("synchronous_commit off is accepted when the caller says so, and stats say it is not durable",
          "[postgresql][bad_input]") {
    SERTX_REQUIRE_PG(pg);
    pg_admin_exec(sertx::test::pg_admin(), "alter database " + pg.name() + " set synchronous_commit = off");
    auto db = sertx::postgresql::open(pg.conninfo(), {.accept_weaker_durability = true});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t (x int)"; });
    CHECK_FALSE(db.stats().durable);
}

TEST_CASE("a server with fsync or full_page_writes off is refused with durability_error", "[postgresql][bad_input]") {
    SERTX_REQUIRE_PG_SERVER();
    sertx::test::pg_server server(sertx::test::pg_server_options{"trust", "", {"fsync = off"}});
    try {
        sertx::postgresql::open(server.conninfo());
        FAIL("fsync=off was accepted");
    } catch (const sertx::durability_error& e) {
        CHECK(std::string(e.what()).find("fsync=off") != std::string::npos);
    }
    auto weak = sertx::postgresql::open(server.conninfo(), {.accept_weaker_durability = true});
    CHECK_FALSE(weak.stats().durable);

    pg_admin_exec(server.conninfo(), "alter system set fsync = on");
    pg_admin_exec(server.conninfo(), "alter system set full_page_writes = off");
    pg_admin_exec(server.conninfo(), "select pg_reload_conf()");
    // The reload is asynchronous: wait, bounded, until the server shows it.
    REQUIRE(sertx::test::wait_until(
        [&] { return sertx::test::pg_admin_value(server.conninfo(), "show full_page_writes") == "off"; },
        std::chrono::seconds(30), std::chrono::milliseconds(20)));
    try {
        sertx::postgresql::open(server.conninfo());
        FAIL("full_page_writes=off was accepted");
    } catch (const sertx::durability_error& e) {
        CHECK(std::string(e.what()).find("full_page_writes=off") != std::string::npos);
    }
}

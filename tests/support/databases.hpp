// SPDX-License-Identifier: BSL-1.0
#pragma once
// Where the tests' databases come from: a fresh PostgreSQL database per test
// case on the server named by SERTX_PG (scripts/test starts a throwaway one),
// and a fresh SQLite file per test case in a temporary directory.

#include "catch.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace sertx::test {

/// The admin connection string of the test server, or empty.
inline std::string pg_admin() {
    const char* v = std::getenv("SERTX_PG");
    return v ? v : "";
}

inline bool postgres_required() {
    const char* v = std::getenv("SERTX_REQUIRE_POSTGRES");
    return v && std::string(v) == "1";
}

/// Runs one statement on a fresh libpq connection; throws with the server's message.
inline void pg_admin_exec(const std::string& conninfo, const std::string& sql) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error("test: cannot connect: " + std::string(PQerrorMessage(c.get())));
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        throw std::runtime_error("test: " + sql + ": " + PQresultErrorMessage(r.get()));
}

/// Runs a query returning one value on a fresh libpq connection.
inline std::string pg_admin_value(const std::string& conninfo, const std::string& sql) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error("test: cannot connect: " + std::string(PQerrorMessage(c.get())));
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1)
        throw std::runtime_error("test: " + sql + ": " + PQresultErrorMessage(r.get()));
    return PQgetisnull(r.get(), 0, 0) ? "" : PQgetvalue(r.get(), 0, 0);
}

inline std::string unique_suffix() {
    static std::atomic<unsigned> n{0};
    std::random_device rd;
    return std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" + std::to_string(rd() % 100000);
}

/// A database created for one test case and dropped after it.
class pg_database {
public:
    pg_database() : name_("sertx_t_" + unique_suffix()) {
        pg_admin_exec(pg_admin(), "create database " + name_);
    }
    ~pg_database() {
        try {
            pg_admin_exec(pg_admin(), "drop database if exists " + name_ + " with (force)");
        } catch (...) {
        }
    }
    pg_database(const pg_database&) = delete;
    pg_database& operator=(const pg_database&) = delete;

    const std::string& name() const { return name_; }
    /// The admin connection string with dbname replaced.
    std::string conninfo() const { return pg_admin() + " dbname=" + name_; }

private:
    std::string name_;
};

/// For a PostgreSQL test case: a fresh database, or a skip (SERTX_SKIP:
/// counted, never a pass), or a failure when SERTX_REQUIRE_POSTGRES=1, as in
/// CI: tests that claim a database behaviour never pass without one.
#define SERTX_REQUIRE_PG(var)                                                                  \
    if (::sertx::test::pg_admin().empty()) {                                                   \
        if (::sertx::test::postgres_required()) FAIL("SERTX_PG is not set but SERTX_REQUIRE_POSTGRES=1"); \
        SERTX_SKIP("SERTX_PG not set: no PostgreSQL server to test against");                  \
    }                                                                                          \
    ::sertx::test::pg_database var

/// A temporary directory removed with everything in it at the end of the test case.
class temp_dir {
public:
    temp_dir() {
        auto base = std::filesystem::temp_directory_path() / ("sertx_t_" + unique_suffix());
        std::filesystem::create_directories(base);
        path_ = base;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace sertx::test

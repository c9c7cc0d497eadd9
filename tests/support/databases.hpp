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

/// What every backend fixture of a case shared by both backends
/// (support/*_cases.hpp) says about its backend: its name, for messages, and
/// whether it can be tested here. A family's fixture (defined in the
/// backend's test file, with the family's backend-specific expectations)
/// derives from one of these.
///
/// Where the shared cases are registered: each support/<family>_cases.hpp
/// ends with a macro, SERTX_<FAMILY>_CASES(Fixture, "[backend tag]"), that
/// holds the family's TEMPLATE_TEST_CASE list, and each backend's test file
/// calls it once with its fixture. A case added to the list runs on both
/// backends; the executables, ctest names ("<folder>/<file>: <case> -
/// <Fixture>") and labels stay per backend, as CI and the sanitizer passes
/// select them; no new folder or CMake change is needed. Backend-specific
/// cases stay in their backend's file.
struct sqlite3_backend {
    static constexpr const char* name = "SQLite";
    /// Why the backend cannot be tested here; empty when it can.
    static std::string unavailable() { return {}; }
    /// Whether being unavailable is a failure rather than a skip.
    static bool required() { return true; }
};

struct postgresql_backend {
    static constexpr const char* name = "PostgreSQL";
    static std::string unavailable() {
        return pg_admin().empty() ? "SERTX_PG not set: no PostgreSQL server to test against" : "";
    }
    /// CI sets SERTX_REQUIRE_POSTGRES=1: tests that claim a database
    /// behaviour never pass without one.
    static bool required() { return postgres_required(); }
};

/// First line of a test case for `Backend` (a fixture deriving from one of
/// the above): a skip (SERTX_SKIP: counted, never a pass) when the backend
/// cannot be tested here, or a failure when it is required.
#define SERTX_REQUIRE_BACKEND(Backend)                                                                       \
    if (const std::string sertx_unavailable_ = Backend::unavailable(); !sertx_unavailable_.empty()) {        \
        if (Backend::required()) FAIL(sertx_unavailable_ << ", but SERTX_REQUIRE_POSTGRES=1");               \
        SERTX_SKIP(sertx_unavailable_);                                                                      \
    }

/// For a PostgreSQL test case: a fresh database, or a skip (SERTX_SKIP:
/// counted, never a pass), or a failure when SERTX_REQUIRE_POSTGRES=1, as in
/// CI: tests that claim a database behaviour never pass without one.
#define SERTX_REQUIRE_PG(var)                                \
    SERTX_REQUIRE_BACKEND(::sertx::test::postgresql_backend) \
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

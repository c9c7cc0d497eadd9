// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

using sertx::test::temp_dir;

namespace {
// SOCI's header declares SQLite's C API inside namespace sqlite_api.
using namespace sqlite_api;

std::string pragma(const std::string& path, const std::string& sql) {
    sqlite_api::sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}
}  // namespace

TEST_CASE("a SQLite database is opened in WAL mode with synchronous FULL, read back", "[sqlite3]") {
    temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("app.db"));
    int sync = -1, fk = -1, busy = -1;
    std::string mode;
    sertx::transact(db, [&](auto& tx) {
        tx.sql() << "PRAGMA journal_mode", soci::into(mode);
        tx.sql() << "PRAGMA synchronous", soci::into(sync);
        tx.sql() << "PRAGMA foreign_keys", soci::into(fk);
        tx.sql() << "PRAGMA busy_timeout", soci::into(busy);
    });
    CHECK(mode == "wal");
    CHECK(sync == 2);
    CHECK(fk == 1);
    CHECK(busy == 5000);
    CHECK(pragma(dir.file("app.db"), "PRAGMA journal_mode") == "wal");  // persistent in the file
    CHECK(db.stats().durable);
}

TEST_CASE("a path with spaces is opened as given", "[sqlite3]") {
    temp_dir dir;
    const std::string path = dir.file("my ledger db.sqlite");
    auto db = sertx::sqlite3::open(path);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t(x integer)"; });
    CHECK(std::filesystem::exists(path));
}

TEST_CASE("a path with a double quote is refused with a clear error", "[sqlite3]") {
    temp_dir dir;
    const std::string path = dir.file("my \"ledger\".db");
    try {
        sertx::sqlite3::open(path);
        FAIL("opened");
    } catch (const sertx::connection_error& e) {
        CHECK(std::string(e.what()).rfind("sertx: SQLite path", 0) == 0);
    }
}

TEST_CASE("an in-memory SQLite database works and says it is not durable", "[sqlite3]") {
    auto db = sertx::sqlite3::open(":memory:", {.pool_size = 1});
    const int v = sertx::transact(db, [](auto& tx) {
        int x = 0;
        tx.sql() << "select 41 + 1", soci::into(x);
        return x;
    });
    CHECK(v == 42);
    CHECK_FALSE(db.stats().durable);
}

TEST_CASE("a file that is not a SQLite database is refused with a clear error naming it", "[sqlite3]") {
    temp_dir dir;
    const std::string path = dir.file("corrupt.db");
    {
        std::ofstream f(path, std::ios::binary);
        for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 7919) & 0xff));
    }
    try {
        sertx::sqlite3::open(path);
        FAIL("a corrupt file was opened");
    } catch (const sertx::connection_error& e) {
        const std::string what = e.what();
        CHECK(what.rfind("sertx:", 0) == 0);
        CHECK(what.find(path) != std::string::npos);
        CHECK(what.find("not a SQLite database") != std::string::npos);
    }
}

TEST_CASE("a read-only SQLite file is refused with a clear error naming it", "[sqlite3]") {
    temp_dir dir;
    const std::string path = dir.file("ro.db");
    sertx::sqlite3::open(path);  // create it, in WAL mode
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                                           std::filesystem::perms::others_read);
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                                 std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                                 std::filesystem::perms::others_exec);
    // root ignores file permissions: check as an unprivileged user in a child process
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) _exit(3);
        try {
            sertx::sqlite3::open(path);
            _exit(1);  // opened: wrong
        } catch (const sertx::connection_error& e) {
            const std::string what = e.what();
            const bool clear = what.rfind("sertx:", 0) == 0 && what.find(path) != std::string::npos &&
                               (what.find("read-only") != std::string::npos || what.find("cannot be written") != std::string::npos);
            _exit(clear ? 0 : 2);
        } catch (...) {
            _exit(4);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

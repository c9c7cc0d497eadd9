// SPDX-License-Identifier: BSL-1.0
// Hostile and mistaken input on SQLite: paths that cannot be a database,
// idempotency keys and migration names with quotes, NUL bytes and great
// lengths, and a file system on which SQLite cannot keep its WAL.
#include "support/bad_input_cases.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <filesystem>
#include <map>
#include <string>

using sertx::test::temp_dir;

namespace {

std::string open_error(const std::string& path) {
    try {
        sertx::sqlite3::open(path);
    } catch (const sertx::connection_error& e) {
        return e.what();
    }
    FAIL("sertx::sqlite3::open(\"" << path << "\") did not throw connection_error");
    return {};
}

/// For the duration of a test, SQLite's default file system is one without
/// shared memory (as some network file systems are), where WAL cannot work:
/// the default VFS, whose files report version-1 I/O methods (no xShmMap).
class no_shared_memory_vfs {
public:
    no_shared_memory_vfs() : original_(sqlite_api::sqlite3_vfs_find(nullptr)), copy_(*original_) {
        copy_.zName = "sertx-test-no-shm";
        copy_.pAppData = this;
        copy_.xOpen = &open;
        REQUIRE(sqlite_api::sqlite3_vfs_register(&copy_, 1) == SQLITE_OK);
    }
    ~no_shared_memory_vfs() {
        sqlite_api::sqlite3_vfs_register(original_, 1);
        sqlite_api::sqlite3_vfs_unregister(&copy_);
    }
    no_shared_memory_vfs(const no_shared_memory_vfs&) = delete;
    no_shared_memory_vfs& operator=(const no_shared_memory_vfs&) = delete;

private:
    static int open(sqlite_api::sqlite3_vfs* vfs, const char* name, sqlite_api::sqlite3_file* file, int flags,
                    int* out_flags) {
        auto& self = *static_cast<no_shared_memory_vfs*>(vfs->pAppData);
        // The wrapped VFS reads its own pAppData: call it through itself.
        const int rc = self.original_->xOpen(self.original_, name, file, flags, out_flags);
        if (rc == SQLITE_OK && file->pMethods) {
            auto& methods = self.methods_[file->pMethods];
            methods = *file->pMethods;
            methods.iVersion = 1;
            file->pMethods = &methods;
        }
        return rc;
    }

    sqlite_api::sqlite3_vfs* original_;
    sqlite_api::sqlite3_vfs copy_;
    std::map<const sqlite_api::sqlite3_io_methods*, sqlite_api::sqlite3_io_methods> methods_;
};

/// A fresh, empty SQLite file, as support/bad_input_cases.hpp uses it.
struct SQLite : sertx::test::sqlite3_backend {
    temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("app.db"));
};

}  // namespace

TEST_CASE("a path in a directory that does not exist is a connection_error naming it", "[sqlite3][bad_input]") {
    temp_dir dir;
    const std::string path = dir.file("missing/dir/app.db");
    const std::string text = open_error(path);
    CHECK(text.rfind("sertx:", 0) == 0);
    CHECK(text.find(path) != std::string::npos);
}

TEST_CASE("a directory given as the database is a connection_error naming it", "[sqlite3][bad_input]") {
    temp_dir dir;
    const std::string text = open_error(dir.path().string());
    CHECK(text.rfind("sertx:", 0) == 0);
    CHECK(text.find(dir.path().string()) != std::string::npos);
}

TEST_CASE("a path with a NUL byte is refused, not cut short at it", "[sqlite3][bad_input]") {
    temp_dir dir;
    const std::string cut = dir.file("app");
    const std::string text = open_error(cut + std::string("\0.db", 4));
    CHECK(text.find("NUL") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(cut));  // no database was made under the shorter name
}

SERTX_BAD_INPUT_CASES(SQLite, "[sqlite3]")

TEST_CASE("a file system where SQLite cannot keep a WAL is refused with durability_error", "[sqlite3][bad_input]") {
    temp_dir dir;
    no_shared_memory_vfs no_wal;
    try {
        sertx::sqlite3::open(dir.file("app.db"));
        FAIL("a database outside WAL mode was accepted");
    } catch (const sertx::durability_error& e) {
        CHECK(std::string(e.what()).find("WAL") != std::string::npos);
        CHECK(std::string(e.what()).find("accept_weaker_durability") != std::string::npos);
    }
}

TEST_CASE("a database outside WAL mode is accepted when the caller says so, and stats say it is not durable",
          "[sqlite3][bad_input]") {
    temp_dir dir;
    no_shared_memory_vfs no_wal;
    auto db = sertx::sqlite3::open(dir.file("app.db"), {.accept_weaker_durability = true});
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t (x int)"; });
    CHECK_FALSE(db.stats().durable);
}

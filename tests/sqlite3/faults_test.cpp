// SPDX-License-Identifier: BSL-1.0
// Real faults under load on SQLite: another process holding the write lock
// longer than the busy timeout. The soak of sixteen writers is in
// faults_soak_test.cpp.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/fault_load.hpp"
#include "support/keyed_bank.hpp"
#include "support/wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace keyed_bank = sertx::test::keyed_bank;
using sertx::test::temp_dir;
using namespace std::chrono_literals;

namespace {

/// A child process that takes SQLite's write lock on `path` (BEGIN
/// IMMEDIATE), says so, holds it until release() (or `longest`, so that a
/// test that fails early leaves no process holding the lock), then commits
/// and exits. The test lets go when what it waits for has happened, not
/// after a guessed time.
class lock_holder {
public:
    explicit lock_holder(const std::string& path, std::chrono::milliseconds longest = 60s) {
        int ready[2], release[2];
        REQUIRE(::pipe(ready) == 0);
        REQUIRE(::pipe(release) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(ready[0]);
            ::close(release[1]);
            sqlite_api::sqlite3* db = nullptr;
            if (sqlite_api::sqlite3_open(path.c_str(), &db) != SQLITE_OK ||
                sqlite_api::sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
                ::_exit(2);
            const char byte = 'L';
            if (::write(ready[1], &byte, 1) != 1) ::_exit(3);
            pollfd told{release[0], POLLIN, 0};
            ::poll(&told, 1, static_cast<int>(longest.count()));  // a byte, the parent gone, or `longest`
            const int rc = sqlite_api::sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
            sqlite_api::sqlite3_close(db);
            ::_exit(rc == SQLITE_OK ? 0 : 4);
        }
        ::close(ready[1]);
        ::close(release[0]);
        release_ = release[1];
        char byte = 0;
        const bool locked = ::read(ready[0], &byte, 1) == 1;
        ::close(ready[0]);
        REQUIRE(locked);
    }
    ~lock_holder() { wait(); }
    lock_holder(const lock_holder&) = delete;
    lock_holder& operator=(const lock_holder&) = delete;

    /// Tells the child to commit and let go of the lock.
    void release() {
        if (release_ >= 0) {
            const char byte = 'R';
            (void)!::write(release_, &byte, 1);
            ::close(release_);
            release_ = -1;
        }
    }

    /// Releases the lock and returns the child's exit status once it has let go.
    int wait() {
        release();
        if (pid_ > 0) {
            ::waitpid(pid_, &status_, 0);
            pid_ = -1;
        }
        return status_;
    }

private:
    pid_t pid_ = -1;
    int release_ = -1;
    int status_ = -1;
};

std::string integrity(sertx::sqlite3::database& db) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        std::string ok;
        tx.sql() << "PRAGMA integrity_check", soci::into(ok);
        return ok;
    });
}

}  // namespace

TEST_CASE("a writer blocked longer than busy_timeout by another process gives up with busy and changes nothing",
          "[sqlite3][faults]") {
    temp_dir dir;
    const keyed_bank::workload one{.accounts = 2, .writers = 1, .transfers_per_writer = 0, .opening_balance = 1000};
    auto db = sertx::sqlite3::open(dir.file("bank.db"), {.busy_timeout = 100ms});
    keyed_bank::open(db, one);

    // Held until the writer has given up: all three attempts meet the lock.
    lock_holder holder(dir.file("bank.db"));
    try {
        sertx::transact<sertx::policy<sertx::max_attempts<3>, sertx::no_backoff>>(
            db, sertx::idempotency_key{keyed_bank::key_of(1)},
            [](auto& tx) { return keyed_bank::transfer_body(tx, 1, 0, 1, 10); });
        FAIL("a transfer went through another process's write lock");
    } catch (const sertx::retries_exhausted& e) {
        CHECK(e.last_failure() == sertx::failure::busy);
        CHECK(e.attempts() == 3);
    }
    CHECK(holder.wait() == 0);
    const auto books = keyed_bank::read_books(db, one);
    CHECK(books.transfers.empty());
    CHECK(books.keys.empty());
    CHECK(integrity(db) == "ok");
}

TEST_CASE("a writer whose deadline outlasts another process's write lock waits for it and commits",
          "[sqlite3][faults]") {
    temp_dir dir;
    const keyed_bank::workload one{.accounts = 2, .writers = 1, .transfers_per_writer = 0, .opening_balance = 1000};
    auto db = sertx::sqlite3::open(dir.file("bank.db"), {.busy_timeout = 100ms});
    keyed_bank::open(db, one);

    // Held until the writer has been turned away twice (two busy timeouts
    // outlasted), then released while the writer is still inside transact.
    lock_holder holder(dir.file("bank.db"));
    bool turned_away = false;
    std::jthread releaser([&] {  // joined on the way out, even if transact throws
        turned_away = sertx::test::wait_until([&] { return db.stats().retries_of(sertx::failure::busy) >= 2; }, 60s);
        holder.release();
    });
    const auto moved = sertx::transact<sertx::policy<sertx::max_attempts<10'000>, sertx::deadline<30'000>>>(
        db, sertx::idempotency_key{keyed_bank::key_of(1)},
        [](auto& tx) { return keyed_bank::transfer_body(tx, 1, 0, 1, 10); });
    releaser.join();
    CHECK(turned_away);
    CHECK(moved == std::optional<bool>{true});
    CHECK(db.stats().retries_of(sertx::failure::busy) > 0);
    CHECK(holder.wait() == 0);
    CHECK(keyed_bank::read_books(db, one).transfers == std::set<long long>{1});
    CHECK(integrity(db) == "ok");
}

// SPDX-License-Identifier: BSL-1.0
// Client crashes on SQLite: a load generator killed with SIGKILL twenty times
// in a row, each restart beginning with recover(). Every acknowledged
// transfer survives exactly once, the file stays intact, and no effect is
// performed twice.
#include "support/catch.hpp"
#include "support/crash_load.hpp"
#include "support/databases.hpp"
#include "support/keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

namespace crash = sertx::test::crash;
namespace keyed_bank = sertx::test::keyed_bank;

TEST_CASE("a load generator killed twenty times loses no acknowledged transfer and performs no effect twice",
          "[sqlite3][faults][crash]") {
    sertx::test::temp_dir dir;
    const keyed_bank::workload w{.accounts = 10, .writers = 1, .transfers_per_writer = 0, .opening_balance = 1000};
    const std::string path = dir.file("bank.db"), acks = dir.file("acks.log"), calls = dir.file("calls.log");
    {
        auto db = sertx::sqlite3::open(path);
        keyed_bank::open(db, w);
    }  // closed before any fork: a child must not inherit an open SQLite connection

    const auto kills = crash::kill_repeatedly([&] { return sertx::sqlite3::open(path, {.pool_size = 2}); }, w, 20, acks, calls);
    CHECK(kills.child_failure.empty());
    CHECK(kills.kills == 20);

    auto db = sertx::sqlite3::open(path);
    std::string errors;
    keyed_bank::answers answers;
    crash::read_acks(acks, answers, errors);
    CHECK(errors.empty());
    const auto verdict = keyed_bank::audit(db, w, answers);
    const auto effects = crash::settle_and_check(db, w, calls);
    std::string integrity;
    sertx::transact(db, [&](auto& tx) { tx.sql() << "PRAGMA integrity_check", soci::into(integrity); });

    INFO(verdict.describe() << "\n" << effects.describe() << "\n" << errors);
    CHECK(verdict.holds());
    CHECK(effects.holds());
    CHECK(answers.acknowledged() > 0);
    CHECK(effects.intents > 0);
    CHECK(integrity == "ok");
    WARN("SQLite client crashes: " << kills.kills << " SIGKILLs; " << answers.acknowledged()
                                   << " acknowledged transfers all present once; " << effects.intents
                                   << " effects, none performed twice, " << effects.in_doubt
                                   << " left in doubt by a kill and settled by hand; integrity_check " << integrity);
}

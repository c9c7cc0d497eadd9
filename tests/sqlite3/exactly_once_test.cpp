// SPDX-License-Identifier: BSL-1.0
// Idempotency keys, install and the effect journal on a SQLite file.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>
#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

namespace {

/// A fresh SQLite file, as support/exactly_once.hpp uses it.
struct SQLite : sertx::test::sqlite3_backend {
    sertx::test::temp_dir dir;
    sertx::sqlite3::database db = sertx::sqlite3::open(dir.file("eo.db"), {.pool_size = 8});
};

}  // namespace

SERTX_EXACTLY_ONCE_CASES(SQLite, "[sqlite3]")

// The key's insert is a statement the connection keeps (issue 15): it runs
// only inside the transaction it belongs to, never in autocommit mode.
TEST_CASE("a keyed body that ends SQLite's transaction itself commits neither its changes nor its key",
          "[sqlite3][exactly_once]") {
    SQLite f;
    sertx::install(f.db);
    sertx::transact(f.db, [](auto& tx) { tx.sql() << "create table t (v integer)"; });
    CHECK_THROWS_AS(sertx::transact(f.db, sertx::idempotency_key{"ended-by-the-body"},
                                    [](auto& tx) {
                                        tx.sql() << "insert into t values (1)";
                                        tx.sql() << "rollback";
                                    }),
                    sertx::database_error);
    // Not written: the same key runs its body, and commits, once.
    CHECK(sertx::transact(f.db, sertx::idempotency_key{"ended-by-the-body"},
                          [](auto& tx) { tx.sql() << "insert into t values (2)"; }));
    CHECK_FALSE(sertx::transact(f.db, sertx::idempotency_key{"ended-by-the-body"},
                                [](auto& tx) { tx.sql() << "insert into t values (3)"; }));
    int rows = 0, last = 0;
    sertx::transact(f.db, [&](auto& tx) {
        tx.sql() << "select count(*), coalesce(max(v), 0) from t", soci::into(rows), soci::into(last);
    });
    CHECK(rows == 1);
    CHECK(last == 2);
}

// The intent's INSERT is a statement the connection keeps (issue 15):
// prepared at the first intent, run again for the next ones, which it
// writes as schedule would.
TEST_CASE("a connection prepares the journal's INSERT once and runs it for every intent", "[sqlite3][effects]") {
    sertx::test::temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("kept.db"), {.pool_size = 1});  // one connection: every call shares it
    sertx::install(db);
    sertx::effects journal(db);
    const auto kept_inserts = [&] {
        auto lease = db.acquire(std::chrono::steady_clock::time_point::max());
        int n = 0;
        for (auto* s = sqlite_api::sqlite3_next_stmt(lease.connection().native_handle(), nullptr); s;
             s = sqlite_api::sqlite3_next_stmt(lease.connection().native_handle(), s))
            n += std::string_view(sqlite_api::sqlite3_sql(s)).starts_with("insert into sertx_effect");
        return n;
    };
    CHECK(kept_inserts() == 0);
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<sertx::test::pay>(tx, "a", "first");
        journal.template schedule<sertx::test::pay>(tx, "a", "second");  // the same key: the first is kept
    });
    CHECK(kept_inserts() == 1);
    sertx::transact(db, [&](auto& tx) {
        CHECK(journal.template schedule<sertx::test::pay>(tx, "b", "third"));  // asked: written at once
        CHECK_FALSE(journal.template schedule<sertx::test::pay>(tx, "a", "fourth"));
    });
    CHECK(kept_inserts() == 1);
    const auto a = journal.find("a"), b = journal.find("b");
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->payload == "first");
    CHECK(a->operation == "pay");
    CHECK(b->payload == "third");
    CHECK(journal.pending().size() == 2);
}

TEST_CASE("install drops the journal's index on scheduled_at that an older sertx made", "[sqlite3][effects]") {
    sertx::test::temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("queue.db"), {.pool_size = 1});
    sertx::install(db);
    const std::string queue_index = "select count(*) from sqlite_master where type = 'index' and name = "
                                    "'sertx_effect_queue'";
    CHECK(sertx::test::count(db, queue_index) == 0);
    sertx::test::exec(db, "create index sertx_effect_queue on sertx_effect (operation, state, scheduled_at)");
    sertx::install(db);
    CHECK(sertx::test::count(db, queue_index) == 0);
    CHECK(sertx::test::count(db, "select count(*) from sqlite_master where type = 'index' and name = "
                                 "'sertx_effect_due'") == 1);
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<sertx::test::pay>(tx, "a", "first"); });
    sertx::test::call_log log;
    CHECK(journal.dispatch(sertx::test::pay{&log}, 10).done == 1);
    CHECK(log.calls("first") == 1);
}

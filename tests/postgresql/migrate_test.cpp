// SPDX-License-Identifier: BSL-1.0
// Schema migrations on PostgreSQL: all or nothing per migration, serialized
// between processes, refused when the database disagrees with the code.
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace {

using sertx::test::pg_admin_value;

#if defined(SERTX_CATCH2_V3)
auto has_text(const std::string& part) { return Catch::Matchers::ContainsSubstring(part); }
#else
auto has_text(const std::string& part) { return Catch::Matchers::Contains(part); }
#endif

// The public schema's relations, columns and functions, and the rows of
// sertx_schema, read from the catalog on a connection of its own: equal text
// before and after means nothing changed.
std::string catalog(const std::string& conninfo) {
    return pg_admin_value(conninfo, R"(
        select coalesce(string_agg(entry, E'\n' order by entry), '') from (
          select 'relation ' || c.relname || ' ' || c.relkind::text from pg_catalog.pg_class c
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
          union all
          select 'column ' || table_name || '.' || column_name || ' ' || data_type
            from information_schema.columns where table_schema = 'public'
          union all
          select 'function ' || p.proname from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'
          union all
          select 'row ' || version || ' ' || name || ' ' || checksum || ' ' || applied_at from sertx_schema
        ) entries (entry))");
}

std::string checksum_in_code(const std::vector<sertx::migration>& code, std::size_t index) {
    return sertx::detail::prepare_migrations(code, sertx::detail::sql_dialect::postgresql).at(index).checksum;
}

const std::vector<sertx::migration> accounts = {
    {1, "accounts", "create table account (id bigint primary key, balance bigint not null check (balance >= 0))"},
    {2, "opening balances", "insert into account values (1, 100), (2, 50)"},
};

// Runs child(start) in two processes. start() returns once both have called
// it, so that they migrate at the same moment. Returns each exit code: what
// the child returned, 100 when it threw.
template <class Child>
std::vector<int> in_two_processes(Child child) {
    int ready[2], go[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < 2; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            ::close(go[1]);
            int code = 100;
            try {
                code = child([&] {
                    char c = 1;
                    (void)!::write(ready[1], &c, 1);
                    ::close(ready[1]);  // so that a sibling that died early cannot hang the parent
                    (void)!::read(go[0], &c, 1);
                });
            } catch (const std::exception& e) {
                std::fprintf(stderr, "migrator %d: %s\n", i, e.what());
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    for (int i = 0; i < 2 && ::read(ready[0], &c, 1) == 1; ++i) {
    }
    (void)!::write(go[1], "gg", 2);
    ::close(go[1]);
    ::close(ready[0]);
    std::vector<int> codes;
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return codes;
}

}  // namespace

TEST_CASE("migrate applies each migration once with its version row, then nothing", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 2});
    const auto before = std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now());
    const auto applied = sertx::migrate(db, accounts);
    const auto after = std::chrono::system_clock::now();
    REQUIRE(applied.size() == 2);
    CHECK(applied[0].version == 1);
    CHECK(applied[1].version == 2);

    const sertx::schema_status status = sertx::migration_status(db);
    REQUIRE(status.applied.size() == 2);
    CHECK(status.version() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(status.applied[i].version == accounts[i].version);
        CHECK(status.applied[i].name == accounts[i].name);
        CHECK(status.applied[i].checksum == applied[i].checksum);
        CHECK(status.applied[i].applied_at >= before);
        CHECK(status.applied[i].applied_at <= after);
    }

    CHECK(sertx::migrate(db, accounts).empty());
    CHECK(pg_admin_value(pg.conninfo(), "select count(*) || ' ' || sum(balance) from account") == "2 150");
}

TEST_CASE("migration_status reports applied and pending migrations", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    CHECK(sertx::migration_status(db).applied.empty());
    CHECK(sertx::migration_status(db).version() == 0);
    sertx::migrate(db, std::span(accounts).first(1));

    const sertx::schema_status status = sertx::migration_status(db, accounts);
    REQUIRE(status.applied.size() == 1);
    CHECK(status.applied[0].name == "accounts");
    CHECK(status.applied[0].checksum == checksum_in_code(accounts, 0));
    REQUIRE(status.pending.size() == 1);
    CHECK(status.pending[0].version == 2);
    CHECK(status.pending[0].checksum == checksum_in_code(accounts, 1));
    CHECK(status.problems.empty());
    CHECK(sertx::migration_status(db).pending.empty());  // without the code nothing is pending
}

TEST_CASE("the dry run reports what would be applied and changes nothing", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    const auto plan = sertx::migrate(db, accounts, sertx::dry_run);
    REQUIRE(plan.size() == 2);
    CHECK(plan[0].statements == std::vector<std::string>{accounts[0].sql});
    CHECK(pg_admin_value(pg.conninfo(), "select coalesce(to_regclass('sertx_schema')::text, 'none')") == "none");
    CHECK(pg_admin_value(pg.conninfo(), "select coalesce(to_regclass('account')::text, 'none')") == "none");

    sertx::migrate(db, std::span(accounts).first(1));
    const std::string catalog_before = catalog(pg.conninfo());
    const auto rest = sertx::migrate(db, accounts, sertx::dry_run);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].version == 2);
    CHECK(catalog(pg.conninfo()) == catalog_before);
}

TEST_CASE("a migration whose third statement fails is rolled back whole, and the error names it",
          "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    sertx::migrate(db, accounts);
    const std::string catalog_before = catalog(pg.conninfo());

    std::vector<sertx::migration> code = accounts;
    code.push_back({3, "ledger",
                    "create table ledger (account bigint not null references account (id), amount bigint not null);\n"
                    "create index ledger_account on ledger (account);\n"
                    "insert into missing_table values (1);\n"
                    "create table never_created (x int);"});
    try {
        sertx::migrate(db, code);
        FAIL("migrate did not throw");
    } catch (const sertx::migration_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what, Catch::Matchers::StartsWith("sertx: migration 3 'ledger'"));
        CHECK_THAT(what, has_text("statement 3 of 4 (`insert into missing_table values (1)`)"));
        CHECK_THAT(what, has_text("relation \"missing_table\" does not exist"));
        try {
            std::rethrow_if_nested(e);
            FAIL("no nested database error");
        } catch (const sertx::database_error& cause) {
            CHECK(cause.code() == "42P01");
        }
    }
    CHECK(catalog(pg.conninfo()) == catalog_before);
    CHECK(sertx::migration_status(db).version() == 2);

    code[2].sql = "create table ledger (account bigint not null references account (id), amount bigint not null)";
    CHECK(sertx::migrate(db, code).size() == 1);  // the failed attempt left no row behind
}

TEST_CASE("an applied migration whose checksum changed is refused, and nothing is applied", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    sertx::migrate(db, accounts);
    const std::string catalog_before = catalog(pg.conninfo());
    const std::string stored = sertx::migration_status(db).applied.at(1).checksum;

    std::vector<sertx::migration> code = accounts;
    code[1].sql = "insert into account values (1, 100), (2, 60)";
    code.push_back({3, "later", "create table later (x int)"});
    const std::string now = checksum_in_code(code, 1);
    REQUIRE(now != stored);
    for (bool dry : {false, true}) {
        try {
            if (dry)
                sertx::migrate(db, code, sertx::dry_run);
            else
                sertx::migrate(db, code);
            FAIL("migrate did not refuse");
        } catch (const sertx::migration_error& e) {
            const std::string what = e.what();
            INFO(what);
            CHECK_THAT(what, Catch::Matchers::StartsWith("sertx: migrate refused"));
            CHECK_THAT(what, has_text("migration 2 'opening balances' was applied with checksum " + stored));
            CHECK_THAT(what, has_text("now has checksum " + now));
            CHECK_THAT(what, has_text("Nothing was applied"));
        }
    }
    CHECK(catalog(pg.conninfo()) == catalog_before);
    const auto status = sertx::migration_status(db, code);
    CHECK(status.problems.size() == 1);
    CHECK(status.pending.size() == 1);
}

TEST_CASE("a database newer than the code is refused, and nothing is applied", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    std::vector<sertx::migration> newer = accounts;
    newer.push_back({3, "ledger", "create table ledger (amount bigint)"});
    sertx::migrate(db, newer);
    const std::string catalog_before = catalog(pg.conninfo());

    std::vector<sertx::migration> older = accounts;
    try {
        sertx::migrate(db, older);
        FAIL("migrate did not refuse");
    } catch (const sertx::migration_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what, has_text("migration 3 'ledger' (checksum " + checksum_in_code(newer, 2) + ") is applied"));
        CHECK_THAT(what, has_text("newest migration this code knows is 2"));
        CHECK_THAT(what, has_text("newer than the code"));
    }
    CHECK(catalog(pg.conninfo()) == catalog_before);
}

TEST_CASE("versions that do not strictly increase are refused before the database is touched",
          "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    const std::vector<sertx::migration> code = {{2, "b", "create table b (x int)"}, {1, "a", "create table a (x int)"}};
    CHECK_THROWS_AS(sertx::migrate(db, code), sertx::migration_error);
    CHECK(pg_admin_value(pg.conninfo(), "select coalesce(to_regclass('sertx_schema')::text, 'none')") == "none");
}

TEST_CASE("statements split at semicolons outside string literals and dollar-quoted bodies", "[postgresql][migrate]") {
    SERTX_REQUIRE_PG(pg);
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 1});
    const std::vector<sertx::migration> code = {{1, "notes", R"sql(
        create table note (id int primary key, body text not null);
        insert into note values (1, 'a; b'), (2, 'it''s; fine'), (3, E'esc\'; aped');
        -- a plpgsql body full of semicolons
        create function add_note(n int, b text) returns bigint language plpgsql as $$
        declare
            total bigint;
        begin
            insert into note values (n, b || ';');
            select count(*) into total from note;
            return total;
        end;
        $$;
        create function motto() returns text language sql as $body$ select 'x; y' $body$;
    )sql"}};
    const auto plan = sertx::migrate(db, code, sertx::dry_run);
    REQUIRE(plan.size() == 1);
    CHECK(plan[0].statements.size() == 4);
    sertx::migrate(db, code);
    CHECK(pg_admin_value(pg.conninfo(), "select string_agg(body, '|' order by id) from note") ==
          "a; b|it's; fine|esc'; aped");
    CHECK(pg_admin_value(pg.conninfo(), "select add_note(4, 'd')") == "4");
    CHECK(pg_admin_value(pg.conninfo(), "select body from note where id = 4") == "d;");
    CHECK(pg_admin_value(pg.conninfo(), "select motto()") == "x; y");
}

TEST_CASE("two processes migrating the same fresh database at once apply each migration once",
          "[postgresql][migrate][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    const std::string conninfo = pg.conninfo();
    const std::vector<sertx::migration> code = {
        {1, "ledger", "create table ledger (entry int not null)"},
        {2, "first entry", "insert into ledger values (2)"},
        {3, "second entry", "create table extra (x int); insert into ledger values (3)"},
    };
    for (int round = 0; round < 20; ++round) {
        INFO("round " << round);
        const auto codes = in_two_processes([&](auto start) {
            auto db = sertx::postgresql::open(conninfo, {.pool_size = 1});
            start();
            return static_cast<int>(sertx::migrate(db, code).size());
        });
        REQUIRE(codes.size() == 2);
        CHECK(codes[0] <= 3);
        CHECK(codes[1] <= 3);
        CHECK(codes[0] + codes[1] == 3);  // each migration applied by exactly one of them
        CHECK(pg_admin_value(conninfo, "select string_agg(entry::text, ',' order by entry) from ledger") == "2,3");
        CHECK(pg_admin_value(conninfo, "select string_agg(version::text, ',' order by version) from sertx_schema") ==
              "1,2,3");
        // Fresh again, sertx_schema included: a new database per round would cost more than the race.
        sertx::test::pg_admin_exec(conninfo, "drop table if exists ledger, extra, sertx_schema");
    }
}

TEST_CASE("threads sharing one database migrate it once", "[postgresql][migrate][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    const std::vector<sertx::migration> code = {
        {1, "ledger", "create table ledger (entry int not null)"},
        {2, "entries", "insert into ledger values (1); insert into ledger values (2)"},
    };
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 4});
    for (int round = 0; round < 5; ++round) {
        INFO("round " << round);
        std::vector<std::size_t> applied(4);
        std::vector<std::exception_ptr> errors(4);
        {
            std::vector<std::jthread> threads;
            for (std::size_t t = 0; t < 4; ++t)
                threads.emplace_back([&, t] {
                    try {
                        applied[t] = sertx::migrate(db, code).size();
                    } catch (...) {
                        errors[t] = std::current_exception();
                    }
                });
        }
        for (auto& e : errors) CHECK_NOTHROW(e ? std::rethrow_exception(e) : void());
        CHECK(applied[0] + applied[1] + applied[2] + applied[3] == 2);
        CHECK(pg_admin_value(pg.conninfo(), "select count(*) from ledger") == "2");
        sertx::test::pg_admin_exec(pg.conninfo(), "drop table if exists ledger, sertx_schema");
    }
}

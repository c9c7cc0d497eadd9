// SPDX-License-Identifier: BSL-1.0
// Schema migrations on PostgreSQL: all or nothing per migration, serialized
// between processes, refused when the database disagrees with the code.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/migrate_cases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <string>
#include <vector>

using sertx::test::has_text;

namespace {

/// The test's database, as support/migrate_cases.hpp looks at it.
struct PostgreSQL : sertx::test::postgresql_backend {
    static constexpr sertx::detail::sql_dialect dialect = sertx::detail::sql_dialect::postgresql;
    static void names_missing_table(const std::string& what, const sertx::database_error& cause) {
        CHECK_THAT(what, has_text("relation \"missing_table\" does not exist"));
        CHECK(cause.code() == "42P01");
    }
    sertx::test::pg_database pg;

    auto open(std::size_t pool_size) const { return sertx::postgresql::open(pg.conninfo(), {.pool_size = pool_size}); }
    std::string value(const std::string& sql) const { return sertx::test::pg_admin_value(pg.conninfo(), sql); }
    std::string column_in_order(const std::string& column, const std::string& table) const {
        return value("select string_agg(" + column + "::text, ',' order by " + column + ") from " + table);
    }
    // The public schema's relations, columns and functions, and the rows of sertx_schema.
    std::string catalog() const {
        return value(R"(
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
    std::string object_count() const {
        return value(
            "select count(*) from pg_catalog.pg_class c "
            "join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'");
    }
    // The tables go, sertx_schema included: a new database per round would
    // cost more than the race.
    void start_afresh(const std::string& tables) const {
        sertx::test::pg_admin_exec(pg.conninfo(), "drop table if exists " + tables);
    }
};

}  // namespace

SERTX_MIGRATE_CASES(PostgreSQL, "[postgresql]")

TEST_CASE("statements split at semicolons outside string literals and dollar-quoted bodies", "[postgresql][migrate]") {
    SERTX_REQUIRE_BACKEND(PostgreSQL);
    const PostgreSQL b;
    auto db = b.open(1);
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
    CHECK(b.value("select string_agg(body, '|' order by id) from note") == "a; b|it's; fine|esc'; aped");
    CHECK(b.value("select add_note(4, 'd')") == "4");
    CHECK(b.value("select body from note where id = 4") == "d;");
    CHECK(b.value("select motto()") == "x; y");
}


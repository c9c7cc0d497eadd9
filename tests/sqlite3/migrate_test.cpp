// SPDX-License-Identifier: BSL-1.0
// Schema migrations on SQLite: all or nothing per migration, serialized
// between processes, refused when the database disagrees with the code.
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/migrate_cases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <optional>
#include <string>
#include <utility>
#include <vector>

using sertx::test::has_text;

namespace {

/// The test's SQLite file, as support/migrate_cases.hpp looks at it.
class SQLite : public sertx::test::sqlite3_backend {
public:
    static constexpr sertx::detail::sql_dialect dialect = sertx::detail::sql_dialect::sqlite;
    static void names_missing_table(const std::string& what, const sertx::database_error& cause) {
        CHECK_THAT(what, has_text("no such table: missing_table"));
        CHECK(cause.kind() == sertx::failure::permanent);
    }

    auto open(std::size_t pool_size) const { return sertx::sqlite3::open(path(), {.pool_size = pool_size}); }
    std::string value(const std::string& sql) const {
        soci::session s(soci::sqlite3, "db=\"" + path() + "\"");
        std::string text;
        soci::indicator ind = soci::i_ok;
        s << sql, soci::into(text, ind);
        return ind == soci::i_null ? "" : text;
    }
    std::string column_in_order(const std::string& column, const std::string& table) const {
        return value("select group_concat(" + column + ", ',') from (select " + column + " from " + table +
                     " order by 1)");
    }
    // Every schema object with its SQL, and the rows of sertx_schema.
    std::string catalog() const {
        return value(R"(
        select group_concat(entry, char(10)) from (
          select type || ' ' || name || ' ' || coalesce(sql, '') as entry from sqlite_master
          union all
          select 'row ' || version || ' ' || name || ' ' || checksum || ' ' || applied_at from sertx_schema
          order by 1))");
    }
    std::string object_count() const { return value("select count(*) from sqlite_master"); }
    // A new file in a new directory: what a fresh file goes through (its
    // switch to WAL) is part of the race.
    void start_afresh(const std::string&) { dir_.emplace(); }

private:
    std::string path() const { return dir_->file("app.db"); }
    std::optional<sertx::test::temp_dir> dir_{std::in_place};
};

}  // namespace

SERTX_MIGRATE_CASES(SQLite, "[sqlite3]")

TEST_CASE("statements split at semicolons outside string literals and trigger bodies", "[sqlite3][migrate]") {
    const SQLite b;
    auto db = b.open(1);
    const std::vector<sertx::migration> code = {{1, "notes", R"sql(
        create table note (id integer primary key, body text not null);
        create table audit (note_id integer not null, body text not null);
        insert into note values (1, 'a; b'), (2, 'it''s; fine');
        -- a trigger body holds statements and their semicolons
        create trigger note_audit after insert on note begin
            insert into audit values (new.id, new.body || ';');
            update audit set body = body || 'x' where note_id = new.id;
        end;
        insert into note values (3, 'c; d');
    )sql"}};
    const auto plan = sertx::migrate(db, code, sertx::dry_run);
    REQUIRE(plan.size() == 1);
    CHECK(plan[0].statements.size() == 5);
    sertx::migrate(db, code);
    CHECK(b.value("select group_concat(body, '|') from (select body from note order by id)") == "a; b|it's; fine|c; d");
    CHECK(b.value("select group_concat(note_id || '=' || body, '|') from audit") == "3=c; d;x");
}


// SPDX-License-Identifier: BSL-1.0
// What migrate() decides before it touches a database: the checksum (what is
// drift and what is not), the checks on the input, and the comparison of the
// code's migrations with the database's rows.
#include <sertx/migrate.hpp>
#include <sertx/sql/split.hpp>

#include <string>
#include <vector>

#include "../support/catch.hpp"

namespace {

using sertx::detail::sql_dialect;

// What an adapter's migrations().split_script does, for each shell.
auto split_as(sql_dialect dialect) {
    return [dialect](std::string_view script) { return sertx::detail::split_statements(script, dialect); };
}

// Catch2 3 calls it ContainsSubstring, Catch2 2 Contains.
#if defined(SERTX_CATCH2_V3)
auto has_text(const std::string& part) { return Catch::Matchers::ContainsSubstring(part); }
#else
auto has_text(const std::string& part) { return Catch::Matchers::Contains(part); }
#endif

std::string checksum_of(const std::string& sql, sql_dialect dialect = sql_dialect::postgresql) {
    const sertx::migration m[] = {{1, "m", sql}};
    return sertx::detail::prepare_migrations(m, split_as(dialect)).at(0).checksum;
}

std::string hash_hex(std::string_view bytes) {
    sertx::detail::fnv1a h;
    for (char c : bytes) h.add(c);
    return sertx::detail::hex64(h.value());
}

std::string refusal_of(const std::vector<sertx::migration>& code) {
    try {
        (void)sertx::detail::prepare_migrations(code, split_as(sql_dialect::postgresql));
    } catch (const sertx::migration_error& e) {
        return e.what();
    }
    return "";
}

sertx::applied_migration row(std::int64_t version, const std::string& name, const std::string& checksum) {
    return {version, name, checksum, {}};
}

}  // namespace

TEST_CASE("the checksum is 64-bit FNV-1a, the same on every platform", "[migrate]") {
    // The published test vectors of FNV-1a 64.
    CHECK(hash_hex("") == "cbf29ce484222325");
    CHECK(hash_hex("a") == "af63dc4c8601ec8c");
    CHECK(hash_hex("foobar") == "85944171f73967e8");
    // One statement: its bytes and the NUL that ends it.
    CHECK(checksum_of("select 1") == hash_hex(std::string("select 1") + '\0'));
}

TEST_CASE("whitespace and comments between statements, a final semicolon and CRLF are not drift", "[migrate]") {
    const std::string base = checksum_of("create table a (x int);\ncreate index i on a (x)");
    CHECK(checksum_of("  create table a (x int);   -- the table\n\n/* and */ create index i on a (x);\n") == base);
    CHECK(checksum_of("create table a (x int);\r\ncreate index i on a (x);\r\n") == base);
}

TEST_CASE("any change inside a statement is drift", "[migrate]") {
    const std::string base = checksum_of("insert into t values ('a  b')");
    CHECK(checksum_of("insert into t values ('a b')") != base);
    CHECK(checksum_of("INSERT into t values ('a  b')") != base);
    CHECK(checksum_of("insert into t  values ('a  b')") != base);
    CHECK(checksum_of("insert into t values ('a  b' /* note */)") != base);
    // Moving a statement boundary changes the checksum too.
    CHECK(checksum_of("select 1; select 2") != checksum_of("select 1 select 2"));
}

TEST_CASE("a migration's statements are split by its backend's dialect", "[migrate]") {
    const sertx::migration pg[] = {{1, "f", "create function f() returns int language sql as $$ select 1; $$; select f()"}};
    CHECK(sertx::detail::prepare_migrations(pg, split_as(sql_dialect::postgresql)).at(0).statements.size() == 2);
    const sertx::migration lite[] = {
        {1, "t", "create trigger t after insert on a begin insert into b values (1); end; select 1"}};
    const auto steps = sertx::detail::prepare_migrations(lite, split_as(sql_dialect::sqlite));
    REQUIRE(steps.at(0).statements.size() == 2);
    CHECK(steps[0].statements[0] == "create trigger t after insert on a begin insert into b values (1); end");
}

TEST_CASE("versions that do not strictly increase are refused, naming both migrations", "[migrate]") {
    const std::string what = refusal_of({{1, "one", "select 1"}, {3, "three", "select 3"}, {2, "two", "select 2"}});
    CHECK_THAT(what, Catch::Matchers::StartsWith("sertx:"));
    CHECK_THAT(what, has_text("migration 2 'two' follows migration 3 'three'"));
    CHECK_THAT(refusal_of({{1, "a", "select 1"}, {1, "b", "select 1"}}),
               has_text("strictly increase"));
    CHECK_THAT(refusal_of({{0, "zero", "select 1"}}), has_text("version below 1"));
}

TEST_CASE("a migration that does not split, or holds no statement, is refused by name", "[migrate]") {
    const std::string unterminated = refusal_of({{4, "broken", "insert into t values ('oops)"}});
    CHECK_THAT(unterminated, Catch::Matchers::StartsWith("sertx: migration 4 'broken' cannot be split"));
    CHECK_THAT(unterminated, has_text("unterminated string literal"));
    CHECK_THAT(refusal_of({{5, "empty", "  -- nothing yet\n"}}),
               has_text("migration 5 'empty' has no statements"));
}

TEST_CASE("a migration that would start or end the transaction is refused", "[migrate]") {
    for (const char* sql : {"begin; create table a (x int); commit", "create table a (x int); COMMIT",
                            "create table a (x int); end transaction", "start transaction isolation level serializable",
                            "rollback", "abort", "prepare transaction 'x'"}) {
        INFO(sql);
        CHECK_THAT(refusal_of({{1, "tx", sql}}), has_text("start or end a transaction"));
    }
    for (const char* sql : {"savepoint s; rollback to savepoint s", "rollback transaction to s",
                            "prepare q as select 1", "create table commit_log (x int)"}) {
        INFO(sql);
        CHECK(refusal_of({{1, "fine", sql}}).empty());
    }
}

TEST_CASE("the plan lists the migrations not yet applied, in order", "[migrate]") {
    const sertx::migration code[] = {{1, "a", "select 1"}, {2, "b", "select 2"}, {3, "c", "select 3"}};
    const auto steps = sertx::detail::prepare_migrations(code, split_as(sql_dialect::postgresql));
    const auto plan = sertx::detail::plan_migrations({row(1, "a", steps[0].checksum)}, steps);
    CHECK(plan.problems.empty());
    REQUIRE(plan.pending.size() == 2);
    CHECK(plan.pending[0]->version == 2);
    CHECK(plan.pending[1]->version == 3);
}

TEST_CASE("the plan refuses drift, a newer database, an unknown and an out-of-order migration", "[migrate]") {
    const sertx::migration code[] = {{1, "a", "select 1"}, {2, "b", "select 2"}, {4, "d", "select 4"}};
    const auto steps = sertx::detail::prepare_migrations(code, split_as(sql_dialect::postgresql));
    SECTION("drift names the version and both checksums") {
        const auto plan = sertx::detail::plan_migrations({row(1, "a", "00000000000000aa")}, steps);
        REQUIRE(plan.problems.size() == 1);
        CHECK_THAT(plan.problems[0], has_text("migration 1 'a'"));
        CHECK_THAT(plan.problems[0], has_text("00000000000000aa"));
        CHECK_THAT(plan.problems[0], has_text(steps[0].checksum));
    }
    SECTION("a database newer than the code") {
        const auto plan = sertx::detail::plan_migrations(
            {row(1, "a", steps[0].checksum), row(2, "b", steps[1].checksum), row(4, "d", steps[2].checksum),
             row(5, "e", "00000000000000ee")},
            steps);
        REQUIRE(plan.problems.size() == 1);
        CHECK_THAT(plan.problems[0], has_text("migration 5 'e' (checksum 00000000000000ee)"));
        CHECK_THAT(plan.problems[0], has_text("newer than the code"));
    }
    SECTION("an applied migration the code lost, and one the code added below the database's newest") {
        const auto plan = sertx::detail::plan_migrations(
            {row(1, "a", steps[0].checksum), row(3, "c", "00000000000000cc"), row(4, "d", steps[2].checksum)}, steps);
        REQUIRE(plan.problems.size() == 2);
        CHECK_THAT(plan.problems[0], has_text("the code has no migration 3"));
        CHECK_THAT(plan.problems[1],
                   has_text("migration 2 'b' is not applied, but the database is already at "
                                                      "version 4"));
        CHECK(plan.pending.empty());
    }
}

TEST_CASE("a statement in a message is shortened to one line", "[migrate]") {
    CHECK(sertx::detail::shorten("insert\n   into t\tvalues (1)") == "insert into t values (1)");
    const std::string long_one(200, 'x');
    CHECK(sertx::detail::shorten(long_one) == std::string(60, 'x') + "...");
}

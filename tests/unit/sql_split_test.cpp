// SPDX-License-Identifier: BSL-1.0
#include <sertx/sql/split.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "../support/catch.hpp"

namespace {

using sertx::detail::line_of;
using sertx::detail::split_statements;
using sertx::detail::sql_dialect;
using sertx::detail::sql_split_error;
using statements = std::vector<std::string>;

constexpr auto pg = sql_dialect::postgresql;
constexpr auto sqlite = sql_dialect::sqlite;

// Copies so that Catch prints the statements when a comparison fails.
statements split(std::string_view script, sql_dialect dialect) {
    const auto views = split_statements(script, dialect);
    return statements(views.begin(), views.end());
}

// Requires that splitting throws sql_split_error whose message starts
// "sertx:", names `construct`, and gives `line`.
void require_unterminated(std::string_view script, sql_dialect dialect, std::string_view construct,
                          std::size_t line) {
    try {
        (void)split_statements(script, dialect);
        FAIL("no sql_split_error for: " << script);
    } catch (const sql_split_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what, Catch::Matchers::StartsWith("sertx:"));
        CHECK(what.find("unterminated " + std::string(construct)) != std::string::npos);
        CHECK(what.find("line " + std::to_string(line)) != std::string::npos);
        CHECK(e.line() == line);
    }
}

}  // namespace

TEST_CASE("plain statements come back in order without their semicolons") {
    const auto script = "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);\n\n  DROP TABLE a;\n";
    const statements expected{"CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)", "DROP TABLE a"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("the returned statements are views into the script") {
    const std::string_view script = "SELECT 1; SELECT 2";
    const auto views = split_statements(script, pg);
    REQUIRE(views.size() == 2);
    CHECK(views[0].data() == script.data());
    CHECK(views[1].data() == script.data() + 10);
}

TEST_CASE("whitespace and comments around a statement are trimmed") {
    const auto script = "-- users\n  CREATE TABLE u (id int) -- the table\n ; /* next */ SELECT 1 /* c */;";
    const statements expected{"CREATE TABLE u (id int)", "SELECT 1"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("comments between the tokens of a statement are kept") {
    CHECK(split("SELECT /* a; */ 1 -- b;\n + 2;", pg) == statements{"SELECT /* a; */ 1 -- b;\n + 2"});
}

TEST_CASE("a semicolon inside a string literal does not end the statement") {
    const auto script = "INSERT INTO t VALUES ('a;b'); SELECT ';'";
    const statements expected{"INSERT INTO t VALUES ('a;b')", "SELECT ';'"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("a doubled single quote is a quote inside the string literal") {
    const auto script = "INSERT INTO t VALUES ('it''s; fine'); SELECT ''''; SELECT ''";
    const statements expected{"INSERT INTO t VALUES ('it''s; fine')", "SELECT ''''", "SELECT ''"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("a double-quoted identifier may hold semicolons and doubled quotes") {
    const auto script = R"(CREATE TABLE "a;""b" (x int); SELECT 1)";
    const statements expected{R"(CREATE TABLE "a;""b" (x int))", "SELECT 1"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("comments may hold semicolons and quotes") {
    const auto script = "SELECT 1; -- it's; \"odd\n/* don't; \"stop\" */ SELECT 2;";
    const statements expected{"SELECT 1", "SELECT 2"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
}

TEST_CASE("a line comment may end the script without a newline") {
    CHECK(split("SELECT 1; -- done; really", pg) == statements{"SELECT 1"});
    CHECK(split("SELECT 1; -- done; really", sqlite) == statements{"SELECT 1"});
}

TEST_CASE("PostgreSQL block comments nest") {
    CHECK(split("/* outer /* inner; */ still comment; */ SELECT 1;", pg) == statements{"SELECT 1"});
}

TEST_CASE("SQLite block comments end at the first */") {
    CHECK(split("/* outer /* inner */ SELECT 1; */ SELECT 2;", sqlite) ==
          statements{"SELECT 1", "*/ SELECT 2"});
}

TEST_CASE("a $$ body keeps its semicolons and $1 parameters") {
    const auto script =
        "CREATE FUNCTION f(int) RETURNS int AS $$ SELECT $1; SELECT $1 + 1; $$ LANGUAGE sql;\n"
        "SELECT f(1);";
    CHECK(split(script, pg) ==
          statements{"CREATE FUNCTION f(int) RETURNS int AS $$ SELECT $1; SELECT $1 + 1; $$ LANGUAGE sql",
                     "SELECT f(1)"});
}

TEST_CASE("a $tag$ body ends only at the same tag") {
    const auto script =
        "CREATE FUNCTION g() RETURNS void AS $body$\n"
        "BEGIN\n"
        "  EXECUTE $$ SELECT 1; $$;\n"
        "  PERFORM $x$;$x$, $BODY$;$BODY$;\n"
        "END;\n"
        "$body$ LANGUAGE plpgsql;\n"
        "SELECT 2";
    const auto got = split(script, pg);
    REQUIRE(got.size() == 2);
    CHECK_THAT(got[0], Catch::Matchers::EndsWith("END;\n$body$ LANGUAGE plpgsql"));
    CHECK(got[1] == "SELECT 2");
}

TEST_CASE("a $1 parameter is not a dollar quote") {
    CHECK(split("SELECT $1; SELECT $2$$;$$", pg) == statements{"SELECT $1", "SELECT $2$$;$$"});
}

TEST_CASE("a dollar sign inside an identifier does not open a dollar quote") {
    CHECK(split("SELECT a$b$ FROM t; SELECT 2", pg) == statements{"SELECT a$b$ FROM t", "SELECT 2"});
}

TEST_CASE("an E'' string treats backslash-quote as an escaped quote") {
    const auto script = R"(INSERT INTO t VALUES (E'it\'s; a \\'); SELECT e'\';'; SELECT 1)";
    CHECK(split(script, pg) ==
          statements{R"(INSERT INTO t VALUES (E'it\'s; a \\'))", R"(SELECT e'\';')", "SELECT 1"});
}

TEST_CASE("outside E'' strings a backslash is an ordinary character") {
    const auto script = R"(SELECT 'a\'; SELECT 2)";
    const statements expected{R"(SELECT 'a\')", "SELECT 2"};
    CHECK(split(script, pg) == expected);
    CHECK(split(script, sqlite) == expected);
    CHECK(split(R"(SELECT some'\'; SELECT 2)", pg) == statements{R"(SELECT some'\')", "SELECT 2"});
}

TEST_CASE("a SQLite trigger body holds several statements and a CASE...END") {
    const auto script =
        "CREATE TRIGGER audit AFTER UPDATE ON t\n"
        "BEGIN\n"
        "  INSERT INTO log VALUES (new.id, 'updated; really');\n"
        "  UPDATE t SET state = CASE WHEN new.x > 0 THEN 'up' ELSE 'down' END\n"
        "    WHERE id = new.id;\n"
        "  SELECT CASE new.x WHEN 1 THEN 'one' END;\n"
        "END;\n"
        "SELECT 1;";
    const auto got = split(script, sqlite);
    REQUIRE(got.size() == 2);
    CHECK_THAT(got[0], Catch::Matchers::StartsWith("CREATE TRIGGER audit"));
    CHECK_THAT(got[0], Catch::Matchers::EndsWith(";\nEND"));
    CHECK(got[1] == "SELECT 1");
}

TEST_CASE("SQLite trigger keywords are case-insensitive") {
    const auto script = "create temp Trigger t after insert on a begin select 1; eNd ; select 2";
    CHECK(split(script, sqlite) ==
          statements{"create temp Trigger t after insert on a begin select 1; eNd", "select 2"});
}

TEST_CASE("BEGIN and END inside longer identifiers are not keywords") {
    const auto script =
        "CREATE TRIGGER backend_end AFTER INSERT ON backend BEGIN\n"
        "  UPDATE backend SET ending = 1, end_at = 2, \"end\" = 3;\n"
        "  ending;\n"
        "  \"END\";\n"
        "END;\n"
        "CREATE TABLE beginning (x);";
    const auto got = split(script, sqlite);
    REQUIRE(got.size() == 2);
    CHECK(got[1] == "CREATE TABLE beginning (x)");
}

TEST_CASE("SQLite BEGIN and END outside a trigger split like any statement") {
    CHECK(split("BEGIN; CREATE TABLE t (x); END;", sqlite) ==
          statements{"BEGIN", "CREATE TABLE t (x)", "END"});
}

TEST_CASE("a SQLite trigger may be the last statement without a semicolon") {
    CHECK(split("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END", sqlite) ==
          statements{"CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END"});
}

TEST_CASE("SQLite bracketed and backtick identifiers may hold semicolons") {
    const auto script = "CREATE TABLE [a;b] (`c;``d` int); SELECT 1";
    CHECK(split(script, sqlite) == statements{"CREATE TABLE [a;b] (`c;``d` int)", "SELECT 1"});
}

TEST_CASE("PostgreSQL brackets and backticks are ordinary characters") {
    CHECK(split("SELECT a[1]; SELECT 2", pg) == statements{"SELECT a[1]", "SELECT 2"});
    CHECK(split("SELECT [; SELECT `;", pg) == statements{"SELECT [", "SELECT `"});
}

TEST_CASE("a PostgreSQL BEGIN ATOMIC body with a CASE stays one statement") {
    const auto script =
        "CREATE OR REPLACE PROCEDURE p(a int) LANGUAGE sql\n"
        "BEGIN ATOMIC\n"
        "  INSERT INTO t VALUES (CASE WHEN a > 0 THEN 1 END);\n"
        "  SELECT CASE a WHEN 1 THEN 'one' ELSE 'other' END;\n"
        "END;\n"
        "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;\n"
        "SELECT 1";
    const auto got = split(script, pg);
    REQUIRE(got.size() == 3);
    CHECK_THAT(got[0], Catch::Matchers::EndsWith(";\nEND"));
    CHECK(got[1] == "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1");
    CHECK(got[2] == "SELECT 1");
}

TEST_CASE("a semicolon inside parentheses does not end a PostgreSQL statement") {
    const auto script = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); NOTIFY t); SELECT 1";
    CHECK(split(script, pg) ==
          statements{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); NOTIFY t)",
                     "SELECT 1"});
}

TEST_CASE("the last statement needs no semicolon") {
    CHECK(split("SELECT 1;\nSELECT 2\n", pg) == statements{"SELECT 1", "SELECT 2"});
    CHECK(split("SELECT 1;\nSELECT 2\n", sqlite) == statements{"SELECT 1", "SELECT 2"});
}

TEST_CASE("empty and comment-only statements are dropped") {
    CHECK(split(";; SELECT 1;;\n; -- nothing\n; /* nothing */ ;", pg) == statements{"SELECT 1"});
    CHECK(split(";; SELECT 1;;\n; -- nothing\n; /* nothing */ ;", sqlite) == statements{"SELECT 1"});
}

TEST_CASE("whitespace and comments alone give no statements") {
    for (const auto dialect : {pg, sqlite}) {
        CHECK(split("", dialect).empty());
        CHECK(split(" \n\t\r\n", dialect).empty());
        CHECK(split("-- just a note\n/* and; another */\n-- last", dialect).empty());
    }
}

TEST_CASE("an unterminated string literal throws with its line") {
    require_unterminated("SELECT 1;\nSELECT 'it''s;\nSELECT 3;", pg, "string literal", 2);
    require_unterminated("SELECT 1;\n\nSELECT 'abc", sqlite, "string literal", 3);
}

TEST_CASE("an unterminated E'' string throws with its line") {
    require_unterminated("SELECT 1;\nSELECT E'it\\';", pg, "escape string literal", 2);
}

TEST_CASE("an unterminated quoted identifier throws with its line") {
    require_unterminated("SELECT \"a\"\"b;\n", pg, "quoted identifier", 1);
    require_unterminated("SELECT 1;\nSELECT [a;\n", sqlite, "quoted identifier", 2);
    require_unterminated("\n\nSELECT `a``;\n", sqlite, "quoted identifier", 3);
}

TEST_CASE("an unterminated block comment throws with its line") {
    require_unterminated("SELECT 1;\n/* a /* b */\nSELECT 2;", pg, "block comment", 2);
    require_unterminated("SELECT 1;\n\n/* a; SELECT 2;", sqlite, "block comment", 3);
}

TEST_CASE("an unterminated dollar quote throws with its line and tag") {
    require_unterminated("SELECT 1;\nDO $body$ BEGIN; END; $$;\n$BODY$", pg, "dollar-quoted string", 2);
    // EndsWith reads the same in Catch2 2 and 3; the substring matcher was renamed.
    CHECK_THROWS_WITH(split_statements("SELECT $t$;", pg), Catch::Matchers::EndsWith("no closing $t$"));
}

TEST_CASE("an unterminated SQLite trigger body throws with the line of its BEGIN") {
    require_unterminated("SELECT 1;\nCREATE TRIGGER t AFTER INSERT ON a\nBEGIN\n  SELECT 1;\n",
                         sqlite, "trigger body", 3);
    // The END of a CASE does not close the body.
    require_unterminated("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 2 END;",
                         sqlite, "trigger body", 1);
}

TEST_CASE("an unterminated BEGIN ATOMIC body throws with its line") {
    require_unterminated("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\nSELECT 1;\n", pg,
                         "BEGIN ATOMIC body", 2);
}

TEST_CASE("an unterminated PostgreSQL parenthesis throws with its line") {
    require_unterminated("SELECT 1;\nSELECT (1;\nSELECT 2;", pg, "parenthesis", 2);
}

TEST_CASE("line_of counts lines from one") {
    const std::string_view script = "a\nb\n\nc";
    CHECK(line_of(script, 0) == 1);
    CHECK(line_of(script, 1) == 1);
    CHECK(line_of(script, 2) == 2);
    CHECK(line_of(script, 5) == 4);
    CHECK(line_of(script, 1000) == 4);
}

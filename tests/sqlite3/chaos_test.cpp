// SPDX-License-Identifier: BSL-1.0
// sertx::testing::chaos on SQLite: it finds a body that is not safe to re-run,
// and the keyed bank keeps every invariant under it.
#include "support/catch.hpp"
#include "support/chaos_cases.hpp"
#include "support/chaos_workloads.hpp"
#include "support/databases.hpp"
#include "support/keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>
#include <sertx/testing/chaos.hpp>

#include <optional>
#include <set>

namespace keyed_bank = sertx::test::keyed_bank;
namespace workloads = sertx::test::chaos_workloads;
using sertx::test::temp_dir;
using sertx::test::chaos_cases::small;

namespace {
sertx::sqlite3::database bank_file(const temp_dir& dir, const char* name = "bank.db") {
    auto db = sertx::sqlite3::open(dir.file(name), {.pool_size = 6});
    keyed_bank::open(db, small);
    return db;
}

/// SQLite as support/chaos_cases.hpp uses it: files in a directory of the
/// test's own, and the failures SQLite has (no deadlock: one writer at a time).
struct SQLite : sertx::test::sqlite3_backend {
    static constexpr bool lost_commit_discards_session = false;
    static sertx::testing::chaos_options counting_failures() {
        return {.seed = 7, .at_commit = {.serialization = 0.1, .busy = 0.05}};
    }
    static sertx::testing::chaos_options swallowed_failure() {
        return {.at_statement = {.serialization = 1.0}, .faulty_attempts = 1};
    }
    sertx::sqlite3::database bank() const { return bank_file(dir); }
    sertx::sqlite3::database empty() const { return sertx::sqlite3::open(dir.file("machinery.db")); }

    temp_dir dir;
};
}  // namespace

SERTX_CHAOS_CASES(SQLite, "[sqlite3]")

TEST_CASE("the same seed injects the same failures into the same single-threaded run", "[sqlite3][chaos]") {
    temp_dir dir;
    auto first_file = bank_file(dir, "first.db");
    auto second_file = bank_file(dir, "second.db");
    sertx::testing::chaos first(first_file, workloads::everywhere(99));
    sertx::testing::chaos second(second_file, workloads::everywhere(99));

    const auto a = workloads::attempts_of(first, 100);
    const auto b = workloads::attempts_of(second, 100);

    CHECK(a == b);
    CHECK(first.injected().total() > 0);
    CHECK(first.injected().at_statement == second.injected().at_statement);
    CHECK(first.injected().at_commit == second.injected().at_commit);
}

TEST_CASE("a lost commit without a key reaches the caller as commit_unknown when chaos is asked to lose it",
          "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = bank_file(dir);
    auto insert = [](long long id) {
        return [id](auto& tx) { keyed_bank::transfer_body(tx, id, 0, 1, 5); };
    };

    sertx::testing::chaos applied(
        real, {.at_commit = {.lost_commit_applied = 1.0}, .faulty_attempts = 1, .lose_commits_only_when_resolvable = false});
    CHECK_THROWS_AS(sertx::transact(applied, insert(1)), sertx::commit_unknown);
    sertx::testing::chaos rolled_back(
        real,
        {.at_commit = {.lost_commit_rolled_back = 1.0}, .faulty_attempts = 1, .lose_commits_only_when_resolvable = false});
    CHECK_THROWS_AS(sertx::transact(rolled_back, insert(2)), sertx::commit_unknown);

    const auto books = keyed_bank::read_books(real, small);
    CHECK(books.transfers == std::set<long long>{1});  // the first did commit; the second did not
    CHECK(real.stats().commit_unknown == 2);
}

TEST_CASE("a keyed transfer whose commit is lost after applying returns its value, and is applied once",
          "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = bank_file(dir);
    sertx::testing::chaos db(real, {.at_commit = {.lost_commit_applied = 1.0}, .faulty_attempts = 1});
    const sertx::idempotency_key key{keyed_bank::key_of(42)};
    int runs = 0;
    auto body = [&runs](auto& tx) {
        ++runs;  // counts attempts on purpose
        return keyed_bank::transfer_body(tx, 42, 0, 1, 5);
    };

    CHECK(sertx::transact(db, key, body) == std::optional<bool>{true});  // found through the key
    CHECK(runs == 1);
    CHECK_FALSE(sertx::transact(db, key, body).has_value());  // and never again
    const auto books = keyed_bank::read_books(real, small);
    CHECK(books.transfers == std::set<long long>{42});
    CHECK(books.mismatched == 0);
    CHECK(db.injected().lost_commits_applied == 1);
}

TEST_CASE("rates that are not probabilities are refused", "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = sertx::sqlite3::open(dir.file("rates.db"));
    using sertx::testing::chaos_options;
    CHECK_THROWS_AS(sertx::testing::chaos(real, chaos_options{.at_statement = {.busy = -0.1}}), sertx::error);
    CHECK_THROWS_AS(sertx::testing::chaos(real, chaos_options{.at_commit = {.serialization = 0.6, .deadlock = 0.6}}),
                    sertx::error);
    CHECK_NOTHROW(sertx::testing::chaos(real, chaos_options{.at_commit = {.serialization = 0.5, .deadlock = 0.5}}));
}

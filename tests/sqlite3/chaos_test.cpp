// SPDX-License-Identifier: BSL-1.0
// sertx::testing::chaos on SQLite: it finds a body that is not safe to re-run,
// and the keyed bank keeps every invariant under it.
#include "support/catch.hpp"
#include "support/chaos_workloads.hpp"
#include "support/databases.hpp"
#include "support/keyed_bank.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>
#include <sertx/testing/chaos.hpp>

#include <atomic>

namespace keyed_bank = sertx::test::keyed_bank;
namespace workloads = sertx::test::chaos_workloads;
using sertx::failure;
using sertx::test::temp_dir;

namespace {
const keyed_bank::workload small{.accounts = 10, .writers = 4, .transfers_per_writer = 0, .opening_balance = 1000};

sertx::sqlite3::database bank_file(const temp_dir& dir, const char* name = "bank.db") {
    auto db = sertx::sqlite3::open(dir.file(name), {.pool_size = 6});
    keyed_bank::open(db, small);
    return db;
}
}  // namespace

TEST_CASE("chaos makes a body that counts in a captured variable count transfers that never committed",
          "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = bank_file(dir);
    sertx::testing::chaos db(real, {.seed = 7, .at_commit = {.serialization = 0.1, .busy = 0.05}});

    const auto t = workloads::count_transfers(db, small, 200, [](auto&, long long& counted) { ++counted; });

    WARN("counted " << t.counted << ", committed " << t.logged << ", injected " << db.injected().total());
    CHECK(db.injected().total() > 0);
    CHECK(t.counted > t.logged);  // the bug, found
}

TEST_CASE("the same count kept in after_commit matches the committed transfers exactly under chaos",
          "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = bank_file(dir);
    sertx::testing::chaos db(real, workloads::everywhere(7));

    const auto t = workloads::count_transfers(
        db, small, 200, [](auto& tx, long long& counted) { tx.after_commit([&counted] { ++counted; }); });

    CHECK(db.injected().total() > 0);
    CHECK(t.counted == t.logged);
}

TEST_CASE("keyed transfers on several threads under chaos keep every invariant, lost commits included",
          "[sqlite3][chaos][concurrency]") {
    temp_dir dir;
    auto real = bank_file(dir);
    sertx::testing::chaos db(real, workloads::everywhere(2024));
    keyed_bank::answers answers;
    const std::atomic<bool> stop{false};

    keyed_bank::run_writers<sertx::default_policy>(db, small, answers, stop, 150);

    const auto verdict = keyed_bank::audit(real, small, answers);
    const auto injected = db.injected();
    INFO(verdict.describe() << answers.failure_sample());
    CHECK(verdict.holds());
    CHECK(answers.acknowledged() == 600);
    CHECK(answers.count(keyed_bank::answers::failed) == 0);
    CHECK(answers.count(keyed_bank::answers::unknown) == 0);
    CHECK(answers.count(keyed_bank::answers::committed_before) == 0);  // each key is used by one call
    for (auto f : {failure::serialization, failure::deadlock, failure::busy, failure::connection_lost})
        CHECK(injected.injected_at_statement(f) + injected.injected_at_commit(f) > 0);
    CHECK(injected.lost_commits_applied > 0);
    CHECK(injected.lost_commits_rolled_back > 0);
    // Each lost commit was resolved through the key, none reported unknown.
    CHECK(real.stats().commit_resolved == injected.injected_at_commit(failure::commit_unknown));
    CHECK(real.stats().commit_unknown == 0);
    WARN("SQLite under chaos: " << verdict.checked << " answers checked, " << injected.total() << " failures injected ("
                                << injected.lost_commits_applied << " commits lost after applying, "
                                << injected.lost_commits_rolled_back << " lost and rolled back)");
}

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

TEST_CASE("a body that swallows an injected failure is refused, not committed", "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = bank_file(dir);
    sertx::testing::chaos db(real, {.at_statement = {.serialization = 1.0}, .faulty_attempts = 1});

    auto careless = [](auto& tx) {
        try {
            tx.sql() << "update account set balance = balance - 1 where id = 0";
        } catch (const std::exception&) {  // the bug: a retryable failure swallowed
        }
        tx.sql() << "update account set balance = balance + 1 where id = 1";
    };
    CHECK_THROWS_AS(sertx::transact(db, careless), sertx::database_error);
    CHECK(db.injected().swallowed == 1);
    CHECK(keyed_bank::read_books(real, small).total == small.total());
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

TEST_CASE("migrations and the effect journal under chaos apply each migration once and call each effect once",
          "[sqlite3][chaos]") {
    temp_dir dir;
    auto real = sertx::sqlite3::open(dir.file("machinery.db"));
    sertx::testing::chaos db(real, workloads::everywhere(5));

    const auto m = workloads::run_machinery(db, 60);

    CHECK(m.applied == 2);
    CHECK(m.applied_again == 0);
    CHECK(m.calls.size() == 60);
    for (const auto& [key, count] : m.calls) CHECK(count == 1);
    CHECK(db.injected().total() > 0);
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

// SPDX-License-Identifier: BSL-1.0
// The threat sertx was made for: over-balance withdrawals by a race. Many
// threads withdraw from one account the way application code does: read the
// balance, check it covers the amount, write the new balance computed in the
// application. Any overlap of two such bodies that both commit loses money.

#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

TEST_CASE("racing read-check-write withdrawals never overdraw, and the successful ones add up to the drop",
          "[postgresql][concurrency]") {
    SERTX_REQUIRE_PG(pg);
    constexpr int threads = 8;
    constexpr int withdrawals_per_thread = 100;
    constexpr long long opening = 5'000;  // about 60% of what the threads ask for: the account runs dry
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = threads});
    sertx::transact(db, [](auto& tx) {
        tx.sql() << "create table account(id integer primary key, balance bigint not null)";
        tx.sql() << "insert into account values (1, " + std::to_string(opening) + ")";
        // Each withdrawal records the balance it saw and the one it left.
        tx.sql() << "create table withdrawal(id integer primary key, amount bigint not null, "
                    "balance_before bigint not null, balance_after bigint not null)";
    });

    std::atomic<long long> withdrawn{0}, succeeded{0}, refused{0}, errors{0};
    std::mutex error_mutex;
    std::string first_error;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) + 1u);
            std::uniform_int_distribution<long long> amount_of(1, 20);
            for (int i = 0; i < withdrawals_per_thread; ++i) {
                const int id = t * withdrawals_per_thread + i;
                const long long amount = amount_of(rng);
                try {
                    const bool paid = sertx::transact<sertx::policy<sertx::max_attempts<100>>>(db, [&](auto& tx) {
                        long long balance = 0;
                        tx.sql() << "select balance from account where id = 1", soci::into(balance);
                        if (balance < amount) return false;
                        const long long after = balance - amount;
                        tx.sql() << "update account set balance = :b where id = 1", soci::use(after);
                        tx.sql() << "insert into withdrawal values (:i, :a, :b, :c)", soci::use(id), soci::use(amount),
                            soci::use(balance), soci::use(after);
                        return true;
                    });
                    if (paid) {
                        withdrawn += amount;
                        ++succeeded;
                    } else {
                        ++refused;
                    }
                } catch (const std::exception& e) {
                    std::lock_guard lock(error_mutex);
                    if (errors++ == 0) first_error = e.what();
                }
            }
        });
    }
    for (auto& w : workers) w.join();

    struct step {
        long long amount, before, after;
    };
    long long balance = 0, logged = 0;
    std::vector<step> log;
    sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        tx.sql() << "select balance from account where id = 1", soci::into(balance);
        tx.sql() << "select coalesce(sum(amount), 0) from withdrawal", soci::into(logged);
        soci::rowset<soci::row> rows =
            (tx.sql().prepare << "select amount, balance_before, balance_after from withdrawal "
                                 "order by balance_before desc");
        log.clear();
        for (const auto& r : rows) log.push_back({r.get<long long>(0), r.get<long long>(1), r.get<long long>(2)});
    });

    const auto stats = db.stats();
    WARN("withdrawals: " << succeeded << " paid, " << refused << " refused; retries: serialization="
                         << stats.retries_of(sertx::failure::serialization)
                         << " deadlock=" << stats.retries_of(sertx::failure::deadlock)
                         << " busy=" << stats.retries_of(sertx::failure::busy));
    INFO(first_error);
    CHECK(errors == 0);
    CHECK(succeeded + refused == threads * withdrawals_per_thread);
    CHECK(balance >= 0);
    CHECK(withdrawn == opening - balance);
    CHECK(logged == withdrawn);
    CHECK(static_cast<long long>(log.size()) == succeeded);
    CHECK(refused > 0);  // the account did run dry: the check was exercised
    CHECK(stats.retries_of(sertx::failure::serialization) > 0);
    // The log is one chain from the opening balance down to the final one:
    // each withdrawal saw exactly what the one before it left, as in a serial run.
    long long expected_before = opening;
    bool chained = true;
    for (const auto& s : log) {
        chained = chained && s.before == expected_before && s.after == s.before - s.amount;
        expected_before = s.after;
    }
    CHECK(chained);
    CHECK(expected_before == balance);
}

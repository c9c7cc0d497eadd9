// SPDX-License-Identifier: BSL-1.0
// Behind PgBouncer 1.18 in transaction pooling mode, with two server
// connections for up to nine sertx sessions, so that consecutive
// transactions of a session run on different server connections, and
// {.pooler = sertx::postgresql::pooler_mode::transaction}: sertx keeps
// nothing in a server session between transactions (docs/deployment.md).
#include "support/bank.hpp"
#include "support/bank_invariants.hpp"
#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/exactly_once.hpp"
#include "support/fault_proxy.hpp"
#include "support/lost_commit_cases.hpp"
#include "support/pgbouncer.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <atomic>
#include <cstddef>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct PgBouncer : sertx::test::postgresql_backend {
    static constexpr const char* name = "PostgreSQL behind PgBouncer";
    static std::string unavailable() {
        if (sertx::test::pgbouncer_bin().empty()) return "pgbouncer not found (Debian: pgbouncer)";
        return postgresql_backend::unavailable();
    }
    static constexpr sertx::test::bank::workload load{
        .accounts = 10, .writers = 8, .transfers_per_writer = 300, .opening_balance = 1000};
    using writers = sertx::policy<sertx::max_attempts<100>, sertx::lock_timeout<20>>;
    static constexpr bool writers_collide = true;

    sertx::postgresql::database open(std::size_t pool_size) const {
        return sertx::postgresql::open(bouncer.conninfo(pg.name()),
                                       {.pool_size = pool_size, .pooler = sertx::postgresql::pooler_mode::transaction});
    }

    sertx::test::pg_database pg;
    sertx::test::pgbouncer bouncer{sertx::test::pg_admin()};
};

// Lost COMMITs behind the pooler: the fault proxy sits between PgBouncer and
// the server, where a pooler's server connection dies in production (the
// server restarting, a network between the pooler's host and the
// database's). PgBouncer then closes the client's connection too, so sertx
// sees its COMMIT's answer lost and settles it by key or txid through the
// pooler, on another server connection.
struct PgBouncerLosingCommits : sertx::test::postgresql_backend {
    static std::string unavailable() { return PgBouncer::unavailable(); }

    sertx::test::pg_database pg;
    sertx::test::fault_proxy proxy{"127.0.0.1", server_port()};
    sertx::test::pgbouncer bouncer{"host=127.0.0.1 port=" + std::to_string(proxy.port())};
    sertx::postgresql::database db = sertx::postgresql::open(
        bouncer.conninfo(pg.name()), {.pool_size = 2, .pooler = sertx::postgresql::pooler_mode::transaction});

    PgBouncerLosingCommits() {
        sertx::install(db);
        sertx::test::exec(db, "create table t (n integer not null)");
    }
    long long rows() const { return count("select count(*) from t"); }
    long long distinct_rows() const { return count("select count(distinct n) from t"); }

private:
    long long count(const std::string& sql) const { return std::stoll(sertx::test::pg_admin_value(pg.conninfo(), sql)); }
    static unsigned short server_port() {
        std::smatch m;
        const std::string admin = sertx::test::pg_admin();
        if (!std::regex_search(admin, m, std::regex("port=([0-9]+)"))) return 5432;
        return static_cast<unsigned short>(std::stoi(m[1]));
    }
};

SERTX_LOST_COMMIT_CASES(PgBouncerLosingCommits, "[postgresql][pooler]")

// A statement prepared once per session, used by many transactions.
struct count_statement {
    explicit count_statement(soci::session& sql) : run((sql.prepare << "select count(*) from t", soci::into(n))) {}
    long long n = 0;
    soci::statement run;
};

}  // namespace

SERTX_BANK_CASES(PgBouncer, "[postgresql][pooler]")

TEST_CASE("behind a transaction pooler each transaction runs with its own policy's lock_timeout",
          "[postgresql][pooler][concurrency]") {
    SERTX_REQUIRE_BACKEND(PgBouncer);
    const PgBouncer fixture;
    auto db = fixture.open(8);
    std::atomic<int> wrong{0}, done{0};
    std::string first_wrong;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                auto shown = [](auto& tx) {
                    std::string v;
                    tx.sql() << "show lock_timeout", soci::into(v);
                    return v;
                };
                const std::string v = t % 2 == 0 ? sertx::transact<sertx::policy<sertx::lock_timeout<7>>>(db, shown)
                                                 : sertx::transact<sertx::policy<sertx::lock_timeout<3000>>>(db, shown);
                const std::string expected = t % 2 == 0 ? "7ms" : "3s";
                if (v != expected && wrong++ == 0) first_wrong = v + " where " + expected + " was due";
                ++done;
            }
        });
    for (auto& t : threads) t.join();
    INFO(first_wrong);
    CHECK(wrong == 0);
    CHECK(done == 400);
}

TEST_CASE("behind a transaction pooler the same idempotency key from 8 threads commits once",
          "[postgresql][pooler][concurrency]") {
    SERTX_REQUIRE_BACKEND(PgBouncer);
    const PgBouncer fixture;
    auto db = fixture.open(8);
    sertx::test::same_key_from_eight_threads(db, 5);
}

TEST_CASE("behind a transaction pooler sertx::prepared objects are made again in each transaction",
          "[postgresql][pooler][concurrency]") {
    SERTX_REQUIRE_BACKEND(PgBouncer);
    const PgBouncer fixture;
    auto db = fixture.open(4);
    sertx::transact(db, [](auto& tx) { tx.sql() << "create table t (n integer)"; });
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                try {
                    sertx::transact(db, [](auto& tx) {
                        tx.sql() << "insert into t (n) values (1)";
                        auto& count = sertx::prepared<count_statement>(tx);
                        count.run.execute(true);
                        if (count.n < 1) throw std::logic_error("the prepared count missed this transaction's row");
                    });
                } catch (const std::exception& e) {
                    UNSCOPED_INFO(e.what());
                    ++errors;
                }
            }
        });
    for (auto& t : threads) t.join();
    CHECK(errors == 0);
    const long long rows = sertx::transact(db, [](auto& tx) {
        long long n = 0;
        tx.sql() << "select count(*) from t", soci::into(n);
        return n;
    });
    CHECK(rows == 200);
}

// SPDX-License-Identifier: BSL-1.0
// sertx-bench-micro: what one transaction costs, one client, no contention.
//
// - pg/empty/*: BEGIN and COMMIT only (libpq, SOCI, sertx): the framework's
//   own cost per transaction;
// - pg/transfer/*: the workload's transfer, by sertx with each per-transaction
//   option (verify_isolation<every_transaction>, an idempotency key,
//   lock_timeout) and by the hand-written SOCI loop;
// - sqlite-memory/*: the same on an in-memory SQLite database, where no disk
//   hides the CPU cost of sertx and SOCI against the raw C API.
//
// PostgreSQL benchmarks run when SERTX_PG names a server (scripts/bench starts
// one); without it they are skipped, or fail when SERTX_REQUIRE_POSTGRES=1.

#include "common.hpp"

#include <sertx/sertx.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

using namespace bench;

constexpr long long micro_accounts = 10'000;
const workload uncontended{"micro", micro_accounts, true, order::random, "micro"};

std::string pg_conninfo;  // set in main when SERTX_PG is there

void pg_empty_libpq(benchmark::State& state) {
    auto c = pg_connect(pg_conninfo);
    for (auto _ : state) {
        pg_exec(c.get(), pg_begin);
        pg_exec(c.get(), "COMMIT");
    }
}

void pg_empty_soci(benchmark::State& state) {
    soci::session sql(soci::postgresql, pg_conninfo);
    for (auto _ : state) {
        sql << pg_begin;
        sql.commit();
    }
}

void pg_empty_sertx(benchmark::State& state) {
    auto db = sertx::postgresql::open(pg_conninfo, {.pool_size = 1});
    for (auto _ : state) sertx::transact(db, [](auto&) {});
}

template <bool Prepared>
void pg_transfer_soci(benchmark::State& state) {
    soci::session sql(soci::postgresql, pg_conninfo);
    soci_transfer_statements st(sql);
    rng r(1);
    for (auto _ : state) {
        const auto t = next_transfer(r, uncontended);
        sql << pg_begin;
        if constexpr (Prepared) transfer_prepared(st, t);
        else transfer_once(sql, t);
        sql.commit();
    }
}

template <class Policy, bool Prepared, bool Keyed>
void pg_transfer_sertx(benchmark::State& state) {
    auto db = sertx::postgresql::open(pg_conninfo, {.pool_size = 1});
    if constexpr (Keyed) sertx::install(db);  // the commit log
    rng r(1);
    std::uint64_t n = 0;
    const std::string prefix = "micro-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    for (auto _ : state) {
        const auto t = next_transfer(r, uncontended);
        auto body = [&](auto& tx) {
            if constexpr (Prepared) transfer_prepared(sertx::prepared<soci_transfer_statements>(tx), t);
            else transfer_once(tx.sql(), t);
        };
        if constexpr (Keyed) sertx::transact<Policy>(db, sertx::idempotency_key{prefix + std::to_string(++n)}, body);
        else sertx::transact<Policy>(db, body);
    }
}

// --- SQLite in memory: the CPU cost alone

void sqlite_memory_empty_raw(benchmark::State& state) {
    sqlite_handle h(":memory:");
    sqlite3_stmt *begin = nullptr, *commit = nullptr;
    sqlite_api::sqlite3_prepare_v2(h.db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
    sqlite_api::sqlite3_prepare_v2(h.db, "COMMIT", -1, &commit, nullptr);
    for (auto _ : state) {
        sqlite_api::sqlite3_step(begin);
        sqlite_api::sqlite3_reset(begin);
        sqlite_api::sqlite3_step(commit);
        sqlite_api::sqlite3_reset(commit);
    }
    sqlite_api::sqlite3_finalize(begin);
    sqlite_api::sqlite3_finalize(commit);
}

void sqlite_memory_empty_sertx(benchmark::State& state) {
    auto db = sertx::sqlite3::open(":memory:", {.pool_size = 1});
    for (auto _ : state) sertx::transact(db, [](auto&) {});
}

void sqlite_memory_transfer_raw(benchmark::State& state) {
    sqlite_handle h(":memory:");
    sqlite_setup(h.db, micro_accounts);
    sqlite3_stmt *begin = nullptr, *commit = nullptr, *read = nullptr, *update = nullptr, *insert = nullptr;
    sqlite_api::sqlite3_prepare_v2(h.db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
    sqlite_api::sqlite3_prepare_v2(h.db, "COMMIT", -1, &commit, nullptr);
    sqlite_api::sqlite3_prepare_v2(h.db, sqlite_sql::read, -1, &read, nullptr);
    sqlite_api::sqlite3_prepare_v2(h.db, sqlite_sql::update, -1, &update, nullptr);
    sqlite_api::sqlite3_prepare_v2(h.db, sqlite_sql::insert, -1, &insert, nullptr);
    auto step = [](sqlite3_stmt* s) {
        const int rc = sqlite_api::sqlite3_step(s);
        if (rc == SQLITE_ROW) benchmark::DoNotOptimize(sqlite_api::sqlite3_column_int64(s, 0));
        sqlite_api::sqlite3_reset(s);
    };
    rng r(1);
    for (auto _ : state) {
        const auto t = next_transfer(r, uncontended);
        step(begin);
        sqlite_api::sqlite3_bind_int64(read, 1, t.from);
        step(read);
        sqlite_api::sqlite3_bind_int64(read, 1, t.to);
        step(read);
        sqlite_api::sqlite3_bind_int64(update, 1, t.first_delta);
        sqlite_api::sqlite3_bind_int64(update, 2, t.first);
        step(update);
        sqlite_api::sqlite3_bind_int64(update, 1, t.second_delta);
        sqlite_api::sqlite3_bind_int64(update, 2, t.second);
        step(update);
        sqlite_api::sqlite3_bind_int64(insert, 1, t.from);
        sqlite_api::sqlite3_bind_int64(insert, 2, t.to);
        sqlite_api::sqlite3_bind_int64(insert, 3, t.amount);
        step(insert);
        step(commit);
    }
    for (auto* s : {begin, commit, read, update, insert}) sqlite_api::sqlite3_finalize(s);
}

void sqlite_memory_transfer_soci(benchmark::State& state) {
    soci::session sql(soci::sqlite3, "db=:memory:");
    sqlite_setup(static_cast<soci::sqlite3_session_backend*>(sql.get_backend())->conn_, micro_accounts);
    soci_transfer_statements st(sql);
    rng r(1);
    for (auto _ : state) {
        const auto t = next_transfer(r, uncontended);
        sql << "BEGIN IMMEDIATE";
        transfer_prepared(st, t);
        sql.commit();
    }
}

template <bool Prepared>
void sqlite_memory_transfer_sertx(benchmark::State& state) {
    auto db = sertx::sqlite3::open(":memory:", {.pool_size = 1});
    sertx::transact(db, [](auto& tx) {  // only sertx's own COMMIT may commit on its connections
        for (const char* s : schema) tx.sql() << s;
        tx.sql() << sqlite_populate(micro_accounts);
    });
    rng r(1);
    for (auto _ : state) {
        const auto t = next_transfer(r, uncontended);
        sertx::transact(db, [&](auto& tx) {
            if constexpr (Prepared) transfer_prepared(sertx::prepared<soci_transfer_statements>(tx), t);
            else transfer_once(tx.sql(), t);
        });
    }
}

void add(const char* name, void (*f)(benchmark::State&)) { benchmark::RegisterBenchmark(name, f)->UseRealTime(); }

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    add("sqlite-memory/empty/raw", &sqlite_memory_empty_raw);
    add("sqlite-memory/empty/sertx", &sqlite_memory_empty_sertx);
    add("sqlite-memory/transfer/raw", &sqlite_memory_transfer_raw);
    add("sqlite-memory/transfer/soci", &sqlite_memory_transfer_soci);
    add("sqlite-memory/transfer/sertx", &sqlite_memory_transfer_sertx<true>);
    add("sqlite-memory/transfer/sertx-once", &sqlite_memory_transfer_sertx<false>);

    if (const char* admin = std::getenv("SERTX_PG"); admin && *admin) {
        try {
            pg_conninfo = pg_setup(admin, "sertx_bench_micro", micro_accounts);
        } catch (const std::exception& e) {
            std::cerr << e.what() << '\n';
            return 1;
        }
        using sertx::default_policy;
        add("pg/empty/libpq", &pg_empty_libpq);
        add("pg/empty/soci", &pg_empty_soci);
        add("pg/empty/sertx", &pg_empty_sertx);
        add("pg/transfer/soci", &pg_transfer_soci<true>);
        add("pg/transfer/soci-once", &pg_transfer_soci<false>);
        add("pg/transfer/sertx", &pg_transfer_sertx<default_policy, true, false>);
        add("pg/transfer/sertx-once", &pg_transfer_sertx<default_policy, false, false>);
        add("pg/transfer/sertx-verify",
            &pg_transfer_sertx<sertx::policy<sertx::verify_isolation<sertx::every_transaction>>, true, false>);
        add("pg/transfer/sertx-key", &pg_transfer_sertx<default_policy, true, true>);
        add("pg/transfer/sertx-lock-timeout-10", &pg_transfer_sertx<sertx::policy<sertx::lock_timeout<10>>, true, false>);
        add("pg/transfer/sertx-lock-timeout-0", &pg_transfer_sertx<sertx::policy<sertx::lock_timeout<0>>, true, false>);
    } else if (const char* required = std::getenv("SERTX_REQUIRE_POSTGRES"); required && std::string(required) == "1") {
        std::cerr << "sertx-bench-micro: SERTX_PG is not set but SERTX_REQUIRE_POSTGRES=1\n";
        return 1;
    } else {
        std::cerr << "sertx-bench-micro: SERTX_PG not set: PostgreSQL benchmarks skipped\n";
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

// SPDX-License-Identifier: BSL-1.0
// sertx-bench-journal: the effect journal as a worker fleet against the
// outbox poller that services write by hand, one measurement per run,
// printed as one line of tab-separated key=value fields (scripts/bench
// collects them in journal.tsv; sertx-bench-report writes the section).
//
//   sertx-bench-journal --backend pg --pg "host=127.0.0.1 port=5432 user=postgres"
//                       --measure throughput --contender sertx --dispatchers 4 --effects 2000
//   sertx-bench-journal --backend sqlite --dir /tmp/bench --measure latency --contender poller --effects 500
//   sertx-bench-journal ... --contender sertx --effect at_most_once   (default: idempotent)
//
// Measures. *throughput*: dispatchers (threads, each its own journal or
// poller, each its own connections) run while one thread schedules
// --effects intents, 50 per transaction; effects/s from the first
// scheduling COMMIT to the last effect recorded done. *latency*: one
// dispatcher idles; intents are scheduled one per transaction, each after
// the previous one was called; the time from a scheduling transaction's
// COMMIT returning to the operation's call, p50/p99.
//
// Contenders. *sertx*: `effects::run` with `.poll = 30s`, so that only its
// wake-ups (PostgreSQL LISTEN/NOTIFY; SQLite: the in-process signal) bring
// it to an intent quickly; the operation is idempotent and does nothing.
// *poller*: a hand-written outbox in its own table: a loop of
// `BEGIN` (READ COMMITTED) / `SELECT … ORDER BY id LIMIT 1 FOR UPDATE SKIP
// LOCKED` / call / `UPDATE … SET state = 'done'` / `COMMIT`, sleeping
// --poll-ms (100) when the table is empty (SQLite: `BEGIN IMMEDIATE`, which
// holds the one write lock across the call). The poller calls inside its
// transaction and records nothing before the call: a crash or a lost COMMIT
// calls it again, and it has no lease, rescue, retry or dead letter.

#include "common.hpp"

#include <sertx/sertx.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace bench;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
    std::string backend = "pg";
    std::string pg;
    std::string dir;
    std::string measure = "throughput";
    std::string contender = "sertx";
    unsigned dispatchers = 1;
    unsigned effects = 2000;
    unsigned poll_ms = 100;
    std::string prefix = "sertx_bench_";
    std::string effect = "idempotent";  // sertx's operation: idempotent or at_most_once
};

/// What every dispatcher reports: one slot per effect, the time it was
/// called; a counter of effects finished.
struct calls {
    explicit calls(unsigned n) : at(n) {}
    std::vector<std::atomic<clock_type::rep>> at;
    std::atomic<unsigned> finished{0};
    std::mutex m;
    std::condition_variable cv;

    void called(unsigned i) {
        if (i < at.size()) at[i].store(clock_type::now().time_since_epoch().count(), std::memory_order_relaxed);
    }
    void finish() {
        finished.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(m);
        cv.notify_all();
    }
    /// Waits until `n` effects have finished; false after `limit`.
    bool wait_finished(unsigned n, std::chrono::seconds limit = 120s) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, limit, [&] { return finished.load() >= n; });
    }
    bool wait_called(unsigned i, std::chrono::seconds limit = 60s) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, limit, [&] { return at[i].load() != 0; });
    }
};

unsigned index_of(const std::string& payload) { return static_cast<unsigned>(std::stoul(payload)); }

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

struct result {
    double seconds = 0;                 // throughput: schedule to last done
    std::vector<double> latencies_ms;   // latency: commit to call
};

// ---------------------------------------------------------------------------
// sertx: effects::run

calls* current = nullptr;

struct bench_call {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "bench_call";
    void operator()(const std::string& payload) const {
        current->called(index_of(payload));
        current->finish();
    }
};
/// The same, at most once (--effect at_most_once): what it costs the
/// journal to keep an operation at most once.
struct bench_call_once : bench_call {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "bench_call_once";
};

template <class Db>
void empty_journal(Db& db) {
    sertx::install(db);
    sertx::transact(db, [](auto& tx) { tx.sql() << "delete from sertx_effect"; });
}

template <class Call, class Open>
result run_sertx(const options& o, Open open) {
    auto db = open(o.dispatchers + 2);
    empty_journal(db);
    calls c(o.effects);
    current = &c;
    std::vector<std::jthread> fleet;
    for (unsigned d = 0; d < o.dispatchers; ++d)
        fleet.emplace_back([&, d](std::stop_token stop) {
            // .poll at 30 s: only a wake-up brings the dispatcher to an intent soon.
            sertx::effects journal(db, "bench-" + std::to_string(d), {.lease = 30s, .poll = 30s});
            journal.run(Call{}, stop);
        });
    std::this_thread::sleep_for(300ms);  // the dispatchers listening before the first intent
    sertx::effects journal(db, "bench-scheduler");
    result r;
    if (o.measure == "throughput") {
        const auto t0 = clock_type::now();
        for (unsigned i = 0; i < o.effects;) {
            const unsigned end = std::min(o.effects, i + 50);
            sertx::transact(db, [&](auto& tx) {
                for (unsigned k = i; k < end; ++k) journal.template schedule<Call>(tx, "e" + std::to_string(k), std::to_string(k));
            });
            i = end;
        }
        if (!c.wait_finished(o.effects)) throw std::runtime_error("bench: the journal did not drain in 2 minutes");
        r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    } else {
        for (unsigned i = 0; i < o.effects; ++i) {
            sertx::transact(db, [&](auto& tx) { journal.template schedule<Call>(tx, "e" + std::to_string(i), std::to_string(i)); });
            const auto committed = clock_type::now();
            if (!c.wait_called(i)) throw std::runtime_error("bench: an intent was not called within a minute");
            r.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(clock_type::duration(c.at[i].load()) - committed.time_since_epoch()).count());
            c.wait_finished(i + 1);
        }
    }
    for (auto& t : fleet) t.request_stop();
    fleet.clear();
    current = nullptr;
    return r;
}

// ---------------------------------------------------------------------------
// The hand-written outbox poller

constexpr const char* pg_outbox =
    "create table if not exists bench_outbox (id bigserial primary key, payload text not null, "
    "state text not null default 'pending')";
constexpr const char* sqlite_outbox =
    "create table if not exists bench_outbox (id integer primary key autoincrement, payload text not null, "
    "state text not null default 'pending')";

/// One poller on PostgreSQL (libpq): one intent per transaction.
void pg_poller(const std::string& conninfo, calls& c, unsigned poll_ms, std::stop_token stop) {
    auto conn = pg_connect(conninfo);
    PGconn* k = conn.get();
    while (!stop.stop_requested()) {
        pg_exec(k, "begin isolation level read committed");
        std::unique_ptr<PGresult, decltype(&PQclear)> row(
            PQexec(k, "select id, payload from bench_outbox where state = 'pending' order by id limit 1 "
                      "for update skip locked"),
            &PQclear);
        if (PQresultStatus(row.get()) != PGRES_TUPLES_OK)
            throw std::runtime_error(std::string("bench: poller: ") + PQresultErrorMessage(row.get()));
        if (PQntuples(row.get()) == 0) {
            pg_exec(k, "commit");
            std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
            continue;
        }
        const std::string id = PQgetvalue(row.get(), 0, 0);
        c.called(index_of(PQgetvalue(row.get(), 0, 1)));
        pg_exec(k, "update bench_outbox set state = 'done' where id = " + id);
        pg_exec(k, "commit");
        c.finish();
    }
}

/// One poller on SQLite (the C API): BEGIN IMMEDIATE, as nothing else skips locked rows there.
void sqlite_poller(const std::string& path, calls& c, unsigned poll_ms, std::stop_token stop) {
    sqlite_handle h(path);
    sqlite3_stmt* pick = nullptr;
    sqlite_check(h.db,
                 sqlite_api::sqlite3_prepare_v2(h.db, "select id, payload from bench_outbox where state = 'pending' "
                                                      "order by id limit 1", -1, &pick, nullptr),
                 "prepare");
    sqlite3_stmt* mark = nullptr;
    sqlite_check(h.db, sqlite_api::sqlite3_prepare_v2(h.db, "update bench_outbox set state = 'done' where id = ?", -1, &mark, nullptr),
                 "prepare");
    while (!stop.stop_requested()) {
        sqlite_exec(h.db, "begin immediate");
        const int rc = sqlite_api::sqlite3_step(pick);
        if (rc != SQLITE_ROW) {
            sqlite_api::sqlite3_reset(pick);
            sqlite_exec(h.db, "commit");
            std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
            continue;
        }
        const long long id = sqlite_api::sqlite3_column_int64(pick, 0);
        c.called(index_of(reinterpret_cast<const char*>(sqlite_api::sqlite3_column_text(pick, 1))));
        sqlite_api::sqlite3_reset(pick);
        sqlite_api::sqlite3_bind_int64(mark, 1, id);
        sqlite_check(h.db, sqlite_api::sqlite3_step(mark), "update");
        sqlite_api::sqlite3_reset(mark);
        sqlite_exec(h.db, "commit");
        c.finish();
    }
    sqlite_api::sqlite3_finalize(pick);
    sqlite_api::sqlite3_finalize(mark);
}

result run_poller(const options& o, const std::string& target) {
    const bool pg = o.backend == "pg";
    // The scheduler's insert, in a transaction of its own, as a service's would be.
    std::function<void(unsigned, unsigned)> schedule;
    bench::pg_conn pg_scheduler(nullptr, &PQfinish);
    std::unique_ptr<sqlite_handle> lite_scheduler;
    if (pg) {
        pg_scheduler = pg_connect(target);
        PQsetNoticeProcessor(pg_scheduler.get(), &quiet_notices, nullptr);
        pg_exec(pg_scheduler.get(), pg_outbox);
        pg_exec(pg_scheduler.get(), "truncate bench_outbox");
        schedule = [&](unsigned from, unsigned to) {
            std::string sql = "begin; insert into bench_outbox (payload) values ";
            for (unsigned k = from; k < to; ++k) sql += (k == from ? "('" : ", ('") + std::to_string(k) + "')";
            pg_exec(pg_scheduler.get(), sql + "; commit");
        };
    } else {
        lite_scheduler = std::make_unique<sqlite_handle>(target);
        sqlite_exec(lite_scheduler->db, sqlite_outbox);
        sqlite_exec(lite_scheduler->db, "delete from bench_outbox");
        schedule = [&](unsigned from, unsigned to) {
            std::string sql = "begin immediate; insert into bench_outbox (payload) values ";
            for (unsigned k = from; k < to; ++k) sql += (k == from ? "('" : ", ('") + std::to_string(k) + "')";
            sqlite_exec(lite_scheduler->db, sql + "; commit");
        };
    }
    calls c(o.effects);
    std::vector<std::jthread> fleet;
    for (unsigned d = 0; d < o.dispatchers; ++d)
        fleet.emplace_back([&](std::stop_token stop) {
            if (pg)
                pg_poller(target, c, o.poll_ms, stop);
            else
                sqlite_poller(target, c, o.poll_ms, stop);
        });
    std::this_thread::sleep_for(300ms);
    result r;
    if (o.measure == "throughput") {
        const auto t0 = clock_type::now();
        for (unsigned i = 0; i < o.effects; i = std::min(o.effects, i + 50)) schedule(i, std::min(o.effects, i + 50));
        if (!c.wait_finished(o.effects)) throw std::runtime_error("bench: the poller did not drain in 2 minutes");
        r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    } else {
        for (unsigned i = 0; i < o.effects; ++i) {
            schedule(i, i + 1);
            const auto committed = clock_type::now();
            if (!c.wait_called(i)) throw std::runtime_error("bench: the poller did not call within a minute");
            r.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(clock_type::duration(c.at[i].load()) - committed.time_since_epoch()).count());
            c.wait_finished(i + 1);
        }
    }
    for (auto& t : fleet) t.request_stop();
    return r;
}

// ---------------------------------------------------------------------------

std::string pg_database(const options& o) {
    const std::string name = o.prefix + "journal";
    auto a = pg_connect(o.pg);
    if (pg_exec(a.get(), "select count(*) from pg_database where datname = '" + name + "'") == "0")
        pg_exec(a.get(), "create database " + name);
    return o.pg + " dbname=" + name;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("bench: " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--backend") o.backend = next();
        else if (a == "--pg") o.pg = next();
        else if (a == "--dir") o.dir = next();
        else if (a == "--measure") o.measure = next();
        else if (a == "--contender") o.contender = next();
        else if (a == "--dispatchers") o.dispatchers = static_cast<unsigned>(std::stoul(next()));
        else if (a == "--effects") o.effects = static_cast<unsigned>(std::stoul(next()));
        else if (a == "--poll-ms") o.poll_ms = static_cast<unsigned>(std::stoul(next()));
        else if (a == "--prefix") o.prefix = next();
        else if (a == "--effect") o.effect = next();
        else throw std::runtime_error("bench: unknown option " + a);
    }
    if (o.backend != "pg" && o.backend != "sqlite") throw std::runtime_error("bench: --backend is pg or sqlite");
    if (o.measure != "throughput" && o.measure != "latency") throw std::runtime_error("bench: --measure is throughput or latency");
    if (o.contender != "sertx" && o.contender != "poller") throw std::runtime_error("bench: --contender is sertx or poller");
    if (o.effect != "idempotent" && o.effect != "at_most_once")
        throw std::runtime_error("bench: --effect is idempotent or at_most_once");
    if (o.backend == "pg" && o.pg.empty()) throw std::runtime_error("bench: --backend pg needs --pg CONNINFO");
    if (o.backend == "sqlite" && o.dir.empty()) throw std::runtime_error("bench: --backend sqlite needs --dir DIR");
    if (o.dispatchers == 0 || o.effects == 0) throw std::runtime_error("bench: --dispatchers and --effects are at least 1");
    return o;
}

}  // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    std::string target;
    if (o.backend == "pg") {
        target = pg_database(o);
    } else {
        std::filesystem::create_directories(o.dir);
        target = (std::filesystem::path(o.dir) / (o.prefix + "journal.db")).string();
    }
    result r;
    if (o.contender == "poller") {
        r = run_poller(o, target);
    } else {
        const auto run = [&]<class Call>() {
            if (o.backend == "pg")
                return run_sertx<Call>(o, [&](unsigned n) { return sertx::postgresql::open(target, {.pool_size = n}); });
            return run_sertx<Call>(o, [&](unsigned n) { return sertx::sqlite3::open(target, {.pool_size = n}); });
        };
        r = o.effect == "at_most_once" ? run.template operator()<bench_call_once>() : run.template operator()<bench_call>();
    }
    std::cout << "backend=" << o.backend << "\tmeasure=" << o.measure << "\tcontender=" << o.contender
              << "\teffect=" << (o.contender == "sertx" ? o.effect : std::string("none"))
              << "\tdispatchers=" << o.dispatchers << "\teffects=" << o.effects;
    if (o.contender == "poller") std::cout << "\tpoll_ms=" << o.poll_ms;
    else if (o.effect != "idempotent") std::cout << "\teffect=" << o.effect;
    if (o.measure == "throughput") {
        std::cout << "\tseconds=" << r.seconds << "\teffects_per_s=" << o.effects / r.seconds;
    } else {
        std::cout << "\tp50_ms=" << percentile(r.latencies_ms, 0.50) << "\tp99_ms=" << percentile(r.latencies_ms, 0.99)
                  << "\tmax_ms=" << percentile(r.latencies_ms, 1.0);
    }
    double load1 = 0;
    std::ifstream("/proc/loadavg") >> load1;
    std::cout << "\tload1=" << load1 << "\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
}

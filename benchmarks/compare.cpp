// SPDX-License-Identifier: BSL-1.0
// sertx-bench-compare: one measurement of one contender on one workload,
// printed as one line of tab-separated key=value fields, which
// sertx-bench-report aggregates. scripts/bench runs it many times, alternating
// the contenders.
//
//   sertx-bench-compare --backend pg --pg "host=127.0.0.1 port=5432 user=postgres"
//                       --workload hot-random --contender sertx --clients 8 --seconds 2
//   sertx-bench-compare --backend sqlite --dir /tmp/bench --workload uncontended
//                       --contender raw --clients 4 --seconds 2
//   sertx-bench-compare --backend pg --list        (the contenders of a backend)
//   sertx-bench-compare --workload hot-random --print-pgbench-script
//
// Other options: --warmup SECONDS (0.3), --pgbench PATH, --prefix NAME (of the
// databases and files it creates: "sertx_bench_"), --accept-weaker-durability
// (lets sertx use a server with fsync off, to see CPU costs without the disk;
// never in published figures). The databases are created and filled when
// missing; history and commit log are emptied before each run.
//
// Contenders. PostgreSQL: sertx (default policy, prepared statements through
// sertx::prepared), sertx-once (statements parsed each time), sertx-verify,
// sertx-key, sertx-effect (the transfer plus one journal.schedule of a no-op
// idempotent operation with a fresh key), sertx-pooler and sertx-pooler-once
// (pooler_mode::transaction on a direct connection), sertx-lt-<ms>, sertx-backoff-<strategy>; soci and soci-once (a
// hand-written loop, BEGIN ISOLATION LEVEL SERIALIZABLE, immediate retry on
// 40001/40P01); soci-key (that loop with a key table of its own, the key
// looked up after BEGIN and inserted before COMMIT, prepared); pqxx (pqxx::perform around pqxx::transaction<serializable>);
// pgbench (-M prepared, the same script). SQLite: sertx, sertx-once,
// sertx-key, sertx-effect, soci, soci-once, raw (the C API, BEGIN IMMEDIATE).
//
// Every client has its own connection and a warm-up before the window; a
// transaction counts when it completes inside the window, and its latency runs
// from its first attempt to its commit, retries included. allocations_per_tx:
// operator new calls of the client threads per committed transaction.

#include "common.hpp"

#include <sertx/sertx.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

// Every allocation through operator new, counted per thread: each line says
// how many a transaction cost the client (sertx, SOCI, libpqxx; not libpq's
// or SQLite's own malloc), so that an allocation added to the hot path shows.
namespace bench_allocations {
thread_local std::uint64_t count = 0;
}  // namespace bench_allocations

// Not inlined: GCC would see free() meet a pointer from operator new.
[[gnu::noinline]] void* operator new(std::size_t n) {
    ++bench_allocations::count;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace bench;
using clock_type = std::chrono::steady_clock;

/// What the peers' loops allow: pgbench --max-tries=1000 in the figures.
constexpr unsigned peer_max_tries = 1000;

struct options {
    std::string backend = "pg";
    std::string pg;   // admin connection string
    std::string dir;  // SQLite files
    std::string workload = "uncontended";
    std::string contender = "sertx";
    unsigned clients = 1;
    double seconds = 2;
    double warmup = 0.3;
    std::string pgbench = "pgbench";
    std::string prefix = "sertx_bench_";  // of the PostgreSQL databases and SQLite files
    bool list = false;
    bool print_pgbench_script = false;
    bool weak_durability = false;  // diagnostics only: a server with fsync off, to see CPU costs alone
};

// ---------------------------------------------------------------------------
// Measurement

enum phase : int { warming, measuring, stopping };

struct outcome {
    bool committed = false;
    bool gave_up = false;  // a retryable failure outlasted the attempts
    unsigned attempts = 1;
};

struct tally {
    std::uint64_t commits = 0, attempts = 0, give_ups = 0, errors = 0;
    std::uint64_t allocations = 0;  // by the transactions inside the window
    std::vector<std::uint32_t> latency_us;
    std::string first_error;
};

struct result {
    double seconds = 0;
    tally total;
    std::uint64_t client_min = 0, client_max = 0;  // commits of the least and the most served client
    std::map<std::string, std::uint64_t> extra;  // contender-specific counts
};

/// Runs `txn` until the window closes; counts what completes inside it.
template <class Txn>
void drive(tally& t, const std::atomic<int>& now, Txn&& txn) {
    t.latency_us.reserve(1 << 16);
    while (now.load(std::memory_order_acquire) != stopping) {
        const auto start = clock_type::now();
        const std::uint64_t allocated_before = bench_allocations::count;
        outcome o;
        std::string error;
        try {
            o = txn();
        } catch (const std::exception& e) {
            error = e.what();
        }
        const auto end = clock_type::now();
        if (now.load(std::memory_order_acquire) != measuring) continue;
        t.allocations += bench_allocations::count - allocated_before;
        t.attempts += o.attempts;
        if (o.committed) {
            ++t.commits;
            t.latency_us.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(end - start).count()));
        } else if (o.gave_up) {
            ++t.give_ups;
        } else {
            ++t.errors;
            if (t.first_error.empty()) t.first_error = error.empty() ? "unknown failure" : error;
        }
    }
}

/// Starts `clients` threads running `client(index, tally, phase)`, which
/// connects and then calls drive(); warms up, then measures for `seconds`.
/// `at_edge(true/false)` is called at the window's start and end.
template <class Client>
result measure(const options& o, Client&& client, const std::function<void(bool)>& at_edge = {}) {
    std::vector<tally> tallies(o.clients);
    std::atomic<int> now{warming};
    std::atomic<unsigned> ready{0};
    std::mutex failed_mutex;
    std::string failed;
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < o.clients; ++i)
        threads.emplace_back([&, i] {
            try {
                client(i, tallies[i], now, ready);
            } catch (const std::exception& e) {
                std::lock_guard lock(failed_mutex);
                if (failed.empty()) failed = e.what();
                ready.fetch_add(1);
            }
        });
    while (ready.load() < o.clients) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
    if (at_edge) at_edge(true);
    const auto start = clock_type::now();
    now.store(measuring, std::memory_order_release);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    now.store(stopping, std::memory_order_release);
    const auto end = clock_type::now();
    if (at_edge) at_edge(false);
    for (auto& t : threads) t.join();
    if (!failed.empty()) throw std::runtime_error("a client failed to start: " + failed);

    result r;
    r.seconds = std::chrono::duration<double>(end - start).count();
    r.client_min = tallies.front().commits;
    for (auto& t : tallies) {
        r.client_min = std::min(r.client_min, t.commits);
        r.client_max = std::max(r.client_max, t.commits);
        r.total.commits += t.commits;
        r.total.attempts += t.attempts;
        r.total.give_ups += t.give_ups;
        r.total.errors += t.errors;
        r.total.allocations += t.allocations;
        r.total.latency_us.insert(r.total.latency_us.end(), t.latency_us.begin(), t.latency_us.end());
        if (r.total.first_error.empty()) r.total.first_error = t.first_error;
    }
    return r;
}

/// Each client draws from its own generator; runs differ by the clock.
std::uint64_t seed_of(unsigned client) {
    static const std::uint64_t run = static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count());
    return run * 0x9e3779b97f4a7c15ULL + client;
}

// ---------------------------------------------------------------------------
// PostgreSQL

std::string pg_database_name(const options& o, const bench::workload& w) { return o.prefix + std::string(w.database); }
std::string pg_conninfo(const options& o, const bench::workload& w) {
    return o.pg + " dbname=" + pg_database_name(o, w);
}

template <class P>
struct with_read_only;
template <class... O>
struct with_read_only<sertx::policy<O...>> {
    using type = sertx::policy<O..., sertx::read_only>;
};

/// What `sertx-effect` schedules: nothing to do, so that only what
/// scheduling costs the transaction shows (no dispatcher runs).
struct bench_noop {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "bench-noop";
    void operator()(const std::string&) const {}
};

/// sertx::transact with `Policy`; statements prepared once per session
/// (sertx::prepared) or parsed each time; optionally an idempotency key each;
/// optionally as if behind a transaction pooler (`Pooler`), but connected to
/// the server directly, so that what the mode itself costs shows; optionally
/// one effect scheduled in each transfer (`Effect`), its result not asked.
template <class Policy, bool Prepared, bool Keyed,
          sertx::postgresql::pooler_mode Pooler = sertx::postgresql::pooler_mode::none, bool Effect = false>
result sertx_pg(const options& o, const bench::workload& w) {
    auto db = sertx::postgresql::open(
        pg_conninfo(o, w),
        {.pool_size = o.clients, .accept_weaker_durability = o.weak_durability, .pooler = Pooler});
    if constexpr (Keyed || Effect) sertx::install(db);  // the commit log, the journal
    sertx::effects journal(db);
    {  // open every session now, not inside the window
        std::vector<sertx::postgresql::database::pool_type::lease> open;
        for (unsigned i = 0; i < o.clients; ++i) open.push_back(db.acquire(clock_type::time_point::max()));
    }
    sertx::stats before{}, after{};
    auto r = measure(
        o,
        [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
            bench::rng rng(seed_of(i));
            std::uint64_t n = 0;
            const std::string key_prefix = "k" + std::to_string(seed_of(i)) + "-";
            ready.fetch_add(1);
            drive(t, now, [&]() -> outcome {
                unsigned attempts = 1;
                try {
                    if (w.transfer) {
                        const auto tr = bench::next_transfer(rng, w);
                        auto body = [&](auto& tx) {
                            attempts = tx.attempt();
                            if constexpr (Prepared)
                                transfer_prepared(sertx::prepared<soci_transfer_statements>(tx), tr);
                            else
                                transfer_once(tx.sql(), tr);
                            if constexpr (Effect)
                                journal.template schedule<bench_noop>(tx, key_prefix + std::to_string(n), "");
                        };
                        if constexpr (Effect) ++n;
                        if constexpr (Keyed)
                            sertx::transact<Policy>(db, sertx::idempotency_key{key_prefix + std::to_string(++n)}, body);
                        else
                            sertx::transact<Policy>(db, body);
                    } else {
                        if constexpr (!Keyed) {
                            const long long lo = bench::next_report(rng, w);
                            sertx::transact<typename with_read_only<Policy>::type>(db, [&](auto& tx) {
                                attempts = tx.attempt();
                                if constexpr (Prepared)
                                    return report_prepared(sertx::prepared<soci_report_statements>(tx), lo);
                                else
                                    return report_once(tx.sql(), lo);
                            });
                        } else {
                            throw std::runtime_error("bench: a report takes no idempotency key");
                        }
                    }
                    return {true, false, attempts};
                } catch (const sertx::retries_exhausted& e) {
                    return {false, true, e.attempts()};
                }
            });
        },
        [&](bool start) { (start ? before : after) = db.stats(); });
    r.extra["serialization"] = after.retries_of(sertx::failure::serialization) -
                               before.retries_of(sertx::failure::serialization);
    r.extra["deadlock"] = after.retries_of(sertx::failure::deadlock) - before.retries_of(sertx::failure::deadlock);
    r.extra["busy"] = after.retries_of(sertx::failure::busy) - before.retries_of(sertx::failure::busy);
    return r;
}

bool pg_retryable(const std::string& sqlstate) { return sqlstate == "40001" || sqlstate == "40P01"; }

/// A hand-written loop's attempt `a` failed with `e` (being handled): rolled
/// back; empty to try again, else how the transfer ended; what is not a
/// conflict is thrown on.
std::optional<outcome> after_failed_attempt(soci::session& sql, const soci::postgresql_soci_error& e, unsigned a) {
    const std::string state = e.sqlstate();
    try {
        sql.rollback();
    } catch (const soci::soci_error&) {
    }
    if (!pg_retryable(state)) throw;
    if (a >= peer_max_tries) return outcome{false, true, a};
    return std::nullopt;
}

/// The hand-written SOCI loop: what a careful user writes without sertx.
template <bool Prepared>
result soci_pg(const options& o, const bench::workload& w) {
    return measure(o, [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
        soci::session sql(soci::postgresql, pg_conninfo(o, w));
        PQsetNoticeProcessor(static_cast<soci::postgresql_session_backend*>(sql.get_backend())->conn_,
                             &quiet_notices, nullptr);
        std::optional<soci_transfer_statements> transfer;
        std::optional<soci_report_statements> report;
        if constexpr (Prepared) {
            if (w.transfer) transfer.emplace(sql);
            else report.emplace(sql);
        }
        bench::rng rng(seed_of(i));
        ready.fetch_add(1);
        drive(t, now, [&]() -> outcome {
            const auto tr = bench::next_transfer(rng, w);
            const long long lo = w.transfer ? 0 : bench::next_report(rng, w);
            for (unsigned a = 1;; ++a) {
                try {
                    sql << (w.transfer ? bench::pg_begin : bench::pg_begin_read_only);
                    if (w.transfer) {
                        if constexpr (Prepared) transfer_prepared(*transfer, tr);
                        else transfer_once(sql, tr);
                    } else {
                        if constexpr (Prepared) report_prepared(*report, lo);
                        else report_once(sql, lo);
                    }
                    sql.commit();
                    return {true, false, a};
                } catch (const soci::postgresql_soci_error& e) {
                    if (const std::optional<outcome> ended = after_failed_attempt(sql, e, a)) return *ended;
                }
            }
        });
    });
}

/// The hand-written SOCI loop with an idempotency key of its own, as a
/// careful user writes it today: a key table, the key looked up after BEGIN
/// and inserted before COMMIT, both statements prepared once per session.
result soci_key_pg(const options& o, const bench::workload& w) {
    if (!w.transfer) throw std::runtime_error("bench: a report takes no idempotency key");
    {
        auto c = bench::pg_connect(pg_conninfo(o, w));
        PQsetNoticeProcessor(c.get(), &quiet_notices, nullptr);
        bench::pg_exec(c.get(), "create table if not exists bench_key (key text primary key, attempt text not null)");
        bench::pg_exec(c.get(), "truncate bench_key");
    }
    return measure(o, [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
        soci::session sql(soci::postgresql, pg_conninfo(o, w));
        PQsetNoticeProcessor(static_cast<soci::postgresql_session_backend*>(sql.get_backend())->conn_,
                             &quiet_notices, nullptr);
        soci_transfer_statements transfer(sql);
        std::string key, attempt = "a";
        int found = 0;
        soci::statement find = (sql.prepare << "select count(*) from bench_key where key = :k", soci::use(key),
                                soci::into(found));
        soci::statement record =
            (sql.prepare << "insert into bench_key (key, attempt) values (:k, :a)", soci::use(key), soci::use(attempt));
        bench::rng rng(seed_of(i));
        std::uint64_t n = 0;
        const std::string key_prefix = "k" + std::to_string(seed_of(i)) + "-";
        ready.fetch_add(1);
        drive(t, now, [&]() -> outcome {
            const auto tr = bench::next_transfer(rng, w);
            key = key_prefix + std::to_string(++n);
            for (unsigned a = 1;; ++a) {
                try {
                    sql << bench::pg_begin;
                    find.execute(true);
                    if (found != 0) {
                        sql.rollback();
                        return {true, false, a};
                    }
                    transfer_prepared(transfer, tr);
                    record.execute(true);
                    sql.commit();
                    return {true, false, a};
                } catch (const soci::postgresql_soci_error& e) {
                    if (const std::optional<outcome> ended = after_failed_attempt(sql, e, a)) return *ended;
                }
            }
        });
    });
}

/// libpqxx 6.4: pqxx::perform around a pqxx::transaction<serializable>, with
/// statements prepared on the connection.
result pqxx_pg(const options& o, const bench::workload& w) {
    return measure(o, [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
        pqxx::connection c(pg_conninfo(o, w));
        c.prepare("read", bench::pq_sql::read);
        c.prepare("update", bench::pq_sql::update);
        c.prepare("insert", bench::pq_sql::insert);
        c.prepare("report", bench::pq_sql::report);
        bench::rng rng(seed_of(i));
        ready.fetch_add(1);
        drive(t, now, [&]() -> outcome {
            unsigned attempts = 0;
            try {
                if (w.transfer) {
                    const auto tr = bench::next_transfer(rng, w);
                    pqxx::perform(
                        [&] {
                            ++attempts;
                            pqxx::transaction<pqxx::serializable> tx(c);
                            tx.exec_prepared("read", tr.from)[0][0].as<long long>();
                            tx.exec_prepared("read", tr.to)[0][0].as<long long>();
                            tx.exec_prepared("update", tr.first_delta, tr.first);
                            tx.exec_prepared("update", tr.second_delta, tr.second);
                            tx.exec_prepared("insert", tr.from, tr.to, tr.amount);
                            tx.commit();
                        },
                        peer_max_tries);
                } else {
                    const long long lo = bench::next_report(rng, w);
                    pqxx::perform(
                        [&] {
                            ++attempts;
                            pqxx::transaction<pqxx::serializable, pqxx::read_only> tx(c);
                            tx.exec_prepared("report", lo, lo + bench::report_span - 1)[0][1].as<long long>();
                            tx.commit();
                        },
                        peer_max_tries);
                }
                return {true, false, attempts};
            } catch (const pqxx::transaction_rollback&) {
                return {false, true, attempts};
            }
        });
    });
}

/// pgbench -M prepared running the same script, -c and -j matched; its
/// transaction log gives the latencies.
result pgbench_pg(const options& o, const bench::workload& w) {
    const auto dir = std::filesystem::temp_directory_path() / ("sertx-pgbench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto script = dir / "script.sql";
    std::ofstream(script) << bench::pgbench_script(w);
    const unsigned seconds = std::max(1u, static_cast<unsigned>(o.seconds + 0.5));
    std::ostringstream cmd;
    cmd << o.pgbench << " -n -M prepared -c " << o.clients << " -j " << o.clients << " -T " << seconds
        << " --max-tries=" << peer_max_tries << " -D accounts=" << w.accounts << " -f " << script << " -l --log-prefix="
        << (dir / "log").string() << " '" << pg_conninfo(o, w) << "' 2>&1";
    FILE* p = ::popen(cmd.str().c_str(), "r");
    if (!p) throw std::runtime_error("bench: cannot run pgbench");
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    auto number_after = [&](const std::string& label) -> double {
        const auto at = out.find(label);
        if (at == std::string::npos) return 0;
        return std::strtod(out.c_str() + at + label.size(), nullptr);
    };
    result r;
    r.total.commits = static_cast<std::uint64_t>(number_after("number of transactions actually processed: "));
    r.total.give_ups = static_cast<std::uint64_t>(number_after("number of failed transactions: "));
    r.total.attempts = r.total.commits + r.total.give_ups +
                       static_cast<std::uint64_t>(number_after("total number of retries: "));
    const double tps = number_after("\ntps = ");
    if (status != 0 || tps <= 0) {
        std::filesystem::remove_all(dir);
        throw std::runtime_error("bench: pgbench failed: " + cmd.str() + "\n" + out);
    }
    r.seconds = static_cast<double>(r.total.commits) / tps;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().filename().string().rfind("log", 0) != 0) continue;
        std::ifstream log(entry.path());
        std::string line;
        while (std::getline(log, line)) {
            std::istringstream fields(line);
            std::string client, number, latency;
            fields >> client >> number >> latency;
            if (!latency.empty() && std::isdigit(static_cast<unsigned char>(latency[0])))
                r.total.latency_us.push_back(static_cast<std::uint32_t>(std::stoul(latency)));
        }
    }
    std::filesystem::remove_all(dir);
    return r;
}

// ---------------------------------------------------------------------------
// SQLite

std::string sqlite_path(const options& o, const bench::workload& w) {
    return (std::filesystem::path(o.dir) / (o.prefix + std::string(w.database) + ".db")).string();
}

void sqlite_setup(const options& o, const bench::workload& w) {
    std::filesystem::create_directories(o.dir);
    sqlite_handle h(sqlite_path(o, w));
    bench::sqlite_setup(h.db, w.accounts);
    sqlite_exec(h.db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

template <class Policy, bool Prepared, bool Keyed = false, bool Effect = false>
result sertx_sqlite(const options& o, const bench::workload& w) {
    if (!w.transfer) throw std::runtime_error("bench: the SQLite runs measure transfers");
    auto db = sertx::sqlite3::open(sqlite_path(o, w), {.pool_size = o.clients});
    if constexpr (Keyed || Effect) sertx::install(db);  // the commit log, the journal
    sertx::effects journal(db);
    {
        std::vector<sertx::sqlite3::database::pool_type::lease> open;
        for (unsigned i = 0; i < o.clients; ++i) open.push_back(db.acquire(clock_type::time_point::max()));
    }
    sertx::stats before{}, after{};
    auto r = measure(
        o,
        [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
            bench::rng rng(seed_of(i));
            std::uint64_t n = 0;
            const std::string key_prefix = "k" + std::to_string(seed_of(i)) + "-";
            ready.fetch_add(1);
            drive(t, now, [&]() -> outcome {
                unsigned attempts = 1;
                const auto tr = bench::next_transfer(rng, w);
                try {
                    auto body = [&](auto& tx) {
                        attempts = tx.attempt();
                        if constexpr (Prepared) transfer_prepared(sertx::prepared<soci_transfer_statements>(tx), tr);
                        else transfer_once(tx.sql(), tr);
                        if constexpr (Effect)
                            journal.template schedule<bench_noop>(tx, key_prefix + std::to_string(n), "");
                    };
                    if constexpr (Effect) ++n;
                    if constexpr (Keyed)
                        sertx::transact<Policy>(db, sertx::idempotency_key{key_prefix + std::to_string(++n)}, body);
                    else
                        sertx::transact<Policy>(db, body);
                    return {true, false, attempts};
                } catch (const sertx::retries_exhausted& e) {
                    return {false, true, e.attempts()};
                }
            });
        },
        [&](bool start) { (start ? before : after) = db.stats(); });
    r.extra["busy"] = after.retries_of(sertx::failure::busy) - before.retries_of(sertx::failure::busy);
    r.extra["serialization"] = after.retries_of(sertx::failure::serialization) -
                               before.retries_of(sertx::failure::serialization);
    return r;
}

bool sqlite_retryable(int code) { return (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED; }

template <bool Prepared>
result soci_sqlite(const options& o, const bench::workload& w) {
    std::atomic<std::uint64_t> busy{0};
    auto r = measure(o, [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
        soci::session sql(soci::sqlite3, "db=\"" + sqlite_path(o, w) + "\"");
        sql << "PRAGMA busy_timeout=" + std::to_string(sqlite_busy_ms);  // first: another thread may be writing
        sql << "PRAGMA journal_mode=WAL";  // one statement each: SOCI prepares only the first of several
        sql << "PRAGMA synchronous=FULL";
        sql << "PRAGMA foreign_keys=ON";
        std::optional<soci_transfer_statements> st;
        if constexpr (Prepared) st.emplace(sql);
        bench::rng rng(seed_of(i));
        ready.fetch_add(1);
        drive(t, now, [&]() -> outcome {
            const auto tr = bench::next_transfer(rng, w);
            for (unsigned a = 1;; ++a) {
                try {
                    sql << "BEGIN IMMEDIATE";
                    if constexpr (Prepared) transfer_prepared(*st, tr);
                    else transfer_once(sql, tr);
                    sql.commit();
                    return {true, false, a};
                } catch (const soci::sqlite3_soci_error& e) {
                    try {
                        sql.rollback();
                    } catch (const soci::soci_error&) {
                    }
                    if (!sqlite_retryable(e.result())) throw;
                    busy.fetch_add(1);
                    if (a >= peer_max_tries) return {false, true, a};
                }
            }
        });
    });
    r.extra["busy"] = busy.load();
    return r;
}

/// The SQLite C API as a careful C programmer uses it: every statement
/// prepared once, BEGIN IMMEDIATE, retry on SQLITE_BUSY.
result raw_sqlite(const options& o, const bench::workload& w) {
    if (!w.transfer) throw std::runtime_error("bench: the SQLite runs measure transfers");
    std::atomic<std::uint64_t> busy{0};
    auto r = measure(o, [&](unsigned i, tally& t, std::atomic<int>& now, std::atomic<unsigned>& ready) {
        sqlite_handle h(sqlite_path(o, w));
        struct statements {
            sqlite3_stmt *begin = nullptr, *commit = nullptr, *rollback = nullptr, *read = nullptr, *update = nullptr,
                         *insert = nullptr;
            ~statements() {
                for (auto* s : {begin, commit, rollback, read, update, insert}) sqlite_api::sqlite3_finalize(s);
            }
        } st;
        auto prepare = [&](const char* sql, sqlite3_stmt** s) {
            sqlite_check(h.db, sqlite_api::sqlite3_prepare_v2(h.db, sql, -1, s, nullptr), sql);
        };
        prepare("BEGIN IMMEDIATE", &st.begin);
        prepare("COMMIT", &st.commit);
        prepare("ROLLBACK", &st.rollback);
        prepare(bench::sqlite_sql::read, &st.read);
        prepare(bench::sqlite_sql::update, &st.update);
        prepare(bench::sqlite_sql::insert, &st.insert);
        auto step = [&](sqlite3_stmt* s) {
            const int rc = sqlite_api::sqlite3_step(s);
            sqlite_api::sqlite3_reset(s);
            return rc;
        };
        auto ok = [](int rc) { return rc == SQLITE_DONE || rc == SQLITE_ROW; };
        auto read = [&](long long id) {
            sqlite_api::sqlite3_bind_int64(st.read, 1, id);
            const int rc = sqlite_api::sqlite3_step(st.read);
            if (rc == SQLITE_ROW) (void)sqlite_api::sqlite3_column_int64(st.read, 0);
            sqlite_api::sqlite3_reset(st.read);
            return rc;
        };
        auto update = [&](long long delta, long long id) {
            sqlite_api::sqlite3_bind_int64(st.update, 1, delta);
            sqlite_api::sqlite3_bind_int64(st.update, 2, id);
            return step(st.update);
        };
        bench::rng rng(seed_of(i));
        ready.fetch_add(1);
        drive(t, now, [&]() -> outcome {
            const auto tr = bench::next_transfer(rng, w);
            for (unsigned a = 1;; ++a) {
                int rc = step(st.begin);
                if (ok(rc)) rc = read(tr.from);
                if (ok(rc)) rc = read(tr.to);
                if (ok(rc)) rc = update(tr.first_delta, tr.first);
                if (ok(rc)) rc = update(tr.second_delta, tr.second);
                if (ok(rc)) {
                    sqlite_api::sqlite3_bind_int64(st.insert, 1, tr.from);
                    sqlite_api::sqlite3_bind_int64(st.insert, 2, tr.to);
                    sqlite_api::sqlite3_bind_int64(st.insert, 3, tr.amount);
                    rc = step(st.insert);
                }
                if (ok(rc)) rc = step(st.commit);
                if (ok(rc)) return {true, false, a};
                const int code = sqlite_api::sqlite3_extended_errcode(h.db);
                if (!sqlite_api::sqlite3_get_autocommit(h.db)) step(st.rollback);
                if (!sqlite_retryable(code))
                    throw std::runtime_error(std::string("bench: SQLite: ") + sqlite_api::sqlite3_errmsg(h.db));
                busy.fetch_add(1);
                if (a >= peer_max_tries) return {false, true, a};
            }
        });
    });
    r.extra["busy"] = busy.load();
    return r;
}

// ---------------------------------------------------------------------------
// Contenders by name

template <std::uint64_t Ms>
using lt = sertx::policy<sertx::lock_timeout<Ms>>;
template <class Backoff>
using with_backoff = sertx::policy<Backoff>;

using runner = result (*)(const options&, const bench::workload&);

const std::map<std::string, runner, std::less<>> pg_contenders = {
    {"sertx", &sertx_pg<sertx::default_policy, true, false>},
    {"sertx-once", &sertx_pg<sertx::default_policy, false, false>},
    {"sertx-verify", &sertx_pg<sertx::policy<sertx::verify_isolation<sertx::every_transaction>>, true, false>},
    {"sertx-key", &sertx_pg<sertx::default_policy, true, true>},
    {"sertx-effect", &sertx_pg<sertx::default_policy, true, false, sertx::postgresql::pooler_mode::none, true>},
    // pooler_mode::transaction on a direct connection: SET LOCAL per
    // transaction (with a lock_timeout), prepared objects made again in each.
    {"sertx-pooler", &sertx_pg<sertx::default_policy, true, false, sertx::postgresql::pooler_mode::transaction>},
    {"sertx-pooler-once", &sertx_pg<sertx::default_policy, false, false, sertx::postgresql::pooler_mode::transaction>},
    {"sertx-lt-0", &sertx_pg<lt<0>, true, false>},
    {"sertx-lt-1", &sertx_pg<lt<1>, true, false>},
    {"sertx-lt-2", &sertx_pg<lt<2>, true, false>},
    {"sertx-lt-5", &sertx_pg<lt<5>, true, false>},
    {"sertx-lt-10", &sertx_pg<lt<10>, true, false>},
    {"sertx-lt-20", &sertx_pg<lt<20>, true, false>},
    {"sertx-lt-50", &sertx_pg<lt<50>, true, false>},
    {"sertx-lt-100", &sertx_pg<lt<100>, true, false>},
    // The strategies at the default's base and cap; exponential and full
    // jitter as the previous default had them, and the previous attempt
    // budget (30), for the record.
    {"sertx-backoff-none", &sertx_pg<with_backoff<sertx::no_backoff>, true, false>},
    {"sertx-backoff-exponential", &sertx_pg<with_backoff<sertx::exponential<700, 70'000>>, true, false>},
    {"sertx-backoff-full-jitter", &sertx_pg<with_backoff<sertx::full_jitter<700, 70'000>>, true, false>},
    {"sertx-backoff-equal-jitter", &sertx_pg<with_backoff<sertx::equal_jitter<700, 70'000>>, true, false>},
    {"sertx-backoff-decorrelated", &sertx_pg<with_backoff<sertx::decorrelated_jitter<700, 70'000>>, true, false>},
    {"sertx-backoff-exponential-500-50000", &sertx_pg<with_backoff<sertx::exponential<500, 50'000>>, true, false>},
    {"sertx-backoff-full-jitter-500-50000", &sertx_pg<with_backoff<sertx::full_jitter<500, 50'000>>, true, false>},
    {"sertx-attempts-30", &sertx_pg<sertx::policy<sertx::max_attempts<30>>, true, false>},
    {"soci", &soci_pg<true>},
    {"soci-once", &soci_pg<false>},
    {"soci-key", &soci_key_pg},
    {"pqxx", &pqxx_pg},
    {"pgbench", &pgbench_pg},
};

const std::map<std::string, runner, std::less<>> sqlite_contenders = {
    {"sertx", &sertx_sqlite<sertx::default_policy, true>},
    {"sertx-once", &sertx_sqlite<sertx::default_policy, false>},
    {"sertx-key", &sertx_sqlite<sertx::default_policy, true, true>},
    {"sertx-effect", &sertx_sqlite<sertx::default_policy, true, false, true>},
    {"soci", &soci_sqlite<true>},
    {"soci-once", &soci_sqlite<false>},
    {"raw", &raw_sqlite},
};

double percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument("bench: " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--backend") o.backend = value();
        else if (a == "--pg") o.pg = value();
        else if (a == "--dir") o.dir = value();
        else if (a == "--workload") o.workload = value();
        else if (a == "--contender") o.contender = value();
        else if (a == "--clients") o.clients = static_cast<unsigned>(std::stoul(value()));
        else if (a == "--seconds") o.seconds = std::stod(value());
        else if (a == "--warmup") o.warmup = std::stod(value());
        else if (a == "--pgbench") o.pgbench = value();
        else if (a == "--prefix") o.prefix = value();
        else if (a == "--list") o.list = true;
        else if (a == "--print-pgbench-script") o.print_pgbench_script = true;
        else if (a == "--accept-weaker-durability") o.weak_durability = true;
        else throw std::invalid_argument("bench: unknown argument " + a);
    }
    if (o.clients == 0) throw std::invalid_argument("bench: --clients must be at least 1");
    if (o.backend == "pg" && o.pg.empty() && !o.list && !o.print_pgbench_script) {
        const char* env = std::getenv("SERTX_PG");
        if (!env) throw std::invalid_argument("bench: --pg (or SERTX_PG) is needed for PostgreSQL");
        o.pg = env;
    }
    if (o.backend == "sqlite" && o.dir.empty()) o.dir = (std::filesystem::temp_directory_path() / "sertx-bench").string();
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const options o = parse(argc, argv);
        const auto& w = bench::find_workload(o.workload);
        if (o.print_pgbench_script) {
            std::cout << bench::pgbench_script(w);
            return 0;
        }
        const bool pg = o.backend == "pg";
        if (!pg && o.backend != "sqlite") throw std::invalid_argument("bench: --backend is pg or sqlite");
        const auto& contenders = pg ? pg_contenders : sqlite_contenders;
        if (o.list) {
            for (const auto& [name, run] : contenders) std::cout << name << '\n';
            return 0;
        }
        const auto found = contenders.find(o.contender);
        if (found == contenders.end())
            throw std::invalid_argument("bench: unknown contender '" + o.contender + "' for " + o.backend);
        if (pg) pg_setup(o.pg, pg_database_name(o, w), w.accounts);
        else sqlite_setup(o, w);

        result r = found->second(o, w);
        auto& t = r.total;
        const double p50 = percentile(t.latency_us, 0.50), p99 = percentile(t.latency_us, 0.99);
        std::cout << "backend=" << o.backend << "\tworkload=" << o.workload << "\tcontender=" << o.contender
                  << "\tclients=" << o.clients << "\tseconds=" << r.seconds << "\tcommits=" << t.commits
                  << "\tattempts=" << t.attempts << "\tgive_ups=" << t.give_ups << "\terrors=" << t.errors
                  << "\ttps=" << (r.seconds > 0 ? static_cast<double>(t.commits) / r.seconds : 0.0)
                  << "\tp50_us=" << p50 << "\tp99_us=" << p99;
        if (t.commits > 0 && t.allocations > 0)
            std::cout << "\tallocations_per_tx=" << static_cast<double>(t.allocations) / static_cast<double>(t.commits);
        if (r.client_max > 0) std::cout << "\tclient_min=" << r.client_min << "\tclient_max=" << r.client_max;
        for (const auto& [k, v] : r.extra) std::cout << '\t' << k << '=' << v;
        double load1 = 0;
        std::ifstream("/proc/loadavg") >> load1;  // the machine may be shared: say how busy it was
        std::cout << "\tload1=" << load1;
        std::cout << std::endl;
        if (!t.first_error.empty()) std::cerr << "bench: " << o.contender << ": " << t.first_error << '\n';
        return t.errors == 0 ? 0 : 2;
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
}

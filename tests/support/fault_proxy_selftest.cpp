// SPDX-License-Identifier: BSL-1.0
//
// Self-test of sertx::test::fault_proxy against a real PostgreSQL server.
//
//   SERTX_PG='host=127.0.0.1 port=5432 user=postgres dbname=postgres' ./fault_proxy_selftest
//
// Build (once with -fsanitize=thread, once with -fsanitize=address,undefined):
//   g++ -std=c++20 -Wall -Wextra -Werror -O1 -g -fsanitize=thread -I/usr/include/postgresql
//       fault_proxy_selftest.cpp -o fault_proxy_selftest -lpq -pthread
// Last line of output: "N passed, M failed"; exit status non-zero on failure.

#include "fault_proxy.hpp"
#include "wait.hpp"

#include <dirent.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using sertx::test::fault_proxy;
using steady = std::chrono::steady_clock;

int g_passed = 0;
int g_failed = 0;

void check(bool ok, const std::string& what) {
    if (ok) {
        ++g_passed;
        std::printf("  ok   %s\n", what.c_str());
    } else {
        ++g_failed;
        std::printf("  FAIL %s\n", what.c_str());
    }
    std::fflush(stdout);
}

void section(const char* name) {
    std::printf("[%s]\n", name);
    std::fflush(stdout);
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

// Kills the process if the whole test takes unreasonably long (a hang is a failure).
class watchdog {
public:
    explicit watchdog(std::chrono::seconds budget)
        : thread_([this, budget] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, budget, [this] { return done_; })) {
                  std::printf("FAIL watchdog: self-test exceeded %lld s (hang)\n%d passed, %d failed\n",
                              static_cast<long long>(budget.count()), 0, 1);
                  std::fflush(stdout);
                  std::_Exit(3);
              }
          }) {}
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_; // last
};

struct pq_deleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using pg_ptr = std::unique_ptr<PGconn, pq_deleter>;

std::string quote(std::string_view v) {
    std::string out = "'";
    for (char c : v) {
        if (c == '\\' || c == '\'') out += '\\';
        out += c;
    }
    out += '\'';
    return out;
}

struct target {
    std::string direct;      // conninfo for direct connections
    std::string other_opts;  // options to carry over to proxied connections
    std::string host;
    unsigned short port = 5432;
};

target parse_target(const char* conninfo) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo, &err);
    if (opts == nullptr) {
        std::string msg = err != nullptr ? err : "out of memory";
        PQfreemem(err);
        throw std::runtime_error("cannot parse SERTX_PG: " + msg);
    }
    target t;
    std::string host;
    std::string hostaddr;
    std::string port;
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view kw = o->keyword;
        if (kw == "host") host = o->val;
        else if (kw == "hostaddr") hostaddr = o->val;
        else if (kw == "port") port = o->val;
        else if (kw == "sslmode" || kw == "gssencmode" || kw == "connect_timeout" || kw == "sslnegotiation") {
        } else {
            t.other_opts += std::string(kw) + "=" + quote(o->val) + " ";
        }
    }
    PQconninfoFree(opts);
    t.host = !hostaddr.empty() ? hostaddr : (!host.empty() ? host : "127.0.0.1");
    if (t.host.find(',') != std::string::npos || t.host.front() == '/')
        throw std::runtime_error("SERTX_PG must name a single TCP host (not a socket directory): " + t.host);
    if (!port.empty()) t.port = static_cast<unsigned short>(std::stoul(port));
    t.direct = t.other_opts + "host=" + quote(t.host) + " port=" + std::to_string(t.port) + " connect_timeout=5";
    return t;
}

std::string proxied_conninfo(const target& t, const fault_proxy& p, const char* sslmode = "disable") {
    return t.other_opts + "host=127.0.0.1 port=" + std::to_string(p.port()) + " sslmode=" + sslmode +
           " gssencmode=disable connect_timeout=5";
}

pg_ptr connect(const std::string& conninfo) { return pg_ptr(PQconnectdb(conninfo.c_str())); }

bool connected(const pg_ptr& c) { return c && PQstatus(c.get()) == CONNECTION_OK; }

struct exec_result {
    bool ok = false;        // every result was COMMAND_OK / TUPLES_OK
    bool conn_bad = false;  // the connection is broken afterwards
    bool timed_out = false; // no complete answer within the time limit
    std::string value;      // first column of first row, if any
    std::string error;
};

// Collects the results of a query already sent, with a deadline: a hang
// becomes timed_out instead of blocking forever.
exec_result collect(PGconn* c, std::chrono::milliseconds limit) {
    exec_result r;
    const auto deadline = steady::now() + limit;
    bool ok = true;
    bool any = false;
    for (;;) {
        while (PQisBusy(c) != 0 && PQstatus(c) != CONNECTION_BAD) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            if (left.count() <= 0) {
                r.timed_out = true;
                r.error = "timed out";
                return r;
            }
            pollfd p{PQsocket(c), POLLIN, 0};
            (void)::poll(&p, 1, static_cast<int>(left.count()) + 1);
            if (PQconsumeInput(c) == 0) break;
        }
        PGresult* res = PQgetResult(c);
        if (res == nullptr) break;
        any = true;
        const auto st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (st == PGRES_TUPLES_OK && r.value.empty() && PQntuples(res) > 0 && PQnfields(res) > 0)
                r.value = PQgetvalue(res, 0, 0);
        } else {
            ok = false;
            if (r.error.empty()) r.error = PQresultErrorMessage(res);
        }
        PQclear(res);
    }
    r.conn_bad = PQstatus(c) == CONNECTION_BAD;
    r.ok = ok && any && !r.conn_bad;
    if (!r.ok && r.error.empty()) r.error = PQerrorMessage(c);
    return r;
}

// PQexec with a deadline.
exec_result exec(PGconn* c, const std::string& sql, std::chrono::milliseconds limit = 10s) {
    if (PQsendQuery(c, sql.c_str()) == 0) {
        exec_result r;
        r.error = PQerrorMessage(c);
        r.conn_bad = PQstatus(c) == CONNECTION_BAD;
        return r;
    }
    return collect(c, limit);
}

std::string one_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& c : s) {
        if (c == '\n') c = ' ';
    }
    return s;
}

long count_rows(PGconn* direct, const std::string& table, const std::string& where) {
    const auto r = exec(direct, "SELECT count(*) FROM " + table + " WHERE " + where);
    if (!r.ok) return -1;
    return std::stol(r.value);
}

bool throws_invalid_argument(const std::string& host) {
    try {
        fault_proxy p(host, 5432);
    } catch (const std::invalid_argument&) {
        return true;
    } catch (...) {
        return false;
    }
    return false;
}

bool constructs(const std::string& host) {
    try {
        fault_proxy p(host, 5432);
        return p.port() != 0;
    } catch (...) {
        return false;
    }
}

// One BEGIN / INSERT / COMMIT through c.  Returns which step failed (0 = none).
struct txn_outcome {
    int failed_step = 0; // 1 BEGIN, 2 INSERT, 3 COMMIT
    bool timed_out = false;
    bool conn_bad = false;
};

txn_outcome run_txn(PGconn* c, const std::string& table, int id, const char* tag) {
    txn_outcome o;
    const std::string steps[3] = {
        "BEGIN",
        "INSERT INTO " + table + " (id, tag) VALUES (" + std::to_string(id) + ", '" + tag + "')",
        "COMMIT",
    };
    for (int i = 0; i < 3; ++i) {
        const auto r = exec(c, steps[i]);
        if (!r.ok) {
            o.failed_step = i + 1;
            o.timed_out = r.timed_out;
            o.conn_bad = r.conn_bad;
            return o;
        }
    }
    return o;
}

// Runs n transactions with the given chaos through a fresh proxy; returns the
// per-transaction pattern ('.' = committed, '1'..'3' = failed step, 'C' = connect failed).
std::string chaos_pattern(const target& t, const std::string& table, std::uint64_t seed, int first_id, int n,
                          double cut_p) {
    fault_proxy proxy(t.host, t.port, seed);
    proxy.set_chaos(cut_p, 0.0, 0ms);
    std::string pattern;
    pg_ptr c;
    for (int i = 0; i < n; ++i) {
        if (!connected(c)) c = connect(proxied_conninfo(t, proxy));
        if (!connected(c)) {
            pattern += 'C';
            continue;
        }
        const auto o = run_txn(c.get(), table, first_id + i, "repro");
        pattern += o.failed_step == 0 ? '.' : static_cast<char>('0' + o.failed_step);
    }
    return pattern;
}

void run_all(const target& t) {
    const std::string table = "sertx_fault_proxy_selftest_" + std::to_string(::getpid());

    section("setup");
    pg_ptr direct = connect(t.direct);
    check(connected(direct), "direct connection to SERTX_PG");
    if (!connected(direct)) {
        std::printf("       %s\n", one_line(PQerrorMessage(direct.get())).c_str());
        return;
    }
    check(exec(direct.get(), "DROP TABLE IF EXISTS " + table).ok, "drop old table");
    check(exec(direct.get(), "CREATE TABLE " + table + " (id int PRIMARY KEY, tag text)").ok, "create table");

    section("loopback-only upstream");
    check(throws_invalid_argument("10.0.0.1"), "10.0.0.1 refused");
    check(throws_invalid_argument("192.168.1.10"), "192.168.1.10 refused");
    check(throws_invalid_argument("8.8.8.8"), "8.8.8.8 refused");
    check(throws_invalid_argument("0.0.0.0"), "0.0.0.0 refused");
    check(throws_invalid_argument("::"), ":: refused");
    check(throws_invalid_argument("2001:db8::1"), "2001:db8::1 refused");
    check(throws_invalid_argument("example.com"), "host names other than localhost refused (no DNS)");
    check(throws_invalid_argument(""), "empty host refused");
    check(constructs("127.0.0.1") && constructs("127.3.2.1") && constructs("::1") && constructs("[::1]") &&
              constructs("localhost"),
          "127.0.0.1, 127.3.2.1, ::1, [::1], localhost accepted");

    section("commit classifier");
    {
        bool good = true;
        for (const char* s : {"COMMIT", "commit", " Commit ;", "COMMIT;", "\n\tcommit\n", "END", "end;",
                              "COMMIT AND CHAIN", "END TRANSACTION", "commit work", "BEGIN; COMMIT",
                              "insert into sertx_commit_log values ('6b', '00', 1, ''); COMMIT", "COMMIT; SELECT 1",
                              "COMMIT; SET LOCAL synchronous_commit TO off; SELECT pg_notify('sertx_effect', 'x')"}) {
            if (!fault_proxy::is_commit_query(s)) {
                std::printf("       not recognised: '%s'\n", s);
                good = false;
            }
        }
        for (const char* s : {"", "COMMITTED", "ENDS", "ROLLBACK", "SELECT 'COMMIT'", "SELECT 1; ROLLBACK",
                              "BEGIN READ ONLY; SELECT 1; COMMIT; BEGIN ISOLATION LEVEL SERIALIZABLE",
                              "commit_ts", "END_X", "ABORT", ";"}) {
            if (fault_proxy::is_commit_query(s)) {
                std::printf("       wrongly recognised: '%s'\n", s);
                good = false;
            }
        }
        check(good, "COMMIT/END variants recognised, look-alikes not");
    }

    fault_proxy proxy(t.host, t.port, 7);
    check(proxy.port() != 0, "proxy listens on an ephemeral port (" + std::to_string(proxy.port()) + ")");

    section("normal transaction");
    {
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(connected(c), "connect through proxy");
        if (connected(c)) {
            const auto o = run_txn(c.get(), table, 1, "normal");
            check(o.failed_step == 0, "BEGIN/INSERT/COMMIT succeed");
            check(count_rows(direct.get(), table, "id = 1") == 1, "row 1 committed (direct check)");
            check(proxy.commits_seen() == 1, "commits_seen == 1");
            const auto r = exec(c.get(), "SELECT 42");
            check(r.ok && r.value == "42", "connection still usable after commit");
            const auto big = exec(c.get(), "SELECT length(repeat('x', 3000000))");
            check(big.ok && big.value == "3000000", "large query/reply passes");
            const auto big2 = exec(c.get(), "SELECT count(*) FROM generate_series(1, 200000) g, "
                                            "LATERAL (SELECT repeat('y', 10)) r");
            check(big2.ok && big2.value == "200000", "long-running query passes");
        }
        check(proxy.connections_accepted() >= 1, "connections_accepted counted");
    }
    {
        pg_ptr c = connect(proxied_conninfo(t, proxy, "prefer"));
        check(connected(c), "sslmode=prefer through proxy (SSLRequest passes through)");
        if (connected(c)) {
            const auto r = exec(c.get(), "SELECT 'ssl-path'");
            check(r.ok && r.value == "ssl-path", "query after SSLRequest negotiation");
        }
    }

    section("drop_after_commit");
    {
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(connected(c), "connect");
        if (connected(c)) {
            check(exec(c.get(), "BEGIN").ok, "BEGIN");
            check(exec(c.get(), "INSERT INTO " + table + " VALUES (2, 'drop-after')").ok, "INSERT");
            proxy.drop_after_commit(1);
            const auto t0 = steady::now();
            const auto r = exec(c.get(), "COMMIT");
            check(!r.ok && !r.timed_out && r.conn_bad, "client sees a connection error on COMMIT (" +
                                                           one_line(r.error) + ")");
            check(seconds_since(t0) < 3.0, "error is prompt");
            check(count_rows(direct.get(), table, "id = 2") == 1, "row 2 IS committed (direct check)");
            check(proxy.commits_dropped_after_forward() == 1, "commits_dropped_after_forward == 1");
            check(proxy.drop_after_commit_pending() == 0, "drop_after_commit consumed");
        }
        pg_ptr c2 = connect(proxied_conninfo(t, proxy));
        const auto o = connected(c2) ? run_txn(c2.get(), table, 3, "after-drop") : txn_outcome{9, false, true};
        check(o.failed_step == 0 && count_rows(direct.get(), table, "id = 3") == 1,
              "next commit passes normally");
    }
    {
        proxy.drop_after_commit(2);
        int errors = 0;
        for (int id : {4, 5}) {
            pg_ptr c = connect(proxied_conninfo(t, proxy));
            if (connected(c) && run_txn(c.get(), table, id, "drop-after-2").failed_step == 3) ++errors;
        }
        check(errors == 2 && count_rows(direct.get(), table, "id IN (4, 5)") == 2,
              "drop_after_commit(2) spans two connections, both committed");
        check(proxy.commits_dropped_after_forward() == 3, "commits_dropped_after_forward == 3");
    }

    section("drop_before_commit");
    {
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(connected(c), "connect");
        if (connected(c)) {
            check(exec(c.get(), "BEGIN").ok, "BEGIN");
            check(exec(c.get(), "INSERT INTO " + table + " VALUES (6, 'drop-before')").ok, "INSERT");
            proxy.drop_before_commit(1);
            const auto r = exec(c.get(), "commit;");
            check(!r.ok && !r.timed_out && r.conn_bad, "client sees a connection error on COMMIT (" +
                                                           one_line(r.error) + ")");
            check(count_rows(direct.get(), table, "id = 6") == 0, "row 6 is NOT committed (direct check)");
            check(proxy.commits_dropped_before_forward() == 1, "commits_dropped_before_forward == 1");
        }
        const auto seen = proxy.commits_seen();
        check(seen == 6, "commits_seen == 6 (" + std::to_string(seen) + ")");
    }

    section("cut_all");
    {
        pg_ptr a = connect(proxied_conninfo(t, proxy));
        pg_ptr b = connect(proxied_conninfo(t, proxy));
        check(connected(a) && connected(b), "two idle connections");
        if (connected(a) && connected(b)) {
            check(exec(a.get(), "SELECT 1").ok && exec(b.get(), "SELECT 1").ok, "both usable");
            const auto cuts = proxy.connections_cut();
            proxy.cut_all();
            check(proxy.connections_cut() - cuts == 2, "connections_cut increased by 2");
            const auto ra = exec(a.get(), "SELECT 1");
            const auto rb = exec(b.get(), "SELECT 1");
            check(!ra.ok && ra.conn_bad && !ra.timed_out, "idle connection a broken (" + one_line(ra.error) + ")");
            check(!rb.ok && rb.conn_bad && !rb.timed_out, "idle connection b broken");
        }
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(connected(c) && exec(c.get(), "SELECT 1").ok, "new connections work after cut_all");
        // Wait until the proxy has reaped the cut connections' threads.
        const auto t0 = steady::now();
        while (proxy.active_connections() > 1 && seconds_since(t0) < 5.0) std::this_thread::sleep_for(10ms);
        check(proxy.active_connections() == 1, "cut connections' threads finished");
    }

    section("refuse_new");
    {
        pg_ptr old = connect(proxied_conninfo(t, proxy));
        proxy.refuse_new(true);
        const auto t0 = steady::now();
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(!connected(c), "PQconnectdb fails while refusing (" + one_line(PQerrorMessage(c.get())) + ")");
        check(seconds_since(t0) < 3.0, "failure is prompt");
        check(proxy.connections_refused() >= 1, "connections_refused counted");
        check(connected(old) && exec(old.get(), "SELECT 1").ok, "existing connection unaffected");
        proxy.refuse_new(false);
        pg_ptr d = connect(proxied_conninfo(t, proxy));
        check(connected(d) && exec(d.get(), "SELECT 1").ok, "connect works again after refuse_new(false)");
    }

    section("stall");
    {
        pg_ptr c = connect(proxied_conninfo(t, proxy));
        check(connected(c), "connect");
        if (connected(c)) {
            const auto stalls = proxy.stalls();
            proxy.set_chaos(0.0, 1.0, 300ms);
            const auto t0 = steady::now();
            const auto r = exec(c.get(), "SELECT 'stalled'");
            const double took = seconds_since(t0);
            proxy.set_chaos(0.0, 0.0, 0ms);
            check(r.ok && r.value == "stalled", "stalled query still succeeds");
            check(proxy.stalls() - stalls == 1, "stalls counted");
            check(took < 2.0, "stall bounded by max_stall (" + std::to_string(took) + " s)");
            const auto t1 = steady::now();
            check(exec(c.get(), "SELECT 1").ok && seconds_since(t1) < 1.0, "chaos off: no more stalls");
        }
    }

    section("chaos: 200 short transactions, cut p=0.2, stall p=0.1 (<=50ms)");
    {
        fault_proxy chaos(t.host, t.port, 12345);
        chaos.set_chaos(0.2, 0.1, 50ms);
        const auto t0 = steady::now();
        int committed = 0;
        int failed = 0;
        int hung = 0;
        int connect_failures = 0;
        int unexpected = 0;
        std::vector<int> acknowledged;
        pg_ptr c;
        for (int i = 0; i < 200; ++i) {
            const int id = 1000 + i;
            if (!connected(c)) c = connect(proxied_conninfo(t, chaos));
            if (!connected(c)) {
                ++connect_failures;
                continue;
            }
            const auto ts = steady::now();
            const auto o = run_txn(c.get(), table, id, "chaos");
            if (seconds_since(ts) > 10.0) ++hung;
            if (o.timed_out) ++hung;
            if (o.failed_step == 0) {
                ++committed;
                acknowledged.push_back(id);
            } else {
                ++failed;
                if (!o.conn_bad) ++unexpected; // a chaos failure must be a connection failure
            }
        }
        c.reset();
        const double took = seconds_since(t0);
        std::printf("       committed %d, failed %d, connect failures %d, cuts %llu, stalls %llu, %.1f s\n",
                    committed, failed, connect_failures, static_cast<unsigned long long>(chaos.connections_cut()),
                    static_cast<unsigned long long>(chaos.stalls()), took);
        check(hung == 0, "no operation hung");
        check(took < 120.0, "whole run bounded in time");
        check(chaos.connections_cut() > 0 && failed > 0, "some connections were cut");
        check(committed > 0, "some transactions committed");
        check(chaos.stalls() > 0, "some messages stalled");
        check(unexpected == 0, "every failure was a connection failure");
        check(connect_failures == 0, "startup handshake is not subject to chaos");
        bool all_present = true;
        for (int id : acknowledged) {
            if (count_rows(direct.get(), table, "id = " + std::to_string(id)) != 1) all_present = false;
        }
        check(all_present, "every acknowledged commit is in the table");
        const long chaos_rows = count_rows(direct.get(), table, "tag = 'chaos'");
        check(chaos_rows >= committed && chaos_rows <= committed + failed,
              "committed rows between acknowledged and attempted (" + std::to_string(chaos_rows) + ")");
    }

    section("chaos is reproducible from the seed");
    {
        const auto p1 = chaos_pattern(t, table, 42, 5000, 40, 0.25);
        const auto p2 = chaos_pattern(t, table, 42, 6000, 40, 0.25);
        const auto p3 = chaos_pattern(t, table, 43, 7000, 40, 0.25);
        std::printf("       seed 42: %s\n       seed 42: %s\n       seed 43: %s\n", p1.c_str(), p2.c_str(),
                    p3.c_str());
        check(p1 == p2, "same seed, same fault pattern");
        check(p1 != p3, "different seed, different fault pattern");
    }

    section("destructor is prompt with idle, stalled and busy connections");
    {
        auto p = std::make_unique<fault_proxy>(t.host, t.port, 3);
        pg_ptr idle = connect(proxied_conninfo(t, *p));
        pg_ptr stalled = connect(proxied_conninfo(t, *p));
        pg_ptr busy = connect(proxied_conninfo(t, *p));
        check(connected(idle) && connected(stalled) && connected(busy), "three connections");
        if (connected(idle) && connected(stalled) && connected(busy)) {
            p->set_chaos(0.0, 1.0, 30000ms);
            (void)PQsendQuery(stalled.get(), "SELECT 1"); // held by the proxy for up to 30 s
            const auto s0 = steady::now();
            while (p->stalls() == 0 && seconds_since(s0) < 5.0) std::this_thread::sleep_for(5ms);
            p->set_chaos(0.0, 0.0, 0ms);
            check(p->stalls() == 1, "query is stalled");
            (void)PQsendQuery(busy.get(), "SELECT pg_sleep(5)"); // server busy, proxy waiting for reply
            // Until the server runs it (not a guessed 200 ms): the proxy is then waiting for a reply.
            pg_ptr direct = connect(t.direct);
            const bool running = connected(direct) && sertx::test::wait_until([&] {
                const auto r = exec(direct.get(), "SELECT count(*) FROM pg_stat_activity "
                                                  "WHERE state = 'active' AND query = 'SELECT pg_sleep(5)'");
                return r.ok && r.value != "0";
            }, 5s);
            check(running, "the busy query reached the server");
            const auto t0 = steady::now();
            p.reset();
            const double took = seconds_since(t0);
            check(took < 1.0, "destructor took " + std::to_string(took) + " s");
            const auto r1 = exec(idle.get(), "SELECT 1", 5s);
            check(!r1.ok && r1.conn_bad && !r1.timed_out, "idle client sees the connection closed");
            const auto r2 = collect(stalled.get(), 5s);
            check(!r2.ok && r2.conn_bad && !r2.timed_out,
                  "stalled client sees the connection closed (ok=" + std::to_string(r2.ok) + " bad=" +
                      std::to_string(r2.conn_bad) + " timeout=" + std::to_string(r2.timed_out) + " " +
                      one_line(r2.error) + ")");
            // The server cancels pg_sleep only when it notices; just make sure our side is closed.
            pollfd pf{PQsocket(busy.get()), POLLIN, 0};
            check(::poll(&pf, 1, 2000) == 1, "busy client's socket reports EOF");
        }
    }

    section("concurrent clients + cut_all + changing controls (race check)");
    {
        fault_proxy p(t.host, t.port, 99);
        p.set_chaos(0.05, 0.1, 20ms);
        std::atomic<int> ok_txns{0};
        std::atomic<int> hung{0};
        std::atomic<bool> done{false};
        std::vector<std::thread> workers;
        const auto t0 = steady::now();
        for (int w = 0; w < 4; ++w) {
            workers.emplace_back([&, w] {
                pg_ptr c;
                for (int i = 0; i < 25; ++i) {
                    if (!connected(c)) c = connect(proxied_conninfo(t, p));
                    if (!connected(c)) continue;
                    const auto o = run_txn(c.get(), table, 20000 + w * 100 + i, "concurrent");
                    if (o.timed_out) ++hung;
                    if (o.failed_step == 0) ++ok_txns;
                }
            });
        }
        std::thread controller([&] {
            int k = 0;
            while (!done.load()) {
                std::this_thread::sleep_for(15ms);
                switch (k++ % 40) { // one cycle ~ 600 ms, longer than a (slow, SCRAM) connect
                case 10: p.cut_all(); break;
                case 20: p.drop_after_commit(1); break;
                case 25: p.drop_before_commit(1); break;
                case 30: p.set_chaos(0.05 * (k % 3), 0.1, 20ms); break;
                default: break;
                }
            }
        });
        for (auto& w : workers) w.join();
        done.store(true);
        controller.join();
        std::printf("       %d of 100 committed, cuts %llu, drops %llu/%llu, %.1f s\n", ok_txns.load(),
                    static_cast<unsigned long long>(p.connections_cut()),
                    static_cast<unsigned long long>(p.commits_dropped_before_forward()),
                    static_cast<unsigned long long>(p.commits_dropped_after_forward()), seconds_since(t0));
        check(hung.load() == 0, "no operation hung");
        check(ok_txns.load() > 0, "some transactions committed");
        check(seconds_since(t0) < 120.0, "bounded in time");
    }

    section("upstream down");
    {
        fault_proxy dead("127.0.0.1", 1, 1); // nothing listens on port 1
        pg_ptr c = connect(proxied_conninfo(t, dead));
        check(!connected(c), "connecting through a proxy whose upstream is down fails");
        const auto t0 = steady::now();
        while (dead.upstream_connect_failures() == 0 && seconds_since(t0) < 5.0) std::this_thread::sleep_for(10ms);
        check(dead.upstream_connect_failures() == 1, "upstream_connect_failures == 1");
    }

    section("cleanup");
    check(exec(direct.get(), "DROP TABLE " + table).ok, "drop table");
}

} // namespace

int open_fds() {
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n;
}

int main() {
    const char* conninfo = std::getenv("SERTX_PG");
    if (conninfo == nullptr || *conninfo == '\0') {
        std::printf("SERTX_PG is not set (e.g. 'host=127.0.0.1 port=5432 user=postgres dbname=postgres')\n"
                    "0 passed, 1 failed\n");
        return 2;
    }
    {
        watchdog dog(300s);
        const int fds_before = open_fds();
        try {
            run_all(parse_target(conninfo));
        } catch (const std::exception& e) {
            check(false, std::string("unexpected exception: ") + e.what());
        }
        const int fds_after = open_fds();
        check(fds_after == fds_before, "no file descriptor leaked (" + std::to_string(fds_before) + " before, " +
                                           std::to_string(fds_after) + " after)");
    }
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

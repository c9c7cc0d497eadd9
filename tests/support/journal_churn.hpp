// SPDX-License-Identifier: BSL-1.0
#pragma once
// The journal under real process churn (issue 14's acceptance test), written
// once for both backends (SERTX_JOURNAL_CHURN_CASES, at the end; run by
// tests/*/journal_churn_test.cpp). Three dispatcher processes
// (support/journal_churn_child.cpp, path in SERTX_CHURN_CHILD) run
// `journal.run` over 2,000 effects, half at-most-once, half idempotent;
// every ~300 ms one is SIGKILLed and a new one started under a new name (a
// pod replaced), and now and then another is SIGSTOPped past its lease and
// SIGCONTed later. The children write each real call in an outside ledger
// (fsynced files, one per process: see the child); at the end the journal
// is checked against it.
//
// The fixture is the one of support/effects_crash.hpp: child_backend,
// target(), open(), file(name), deriving from a backend of databases.hpp.

#include "catch.hpp"
#include "databases.hpp"
#include "exactly_once.hpp"
#include "wait.hpp"

#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef SERTX_CHURN_CHILD
#error "SERTX_CHURN_CHILD must name the journal_churn_child program (tests/CMakeLists.txt sets it)"
#endif

extern char** environ;

namespace sertx::test::churn {

using steady = std::chrono::steady_clock;

inline long long now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// The children's operations as the scheduler names them (the children
/// call them; the names must match journal_churn_child.cpp's).
struct churn_pay_op {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "churn_pay";
    std::string operator()(const std::string&) const { return {}; }
};
struct churn_refresh_op {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "churn_refresh";
    void operator()(const std::string&) const {}
};

/// A dispatcher process: a pod, with the name it was started under.
struct pod {
    pid_t pid = -1;
    std::string name;
    bool stopped = false;
    steady::time_point resume_at{};
};

/// Starts a child dispatcher; its pid. argv and the environment are built
/// before fork: the child only calls execve and _exit.
inline pid_t spawn(const std::vector<std::string>& args) {
    std::vector<std::string> all = {SERTX_CHURN_CHILD};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    // SIGTERM blocked from before fork to the child's sigwait (the mask is
    // inherited, and kept across execve), so that one sent while the child
    // starts waits for it, instead of reaching the test framework's handler
    // in the forked copy or killing the child before main.
    sigset_t term, before;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &term, &before);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execve(argv[0], argv.data(), environ);
        ::_exit(127);
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    REQUIRE(pid > 0);
    return pid;
}

inline int reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

/// One line of a ledger or events file: `<verb> <key> <dispatcher> <µs> [detail]`.
struct entry {
    std::string verb, key, dispatcher;
    long long at_us = 0;
    std::string detail;
};

/// Every line of every `*.<suffix>` file in `dir`, in time order.
inline std::vector<entry> read_all(const std::string& dir, const std::string& suffix) {
    std::vector<entry> out;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
        if (f.path().extension() != suffix) continue;
        std::ifstream in(f.path());
        for (std::string line; std::getline(in, line);) {
            std::istringstream fields(line);
            entry e;
            if (!(fields >> e.verb >> e.key >> e.dispatcher >> e.at_us)) continue;
            std::getline(fields >> std::ws, e.detail);
            out.push_back(e);
        }
    }
    std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) { return a.at_us < b.at_us; });
    return out;
}

/// What the test did to its pods, in order, for the report of a failure.
struct action {
    long long at_us;
    std::string what, name;
};

inline std::string fmt_ms(long long us) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", static_cast<double>(us) / 1000.0);
    return b;
}

/// The run, for one backend.
template <class Db>
void churn(Db& db, const std::string& backend, const std::string& target, const std::string& ledger_dir,
           int per_kind, std::chrono::milliseconds lease, unsigned seed) {
    const auto started = steady::now();
    const long long t0 = now_us();
    std::filesystem::create_directories(ledger_dir);
    sertx::install(db);
    sertx::effects journal(db, "churn-scheduler");
    {
        std::vector<std::string> pays, refreshes;
        for (int i = 0; i < per_kind; ++i) {
            pays.push_back("pay-" + std::to_string(i));
            refreshes.push_back("refresh-" + std::to_string(i));
        }
        for (int at = 0; at < per_kind; at += 250) {
            const auto end = std::min(at + 250, per_kind);
            sertx::transact(db, [&](auto& tx) {
                for (int i = at; i < end; ++i) {
                    journal.template schedule<churn_pay_op>(tx, pays[i], pays[i]);
                    journal.template schedule<churn_refresh_op>(tx, refreshes[i], refreshes[i]);
                }
            });
        }
    }
    // The test's own look at the journal must not wait for a paused pod:
    // on SQLite a read-only transaction (BEGIN DEFERRED) takes no write
    // lock, which a paused pod may hold; on PostgreSQL a read-write one, as
    // a DEFERRABLE read waits for a safe snapshot, i.e. for the paused pod's
    // transaction to end.
    const auto unsettled = [&] {
        const auto look = [](auto& tx) {
            long long n = 0;
            tx.sql() << "select count(*) from sertx_effect where state in ('pending', 'started')", soci::into(n);
            return n;
        };
        return backend == "sqlite3" ? sertx::transact<sertx::policy<sertx::read_only>>(db, look)
                                    : sertx::transact(db, look);
    };

    std::mt19937 rng(seed);
    std::vector<pod> pods;
    // Whatever ends the test (a failed REQUIRE, an exception), no pod outlives it.
    struct reaper {
        std::vector<pod>& pods;
        ~reaper() {
            for (const pod& p : pods) {
                ::kill(p.pid, SIGKILL);
                reap(p.pid);
            }
        }
    } const reap_all{pods};
    std::vector<action> actions;
    int next_name = 1;
    const auto start_pod = [&] {
        pod p;
        p.name = "pod-" + std::to_string(next_name++);
        p.pid = spawn({backend, target, p.name, ledger_dir, std::to_string(lease.count())});
        actions.push_back({now_us(), "start", p.name});
        pods.push_back(p);
    };
    for (int i = 0; i < 3; ++i) start_pod();

    // Churn until the journal is drained, for at most a minute; then every
    // pod runs undisturbed until it is (two more minutes at most).
    int kills = 0, stops = 0, tick = 0;
    const auto churn_until = steady::now() + std::chrono::seconds(60);
    std::uniform_int_distribution<int> jitter(-50, 50);
    while (steady::now() < churn_until && unsettled() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300 + jitter(rng)));
        ++tick;
        for (pod& p : pods)
            if (p.stopped && steady::now() >= p.resume_at) {
                ::kill(p.pid, SIGCONT);
                p.stopped = false;
                actions.push_back({now_us(), "SIGCONT", p.name});
            }
        std::vector<std::size_t> running;
        for (std::size_t i = 0; i < pods.size(); ++i)
            if (!pods[i].stopped) running.push_back(i);
        if (running.empty()) continue;
        // A pod replaced: SIGKILL, then a new one under a new name.
        const std::size_t victim = running[std::uniform_int_distribution<std::size_t>(0, running.size() - 1)(rng)];
        ::kill(pods[victim].pid, SIGKILL);
        reap(pods[victim].pid);
        actions.push_back({now_us(), "SIGKILL", pods[victim].name});
        ++kills;
        pods.erase(pods.begin() + static_cast<std::ptrdiff_t>(victim));
        start_pod();
        // Every other tick, while fewer than two are paused: another pod
        // (not the one just started) paused past its lease.
        const auto paused = std::count_if(pods.begin(), pods.end(), [](const pod& p) { return p.stopped; });
        std::vector<std::size_t> candidates;
        for (std::size_t i = 0; i + 1 < pods.size(); ++i)
            if (!pods[i].stopped) candidates.push_back(i);
        if (tick % 2 == 0 && paused < 2 && !candidates.empty()) {
            pod& p = pods[candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng)]];
            ::kill(p.pid, SIGSTOP);
            p.stopped = true;
            // Well past the lease, so that its claims are rescued while it
            // sleeps.
            p.resume_at = steady::now() + 2 * lease + lease / 2 + std::chrono::milliseconds(rng() % lease.count());
            actions.push_back({now_us(), "SIGSTOP", p.name});
            ++stops;
        }
    }
    const double churn_seconds = std::chrono::duration<double>(steady::now() - started).count();
    for (pod& p : pods)
        if (p.stopped) {
            ::kill(p.pid, SIGCONT);
            p.stopped = false;
            actions.push_back({now_us(), "SIGCONT", p.name});
        }
    {
        INFO("the journal drains within two minutes once the churn stops");
        CHECK(wait_until([&] { return unsettled() == 0; }, std::chrono::minutes(2), std::chrono::milliseconds(50)));
    }
    // Every pod stops on SIGTERM; a resumed one first finishes what it was
    // doing (its late outcome, fenced).
    for (pod& p : pods) ::kill(p.pid, SIGTERM);
    for (pod& p : pods) {
        const int status = reap(p.pid);
        INFO(p.name << " stops cleanly on SIGTERM; wait status " << status);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    pods.clear();
    const double seconds = std::chrono::duration<double>(steady::now() - started).count();

    // --- the journal against the ledger
    const std::vector<entry> ledger = read_all(ledger_dir, ".ledger");
    const std::vector<entry> events = read_all(ledger_dir, ".events");
    std::map<std::string, std::vector<const entry*>> by_key;
    for (const entry& e : ledger) by_key[e.key].push_back(&e);
    // Everything that touched one effect, in time order: the ledger's
    // lines, the journal's events, and what the test did to the pods
    // involved (times from the test's start).
    const auto interleaving = [&](const std::string& key, const effect_record& r) {
        std::vector<std::pair<long long, std::string>> lines;
        std::vector<std::string> involved = {r.dispatcher};
        for (const entry* e : by_key[key]) {
            lines.emplace_back(e->at_us, e->verb + " (ledger) by " + e->dispatcher);
            involved.push_back(e->dispatcher);
        }
        for (const entry& e : events)
            if (e.key == key) {
                lines.emplace_back(e.at_us, "journal event " + e.verb + " by " + e.dispatcher + " " + e.detail);
                involved.push_back(e.dispatcher);
            }
        for (const action& a : actions)
            if (std::find(involved.begin(), involved.end(), a.name) != involved.end())
                lines.emplace_back(a.at_us, "test: " + a.what + " " + a.name);
        std::sort(lines.begin(), lines.end());
        std::ostringstream out;
        out << "effect " << key << ": " << to_string(r.state) << ", claimed " << r.attempts << " times, last by "
            << r.dispatcher << ", note '" << r.note << "', result '" << r.result << "'\n";
        for (const auto& [at, what] : lines) out << "  +" << fmt_ms(at - t0) << " ms  " << what << "\n";
        return out.str();
    };

    std::map<int, int> pay_calls, refresh_calls;  // calls per effect → effects
    std::map<std::string, int> pay_states;
    int double_calls = 0, in_doubt = 0;
    // In doubt, by what the ledger shows: the call landed (after the
    // rescue: a paused pod's), the request left without landing (its pod
    // killed in the call), or only the mark (its pod killed between the
    // mark and the request).
    int doubt_landed = 0, doubt_entered = 0, doubt_marked = 0;
    const auto was_killed = [&](const std::string& name) {
        return std::any_of(actions.begin(), actions.end(),
                           [&](const action& a) { return a.name == name && a.what == "SIGKILL"; });
    };
    for (int i = 0; i < per_kind; ++i) {
        for (const bool amo : {true, false}) {
            const std::string key = (amo ? "pay-" : "refresh-") + std::to_string(i);
            const std::optional<effect_record> r = journal.find(key);
            REQUIRE(r);
            int calls = 0, enters = 0, marks = 0;
            for (const entry* e : by_key[key]) {
                calls += e->verb == "call";
                enters += e->verb == "enter";
                marks += e->verb == "mark";
            }
            INFO(interleaving(key, *r));
            if (amo) {
                ++pay_calls[calls];
                ++pay_states[std::string(to_string(r->state))];
                double_calls += calls > 1;
                CHECK(calls <= 1);
                CHECK((r->state == effect_state::done || r->state == effect_state::failed ||
                       r->state == effect_state::in_doubt));
                if (r->state == effect_state::done) CHECK(calls == 1);
                if (r->state == effect_state::in_doubt) {
                    // Only where a call may have happened: the claimer had
                    // committed its call-began mark, so the rescue could not
                    // tell a request in flight (a paused pod's, which lands
                    // later) from one that never left; reconcile() said
                    // not_happened, which a rescue does not trust. Without
                    // the request in the ledger, the claimer must have been
                    // killed right after its mark (a paused one would have
                    // resumed and called).
                    ++in_doubt;
                    CHECK(marks > 0);
                    CHECK(r->call_began.has_value());
                    if (calls > 0)
                        ++doubt_landed;
                    else if (enters > 0)
                        ++doubt_entered;
                    else {
                        ++doubt_marked;
                        CHECK(was_killed(r->dispatcher));
                    }
                }
            } else {
                ++refresh_calls[calls];
                CHECK(r->state == effect_state::done);
                CHECK(calls >= 1);
            }
        }
    }
    CHECK(unsettled() == 0);

    // --- the figures, one line each, with a stable prefix
    std::map<std::string, int> event_counts;
    long long longest_lag_us = 0;                 // the journal's own, from the pods that stopped cleanly
    long long longest_kill_to_rescue_us[2] = {};  // the test's view: SIGKILL or SIGSTOP of the holder → rescue
    int rescues[2] = {}, fenced = 0;
    for (const entry& e : events) {
        if (e.verb == "report") {
            const auto at = e.detail.find("longest_rescue_lag_us=");
            if (at != std::string::npos)
                longest_lag_us = std::max(longest_lag_us, std::atoll(e.detail.c_str() + at + 22));
            continue;
        }
        ++event_counts[e.verb + (e.verb == "reconciled" ? " " + e.detail : std::string())];
        fenced += e.verb == "fenced";
        if (e.verb != "rescued") continue;
        const int kind = e.key.rfind("pay-", 0) == 0 ? 0 : 1;
        ++rescues[kind];
        const std::string from = e.detail.substr(0, e.detail.find(' '));
        long long since = 0;
        for (const action& a : actions)
            if (a.name == from && (a.what == "SIGKILL" || a.what == "SIGSTOP") && a.at_us <= e.at_us) since = a.at_us;
        if (since) longest_kill_to_rescue_us[kind] = std::max(longest_kill_to_rescue_us[kind], e.at_us - since);
    }
    const auto histogram = [](const std::map<int, int>& h) {
        std::string s;
        for (const auto& [calls, n] : h)
            s += (s.empty() ? "" : ", ") + std::to_string(n) + " called " + std::to_string(calls) + "x";
        return s;
    };
    std::string states, counts;
    for (const auto& [s, n] : pay_states) states += (states.empty() ? "" : ", ") + s + " " + std::to_string(n);
    for (const auto& [v, n] : event_counts) counts += (counts.empty() ? "" : ", ") + v + " " + std::to_string(n);
    const std::string tag = "sertx-churn " + backend + ": ";
    std::printf("%srun %.1f s (churn %.1f s): %d effects, lease %lld ms, %d pods started, %d SIGKILL, %d SIGSTOP\n",
                tag.c_str(), seconds, churn_seconds, 2 * per_kind, static_cast<long long>(lease.count()),
                next_name - 1, kills, stops);
    std::printf("%sat-most-once: %s; %s; %d called twice, %d in doubt (%d called after the rescue by a paused pod, "
                "%d requests left by a pod killed in the call, %d marked by a pod killed before the request)\n",
                tag.c_str(), states.c_str(), histogram(pay_calls).c_str(), double_calls, in_doubt, doubt_landed,
                doubt_entered, doubt_marked);
    std::printf("%sidempotent: done %d; %s\n", tag.c_str(), per_kind, histogram(refresh_calls).c_str());
    std::printf("%srescues: %d at-most-once, %d idempotent; longest from SIGKILL/SIGSTOP of the holder to the rescue: "
                "%s ms at-most-once, %s ms idempotent (lease %lld ms)\n",
                tag.c_str(), rescues[0], rescues[1], fmt_ms(longest_kill_to_rescue_us[0]).c_str(),
                fmt_ms(longest_kill_to_rescue_us[1]).c_str(), static_cast<long long>(lease.count()));
    std::printf("%slongest lease expiry to rescue (run_report.longest_rescue_lag of the pods that stopped cleanly): "
                "%s ms\n", tag.c_str(), fmt_ms(longest_lag_us).c_str());
    std::printf("%sfenced late outcomes: %d\n", tag.c_str(), fenced);
    std::printf("%sobserver events: %s\n", tag.c_str(), counts.empty() ? "none" : counts.c_str());
    std::fflush(stdout);
}

}  // namespace sertx::test::churn

/// Registers the churn case for one backend; its test file calls it once.
#define SERTX_JOURNAL_CHURN_CASES(Fixture, backend_tag)                                                         \
    TEMPLATE_TEST_CASE("three dispatcher processes killed and paused over 2000 effects call none twice",      \
                       backend_tag "[effects][churn]", Fixture) {                                             \
        SERTX_REQUIRE_BACKEND(TestType);                                                                      \
        const TestType fixture;                                                                               \
        auto db = fixture.open();                                                                             \
        ::sertx::test::churn::churn(db, TestType::child_backend, fixture.target(), fixture.file("ledger"), 1000, \
                                    std::chrono::milliseconds(1500), 20261201);                               \
    }

// SPDX-License-Identifier: BSL-1.0
// The dispatcher process of the effect-journal crash tests
// (tests/*/effects_crash_test.cpp): a real process, killed with SIGKILL at a
// chosen step of the state machine, then started again.
//
//   effects_crash_child <sqlite3|postgresql> <path|conninfo> <dispatcher> <call-log> <pay|refresh> [recover]
//
// It dispatches every pending intent of the operation (after recover(), when
// asked) and exits 0. Every real call of the operation appends its payload
// and a newline to <call-log>, fsynced before the call returns. With
// SERTX_CRASH_POINT (claiming, started, inside, returned, settling, settled)
// and SERTX_CRASH_KEY set, it kills itself with SIGKILL at that step of the
// effect with that key ("inside": in the operation, after the call was
// logged). With SERTX_START_GATE=<ready-fd>,<go-fd> (support/effects_crash.hpp's
// start_gate) it writes a byte to ready-fd once the database is open and
// waits for a byte on go-fd before dispatching.
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

std::string crash_point, crash_key;
int call_log = -1;

void maybe_die(std::string_view point, std::string_view key) {
    if (point == crash_point && key == crash_key) ::kill(::getpid(), SIGKILL);
}

std::string_view name(sertx::detail::dispatch_point p) {
    using sertx::detail::dispatch_point;
    switch (p) {
        case dispatch_point::claiming:
            return "claiming";
        case dispatch_point::started:
            return "started";
        case dispatch_point::marking:
            return "marking";
        case dispatch_point::calling:
            return "calling";
        case dispatch_point::rescuing:
            return "rescuing";
        case dispatch_point::returned:
            return "returned";
        case dispatch_point::settling:
            return "settling";
        case dispatch_point::settled:
            return "settled";
    }
    return "";
}

struct crash_probe {
    static void at(sertx::detail::dispatch_point p, std::string_view key) { maybe_die(name(p), key); }
};

/// The effect itself: a line in the call log, on disk before it returns.
void call(const std::string& payload) {
    const std::string line = payload + "\n";
    if (::write(call_log, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(call_log) != 0)
        throw std::runtime_error("test: cannot write the call log");
    maybe_die("inside", payload);
}

struct pay {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "pay";
    std::string operator()(const std::string& payload) const {
        call(payload);
        if (payload.rfind("fail", 0) == 0) throw std::runtime_error("declined");
        return "paid";
    }
};

struct refresh {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "refresh";
    void operator()(const std::string& payload) const { call(payload); }
};

void pass_start_gate() {
    const char* gate = std::getenv("SERTX_START_GATE");
    if (!gate) return;
    int ready = -1, go = -1;
    char c = 'r';
    if (std::sscanf(gate, "%d,%d", &ready, &go) != 2 || ::write(ready, &c, 1) != 1 || ::read(go, &c, 1) != 1)
        throw std::runtime_error("test: the start gate failed");
}

template <class Db>
int dispatch_all(Db db, const std::string& dispatcher, std::string_view op, bool recover) {
    // One intent per claim, so that each crash point has one victim and the
    // others are settled in transactions of their own (batched claims, and an
    // at-most-once claim riding with the previous outcome, put neighbours in
    // the victim's transaction: the churn test kills those).
    sertx::effects<Db, crash_probe> journal(db, dispatcher, {.batch = 1});
    pass_start_gate();
    if (recover) journal.recover();
    for (;;) {
        const sertx::dispatch_report r = op == "pay" ? journal.dispatch(pay{}, 50) : journal.dispatch(refresh{}, 50);
        if (r.claimed() == 0) return 0;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr,
                     "usage: %s <sqlite3|postgresql> <path|conninfo> <dispatcher> <call-log> <pay|refresh> [recover]\n",
                     argv[0]);
        return 2;
    }
    const std::string_view backend = argv[1], op = argv[5];
    const bool recover = argc > 6 && std::string_view(argv[6]) == "recover";
    if (const char* p = std::getenv("SERTX_CRASH_POINT")) crash_point = p;
    if (const char* k = std::getenv("SERTX_CRASH_KEY")) crash_key = k;
    call_log = ::open(argv[4], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (call_log < 0) {
        std::perror(argv[4]);
        return 2;
    }
    try {
        if (backend == "sqlite3")
            return dispatch_all(sertx::sqlite3::open(argv[2], {.pool_size = 2}), argv[3], op, recover);
        if (backend == "postgresql")
            return dispatch_all(sertx::postgresql::open(argv[2], {.pool_size = 2}), argv[3], op, recover);
        std::fprintf(stderr, "unknown backend %s\n", argv[1]);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}

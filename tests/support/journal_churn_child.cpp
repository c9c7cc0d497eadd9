// SPDX-License-Identifier: BSL-1.0
// A dispatcher of the journal churn test (support/journal_churn.hpp): a
// real process that runs `journal.run` for two operations until SIGTERM, and
// that the test SIGKILLs, SIGSTOPs and SIGCONTs from outside.
//
//   journal_churn_child <sqlite3|postgresql> <path|conninfo> <dispatcher> <ledger-dir> <lease-ms>
//
// The outside ledger. Every real call is a line in <ledger-dir>/<dispatcher>.ledger,
// written with O_APPEND and fsynced before the operation goes on, so that
// it survives the SIGKILL of the process that wrote it:
//
//   mark  <key> <dispatcher> <µs>                    about to commit the call-began mark (the
//                                                    journal's dispatch_point::marking, before that
//                                                    COMMIT: so every committed mark has its line)
//   enter <key> <dispatcher> <µs since the epoch>   the operation was called (the request leaves)
//   call  <key> <dispatcher> <µs>                    the outside system carried it out
//
// An at-most-once call ("pay") takes a few milliseconds between the two
// lines, as a request to a provider does, so that a SIGSTOP or SIGKILL can
// land inside it; an idempotent one ("refresh") writes `call` only.
// `pay::reconcile` answers as a provider that can look a request up does:
// happened when any process's ledger has its `call` line, not_happened
// otherwise. The journal's rarer observer events go to <dispatcher>.events,
// one line each: `<event> <key> <dispatcher> <µs> [detail]` (rescued, with
// the dispatcher it was taken from and the state it went to; fenced;
// reconciled; abandoned; in_doubt; error); on SIGTERM it asks its
// dispatchers to stop, waits, writes one `report` line per operation (its
// run_report) and exits 0.
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

namespace {

std::string dispatcher, ledger_dir;
int ledger = -1, events = -1;

long long now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// One line, on disk before this returns (or the process dies trying).
void append(int fd, std::string_view verb, std::string_view key, std::string_view detail = {}, bool sync = true) {
    std::string line = std::string(verb) + " " + std::string(key) + " " + dispatcher + " " + std::to_string(now_us());
    if (!detail.empty()) line += " " + std::string(detail);
    line += "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || (sync && ::fsync(fd) != 0))
        throw std::runtime_error("test: cannot write " + ledger_dir);
}

/// The journal's observer: its rarer events, in the events file. A write
/// without fsync survives SIGKILL (the kernel holds it); only a machine
/// crash could lose it, and this test has none.
struct event_log {
    void on_effect_rescued(std::string_view key, std::string_view from, sertx::effect_state now) {
        append(events, "rescued", key, std::string(from) + " " + std::string(sertx::to_string(now)), false);
    }
    void on_effect_fenced(std::string_view key) { append(events, "fenced", key, {}, false); }
    void on_effect_reconciled(std::string_view key, sertx::reconciliation::outcome_kind r) {
        append(events, "reconciled", key,
               r == sertx::reconciliation::happened       ? "happened"
               : r == sertx::reconciliation::not_happened ? "not_happened"
                                                          : "unknown",
               false);
    }
    void on_effect_abandoned(std::string_view key) { append(events, "abandoned", key, {}, false); }
    void on_effect_in_doubt(std::string_view key, std::string_view) { append(events, "in_doubt", key, {}, false); }
    void on_journal_error(std::string_view, std::chrono::microseconds) { append(events, "error", "-", {}, false); }
};

void write_report(std::string_view op, const sertx::run_report& r) {
    append(events, "report", op,
           "claimed=" + std::to_string(r.claimed) + " done=" + std::to_string(r.done) +
               " fenced=" + std::to_string(r.fenced) + " rescued=" + std::to_string(r.rescued) +
               " reconciled=" + std::to_string(r.reconciled) + " abandoned=" + std::to_string(r.abandoned) +
               " database_errors=" + std::to_string(r.database_errors) +
               " longest_rescue_lag_us=" + std::to_string(r.longest_rescue_lag.count()),
           false);
}

/// Whether any process's ledger records the outside call of `key`.
bool called_anywhere(const std::string& key) {
    DIR* d = ::opendir(ledger_dir.c_str());
    if (!d) throw std::runtime_error("test: cannot read " + ledger_dir);
    bool found = false;
    const std::string wanted = "call " + key + " ";
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.size() < 7 || name.compare(name.size() - 7, 7, ".ledger") != 0) continue;
        std::ifstream in(ledger_dir + "/" + name);
        for (std::string line; !found && std::getline(in, line);) found = line.rfind(wanted, 0) == 0;
        if (found) break;
    }
    ::closedir(d);
    return found;
}

struct pay {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "churn_pay";
    std::string operator()(const std::string& key) const {
        append(ledger, "enter", key);
        std::this_thread::sleep_for(std::chrono::milliseconds(3));  // the request on its way
        append(ledger, "call", key);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the answer on its way back
        return "paid by " + dispatcher;
    }
    sertx::reconciliation reconcile(const std::string& key) const {
        if (called_anywhere(key)) return {sertx::reconciliation::happened, "found in the ledger"};
        return {sertx::reconciliation::not_happened, {}};
    }
};

/// Writes the `mark` line inside the mark's transaction, before its COMMIT.
/// Not fsynced: the kernel keeps it through SIGKILL, and it only needs to be
/// there when the test reads the ledger.
struct ledger_probe {
    static void at(sertx::detail::dispatch_point p, std::string_view key) {
        if (p == sertx::detail::dispatch_point::marking) append(ledger, "mark", key, {}, false);
    }
};

struct refresh {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "churn_refresh";
    void operator()(const std::string& key) const { append(ledger, "call", key); }
};

template <class Db>
int dispatch_until_sigterm(Db db, std::chrono::milliseconds lease) {
    sertx::effects<Db, ledger_probe> journal(db, dispatcher,
                                             {.lease = lease, .poll = std::chrono::milliseconds(200), .max_attempts = 10});
    std::stop_source stop;
    sertx::run_report paid, refreshed;
    std::jthread payer([&] { paid = journal.run(pay{}, stop.get_token(), event_log{}); });
    std::jthread refresher([&] { refreshed = journal.run(refresh{}, stop.get_token(), event_log{}); });
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    int sig = 0;
    sigwait(&term, &sig);
    stop.request_stop();
    payer.join();
    refresher.join();
    write_report("churn_pay", paid);
    write_report("churn_refresh", refreshed);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s <sqlite3|postgresql> <path|conninfo> <dispatcher> <ledger-dir> <lease-ms>\n",
                     argv[0]);
        return 2;
    }
    // SIGTERM is taken by sigwait; blocked before any thread starts, so all inherit the mask.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, nullptr);

    const std::string_view backend = argv[1];
    dispatcher = argv[3];
    ledger_dir = argv[4];
    const std::chrono::milliseconds lease(std::atol(argv[5]));
    ledger = ::open((ledger_dir + "/" + dispatcher + ".ledger").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    events = ::open((ledger_dir + "/" + dispatcher + ".events").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (ledger < 0 || events < 0) {
        std::perror(argv[4]);
        return 2;
    }
    try {
        if (backend == "sqlite3") return dispatch_until_sigterm(sertx::sqlite3::open(argv[2], {.pool_size = 4}), lease);
        if (backend == "postgresql")
            return dispatch_until_sigterm(sertx::postgresql::open(argv[2], {.pool_size = 4}), lease);
        std::fprintf(stderr, "unknown backend %s\n", argv[1]);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", dispatcher.c_str(), e.what());
        return 1;
    }
}

// SPDX-License-Identifier: BSL-1.0
#pragma once
// `sertx-ledger demo`: concurrent workers move money while two dispatchers,
// this process and a second one (`sertx-ledger dispatch`), pay withdrawals
// out through the effect journal with `run()`; then the books and the
// payment network's own record are checked against each other. With
// --kill-dispatcher the second one is killed inside a payout, and this one
// rescues its claim once the lease runs out.

#include "ledger.hpp"
#include "payment_network.hpp"
#include "progress.hpp"

#include <sertx/effects.hpp>
#include <sertx/install.hpp>
#include <sertx/migrate.hpp>
#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ledger {

struct demo_options {
    int workers = 4;
    std::chrono::seconds length{10};
    std::uint64_t crash_after = 0;  ///< 0: never
    bool resume = false;
    bool kill_dispatcher = false;  ///< the second dispatcher dies inside its third payout
};

/// The dispatchers' leases: short, so that a rescue shows within the demo's
/// seconds (a service would use tens of seconds: docs/exactly-once.md).
inline const sertx::journal_options fleet_options{.lease = std::chrono::seconds(2), .poll = std::chrono::seconds(1)};

/// The second dispatcher's name in the journal.
inline constexpr const char* second_dispatcher_name = "sertx-ledger-2";

/// The journal's observer events in this process, counted; the rescues
/// kept for the report.
struct fleet_events {
    std::atomic<std::uint64_t> claimed{0}, done{0}, failed{0}, retried{0}, rescued{0}, reconciled{0}, in_doubt{0},
        fenced{0}, errors{0};
    std::mutex mutex;
    std::vector<std::string> rescues;
    std::map<std::string, std::string> reconciled_as;  ///< reported before the rescue that asked

    void on_effect_claimed(std::string_view, unsigned) { ++claimed; }
    void on_effect_done(std::string_view) { ++done; }
    void on_effect_failed(std::string_view, std::string_view) { ++failed; }
    void on_effect_retried(std::string_view, unsigned, std::chrono::system_clock::time_point) { ++retried; }
    void on_effect_in_doubt(std::string_view, std::string_view) { ++in_doubt; }
    void on_effect_fenced(std::string_view) { ++fenced; }
    void on_journal_error(std::string_view, std::chrono::microseconds) { ++errors; }
    void on_effect_rescued(std::string_view key, std::string_view from, sertx::effect_state now) {
        ++rescued;
        std::lock_guard lock(mutex);
        const auto r = reconciled_as.find(std::string(key));
        rescues.push_back("payout " + std::string(key) + " of " + std::string(from) + " (its lease ran out): " +
                          (r == reconciled_as.end() ? "" : r->second + ", so ") +
                          std::string(sertx::to_string(now)));
    }
    void on_effect_reconciled(std::string_view key, sertx::reconciliation::outcome_kind r) {
        ++reconciled;
        std::lock_guard lock(mutex);
        reconciled_as[std::string(key)] = r == sertx::reconciliation::happened       ? "the network has it"
                                          : r == sertx::reconciliation::not_happened ? "the network never got it"
                                                                                     : "the network cannot tell";
    }
    std::string counts() const {
        return "claimed " + grouped(claimed.load()) + ", done " + grouped(done.load()) + ", failed " +
               grouped(failed.load()) + ", retried " + grouped(retried.load()) + ", rescued " +
               grouped(rescued.load()) + ", reconciled " + grouped(reconciled.load()) + ", in doubt " +
               grouped(in_doubt.load()) + ", fenced " + grouped(fenced.load()) + ", database errors " +
               grouped(errors.load());
    }
};

/// Starts `sertx-ledger dispatch` on the same ledger: the second dispatcher.
/// It dies with this process (PR_SET_PDEATHSIG), as a pod of a killed node.
inline pid_t start_second_dispatcher(const std::string& target, const std::filesystem::path& network_log,
                                     bool kill_inside) {
    std::vector<std::string> args = {"/proc/self/exe", "dispatch", "--db", target, "--name", second_dispatcher_name,
                                      "--network-log", network_log.string()};
    if (kill_inside) args.insert(args.end(), {"--crash-after", "3"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::execv("/proc/self/exe", argv.data());
        ::_exit(127);
    }
    if (pid < 0) throw std::runtime_error("cannot start the second dispatcher (fork failed)");
    return pid;
}

/// What the workers and the dispatcher did, read live by the progress view.
struct tally {
    std::atomic<std::uint64_t> transfers{0}, deposits{0}, withdrawals{0}, declined{0}, payouts{0}, errors{0};
    std::mutex mutex;
    std::string first_error;

    std::uint64_t transactions() const { return transfers + deposits + withdrawals + declined; }
    void failed(const std::exception& e) {
        std::lock_guard lock(mutex);
        if (errors++ == 0) first_error = e.what();
    }
};

/// Workers race for 32 accounts, so on PostgreSQL a transaction can lose
/// several serialization conflicts in a row; a give-up would only hide that
/// the race was won by someone else.
using worker_policy = sertx::policy<sertx::max_attempts<100>>;

/// The journal's name for this program's dispatcher: recover() takes back
/// only what a dispatcher of the same name left unfinished.
inline constexpr const char* dispatcher_name = "sertx-ledger";

/// A payout as its payload describes it: "KEY ACCOUNT AMOUNT".
inline std::string describe_payout(const std::string& payload) {
    std::istringstream fields(payload);
    std::string key;
    long long account = 0, amount = 0;
    if (!(fields >> key >> account >> amount)) return payload;
    return "account " + std::to_string(account) + ", amount " + grouped(amount);
}

/// One worker: random transfers (60%), deposits (20%) and withdrawals (20%)
/// until `until`.
template <class Db, class Journal>
void work(Db& db, Journal& journal, tally& t, std::chrono::steady_clock::time_point until) {
    std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> account_of(1, account_count), other(0, account_count - 2), percent(0, 99);
    std::uniform_int_distribution<long long> amount_of(1, largest_amount);
    while (std::chrono::steady_clock::now() < until) {
        // Chosen outside the body: a re-run of the body repeats the same operation.
        const int kind = percent(rng), from = account_of(rng);
        const int to = (from + other(rng)) % account_count + 1;  // any account but `from`
        const long long amount = amount_of(rng);
        try {
            if (kind < 60) {
                const std::string id = new_id("tr");
                const bool moved = sertx::transact<worker_policy>(
                    db, [&](auto& tx) { return transfer(tx, id, from, to, amount); });
                ++(moved ? t.transfers : t.declined);
            } else if (kind < 80) {
                const std::string id = new_id("dp");
                sertx::transact<worker_policy>(db, [&](auto& tx) { deposit(tx, id, from, amount); });
                ++t.deposits;
            } else {
                const std::string key = new_id("wd");
                const bool taken = sertx::transact<worker_policy>(
                    db, [&](auto& tx) { return withdraw(tx, journal, key, from, amount); });
                ++(taken ? t.withdrawals : t.declined);
            }
        } catch (const std::exception& e) {
            t.failed(e);
        }
    }
}

/// Every withdrawal's journal entry, set against the payment network's own
/// record of what it received.
struct payout_audit {
    std::size_t withdrawals = 0, done = 0, pending = 0, started = 0, failed = 0, in_doubt = 0;
    std::size_t in_doubt_received = 0;  ///< in doubt, and the network did receive it (once)
    std::size_t without_intent = 0;     ///< a withdrawal with no journal entry
    std::size_t received_twice = 0;     ///< keys the network received more than once
    std::size_t done_not_received = 0;  ///< done, yet the network never received it
    std::size_t received_not_done = 0;  ///< pending, started or failed, yet the network received it
    std::size_t received_unknown = 0;   ///< the network received a key the ledger never withdrew

    bool exactly_once() const {
        return without_intent + received_twice + done_not_received + received_not_done + received_unknown == 0;
    }
};

/// The journal's state of each key, looked up by `threads` threads at once:
/// sertx::effects offers a lookup by key, one read-only transaction each,
/// which on PostgreSQL costs a few round trips.
template <class Journal>
std::vector<std::optional<sertx::effect_state>> journal_states(Journal& journal, const std::vector<std::string>& keys,
                                                               std::size_t threads) {
    std::vector<std::optional<sertx::effect_state>> states(keys.size());
    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    std::vector<std::thread> lookups;
    for (std::size_t i = 0; i < threads; ++i)
        lookups.emplace_back([&] {
            try {
                for (std::size_t k = next++; k < keys.size(); k = next++)
                    if (auto e = journal.find(keys[k])) states[k] = e->state;
            } catch (...) {
                std::lock_guard lock(failure_mutex);
                failure = std::current_exception();
                next = keys.size();
            }
        });
    for (auto& t : lookups) t.join();
    if (failure) std::rethrow_exception(failure);
    return states;
}

template <class Db, class Journal>
payout_audit audit_payouts(Db& db, Journal& journal, const payment_network& network, std::size_t threads) {
    const std::vector<std::string> keys = sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        std::vector<std::string> all;
        soci::rowset<std::string> rows = (tx.sql().prepare << "select id from withdrawal");
        for (const auto& k : rows) all.push_back(k);
        return all;
    });
    const auto states = journal_states(journal, keys, threads);
    std::map<std::string, unsigned> received = network.received();
    payout_audit a;
    a.withdrawals = keys.size();
    for (std::size_t k = 0; k < keys.size(); ++k) {
        const auto found = received.find(keys[k]);
        const unsigned times = found == received.end() ? 0 : found->second;
        if (found != received.end()) received.erase(found);
        if (times > 1) ++a.received_twice;
        if (!states[k]) {
            ++a.without_intent;
            continue;
        }
        switch (*states[k]) {
            case sertx::effect_state::done:
                ++a.done;
                if (times == 0) ++a.done_not_received;
                break;
            case sertx::effect_state::in_doubt:
                ++a.in_doubt;
                if (times == 1) ++a.in_doubt_received;
                break;
            case sertx::effect_state::pending: ++a.pending; break;
            case sertx::effect_state::started: ++a.started; break;
            case sertx::effect_state::failed:
            case sertx::effect_state::dead: ++a.failed; break;  // dead: gave up after max_attempts retry_later
        }
        if (times > 0 && *states[k] != sertx::effect_state::done && *states[k] != sertx::effect_state::in_doubt)
            ++a.received_not_done;
    }
    a.received_unknown = received.size();
    return a;
}

struct invariant {
    const char* name;
    bool holds;
    std::string detail;
};

/// Recovery at start-up: what an interrupted run left started is now in
/// doubt. A first look at that needs --resume; a plain run refuses, so that
/// nobody runs past a crash without seeing what it left.
template <class Journal>
void recover(Journal& journal, const payment_network& network, bool resume) {
    const sertx::recover_report found = journal.recover();
    const std::vector<sertx::effect_record> doubt = journal.in_doubt();
    if (found.in_doubt > 0 && !resume)
        throw usage_error("the last run was interrupted: recover() found " + std::to_string(found.in_doubt) +
                          " payout(s) started and not finished, and put them in doubt; run 'sertx-ledger demo "
                          "--resume' to continue, or see them with 'sertx-ledger effects list'");
    if (!resume) return;
    if (found.in_doubt == 0)
        std::printf("  recovery    recover(): nothing was left started\n");
    else
        std::printf("  recovery    recover(): %zu payout(s) left started by an interrupted run, now in doubt\n",
                    found.in_doubt);
    std::printf("              payouts in doubt: %zu; sertx never pays them again by itself\n", doubt.size());
    const auto received = network.received();
    for (const auto& e : doubt) {
        const auto r = received.find(e.key);
        std::printf("                %s (%s): the network received it %u time(s)\n", e.key.c_str(),
                    describe_payout(e.payload).c_str(), r == received.end() ? 0u : r->second);
    }
    if (!doubt.empty())
        std::printf("              settle each after checking the network: sertx-ledger effects resolve KEY "
                    "done|failed --note TEXT\n");
    std::printf("              payouts pending (scheduled, not started): %zu, paid now\n", journal.pending().size());
}

/// The figures of a run, the invariants, and the exit code: 0 only if every
/// invariant holds.
template <class Db, class Journal>
int report(Db& db, Journal& journal, const payment_network& network, const tally& t, const sertx::stats& before,
           double seconds, std::size_t lookups) {
    const sertx::stats after = db.stats();
    auto retries = [&](sertx::failure f) { return grouped(after.retries_of(f) - before.retries_of(f)); };
    std::printf("\nresults\n");
    std::printf("  transactions  %s in %.1fs = %s/s: %s transfers, %s deposits, %s withdrawals, %s declined for want "
                "of funds\n",
                grouped(t.transactions()).c_str(), seconds,
                grouped(static_cast<long long>(static_cast<double>(t.transactions()) / seconds)).c_str(),
                grouped(t.transfers.load()).c_str(), grouped(t.deposits.load()).c_str(),
                grouped(t.withdrawals.load()).c_str(), grouped(t.declined.load()).c_str());
    std::printf("  conflicts     %s retried: serialization %s, deadlock %s, busy %s, connection lost %s; %s gave up\n",
                grouped(after.total_retries() - before.total_retries()).c_str(),
                retries(sertx::failure::serialization).c_str(), retries(sertx::failure::deadlock).c_str(),
                retries(sertx::failure::busy).c_str(), retries(sertx::failure::connection_lost).c_str(),
                grouped(after.give_ups - before.give_ups).c_str());
    std::printf("  payouts       %s paid by this run's dispatcher\n", grouped(t.payouts.load()).c_str());
    if (t.errors > 0)
        std::printf("  errors        %s transaction(s) failed; the first: %s\n", grouped(t.errors.load()).c_str(),
                    t.first_error.c_str());

    const books b = read_books(db);
    const payout_audit a = audit_payouts(db, journal, network, lookups);
    std::printf("  journal       %s withdrawals: %s paid (done), %s pending, %s in doubt, %s failed\n",
                grouped(a.withdrawals).c_str(), grouped(a.done).c_str(), grouped(a.pending).c_str(),
                grouped(a.in_doubt).c_str(), grouped(a.failed).c_str());

    std::string once = grouped(a.done) + " done and received once";
    if (a.in_doubt > 0)
        once += ", " + grouped(a.in_doubt) + " in doubt (received by the network: " + grouped(a.in_doubt_received) +
                ")";
    auto problem = [&](std::size_t n, const char* what) {
        if (n > 0) once += "; " + grouped(n) + " " + what;
    };
    problem(a.received_twice, "received TWICE");
    problem(a.done_not_received, "done but never received");
    problem(a.received_not_done, "received but not recorded done");
    problem(a.without_intent, "withdrawals without a payout intent");
    problem(a.received_unknown, "received that the ledger never withdrew");
    const invariant checks[] = {
        {"money conserved", b.deposited == b.balances + b.withdrawn - b.refunded,
         "deposits " + grouped(b.deposited) + " = balances " + grouped(b.balances) + " + withdrawn " +
             grouped(b.withdrawn) + " - refunded " + grouped(b.refunded)},
        {"no negative balance", b.lowest_balance >= 0,
         "lowest of " + grouped(b.accounts) + " balances: " + grouped(b.lowest_balance)},
        {"every payout exactly once", a.exactly_once(), once},
    };
    std::printf("\n  %-28s %-6s %s\n", "invariant", "holds", "detail");
    bool all = true;
    for (const auto& c : checks) {
        std::printf("  %-28s %-6s %s\n", c.name, c.holds ? "ok" : "FAILED", c.detail.c_str());
        all = all && c.holds;
    }
    std::printf("\n%s\n", all ? "every invariant holds" : "sertx-ledger: AN INVARIANT DOES NOT HOLD");
    return all ? 0 : 1;
}

template <class Db>
int run_demo(Db& db, const std::string& target, const std::string& shown, const std::filesystem::path& network_log,
             const demo_options& o) {
    std::printf("sertx-ledger demo on %s: %d workers for %llds\n", shown.c_str(), o.workers,
                static_cast<long long>(o.length.count()));
    const auto applied = sertx::migrate(db, schema);
    sertx::install(db);
    std::printf("  schema      %s, at version %zu\n",
                applied.empty() ? "up to date" : (grouped(applied.size()) + " migration(s) applied").c_str(),
                std::size(schema));
    const opened ledger = open_ledger(db);
    std::printf("  ledger      %s: %s\n", ledger.id.c_str(),
                ledger.now ? ("opened " + grouped(account_count) + " accounts with " + grouped(opening_deposit) +
                              " each").c_str()
                           : "opened by an earlier run; continuing it");

    payment_network network(network_log, ledger.id);
    std::printf("  network     payouts recorded in %s\n", network.path().c_str());
    sertx::effects<Db> journal(db, dispatcher_name, fleet_options);
    recover(journal, network, o.resume);
    const pid_t second = start_second_dispatcher(target, network_log, o.kill_dispatcher);
    std::printf("  dispatchers run() in this process (%s) and in pid %d (%s), lease %llds%s\n", dispatcher_name,
                static_cast<int>(second), second_dispatcher_name,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(fleet_options.lease).count()),
                o.kill_dispatcher ? "; --kill-dispatcher: the second dies inside its third payout" : "");
    std::fflush(stdout);

    tally t;
    payout op{&network, &t.payouts, o.crash_after};
    fleet_events events;
    std::atomic<bool> working{true};
    std::exception_ptr dispatch_failure;
    const sertx::stats before = db.stats();
    const auto started = std::chrono::steady_clock::now();
    double seconds = 0;
    int second_status = 0;
    bool second_ended = false;
    {
        progress view(o.length, [&] {
            return progress_figures{t.transactions(), db.stats().total_retries() - before.total_retries(),
                                    t.payouts.load(), !working.load()};
        });
        std::jthread dispatcher([&](std::stop_token stop) {
            try {
                journal.run(op, stop, events);
            } catch (...) {
                dispatch_failure = std::current_exception();
            }
        });
        std::vector<std::thread> workers;
        for (int i = 0; i < o.workers; ++i) workers.emplace_back([&] { work(db, journal, t, started + o.length); });
        for (auto& w : workers) w.join();
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        working = false;
        // The last payouts, and any claim of a dead dispatcher: its lease
        // runs out, then (at most once) a second lease, then it is rescued.
        const auto limit = std::chrono::steady_clock::now() + 4 * fleet_options.lease + std::chrono::seconds(60);
        for (;;) {
            if (!second_ended && ::waitpid(second, &second_status, WNOHANG) == second) second_ended = true;
            const sertx::journal_stats s = journal.stats();
            if ((s.pending == 0 && s.started == 0) || std::chrono::steady_clock::now() > limit) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!second_ended) {
            ::kill(second, SIGTERM);
            ::waitpid(second, &second_status, 0);
        }
        dispatcher.request_stop();
    }
    if (dispatch_failure) std::rethrow_exception(dispatch_failure);
    std::printf("\nfleet\n");
    if (WIFSIGNALED(second_status) && WTERMSIG(second_status) == SIGKILL)
        std::printf("  %s (pid %d) was killed (SIGKILL) inside a payout, its claim left started\n",
                    second_dispatcher_name, static_cast<int>(second));
    else
        std::printf("  %s (pid %d) stopped on SIGTERM, nothing left claimed\n", second_dispatcher_name,
                    static_cast<int>(second));
    {
        std::lock_guard lock(events.mutex);
        if (events.rescues.empty()) std::printf("  %s rescued nothing: no lease ran out\n", dispatcher_name);
        for (const auto& r : events.rescues) std::printf("  %s rescued %s\n", dispatcher_name, r.c_str());
    }
    std::printf("  events of %s: %s\n", dispatcher_name, events.counts().c_str());
    return report(db, journal, network, t, before, seconds, static_cast<std::size_t>(o.workers));
}

/// `sertx-ledger dispatch`: the second dispatcher of the demo, in a process
/// of its own; pays out until SIGTERM, then stops with nothing claimed.
template <class Db>
int run_dispatcher(Db& db, const std::string& name, const std::filesystem::path& network_log,
                   std::uint64_t crash_after) {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, nullptr);  // before any thread: taken by sigwait below
    payment_network network(network_log, ledger_id(db));
    std::atomic<std::uint64_t> paid{0};
    payout op{&network, &paid, crash_after, "the other dispatcher rescues it once its lease runs out"};
    sertx::effects<Db> journal(db, name, fleet_options);
    sertx::run_report r;
    std::jthread dispatcher([&](std::stop_token stop) { r = journal.run(op, stop); });
    int sig = 0;
    sigwait(&term, &sig);
    dispatcher.request_stop();
    dispatcher.join();
    std::printf("  %s paid %s payout(s), rescued %zu\n", name.c_str(), grouped(r.done).c_str(), r.rescued);
    return 0;
}

}  // namespace ledger

// SPDX-License-Identifier: BSL-1.0
#pragma once
// Client crashes: a load-generating child process (keyed transfers, each
// scheduling an at-most-once effect in its transaction, and dispatching
// them) killed with SIGKILL at random moments, again and again; each new
// child starts with the effect journal's recover(), as a restarted service
// does. The child writes down each answer it got (the acknowledgements) and
// the effect's operation writes down each call it made, both with single
// O_APPEND writes that a SIGKILL cannot tear. The test then holds both logs
// against the books. The case is written and registered once for both
// backends (SERTX_CRASH_CASES, at the end; run by tests/*/crash_test.cpp),
// with the backend as a fixture that the test file defines, deriving from
// sertx::test::sqlite3_backend or postgresql_backend (support/databases.hpp):
//
//     auto open(std::size_t pool_size) const;      // a database on the test's own (file or database)
//     std::string file(const std::string&) const;  // a file in a directory of the test's own
//     static std::optional<std::string> integrity(Db&);  // the backend's own check of its files
//                                                  // ("ok"), or nullopt where it has none (PostgreSQL)

#include "catch.hpp"
#include "databases.hpp"
#include "keyed_bank.hpp"

#include <sertx/effects.hpp>
#include <sertx/sertx.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace sertx::test::crash {

/// The effect: "send a notification" that must never be sent twice. Each
/// call appends its key to a file, the outside world's record of what it got.
struct notify {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "notify";
    int calls_fd;
    void operator()(const std::string& payload) const {
        const std::string line = payload + "\n";
        if (::write(calls_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
            throw std::runtime_error("test: cannot record a notification");
    }
};

inline void append_line(int fd, const std::string& line) {
    const std::string l = line + "\n";
    if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) ::_exit(5);
}

/// The child: recover, then transfer, schedule and dispatch until killed.
/// Never returns; an exception ends it with status 3 and its text in the
/// acknowledgement log.
template <class Open>
[[noreturn]] void generate_load(Open open, const keyed_bank::workload& w, int run, const std::string& acks_path,
                                const std::string& calls_path) {
    const int acks = ::open(acks_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    const int calls = ::open(calls_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    try {
        auto db = open();
        sertx::effects journal(db, "crash-test");  // one name across restarts: recover() takes over the dead one's rows
        journal.recover();
        std::mt19937 rng(static_cast<unsigned>(run) * 7919u + 1u);
        std::uniform_int_distribution<int> account(0, w.accounts - 1);
        std::uniform_int_distribution<long long> amount_of(1, w.opening_balance / 4);
        for (long long n = 0;; ++n) {
            const long long id = static_cast<long long>(run) * 10'000'000 + n;
            const int src = account(rng);
            const int dst = (src + 1 + account(rng) % (w.accounts - 1)) % w.accounts;
            const long long amount = amount_of(rng);
            const std::optional<bool> moved =
                sertx::transact(db, sertx::idempotency_key{keyed_bank::key_of(id)}, [&](auto& tx) {
                    const bool m = keyed_bank::transfer_body(tx, id, src, dst, amount);
                    if (m) journal.template schedule<notify>(tx, keyed_bank::key_of(id), keyed_bank::key_of(id));
                    return m;
                });
            append_line(acks, std::to_string(id) + (!moved ? " before" : *moved ? " moved" : " refused"));
            if (n % 3 == 0) journal.dispatch(notify{calls}, 4);
        }
    } catch (const std::exception& e) {
        append_line(acks, std::string("error ") + e.what());
        ::_exit(3);
    }
    ::_exit(4);
}

struct kill_report {
    int kills = 0;              ///< children ended by SIGKILL
    std::string child_failure;  ///< a child that ended otherwise, and why
};

/// Starts `kills` children one after the other, each killed with SIGKILL
/// after a random 150..700 ms (seeded: the same moments each run).
template <class Open>
kill_report kill_repeatedly(Open open, const keyed_bank::workload& w, int kills, const std::string& acks_path,
                            const std::string& calls_path) {
    kill_report r;
    std::mt19937 rng(2024);
    std::uniform_int_distribution<int> delay_ms(150, 700);
    for (int run = 1; run <= kills; ++run) {
        const pid_t child = ::fork();
        if (child < 0) throw std::runtime_error("test: fork failed");
        if (child == 0) generate_load(open, w, run, acks_path, calls_path);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
            ++r.kills;
        } else if (r.child_failure.empty()) {
            r.child_failure = "run " + std::to_string(run) + " ended with status " + std::to_string(status);
        }
    }
    return r;
}

/// The acknowledgements the children wrote down, as answers for the audit;
/// the errors a child wrote instead, into `errors`.
inline void read_acks(const std::string& acks_path, keyed_bank::answers& a, std::string& errors) {
    std::ifstream in(acks_path);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string first, kind;
        words >> first >> kind;
        if (first == "error") {
            errors += line + "\n";
            continue;
        }
        const long long id = std::stoll(first);
        a.add(kind == "moved" ? keyed_bank::answers::moved
              : kind == "refused" ? keyed_bank::answers::refused
                                  : keyed_bank::answers::committed_before,
              id, keyed_bank::resolution::key);
    }
}

/// How often each key was passed to the notification.
inline std::map<std::string, int> read_calls(const std::string& calls_path) {
    std::map<std::string, int> calls;
    std::ifstream in(calls_path);
    std::string line;
    while (std::getline(in, line)) ++calls[line];
    return calls;
}

struct effect_report {
    long long intents = 0;          ///< effects in the journal
    long long without_transfer = 0;  ///< an intent whose transfer is not in the books
    long long transfers_without_intent = 0;
    long long called_twice = 0;     ///< keys the notification got more than once
    long long done_not_called = 0;  ///< done, but the notification never got it
    long long in_doubt = 0;         ///< found in doubt after the last recover(), then settled by hand
    long long unsettled = 0;        ///< still pending or started at the end

    bool holds() const {
        return without_transfer == 0 && transfers_without_intent == 0 && called_twice == 0 && done_not_called == 0 &&
               unsettled == 0;
    }
    std::string describe() const {
        return "intents=" + std::to_string(intents) + " without_transfer=" + std::to_string(without_transfer) +
               " transfers_without_intent=" + std::to_string(transfers_without_intent) +
               " called_twice=" + std::to_string(called_twice) + " done_not_called=" + std::to_string(done_not_called) +
               " in_doubt=" + std::to_string(in_doubt) + " unsettled=" + std::to_string(unsettled);
    }
};

/// After the last kill, as an operator would: recover, dispatch what is
/// pending, settle each in-doubt effect by looking at the outside world's
/// record, then check every intent against the books and the record.
template <class Db>
effect_report settle_and_check(Db& db, const keyed_bank::workload& w, const std::string& calls_path) {
    effect_report r;
    const int calls_fd = ::open(calls_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    sertx::effects journal(db, "crash-test");
    journal.recover();
    while (journal.dispatch(notify{calls_fd}, 1000).claimed() > 0) {
    }
    ::close(calls_fd);
    const auto calls = read_calls(calls_path);
    for (const auto& doubtful : journal.in_doubt(1'000'000)) {
        ++r.in_doubt;
        const bool happened = calls.count(doubtful.key) > 0;
        journal.resolve(doubtful.key, happened ? sertx::effect_state::done : sertx::effect_state::failed,
                        happened ? "found in the notification log" : "not in the notification log", "crash test");
    }
    const keyed_bank::books b = keyed_bank::read_books(db, w);
    for (long long id : b.transfers) {
        const auto e = journal.find(keyed_bank::key_of(id));
        if (!e) {
            ++r.transfers_without_intent;
            continue;
        }
        ++r.intents;
        if (e->state == sertx::effect_state::pending || e->state == sertx::effect_state::started ||
            e->state == sertx::effect_state::in_doubt)
            ++r.unsettled;
        if (e->state == sertx::effect_state::done && calls.count(e->key) == 0) ++r.done_not_called;
    }
    const long long journal_rows = sertx::transact<sertx::policy<sertx::read_only>>(db, [](auto& tx) {
        long long n = 0;
        tx.sql() << "select count(*) from sertx_effect", soci::into(n);
        return n;
    });
    r.without_transfer += journal_rows - r.intents;  // intents whose transaction did not commit
    for (const auto& [key, count] : calls) {
        if (count > 1) ++r.called_twice;
        const long long id = std::stoll(key.substr(key.find('-') + 1));
        if (b.transfers.count(id) == 0) ++r.without_transfer;  // called for a transfer that never committed
    }
    return r;
}

}  // namespace sertx::test::crash

/// Registers the case above for one backend; its test file calls it once:
/// SERTX_CRASH_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_CRASH_CASES(Fixture, backend_tag)                                                                        \
    TEMPLATE_TEST_CASE("a load generator killed twenty times loses no acknowledged transfer and performs no effect twice", \
                       backend_tag "[faults][crash]", Fixture) {                                                       \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        namespace keyed_bank = ::sertx::test::keyed_bank;                                                              \
        namespace crash = ::sertx::test::crash;                                                                        \
        const TestType fixture;                                                                                        \
        const keyed_bank::workload w{.accounts = 10, .writers = 1, .transfers_per_writer = 0, .opening_balance = 1000}; \
        const std::string acks = fixture.file("acks.log"), calls = fixture.file("calls.log");                          \
        {                                                                                                              \
            auto db = fixture.open(4);                                                                                 \
            keyed_bank::open(db, w);                                                                                   \
        } /* closed before any fork: a child must not inherit the parent's connections */                              \
        const auto kills = crash::kill_repeatedly([&] { return fixture.open(2); }, w, 20, acks, calls);                \
        CHECK(kills.child_failure.empty());                                                                            \
        CHECK(kills.kills == 20);                                                                                      \
        auto db = fixture.open(4);                                                                                     \
        std::string errors;                                                                                            \
        keyed_bank::answers answers;                                                                                   \
        crash::read_acks(acks, answers, errors);                                                                       \
        CHECK(errors.empty());                                                                                         \
        const auto verdict = keyed_bank::audit(db, w, answers);                                                        \
        const auto effects = crash::settle_and_check(db, w, calls);                                                    \
        const std::optional<std::string> integrity = TestType::integrity(db);                                          \
        INFO(verdict.describe() << "\n" << effects.describe() << "\n" << errors);                                      \
        CHECK(verdict.holds());                                                                                        \
        CHECK(effects.holds());                                                                                        \
        CHECK(answers.acknowledged() > 0);                                                                             \
        CHECK(effects.intents > 0);                                                                                    \
        if (integrity) CHECK(*integrity == "ok");                                                                      \
        WARN(TestType::name << " client crashes: " << kills.kills << " SIGKILLs; " << answers.acknowledged()           \
                            << " acknowledged transfers all present once; " << effects.intents                         \
                            << " effects, none performed twice, " << effects.in_doubt                                  \
                            << " left in doubt by a kill and settled by hand"                                          \
                            << (integrity ? "; integrity_check " + *integrity : std::string()));                       \
    }

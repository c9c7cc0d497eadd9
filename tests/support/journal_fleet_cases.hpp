// SPDX-License-Identifier: BSL-1.0
#pragma once
// The effect journal as a worker fleet (DESIGN §7.1, issue 14), in one
// process on a real database: retry_later and dead letters, not_before,
// run()'s wake-ups and stop, leases rescued and late outcomes fenced,
// reconciliation, the upgrade of a journal from before leases, stats().
// Dispatchers that die are simulated in-process (a claim whose lease is made
// to have ended, a probe that stops or pauses the dispatcher); the versions
// with real processes and SIGKILL/SIGSTOP are the fleet's churn test.
// Registered once (SERTX_JOURNAL_FLEET_CASES, at the end) and run on
// PostgreSQL and SQLite (tests/*/journal_fleet_test.cpp).

#include "catch.hpp"
#include "databases.hpp"
#include "exactly_once.hpp"
#include "wait.hpp"

#include <sertx/sertx.hpp>
#include <sertx/testing/chaos.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace sertx::test::fleet {

using namespace std::chrono_literals;

/// The bound on waiting for something that should happen at once: generous,
/// and always shorter than the 30 s poll of the wake-up cases, so that only
/// a wake-up can meet it.
inline constexpr auto soon = 20s;

/// A flag a test raises and threads wait on.
class gate {
public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }
    bool wait_for(std::chrono::seconds limit) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [&] { return open_; });
    }
    bool is_open() {
        std::lock_guard lock(mutex_);
        return open_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// An at-most-once operation that says "not now" (retry_later) until told
/// otherwise, and counts its real calls.
struct flaky {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "flaky";
    call_log* log;
    std::atomic<bool>* up;
    std::string operator()(const std::string& payload) const {
        log->add(payload);
        if (!up->load()) throw sertx::retry_later("node unreachable for " + payload);
        return "sent:" + payload;
    }
};

/// An at-most-once operation whose calls are counted and signalled; the call
/// for `block_key` waits for `release` first (a long call in flight).
struct signalled {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "signalled";
    call_log* log;
    gate* called = nullptr;
    std::string block_key{};
    gate* release = nullptr;
    gate* entered = nullptr;
    std::string operator()(const std::string& payload) const {
        log->add(payload);
        if (called) called->open();
        if (payload == block_key && release) {
            if (entered) entered->open();
            release->wait();
        }
        return "sent:" + payload;
    }
};

/// The same as an idempotent operation.
struct signalled_idempotent {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "signalled_idempotent";
    call_log* log;
    std::string block_key{};
    gate* release = nullptr;
    gate* entered = nullptr;
    std::atomic<int>* blocked_calls = nullptr;
    std::string operator()(const std::string& payload) const {
        log->add(payload);
        // Only the first call of block_key blocks: the rescuer's goes through.
        if (payload == block_key && release && blocked_calls->fetch_add(1) == 0) {
            entered->open();
            release->wait();
            return "late:" + payload;
        }
        return "sent:" + payload;
    }
};

/// An at-most-once operation that can tell whether a call happened, from its
/// payload's prefix: happened-, not-, unknown-, throws-. The call for
/// `block_key` waits for `release` once it has begun (a request in flight of
/// a paused process).
struct reconciled_pay {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "reconciled_pay";
    call_log* log;
    call_log* asked;
    std::string block_key{};
    gate* release = nullptr;
    gate* entered = nullptr;
    std::string operator()(const std::string& payload) const {
        log->add(payload);
        if (payload == block_key && release) {
            entered->open();
            release->wait();
        }
        return "paid:" + payload;
    }
    sertx::reconciliation reconcile(const std::string& payload) const {
        asked->add(payload);
        if (payload.rfind("happened-", 0) == 0) return {sertx::reconciliation::happened, "found:" + payload};
        if (payload.rfind("not-", 0) == 0) return {sertx::reconciliation::not_happened};
        if (payload.rfind("throws-", 0) == 0) throw std::runtime_error("the gateway's status API is down");
        return {sertx::reconciliation::unknown};
    }
};

/// Counts the journal's observer events (from the run thread).
struct event_counts {
    std::atomic<int> claimed{0}, done{0}, retried{0}, rescued{0}, reconciled{0}, in_doubt{0}, fenced{0},
        abandoned{0}, errors{0};
    void on_effect_claimed(std::string_view, unsigned) { ++claimed; }
    void on_effect_done(std::string_view) { ++done; }
    void on_effect_retried(std::string_view, unsigned, std::chrono::system_clock::time_point) { ++retried; }
    void on_effect_rescued(std::string_view, std::string_view, sertx::effect_state) { ++rescued; }
    void on_effect_reconciled(std::string_view, sertx::reconciliation::outcome_kind) { ++reconciled; }
    void on_effect_in_doubt(std::string_view, std::string_view) { ++in_doubt; }
    void on_effect_fenced(std::string_view) { ++fenced; }
    void on_effect_abandoned(std::string_view) { ++abandoned; }
    void on_journal_error(std::string_view, std::chrono::microseconds) { ++errors; }
};

/// A dispatcher stopped (as by a crash) just after its claim committed,
/// before its call-began mark.
using dies_after_claim = stop_at<sertx::detail::dispatch_point::started>;
/// A dispatcher stopped just after its at-most-once call-began mark
/// committed, before the call: nobody can know that it did not call.
using dies_after_mark = stop_at<sertx::detail::dispatch_point::calling>;

/// A dispatcher paused (as by SIGSTOP) just after its claim committed, before
/// its call-began mark, until the test resumes it.
struct pause_after_claim {
    static inline gate* paused = nullptr;
    static inline gate* resume = nullptr;
    static void at(sertx::detail::dispatch_point p, std::string_view) {
        if (p != sertx::detail::dispatch_point::started || !resume) return;
        paused->open();
        resume->wait();
    }
};

/// A claimer and a rescuer interleaved as a slow (not paused) claimer can
/// be: the claimer stops after its claim; the rescuer, having read the
/// expired claim as not begun, lets the claimer go on and waits until it has
/// committed its mark and entered the call, before writing its rescue.
struct mark_races_rescue {
    static inline gate* claimed = nullptr;   // the claimer waits here ...
    static inline gate* go_on = nullptr;     // ... until the rescuer opens this
    static inline gate* entered = nullptr;   // the claimer's call has begun
    static inline std::atomic<int> rescues{0};
    static void at(sertx::detail::dispatch_point p, std::string_view) {
        if (!go_on) return;
        if (p == sertx::detail::dispatch_point::started) {
            claimed->open();
            go_on->wait();
        } else if (p == sertx::detail::dispatch_point::rescuing && rescues.fetch_add(1) == 0) {
            go_on->open();
            entered->wait();
        }
    }
};

template <class Db, class Probe>
sertx::effect_record record_of(sertx::effects<Db, Probe>& journal, const std::string& key) {
    const std::optional<sertx::effect_record> r = journal.find(key);
    REQUIRE(r.has_value());
    return *r;
}

/// Makes the lease of `key`'s claim look ended long ago, as after its
/// dispatcher died: the rescue of a live process's claim, without waiting.
template <class Db>
void expire_lease(Db& db, const std::string& key) {
    exec(db, "update sertx_effect set lease_until = 1 where key = '" + sertx::detail::to_hex(key) + "'");
}

/// A `run` on its own thread, stopped and joined when it goes out of scope.
template <class Journal, class Op, class Observer = sertx::detail::no_journal_observer>
class runner {
public:
    runner(Journal& journal, Op op, Observer* observer = nullptr)
        : op_(std::move(op)), done_(result_.get_future()), thread_([this, &journal, observer](std::stop_token stop) {
              try {
                  if (observer)
                      result_.set_value(journal.run(op_, stop, *observer));
                  else
                      result_.set_value(journal.run(op_, stop));
              } catch (...) {
                  result_.set_exception(std::current_exception());
              }
          }) {}
    ~runner() { stop(); }
    /// Requests the stop; the run's report once it returned (rethrowing what it threw).
    sertx::run_report stop() {
        thread_.request_stop();
        if (!stopped_) {
            stopped_ = true;
            // A stop is prompt: the run returns long before its 30 s poll.
            returned_ = done_.wait_for(soon) == std::future_status::ready;
            thread_.join();
            if (returned_) report_ = done_.get();
        }
        return report_;
    }
    bool returned_promptly() const { return returned_; }

private:
    Op op_;
    std::promise<sertx::run_report> result_;
    std::future<sertx::run_report> done_;
    std::jthread thread_;
    bool stopped_ = false, returned_ = false;
    sertx::run_report report_;
};

// ---- scenarios -------------------------------------------------------------

/// retry_later → pending not before a backoff; dead after max_attempts calls
/// ended so; listed by dead(); requeue() → pending → done.
template <class Db>
void retry_later_then_dead_then_requeue(Db& db) {
    sertx::install(db);
    call_log log;
    std::atomic<bool> up{false};
    flaky op{&log, &up};
    {
        // The first retry waits at least first_retry/2 = 30 s: not due for
        // the rest of the test, however slow the machine (under ASan and a
        // full ctest -j2, 1 s passed between two dispatches once).
        sertx::effects journal(db, "pod-1",
                               {.lease = 30s, .poll = 30s, .max_attempts = 10, .first_retry = 60s, .max_retry = 120s});
        schedule_all<flaky>(db, journal, {"later"});
        const auto before = std::chrono::system_clock::now();
        const sertx::dispatch_report first = journal.dispatch(op, 10);
        CHECK(first.retried == 1);
        CHECK(first.claimed() == 1);
        const sertx::effect_record r = record_of(journal, "later");
        CHECK(r.state == sertx::effect_state::pending);
        CHECK(r.retries == 1);
        REQUIRE(r.not_before.has_value());
        CHECK(*r.not_before >= before + 30s);
        CHECK(*r.not_before <= std::chrono::system_clock::now() + 60s);
        CHECK(r.error.find("node unreachable for later") != std::string::npos);
        CHECK(journal.dispatch(op, 10).claimed() == 0);  // not due yet
        CHECK(log.calls("later") == 1);
    }
    // Quick retries: dead after 3 calls that ended retry_later.
    sertx::effects journal(db, "pod-2",
                           {.lease = 30s, .poll = 30s, .max_attempts = 3, .first_retry = 20ms, .max_retry = 40ms});
    schedule_all<flaky>(db, journal, {"doomed"});
    std::size_t retried = 0, dead = 0;
    REQUIRE(wait_until(
        [&] {
            const sertx::dispatch_report d = journal.dispatch(op, 10);
            retried += d.retried;
            dead += d.dead;
            return record_of(journal, "doomed").state == sertx::effect_state::dead;
        },
        soon));
    CHECK(log.calls("doomed") == 3);
    CHECK(dead == 1);
    const sertx::effect_record r = record_of(journal, "doomed");
    CHECK(r.retries == 3);
    CHECK(r.settled_at.has_value());
    CHECK(r.error.find("dead after 3") != std::string::npos);
    const std::vector<sertx::effect_record> listed = journal.dead(10);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].key == "doomed");
    CHECK(journal.stats().dead == 1);
    CHECK(journal.dispatch(op, 10).claimed() == 0);  // dead: never claimed again by itself

    CHECK_THROWS_AS(journal.requeue("later", "not dead", "alice"), sertx::error);   // pending
    CHECK_THROWS_AS(journal.requeue("missing", "no such", "alice"), sertx::error);  // absent
    up = true;
    journal.requeue("doomed", "node back after maintenance", "alice");
    const sertx::effect_record back = record_of(journal, "doomed");
    CHECK(back.state == sertx::effect_state::pending);
    CHECK(back.retries == 0);
    CHECK(back.resolved_by == "alice");
    CHECK(back.note == "node back after maintenance");
    CHECK(journal.dispatch(op, 10).done == 1);
    const sertx::effect_record done = record_of(journal, "doomed");
    CHECK(done.state == sertx::effect_state::done);
    CHECK(done.result == "sent:doomed");
    CHECK(log.calls("doomed") == 4);
    CHECK(journal.dead(10).empty());
}

/// An intent scheduled with not_before is not claimed before it.
template <class Db>
void not_before_is_respected(Db& db) {
    sertx::install(db);
    call_log log;
    gate called;
    sertx::effects journal(db, "pod-1", {.lease = 30s, .poll = 30s});
    const auto later = std::chrono::system_clock::now() + 1h;
    const auto soon_after = std::chrono::system_clock::now() + 3s;  // not due before the first dispatch, however slow the machine
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<signalled>(tx, "in-an-hour", "in-an-hour", {.not_before = later});
        journal.template schedule<signalled>(tx, "shortly", "shortly", {.not_before = soon_after});
        journal.template schedule<signalled>(tx, "past", "past",
                                             {.not_before = std::chrono::system_clock::now() - 1h});
    });
    signalled op{&log, &called};
    CHECK(journal.dispatch(op, 10).done == 1);  // only "past" is due
    CHECK(log.calls("past") == 1);
    REQUIRE(wait_until([&] { return journal.dispatch(op, 10).done == 1; }, soon));
    CHECK(log.calls("shortly") == 1);
    const sertx::effect_record r = record_of(journal, "shortly");
    REQUIRE(r.started_at.has_value());
    CHECK(*r.started_at >= soon_after);
    CHECK(log.calls("in-an-hour") == 0);
    CHECK(record_of(journal, "in-an-hour").state == sertx::effect_state::pending);
    CHECK(journal.stats().pending == 1);
}

/// run() with a 30 s poll calls an intent committed while it sleeps long
/// before the poll would; stop returns promptly and leaves nothing claimed.
template <class Db>
void run_wakes_on_commit_and_stops_promptly(Db& db) {
    sertx::install(db);
    call_log log;
    gate first, second;
    sertx::effects journal(db, "pod-1", {.lease = 30s, .poll = 30s});
    event_counts events;
    schedule_all<signalled>(db, journal, {"one"});
    signalled op{&log, &first};
    {
        runner run(journal, op, &events);
        REQUIRE(first.wait_for(soon));
        REQUIRE(wait_until([&] { return record_of(journal, "one").state == sertx::effect_state::done; }, soon));
        // The run is now asleep for its 30 s poll, or about to be.
        schedule_all<signalled>(db, journal, {"two"});
        REQUIRE(wait_until([&] { return log.calls("two") == 1; }, soon));
        REQUIRE(wait_until([&] { return record_of(journal, "two").state == sertx::effect_state::done; }, soon));
        const sertx::run_report report = run.stop();
        CHECK(run.returned_promptly());
        CHECK(report.claimed == 2);
        CHECK(report.done == 2);
        CHECK(report.database_errors == 0);
    }
    CHECK(events.claimed == 2);
    CHECK(events.done == 2);
    CHECK(journal.stats().started == 0);

    // A stop while a call is in flight: the call finishes and is recorded;
    // what was not claimed stays pending; nothing stays started.
    gate release, entered;
    signalled blocking{&log, nullptr, "slow", &release, &entered};
    schedule_all<signalled>(db, journal, {"slow", "after-1", "after-2"});
    runner run(journal, blocking);
    REQUIRE(entered.wait_for(soon));
    std::thread stopper([&] { run.stop(); });
    release.open();
    stopper.join();
    CHECK(run.returned_promptly());
    CHECK(record_of(journal, "slow").state == sertx::effect_state::done);
    const sertx::journal_stats s = journal.stats();
    CHECK(s.started == 0);
    CHECK(s.pending + log.calls("after-1") + log.calls("after-2") == 2);
}

/// Two dispatchers' run() over one journal never call an at-most-once
/// intent twice, and between them call every one.
template <class Db>
void two_runs_call_each_at_most_once(Db& db, int intents) {
    sertx::install(db);
    call_log log;
    sertx::effects a(db, "pod-a", {.lease = 30s, .poll = 30s});
    sertx::effects b(db, "pod-b", {.lease = 30s, .poll = 30s});
    std::vector<std::string> keys;
    for (int i = 0; i < intents; ++i) keys.push_back("p-" + std::to_string(i));
    sertx::run_report ra, rb;
    {
        runner run_a(a, signalled{&log});
        runner run_b(b, signalled{&log});
        for (std::size_t i = 0; i < keys.size(); i += 10)
            schedule_all<signalled>(db, a, std::vector<std::string>(keys.begin() + static_cast<long>(i),
                                                                     keys.begin() + static_cast<long>(i + 10)));
        REQUIRE(wait_until(
            [&] {
                const sertx::journal_stats s = a.stats();
                return s.pending == 0 && s.started == 0;
            },
            60s, 20ms));
        ra = run_a.stop();
        rb = run_b.stop();
        CHECK(run_a.returned_promptly());
        CHECK(run_b.returned_promptly());
    }
    CHECK(log.distinct() == static_cast<std::size_t>(intents));
    CHECK(log.most() == 1);
    CHECK(ra.done + rb.done == static_cast<std::size_t>(intents));
    CHECK(count(db, "select count(*) from sertx_effect where state = 'done'") == intents);
}

/// A claim whose lease ended while its call was in flight (the dispatcher
/// paused) is rescued by another dispatcher; the first's late outcome is
/// fenced and overwrites nothing. Idempotent: called again; at-most-once
/// without reconcile: in doubt, never called again.
template <class Db>
void expired_lease_is_rescued_and_late_outcome_fenced(Db& db) {
    sertx::install(db);
    call_log log;
    {
        std::atomic<int> blocked{0};
        gate release, entered;
        sertx::effects slow(db, "pod-paused", {.lease = 60s, .poll = 30s});
        sertx::effects rescuer(db, "pod-rescuer", {.lease = 60s, .poll = 30s});
        schedule_all<signalled_idempotent>(db, slow, {"refresh-1"});
        std::future<sertx::dispatch_report> paused = std::async(std::launch::async, [&] {
            return slow.dispatch(signalled_idempotent{&log, "refresh-1", &release, &entered, &blocked}, 1);
        });
        REQUIRE(entered.wait_for(soon));
        expire_lease(db, "refresh-1");  // as if pod-paused had been stopped for longer than its lease
        event_counts events;
        runner run(rescuer, signalled_idempotent{&log, "refresh-1", &release, &entered, &blocked}, &events);
        REQUIRE(wait_until([&] { return record_of(rescuer, "refresh-1").state == sertx::effect_state::done; }, soon));
        const sertx::run_report report = run.stop();
        CHECK(report.rescued == 1);
        CHECK(events.rescued == 1);
        release.open();  // pod-paused wakes up and tries to record its outcome
        const sertx::dispatch_report late = paused.get();
        CHECK(late.fenced == 1);
        const sertx::effect_record r = record_of(rescuer, "refresh-1");
        CHECK(r.state == sertx::effect_state::done);
        CHECK(r.result == "sent:refresh-1");  // the rescuer's, not the late one's
        CHECK(r.dispatcher == "pod-rescuer");
        CHECK(r.attempts == 2);
        CHECK(r.effect == "idempotent");  // stored with its own tag, not read_only
        CHECK_FALSE(r.call_began.has_value());  // idempotent calls are not marked
        CHECK(log.calls("refresh-1") == 2);
    }
    {
        gate release, entered;
        sertx::effects slow(db, "pod-paused", {.lease = 60s, .poll = 30s});
        sertx::effects rescuer(db, "pod-rescuer", {.lease = 60s, .poll = 30s});
        schedule_all<signalled>(db, slow, {"pay-1"});
        std::future<sertx::dispatch_report> paused = std::async(
            std::launch::async, [&] { return slow.dispatch(signalled{&log, nullptr, "pay-1", &release, &entered}, 1); });
        REQUIRE(entered.wait_for(soon));
        expire_lease(db, "pay-1");
        runner run(rescuer, signalled{&log});
        REQUIRE(wait_until([&] { return record_of(rescuer, "pay-1").state == sertx::effect_state::in_doubt; }, soon));
        const sertx::run_report report = run.stop();
        CHECK(report.rescued == 1);
        CHECK(report.claimed == 0);
        release.open();
        CHECK(paused.get().fenced == 1);
        const sertx::effect_record r = record_of(rescuer, "pay-1");
        CHECK(r.state == sertx::effect_state::in_doubt);  // the late "done" did not overwrite it
        CHECK(r.error.find("pod-paused") != std::string::npos);
        CHECK(r.effect == "at_most_once");
        CHECK(r.call_began.has_value());  // marked before the call
        CHECK(log.calls("pay-1") == 1);
    }
}

/// A live dispatcher's long call keeps its lease: renewed while it runs, so
/// a rescuer running beside it takes nothing.
template <class Db>
void a_long_call_keeps_its_lease(Db& db) {
    sertx::install(db);
    call_log log;
    gate release, entered;
    // A lease short enough to end several times during the call.
    sertx::effects slow(db, "pod-slow", {.lease = 1s, .poll = 30s});
    sertx::effects rescuer(db, "pod-rescuer", {.lease = 1s, .poll = 30s});
    schedule_all<signalled>(db, slow, {"long"});
    std::future<sertx::dispatch_report> call = std::async(
        std::launch::async, [&] { return slow.dispatch(signalled{&log, nullptr, "long", &release, &entered}, 1); });
    REQUIRE(entered.wait_for(soon));
    runner run(rescuer, signalled{&log});
    // Three renewals seen: the lease has been extended past several of its ends.
    auto lease = [&] { return *record_of(slow, "long").lease_until; };
    auto seen = lease();
    for (int renewals = 0; renewals < 3;) {
        REQUIRE(wait_until([&] { return lease() > seen; }, soon));
        seen = lease();
        ++renewals;
    }
    release.open();
    CHECK(call.get().done == 1);
    const sertx::run_report report = run.stop();
    CHECK(report.rescued == 0);
    CHECK(record_of(slow, "long").state == sertx::effect_state::done);
    CHECK(log.calls("long") == 1);
}

/// A dispatcher paused between its claim and its call-began mark, rescued
/// meanwhile, then woken, does not call: the rescue knew from the missing
/// mark that the call had not begun, put it back to pending without asking
/// reconcile(), and the rescuer called it; the woken claimer's mark is
/// fenced, so it gives up uncalled.
template <class Db>
void paused_before_the_call_does_not_call(Db& db) {
    sertx::install(db);
    call_log log, asked;
    gate paused, resume;
    pause_after_claim::paused = &paused;
    pause_after_claim::resume = &resume;
    sertx::effects<Db, pause_after_claim> sleeper(db, "pod-stopped", {.lease = 60s, .poll = 30s});
    sertx::effects rescuer(db, "pod-rescuer", {.lease = 60s, .poll = 30s});
    schedule_all<reconciled_pay>(db, rescuer, {"not-1"});
    std::future<sertx::dispatch_report> stopped =
        std::async(std::launch::async, [&] { return sleeper.dispatch(reconciled_pay{&log, &asked}, 1); });
    REQUIRE(paused.wait_for(soon));
    expire_lease(db, "not-1");  // as if pod-stopped had been stopped for longer than its lease
    {
        event_counts events;
        runner run(rescuer, reconciled_pay{&log, &asked}, &events);
        REQUIRE(wait_until([&] { return log.calls("not-1") == 1; }, soon));
        REQUIRE(wait_until([&] { return record_of(rescuer, "not-1").state == sertx::effect_state::done; }, soon));
        const sertx::run_report report = run.stop();
        CHECK(report.rescued == 1);
        CHECK(report.reconciled == 0);
        CHECK(events.reconciled == 0);
    }
    resume.open();  // pod-stopped wakes up: its mark matches no row
    const sertx::dispatch_report woken = stopped.get();
    pause_after_claim::resume = nullptr;
    CHECK(woken.abandoned == 1);
    CHECK(log.calls("not-1") == 1);
    CHECK(asked.calls("not-1") == 0);  // the missing mark said it all
    const sertx::effect_record r = record_of(rescuer, "not-1");
    CHECK(r.state == sertx::effect_state::done);
    CHECK(r.dispatcher == "pod-rescuer");
    CHECK(r.result == "paid:not-1");
    CHECK(r.attempts == 2);
}

/// A rescue that read a claim as not begun, written after the claimer (slow,
/// not dead) committed its mark: the rescue is refused (its write is fenced
/// on the call_began it read), so the intent is not put back to pending and
/// called a second time; the claimer's call is recorded.
template <class Db>
void a_mark_committed_after_the_rescue_read_it_wins(Db& db) {
    sertx::install(db);
    call_log log, asked;
    gate claimed, go_on, entered, release;
    mark_races_rescue::claimed = &claimed;
    mark_races_rescue::go_on = &go_on;
    mark_races_rescue::entered = &entered;
    mark_races_rescue::rescues = 0;
    sertx::effects<Db, mark_races_rescue> slow(db, "pod-slow", {.lease = 60s, .poll = 30s});
    sertx::effects<Db, mark_races_rescue> rescuer(db, "pod-rescuer", {.lease = 60s, .poll = 30s});
    schedule_all<reconciled_pay>(db, rescuer, {"not-raced"});
    std::future<sertx::dispatch_report> call = std::async(std::launch::async, [&] {
        return slow.dispatch(reconciled_pay{&log, &asked, "not-raced", &release, &entered}, 1);
    });
    REQUIRE(claimed.wait_for(soon));
    expire_lease(db, "not-raced");
    sertx::run_report report;
    {
        runner run(rescuer, reconciled_pay{&log, &asked});
        REQUIRE(entered.wait_for(soon));  // the rescuer let the claimer mark and call
        REQUIRE(wait_until([&] { return mark_races_rescue::rescues.load() >= 1; }, soon));
        release.open();
        CHECK(call.get().done == 1);
        report = run.stop();
    }
    mark_races_rescue::go_on = nullptr;
    CHECK(report.rescued == 0);
    CHECK(report.claimed == 0);
    CHECK(log.calls("not-raced") == 1);
    CHECK(asked.calls("not-raced") == 0);
    const sertx::effect_record r = record_of(rescuer, "not-raced");
    CHECK(r.state == sertx::effect_state::done);
    CHECK(r.dispatcher == "pod-slow");
    CHECK(r.attempts == 1);
}

/// A dispatcher paused after its call-began mark, inside the call (the
/// request on its way, as SIGSTOP can leave it), rescued meanwhile by a
/// dispatcher whose reconcile() answers not_happened (the outside system has
/// not seen the request yet): in doubt, never called a second time; the
/// paused call, released, lands once, and its outcome is fenced.
template <class Db>
void paused_inside_the_call_is_in_doubt_not_called_again(Db& db) {
    sertx::install(db);
    call_log log, asked;
    gate release, entered;
    sertx::effects slow(db, "pod-paused", {.lease = 60s, .poll = 30s});
    sertx::effects rescuer(db, "pod-rescuer", {.lease = 60s, .poll = 30s});
    schedule_all<reconciled_pay>(db, rescuer, {"not-paused"});
    std::future<sertx::dispatch_report> paused = std::async(std::launch::async, [&] {
        return slow.dispatch(reconciled_pay{&log, &asked, "not-paused", &release, &entered}, 1);
    });
    REQUIRE(entered.wait_for(soon));
    expire_lease(db, "not-paused");  // as if pod-paused had been stopped for longer than its lease
    {
        event_counts events;
        runner run(rescuer, reconciled_pay{&log, &asked}, &events);
        REQUIRE(wait_until([&] { return record_of(rescuer, "not-paused").state == sertx::effect_state::in_doubt; },
                           soon));
        const sertx::run_report report = run.stop();
        CHECK(report.rescued == 1);
        CHECK(report.reconciled == 0);  // not_happened settled nothing
        CHECK(report.claimed == 0);
        CHECK(events.reconciled == 1);  // it was asked
        CHECK(events.in_doubt == 1);
    }
    CHECK(asked.calls("not-paused") == 1);
    release.open();  // the paused request lands; its outcome is fenced
    CHECK(paused.get().fenced == 1);
    CHECK(log.calls("not-paused") == 1);
    const sertx::effect_record r = record_of(rescuer, "not-paused");
    CHECK(r.state == sertx::effect_state::in_doubt);
    CHECK(r.attempts == 1);
    CHECK(r.error.find("began the call") != std::string::npos);
    CHECK(r.error.find("may still be calling") != std::string::npos);
}

/// Reconciliation of claims left by a dead dispatcher after their call began
/// (the mark committed): happened → done with reconcile's result (noted as
/// reconciled); unknown (or a reconcile that throws) → in_doubt;
/// not_happened → pending and called again by recover(op), whose claimer
/// (this name's previous incarnation) is gone, but in_doubt by run()'s
/// rescue, whose claimer may only be paused with its request in flight.
/// Claims left before the mark go back to pending without asking, both ways.
template <class Db>
void reconciliation_settles_where_it_can(Db& db) {
    sertx::install(db);
    const std::vector<std::string> keys = {"happened-1", "not-1", "unknown-1", "throws-1"};
    for (const bool by_recover : {false, true}) {
        INFO((by_recover ? "recover(op)" : "run(op) rescuing an expired lease"));
        call_log log, asked;
        exec(db, "delete from sertx_effect");
        sertx::effects<Db, dies_after_mark> dying(db, "pod-dead", {.lease = 30s, .poll = 30s});
        sertx::effects<Db, dies_after_claim> dying_early(db, "pod-dead", {.lease = 30s, .poll = 30s});
        sertx::effects journal(db, by_recover ? "pod-dead" : "pod-live", {.lease = 30s, .poll = 30s});
        schedule_all<reconciled_pay>(db, journal, keys);
        for (std::size_t i = 0; i < keys.size(); ++i)
            CHECK_THROWS_AS(dying.dispatch(reconciled_pay{&log, &asked}, 1), dispatcher_stopped);
        // One more, left before its mark: the call cannot have begun.
        schedule_all<reconciled_pay>(db, journal, {"not-early"});
        CHECK_THROWS_AS(dying_early.dispatch(reconciled_pay{&log, &asked}, 1), dispatcher_stopped);
        CHECK(journal.stats().started == keys.size() + 1);
        CHECK(record_of(journal, "not-1").call_began.has_value());
        CHECK_FALSE(record_of(journal, "not-early").call_began.has_value());
        if (by_recover) {
            const sertx::recover_report r = journal.recover(reconciled_pay{&log, &asked});
            CHECK(r.reconciled == 2);
            CHECK(r.in_doubt == 2);
            CHECK(r.requeued == 1);  // not-early
            CHECK(journal.dispatch(reconciled_pay{&log, &asked}, 10).done == 2);  // not-1 and not-early, called now
        } else {
            for (const auto& k : keys) expire_lease(db, k);
            expire_lease(db, "not-early");
            event_counts events;
            runner run(journal, reconciled_pay{&log, &asked}, &events);
            REQUIRE(wait_until([&] { return log.calls("not-early") == 1; }, soon));
            REQUIRE(wait_until([&] { return journal.stats().started == 0 && journal.stats().pending == 0; }, soon));
            const sertx::run_report report = run.stop();
            CHECK(report.rescued == 5);
            CHECK(report.reconciled == 1);  // happened-1
            CHECK(events.reconciled == 4);  // the four marked ones were asked
        }
        const sertx::effect_record happened = record_of(journal, "happened-1");
        CHECK(happened.state == sertx::effect_state::done);
        CHECK(happened.result == "found:happened-1");
        CHECK(happened.resolved_by == "reconciled");
        CHECK(happened.note.find("reconciled") != std::string::npos);
        const sertx::effect_record again = record_of(journal, "not-1");
        if (by_recover) {
            CHECK(again.state == sertx::effect_state::done);
            CHECK(again.result == "paid:not-1");
        } else {
            CHECK(again.state == sertx::effect_state::in_doubt);
            CHECK(again.error.find("may still be calling") != std::string::npos);
        }
        const sertx::effect_record early = record_of(journal, "not-early");
        CHECK(early.state == sertx::effect_state::done);
        CHECK(early.note.find("before its call") != std::string::npos);
        CHECK(record_of(journal, "unknown-1").state == sertx::effect_state::in_doubt);
        const sertx::effect_record threw = record_of(journal, "throws-1");
        CHECK(threw.state == sertx::effect_state::in_doubt);
        CHECK(threw.error.find("status API is down") != std::string::npos);
        // Never called by the dead dispatcher (it died before), called once
        // only where reconcile said it had not happened to recover(op), and
        // where no mark said the call had begun.
        CHECK(log.calls("happened-1") == 0);
        CHECK(log.calls("not-1") == (by_recover ? 1 : 0));
        CHECK(log.calls("unknown-1") == 0);
        CHECK(log.calls("not-early") == 1);
        for (const auto& k : keys) CHECK(asked.calls(k) == 1);
        CHECK(asked.calls("not-early") == 0);
        CHECK(journal.in_doubt(10).size() == (by_recover ? 2 : 3));
    }
}

/// install() upgrades a journal made before leases: columns added, the state
/// CHECK widened to `dead`, every row kept with its meaning. And one made
/// with leases but before the call-began mark: the column added, every row
/// "not known" (-1), so that a claim the older sertx held is never taken as
/// uncalled: rescued, it is reconciled, and a not_happened puts it in doubt.
template <class Db>
void install_upgrades_an_old_journal(Db& db) {
    exec(db,
         "create table sertx_effect (key text primary key, operation text not null, effect text not null check "
         "(effect in ('at_most_once', 'idempotent', 'read_only')), payload text not null, state text not null check "
         "(state in ('pending', 'started', 'done', 'failed', 'in_doubt')), result text not null default '', error "
         "text not null default '', attempts integer not null default 0, dispatcher text not null default '', "
         "scheduled_at bigint not null, started_at bigint not null default 0, settled_at bigint not null default 0, "
         "resolved_by text not null default '', note text not null default '')");
    exec(db, "create index sertx_effect_queue on sertx_effect (operation, state, scheduled_at)");
    auto old_row = [&](const std::string& key, const std::string& state, const std::string& dispatcher) {
        exec(db, "insert into sertx_effect (key, operation, effect, payload, state, attempts, dispatcher, "
                 "scheduled_at) values ('" +
                     sertx::detail::to_hex(key) + "', 'signalled', 'at_most_once', '" + sertx::detail::to_hex(key) +
                     "', '" + state + "', " + (state == "pending" ? "0" : "1") + ", '" + dispatcher + "', 1)");
    };
    old_row("old-pending", "pending", "");
    old_row("old-started", "started", "pod-old");
    old_row("old-done", "done", "pod-old");
    bool refused = false;
    try {
        old_row("old-dead", "dead", "");
    } catch (const std::exception&) {
        refused = true;
    }
    CHECK(refused);  // the old CHECK knows no `dead`
    sertx::install(db);
    sertx::install(db);  // a second time changes nothing
    CHECK(count(db, "select count(*) from sertx_effect") == 3);
    old_row("new-dead", "dead", "");  // the widened CHECK takes it
    CHECK(count(db, "select count(*) from sertx_effect where state = 'dead' and retries = 0 and lease_until = 0") ==
          1);
    call_log log;
    sertx::effects journal(db, "pod-old", {.lease = 30s, .poll = 30s});
    CHECK(record_of(journal, "old-done").state == sertx::effect_state::done);
    CHECK(journal.dispatch(signalled{&log}, 10).done == 1);  // the old pending intent is due
    CHECK(log.calls("old-pending") == 1);
    const sertx::recover_report r = journal.recover();  // the old started one: no lease, recovered by name
    CHECK(r.in_doubt == 1);
    CHECK(journal.dead(10).size() == 1);
    journal.requeue("new-dead", "upgrade test", "alice");
    CHECK(journal.dispatch(signalled{&log}, 10).done == 1);
    CHECK(log.calls("new-dead") == 1);
    CHECK(count(db, "select count(*) from sertx_effect where call_began = -1 and key = '" +
                        sertx::detail::to_hex("old-started") + "'") == 1);

    // A journal with leases, before the call-began mark (sertx of issue 14's
    // first fleet): a claim of it whose lease ended, and a pending intent.
    exec(db, "drop table sertx_effect");
    exec(db,
         "create table sertx_effect (key text primary key, operation text not null, effect text not null check "
         "(effect in ('at_most_once', 'idempotent', 'read_only')), payload text not null, state text not null check "
         "(state in ('pending', 'started', 'done', 'failed', 'in_doubt', 'dead')), result text not null default '', "
         "error text not null default '', attempts integer not null default 0, dispatcher text not null default '', "
         "scheduled_at bigint not null, started_at bigint not null default 0, settled_at bigint not null default 0, "
         "resolved_by text not null default '', note text not null default '', lease_until bigint not null default "
         "0, not_before bigint not null default 0, retries integer not null default 0)");
    exec(db, "create index sertx_effect_queue on sertx_effect (operation, state, scheduled_at)");
    auto leased_row = [&](const std::string& key, const std::string& state) {
        exec(db, "insert into sertx_effect (key, operation, effect, payload, state, attempts, dispatcher, "
                 "scheduled_at, lease_until) values ('" +
                     sertx::detail::to_hex(key) + "', 'reconciled_pay', 'at_most_once', '" +
                     sertx::detail::to_hex(key) + "', '" + state + "', " + (state == "pending" ? "0" : "1") +
                     ", 'pod-old', 1, " + (state == "pending" ? "0" : "1") + ")");
    };
    leased_row("not-leased-started", "started");
    leased_row("not-leased-pending", "pending");
    sertx::install(db);
    sertx::install(db);
    CHECK(count(db, "select count(*) from sertx_effect where call_began = -1") == 2);
    call_log asked;
    sertx::effects rescuer(db, "pod-new", {.lease = 30s, .poll = 30s});
    {
        runner run(rescuer, reconciled_pay{&log, &asked});
        REQUIRE(wait_until([&] { return log.calls("not-leased-pending") == 1; }, soon));
        REQUIRE(wait_until(
            [&] { return record_of(rescuer, "not-leased-started").state == sertx::effect_state::in_doubt; }, soon));
        CHECK(run.stop().rescued == 1);
    }
    CHECK(asked.calls("not-leased-started") == 1);
    CHECK(log.calls("not-leased-started") == 0);
    const sertx::effect_record marked = record_of(rescuer, "not-leased-pending");
    CHECK(marked.state == sertx::effect_state::done);
    CHECK(marked.call_began.has_value());  // claimed and marked by this sertx
}

/// stats(): the counts of each unsettled state and the oldest pending age.
template <class Db>
void stats_count_the_journal(Db& db) {
    sertx::install(db);
    call_log log;
    sertx::effects journal(db, "pod-1", {.lease = 30s, .poll = 30s});
    CHECK(journal.stats().pending == 0);
    CHECK(journal.stats().oldest_pending_age == std::chrono::microseconds(0));
    schedule_all(db, journal, {"doubt-1", "fail-1"});           // support's pay: in doubt, failed
    schedule_all<signalled>(db, journal, {"s-1", "s-2", "s-3"});
    std::atomic<bool> up{false};
    sertx::effects quick(db, "pod-1", {.lease = 30s, .poll = 30s, .max_attempts = 1});
    schedule_all<flaky>(db, journal, {"dead-1"});
    CHECK(quick.dispatch(flaky{&log, &up}, 10).dead == 1);
    CHECK(journal.dispatch(pay{&log}, 10).claimed() == 2);
    sertx::effects<Db, dies_after_claim> dying(db, "pod-dead", {.lease = 30s, .poll = 30s});
    CHECK_THROWS_AS(dying.dispatch(signalled{&log}, 1), dispatcher_stopped);
    const auto before = std::chrono::system_clock::now();
    const sertx::journal_stats s = journal.stats();
    CHECK(s.pending == 2);
    CHECK(s.started == 1);
    CHECK(s.in_doubt == 1);
    CHECK(s.dead == 1);
    const sertx::effect_record oldest = record_of(journal, "s-2");
    CHECK(s.oldest_pending_age > std::chrono::microseconds(0));
    CHECK(s.oldest_pending_age <=
          std::chrono::duration_cast<std::chrono::microseconds>(before - *oldest.scheduled_at) + 1s);
    // Pruning takes the failed one only: never what is pending, started, in doubt or dead.
    CHECK(sertx::prune_effects(db, std::chrono::seconds(0)) == 1);
    const sertx::journal_stats after = journal.stats();
    CHECK(after.pending == 2);
    CHECK(after.started == 1);
    CHECK(after.in_doubt == 1);
    CHECK(after.dead == 1);
}

/// run() survives database failures (sertx::testing::chaos: conflicts,
/// lost connections, COMMITs lost after applying or rolling back, some of
/// them thrown out of the journal's transactions): never thrown out of the
/// loop, each reported to the observer, and every intent still ends settled:
/// the idempotent ones done, the at-most-once ones called at most once, done
/// only if called.
template <class Db>
void run_survives_database_failures(Db& db) {
    sertx::install(db);
    sertx::testing::chaos disturbed(
        db, {.seed = 7,
             .at_statement = {.serialization = 0.03, .connection_lost = 0.02},
             .at_commit = {.serialization = 0.03, .lost_commit_applied = 0.04, .lost_commit_rolled_back = 0.04},
             .lose_commits_only_when_resolvable = false});
    call_log log;
    std::atomic<int> unused{0};
    sertx::effects plain(db, "scheduler");
    std::vector<std::string> once_keys, idem_keys;
    for (int i = 0; i < 60; ++i) {
        once_keys.push_back("once-" + std::to_string(i));
        idem_keys.push_back("idem-" + std::to_string(i));
    }
    schedule_all<signalled>(db, plain, once_keys);
    schedule_all<signalled_idempotent>(db, plain, idem_keys);
    sertx::effects journal(disturbed, "pod-chaos", {.lease = 1s, .poll = 200ms});
    event_counts once_events, idem_events;
    sertx::run_report once_report, idem_report;
    {
        runner once(journal, signalled{&log}, &once_events);
        runner idem(journal, signalled_idempotent{&log, "", nullptr, nullptr, &unused}, &idem_events);
        REQUIRE(wait_until(
            [&] {
                const sertx::journal_stats st = plain.stats();
                return st.pending == 0 && st.started == 0;
            },
            60s, 20ms));
        once_report = once.stop();
        idem_report = idem.stop();
        CHECK(once.returned_promptly());
        CHECK(idem.returned_promptly());
    }
    UNSCOPED_INFO("injected " << disturbed.injected().total() << "; database errors survived: "
                              << once_report.database_errors + idem_report.database_errors << "; rescued "
                              << once_report.rescued + idem_report.rescued);
    CHECK(disturbed.injected().total() > 0);
    CHECK(once_events.errors == static_cast<int>(once_report.database_errors));
    CHECK(idem_events.errors == static_cast<int>(idem_report.database_errors));
    for (const auto& k : idem_keys) {
        CHECK(record_of(plain, k).state == sertx::effect_state::done);
        CHECK(log.calls(k) >= 1);
    }
    for (const auto& k : once_keys) {
        const sertx::effect_record r = record_of(plain, k);
        CHECK(log.calls(k) <= 1);
        CHECK((r.state == sertx::effect_state::done || r.state == sertx::effect_state::in_doubt));
        if (r.state == sertx::effect_state::done) CHECK(log.calls(k) == 1);
    }
}


/// Counts the intents started while each call runs, from inside the call.
template <class Journal, class Effect>
struct counting_started {
    using effect = Effect;
    static constexpr std::string_view name = std::is_same_v<Effect, sertx::at_most_once> ? "counting_once"
                                                                                         : "counting_repeatable";
    Journal* journal;
    std::vector<std::uint64_t>* started;  // null: a quick call, which counts nothing
    std::chrono::milliseconds takes{0};
    void operator()(const std::string&) const {
        if (!started) return;
        started->push_back(journal->stats().started);
        std::this_thread::sleep_for(takes);  // the operation's own work
    }
};

/// Claims in batches: quick repeatable calls share claim and outcome
/// transactions (counted as the pool's commits); an at-most-once call costs
/// two commits (its mark; its outcome with the next claim) and is claimed
/// alone; slow calls are claimed one at a time, the rest left to the fleet.
template <class Db>
void claims_are_batched_for_quick_calls(Db& db) {
    using journal_type = sertx::effects<Db>;
    sertx::install(db);
    // A lease far longer than the test: its renewals (every lease/3) and the
    // end of an at-most-once chain after lease/3 would add commits that
    // depend on how slow the machine is (106 against 104, once, under load).
    journal_type journal(db, "pod-batch", {.lease = 10min, .poll = 30s});
    // counted: each call reads stats() (its own commit) to see how many intents are started
    auto dispatch_all = [&]<class Effect>(std::size_t n, std::chrono::milliseconds takes, const std::string& prefix,
                                          bool counted) {
        using op_type = counting_started<journal_type, Effect>;
        std::vector<std::string> keys;
        for (std::size_t i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
        schedule_all<op_type>(db, journal, keys);
        std::vector<std::uint64_t> started;
        const std::uint64_t before = db.stats().commits;
        const sertx::dispatch_report r = journal.dispatch(op_type{&journal, counted ? &started : nullptr, takes}, 1000);
        CHECK(r.done == n);
        return std::pair{db.stats().commits - before - (counted ? n : 0), started};  // minus the calls' reads
    };
    {
        // Calls that return at once: batches of up to 32 (the batch's size
        // follows the calls' times, so the bound is loose: fewer commits
        // than calls; one at a time, two per call).
        const auto [commits, started] = dispatch_all.template operator()<sertx::idempotent>(200, 0ms, "quick-", false);
        UNSCOPED_INFO("200 quick repeatable calls: " << commits << " commits");
        CHECK(commits < 200);
    }
    {
        const auto [commits, started] = dispatch_all.template operator()<sertx::at_most_once>(50, 0ms, "once-", true);
        UNSCOPED_INFO("50 at-most-once calls: " << commits << " commits");
        // mark + outcome-with-next-claim each; the first claim of each chain
        // (at most journal_options::batch long), the empty last: one at a
        // time, 150
        CHECK(commits <= 2 * 50 + 4);
        CHECK(*std::max_element(started.begin(), started.end()) == 1);
    }
    {
        const auto [commits, started] = dispatch_all.template operator()<sertx::idempotent>(6, 30ms, "slow-", true);
        CHECK(commits >= 2 * 6);
        CHECK(*std::max_element(started.begin(), started.end()) == 1);
    }
    try {
        journal_type refused(db, "pod-batch", {.batch = 0});
        FAIL("a batch of 0 was accepted");
    } catch (const sertx::error& e) {
        CHECK(std::string(e.what()) == "sertx: journal_options needs a batch of at least 1 intent per claim.");
    }
}

}  // namespace sertx::test::fleet

// ---- registration ------------------------------------------------------------

#define SERTX_JOURNAL_FLEET_CASES(Fixture, backend_tag)                                                                \
    TEMPLATE_TEST_CASE("journal: quick calls are claimed in batches, slow and at-most-once ones alone",              \
                       backend_tag "[journal]", Fixture) {                                                             \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::claims_are_batched_for_quick_calls(fixture.db);                                          \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: retry_later backs off, dead after max_attempts, requeue runs it again",             \
                       backend_tag "[journal]", Fixture) {                                                             \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::retry_later_then_dead_then_requeue(fixture.db);                                          \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: an intent is not claimed before its not_before", backend_tag "[journal]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::not_before_is_respected(fixture.db);                                                     \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: run wakes on a commit before its poll and stops promptly with nothing claimed",     \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::run_wakes_on_commit_and_stops_promptly(fixture.db);                                      \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: two dispatchers' run never call an at-most-once intent twice",                       \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::two_runs_call_each_at_most_once(fixture.db, 300);                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: an expired lease is rescued and the late outcome is fenced",                        \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::expired_lease_is_rescued_and_late_outcome_fenced(fixture.db);                            \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: a long call renews its lease and is not rescued", backend_tag "[journal][concurrency]", \
                       Fixture) {                                                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::a_long_call_keeps_its_lease(fixture.db);                                                 \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: a dispatcher paused between claim and call, rescued, does not call when it wakes",  \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::paused_before_the_call_does_not_call(fixture.db);                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: a call-began mark committed after a rescue read the claim wins over the rescue",   \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::a_mark_committed_after_the_rescue_read_it_wins(fixture.db);                              \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: a dispatcher paused inside its call, rescued, is in doubt and never called twice", \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::paused_inside_the_call_is_in_doubt_not_called_again(fixture.db);                         \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: reconcile settles a dead dispatcher's claims: happened, not_happened, unknown",     \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::reconciliation_settles_where_it_can(fixture.db);                                         \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: run survives database failures and still settles every intent",                    \
                       backend_tag "[journal][concurrency]", Fixture) {                                                \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::run_survives_database_failures(fixture.db);                                              \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: install upgrades a journal from before leases", backend_tag "[journal]", Fixture) {  \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::install_upgrades_an_old_journal(fixture.db);                                             \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("journal: stats counts pending, started, in doubt and dead", backend_tag "[journal]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fleet::stats_count_the_journal(fixture.db);                                                     \
    }

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// `sertx::effects<Db>`: the effect journal, for work outside the database
/// that must happen after a commit and never twice (DESIGN §7,
/// docs/exactly-once.md).
///
/// **What it is.** A table (`sertx_effect`, made by `sertx::install`) of
/// intents. A transaction records an intent together with the changes that
/// call for it; a dispatcher, outside any transaction, claims the intent,
/// commits `started` durably, calls the operation, and commits `done` with its
/// result or `failed` with its error:
/// \code
/// struct broadcast {
///     using effect = sertx::at_most_once;                  // never twice
///     static constexpr std::string_view name = "broadcast";  // stored with each intent
///     std::string operator()(const std::string& signed_tx) const;  // returns what to record
/// };
///
/// sertx::effects journal(db);
/// sertx::transact(db, [&](auto& tx) {
///     debit(tx, from, amount);
///     journal.schedule<broadcast>(tx, "payout-42", signed_tx);   // commits with the debit, or not at all
/// });
/// journal.recover();                        // at start-up, before dispatching
/// journal.dispatch(broadcast{node}, 100);   // in a worker loop
/// for (const sertx::effect_record& e : journal.in_doubt()) ...   // for an operator
/// journal.resolve("payout-42", sertx::effect_state::done, "on chain as tx 9f3c", "alice");
/// \endcode
///
/// **States.** `pending` → `started` → `done` | `failed`. A dispatcher that
/// stops between `started` and its outcome leaves the effect `started`;
/// `recover()` puts an idempotent one back to `pending` (calling it again is
/// harmless) and an at-most-once one into `in_doubt`: it may or may not have
/// happened, and only `resolve()` — an operator who checked — settles it.
/// An at-most-once operation that cannot tell whether it happened throws
/// `sertx::effect_in_doubt`; any other exception records `failed` (for an
/// at-most-once operation that means: it did not happen).
///
/// **Guarantees.** An intent exists if and only if the transaction that
/// scheduled it committed. An at-most-once operation is called at most once
/// per key, across threads, processes and crashes: it is claimed in a
/// serializable transaction (two dispatchers never claim the same intent),
/// and `started` is durable before the call. An idempotent operation is
/// called until one call's outcome is recorded. Nothing is guaranteed about
/// the outside system itself: see docs/exactly-once.md.
///
/// **A fleet** (DESIGN §7.1, docs/exactly-once.md "The journal as a worker
/// fleet"): `run(op, stop)` is a dispatcher's whole loop. Claims hold a lease
/// renewed while the call runs; any live dispatcher rescues an expired one;
/// every write of a claim is fenced on its claim count, so a paused
/// dispatcher that wakes up overwrites nothing. Before calling an
/// at-most-once operation the dispatcher commits a fenced "call began" mark,
/// and calls only if the mark was written: a claim rescued before its mark
/// is never called by its claimer, so the rescue puts it back to pending;
/// one rescued after it may have been called, or be calling still (a paused
/// process's request can land later), so only `op.reconcile(payload)`
/// answering happened settles it (done), and anything else puts it in doubt
/// (docs/exactly-once.md, "Leases, rescue and fencing"). `retry_later`
/// from an operation puts the intent back after a jittered backoff, `dead`
/// after `max_attempts`; `requeue` brings it back.
/// \code
/// sertx::effects journal(db, "pod-7", {.lease = 30s, .poll = 5s, .max_attempts = 10});
/// journal.recover(broadcast{node});                        // start-up, reconciling where it can
/// std::jthread worker([&](std::stop_token stop) { journal.run(broadcast{node}, stop); });
/// \endcode
///
/// **Operations.** A journaled operation declares its effect tag
/// (operation.hpp) and a stable `name` (stored with each intent, so it must
/// not change while intents are pending), and is callable with the payload
/// (`const std::string&`, the bytes given to `schedule`), returning `void` or
/// bytes (`std::string`, recorded as the result).
///
/// **Adapters.** The journal's SQL is the adapter's: its connection's
/// `journal()` provides the statements of `sertx::journal_statements`
/// (adapter.hpp; the SOCI adapters: soci/detail/effect_statements.hpp).

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/detail/effect_buffer.hpp>
#include <sertx/detail/hex.hpp>
#include <sertx/effect_record.hpp>
#include <sertx/failure.hpp>
#include <sertx/operation.hpp>
#include <sertx/policy.hpp>
#include <sertx/transact.hpp>
#include <sertx/transaction.hpp>

#include <sertx/backoff.hpp>
#include <sertx/detail/random.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx {

/// How a journal's dispatchers behave (DESIGN §7.1):
/// `sertx::effects journal(db, "pod-7", {.lease = 30s, .poll = 5s, .max_attempts = 10});`
struct journal_options {
    /// How long a claim holds an intent without renewal. A dispatcher renews
    /// it every lease/3 while the operation runs, so only a dispatcher that
    /// died, or is paused, loses it; then any live dispatcher rescues the
    /// intent (docs/exactly-once.md, "Leases"). Longer than the pauses a
    /// process usually takes (GC, swap, a VM migration) plus the clock skew
    /// between the dispatchers' machines: a shorter one never calls an
    /// at-most-once effect twice, but puts more of them in doubt.
    std::chrono::milliseconds lease{30'000};
    /// `run` looks for work at least this often, in case a wake-up was lost.
    std::chrono::milliseconds poll{5'000};
    /// Calls that may end `retry_later` before the intent becomes `dead`.
    unsigned max_attempts = 10;
    /// The wait before the first retry after `retry_later` (drawn in
    /// [first_retry/2, first_retry]); it doubles with each retry, up to
    /// max_retry.
    std::chrono::milliseconds first_retry{2'000};
    std::chrono::milliseconds max_retry{15 * 60'000};
    /// The most intents one claim takes. A dispatcher claims as many as it
    /// expects to call within 10 ms (by the calls it has timed), so quick
    /// operations share one claim transaction while slow ones are claimed
    /// one at a time, free meanwhile for the fleet's other dispatchers.
    std::size_t batch = 32;
};

/// `schedule(tx, key, payload, {.not_before = when})`.
struct schedule_options {
    /// Not claimed before this time (by the dispatchers' clocks); empty: at once.
    std::optional<std::chrono::system_clock::time_point> not_before;
};

/// What `effects::schedule` returns: converted to bool inside the body, true
/// when the key was new (its intent is written at that moment), false when it
/// had been scheduled before. Never asked, the intent goes with COMMIT;
/// asked after the transaction ended, it throws `sertx::error`.
class scheduled {
public:
    explicit scheduled(std::shared_ptr<detail::schedule_answer> answer) noexcept : answer_(std::move(answer)) {}
    // Implicit, so that `bool added = journal.schedule<Op>(...)` keeps compiling.
    operator bool() const { return detail::answer_of(*answer_); }

private:
    std::shared_ptr<detail::schedule_answer> answer_;
};

namespace detail {

/// The in-process wake-up of `run`: one per database (by its identity),
/// notified after each commit of a transaction that scheduled an intent, so
/// that dispatchers in the scheduling process start at once rather than at
/// their next poll. Kept for the life of the process (one small object per
/// database ever opened), so that a scheduling transaction's after-commit
/// action holds a plain pointer.
class effect_signal {
public:
    void notify() {
        {
            std::lock_guard lock(mutex_);
            ++generation_;
        }
        changed_.notify_all();
    }
    std::uint64_t generation() {
        std::lock_guard lock(mutex_);
        return generation_;
    }
    /// Until a notification after `seen`, a stop request or `deadline`;
    /// true when notified.
    bool wait(std::uint64_t seen, std::stop_token stop, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return changed_.wait_until(lock, stop, deadline, [&] { return generation_ != seen; });
    }

    static effect_signal& of(const void* database) {
        static std::mutex mutex;
        static std::map<const void*, std::unique_ptr<effect_signal>> signals;
        std::lock_guard lock(mutex);
        std::unique_ptr<effect_signal>& s = signals[database];
        if (!s) s = std::make_unique<effect_signal>();
        return *s;
    }

private:
    std::mutex mutex_;
    std::condition_variable_any changed_;
    std::uint64_t generation_ = 0;
};

/// The journal's observer hooks (observe.hpp lists them): each is called
/// when the observer has it, from the thread that runs `run`.
template <class O>
struct journal_events {
    O& o;
    void claimed(std::string_view k, unsigned a) {
        if constexpr (requires { o.on_effect_claimed(k, a); }) o.on_effect_claimed(k, a);
    }
    void done(std::string_view k) {
        if constexpr (requires { o.on_effect_done(k); }) o.on_effect_done(k);
    }
    void failed(std::string_view k, std::string_view e) {
        if constexpr (requires { o.on_effect_failed(k, e); }) o.on_effect_failed(k, e);
    }
    void in_doubt(std::string_view k, std::string_view e) {
        if constexpr (requires { o.on_effect_in_doubt(k, e); }) o.on_effect_in_doubt(k, e);
    }
    void retried(std::string_view k, unsigned n, std::chrono::system_clock::time_point t) {
        if constexpr (requires { o.on_effect_retried(k, n, t); }) o.on_effect_retried(k, n, t);
    }
    void dead(std::string_view k, std::string_view e) {
        if constexpr (requires { o.on_effect_dead(k, e); }) o.on_effect_dead(k, e);
    }
    void abandoned(std::string_view k) {
        if constexpr (requires { o.on_effect_abandoned(k); }) o.on_effect_abandoned(k);
    }
    void fenced(std::string_view k) {
        if constexpr (requires { o.on_effect_fenced(k); }) o.on_effect_fenced(k);
    }
    void rescued(std::string_view k, std::string_view from, effect_state now) {
        if constexpr (requires { o.on_effect_rescued(k, from, now); }) o.on_effect_rescued(k, from, now);
    }
    void reconciled(std::string_view k, reconciliation::outcome_kind r) {
        if constexpr (requires { o.on_effect_reconciled(k, r); }) o.on_effect_reconciled(k, r);
    }
    void error(std::string_view what, std::chrono::microseconds retry_in) {
        if constexpr (requires { o.on_journal_error(what, retry_in); }) o.on_journal_error(what, retry_in);
    }
};
struct no_journal_observer {};

inline std::int64_t unix_micros(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
inline std::int64_t journal_now_micros() { return unix_micros(std::chrono::system_clock::now()); }
inline std::int64_t micros(std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

/// Test-only: where `dispatch` can be stopped (the crash tests kill the
/// process there). Production code uses `no_probe`, which compiles away.
enum class dispatch_point {
    claiming,  ///< inside the claim transaction, before its COMMIT
    started,   ///< `started` committed; the operation not called yet
    marking,   ///< at-most-once: inside the call-began mark's transaction, before its COMMIT
    calling,   ///< the mark committed (at-most-once) or the claim (others); the operation about to be called
    rescuing,  ///< run's rescue: an expired claim read, its settlement not written yet
    returned,  ///< the operation returned; its outcome not written yet
    settling,  ///< inside the outcome's transaction, before its COMMIT
    settled,   ///< the outcome committed
};
struct no_probe {
    static constexpr void at(dispatch_point, std::string_view) noexcept {}
};

/// The name of `Op`'s effect tag, as stored in the journal.
template <class Op>
constexpr std::string_view effect_name() noexcept {
    if constexpr (at_most_once_operation<Op>)
        return effect_tag_names[0];
    // sertx::effect_of, the tag: here in detail, plain `effect_of` would
    // name the detail::effect_of trait, never `idempotent`.
    else if constexpr (std::is_same_v<sertx::effect_of<Op>, idempotent>)
        return effect_tag_names[1];
    else
        return effect_tag_names[2];
}

template <class Op>
constexpr void check_journaled() {
    static_assert(operation<Op>,
                  "sertx: an operation run through the effect journal must declare its effect; add "
                  "`using effect = sertx::at_most_once;` (or idempotent) to its type.");
    static_assert(
        requires {
            { std::remove_cvref_t<Op>::name } -> std::convertible_to<std::string_view>;
        },
        "sertx: an operation run through the effect journal needs a stable name, stored with each "
        "intent; add `static constexpr std::string_view name = \"...\";` to its type.");
}

inline void check_size(std::string_view what, std::string_view value, std::size_t max, bool may_be_empty) {
    if (!may_be_empty && value.empty())
        throw error("sertx: the effect journal needs a non-empty " + std::string(what) + ".");
    if (value.size() > max)
        throw error("sertx: an effect's " + std::string(what) + " is at most " + std::to_string(max) +
                    " bytes; this one has " + std::to_string(value.size()) + ".");
}

/// The text of a failed operation's error, cut to what the journal keeps.
inline std::string clip(std::string text) {
    static constexpr std::string_view cut = " [cut]";
    if (text.size() > effect_limits::max_text) text.replace(effect_limits::max_text - cut.size(), text.npos, cut);
    return text;
}

/// Who settles an in-doubt effect when the caller does not say: the user
/// running the process.
inline std::string current_user() {
    for (const char* name : {"USER", "LOGNAME", "USERNAME"})
        if (const char* v = std::getenv(name); v && *v) return v;
    return "unknown user";
}

/// The journal's own transactions (claim, outcome, recover, resolve): more
/// attempts than the default, since dispatchers race for the same intents; a
/// lost COMMIT is resolved by transaction id where the backend can.
template <class B>
using journal_policy =
    std::conditional_t<has_capability<B, cap::commit_status>, policy<max_attempts<200>, resolve_unknown<by_txid>>,
                       policy<max_attempts<200>>>;

}  // namespace detail

/// The effect journal on database `Db` (an adapter's database; copies of it
/// share one pool). `Probe` is for sertx's crash tests only.
template <class Db, class Probe = detail::no_probe>
class effects {
public:
    using database_type = Db;

    /// `dispatcher` names this journal's dispatcher in the rows it claims;
    /// `recover()` only touches rows claimed under its own name. Processes
    /// that dispatch at the same time need different names, each kept across
    /// restarts (a host name, a pod name). `options`: leases, polling and
    /// retries (journal_options).
    explicit effects(Db db, std::string dispatcher = "default", journal_options options = {})
        : db_(std::move(db)),
          dispatcher_(std::move(dispatcher)),
          options_(options),
          signal_(&detail::effect_signal::of(db_.identity())) {
        static_assert(detail::check_journal_adapter<Db>());
        detail::check_size("dispatcher name", dispatcher_, effect_limits::max_name, false);
        if (options_.lease.count() <= 0 || options_.poll.count() <= 0)
            throw error("sertx: journal_options needs a lease and a poll of at least 1 ms.");
        if (options_.batch == 0) throw error("sertx: journal_options needs a batch of at least 1 intent per claim.");
        if (options_.max_attempts == 0)
            throw error("sertx: journal_options needs max_attempts >= 1: the calls an intent may have before it "
                        "is dead.");
        if (options_.first_retry.count() <= 0 || options_.max_retry < options_.first_retry)
            throw error("sertx: journal_options needs 0 < first_retry <= max_retry.");
    }

    const journal_options& options() const noexcept { return options_; }

    /// Records the intent to run `Op` with `payload`, in the caller's
    /// transaction: it exists if and only if that transaction commits.
    /// A `key` scheduled before keeps its first intent: this one changes
    /// nothing. The intent is written with the transaction's COMMIT (in its
    /// round trip on PostgreSQL), unless the result is asked: converted to
    /// bool inside the body, it writes the buffered intents at once and says
    /// whether the key was new (false: scheduled before). Asked after the
    /// transaction ended, it throws `sertx::error` (docs/exactly-once.md,
    /// "Scheduling without a round trip").
    template <class Op, class Tx>
        requires writable_transaction<Tx>
    scheduled schedule(Tx& tx, std::string_view key, std::string_view payload) {
        return schedule<Op>(tx, key, payload, schedule_options{});
    }
    /// The same, not to be claimed before `options.not_before`. Dispatchers
    /// in this process are woken when the transaction commits.
    template <class Op, class Tx>
        requires writable_transaction<Tx>
    scheduled schedule(Tx& tx, std::string_view key, std::string_view payload, schedule_options options) {
        detail::check_journaled<Op>();
        static_assert(std::is_same_v<typename std::remove_cvref_t<Tx>::connection_type, typename Db::connection_type>,
                      "sertx: schedule() needs a transaction on this journal's database; pass the tx of a "
                      "transact() on the same database.");
        using Plain = std::remove_cvref_t<Op>;
        detail::check_size("key", key, effect_limits::max_key, false);
        detail::check_size("payload", payload, effect_limits::max_payload, true);
        detail::check_size("operation name", Plain::name, effect_limits::max_name, false);
        const std::int64_t due = options.not_before ? std::max<std::int64_t>(1, detail::unix_micros(*options.not_before)) : 0;
        // Woken even when the key turns out to be old: a dispatcher that
        // finds nothing new goes back to waiting.
        tx.after_commit([signal = signal_] { signal->notify(); });
        return scheduled(tx.effects(detail::internal_access{})
                             .add(key, Plain::name, detail::effect_name<Plain>(), payload, due));
    }

    /// Claims and runs at most `limit` pending intents of `Op`, oldest first,
    /// one call at a time: each is committed `started` (in claims of up to
    /// `journal_options::batch`) before `op(payload)` is called (outside any
    /// transaction), and `done` or `failed` after it.
    /// Throws when the database fails; an intent caught between `started`
    /// and its outcome then stays `started` until `recover()`.
    template <class Op>
    dispatch_report dispatch(Op& op, std::size_t limit = 100) {
        check_callable<Op>();
        detail::no_journal_observer none;
        detail::journal_events<detail::no_journal_observer> events{none};
        run_report done;
        held_claims held(*this);
        claim_size size;
        while (done.claimed < limit &&
               dispatch_batch(op, std::stop_token{}, std::min(options_.batch, limit - done.claimed), done, events, held,
                              size) > 0) {
        }
        return detail::dispatch_report_of(done);
    }
    /// The same, for an operation passed as a temporary.
    template <class Op>
        requires(!std::is_reference_v<Op>)
    dispatch_report dispatch(Op&& op, std::size_t limit = 100) {
        return dispatch<Op>(op, limit);
    }

    /// The worker loop of a fleet (DESIGN §7.1): until `stop` is requested,
    /// rescues expired leases of `Op`'s intents (any dispatcher's), claims
    /// and calls what is due, and sleeps until an intent commits in this
    /// process (the in-process signal), the next intent or lease falls due,
    /// or `.poll` passes. Database failures are survived: counted, passed to
    /// `observer.on_journal_error`, and retried after a jittered backoff; they
    /// never leave the loop. On stop, a call in progress is finished and
    /// recorded, a claim not yet called is given back: nothing stays claimed.
    /// `observer`: any object; the hooks it has (observe.hpp) are called.
    template <class Op, class Observer = detail::no_journal_observer>
    run_report run(Op& op, std::stop_token stop, Observer&& observer = {}) {
        check_callable<Op>();
        using Plain = std::remove_cvref_t<Op>;
        detail::journal_events<std::remove_reference_t<Observer>> events{observer};
        run_report report;
        unsigned failures_in_row = 0;
        listener_state heard;
        std::jthread listener;
        if constexpr (effect_wakeups<Db>) listener = std::jthread([this, &heard](std::stop_token st) { listen(st, heard); });
        std::size_t listener_errors_seen = 0;
        held_claims held(*this);
        claim_size size;
        // Rescue looks for expired leases: at the start, whenever the run
        // wakes by its clock (a lease or an intent fell due, or the poll),
        // and at least every lease/3 while it is busy; a wake-up by a new
        // intent goes straight to its claim, one transaction sooner.
        bool rescue_now = true;
        auto rescued_at = std::chrono::steady_clock::now();
        while (!stop.stop_requested()) {
            const std::uint64_t seen = signal_->generation();
            if (const std::size_t n = heard.errors.load(); n != listener_errors_seen) {
                listener_errors_seen = n;
                std::lock_guard lock(heard.mutex);
                events.error(heard.last_error, std::chrono::microseconds(0));
            }
            auto wake = std::chrono::steady_clock::now() + options_.poll;
            try {
                if (rescue_now || std::chrono::steady_clock::now() - rescued_at > options_.lease / 3) {
                    rescue(op, report, events);
                    rescued_at = std::chrono::steady_clock::now();
                }
                while (!stop.stop_requested() &&
                       dispatch_batch(op, stop, options_.batch, report, events, held, size) > 0) {
                    if (std::chrono::steady_clock::now() - rescued_at > options_.lease / 3) {
                        rescue(op, report, events);
                        rescued_at = std::chrono::steady_clock::now();
                    }
                }
                const std::int64_t due = transact<policy_type>(
                    db_, [&](auto& tx) { return journal_of(tx).next_effect_due(Plain::name); });
                if (due > 0) {
                    const std::int64_t in = due - detail::journal_now_micros() + 1000;  // just after it
                    wake = std::min(wake, std::chrono::steady_clock::now() +
                                              std::chrono::microseconds(std::max<std::int64_t>(in, 1000)));
                }
                failures_in_row = 0;
            } catch (const std::exception& e) {
                ++report.database_errors;
                ++failures_in_row;
                const auto cap = static_cast<std::uint64_t>(detail::micros(options_.poll));
                const std::uint64_t d = detail::capped_exponential(std::min<std::uint64_t>(100'000, cap), cap,
                                                                   failures_in_row);
                const std::chrono::microseconds delay(detail::thread_rng().between(d - d / 2, d));
                events.error(e.what(), delay);
                wake = std::chrono::steady_clock::now() + delay;
            }
            if (stop.stop_requested()) break;
            rescue_now = !signal_->wait(seen, stop, wake);
        }
        if (listener.joinable()) {
            listener.request_stop();
            listener.join();
        }
        report.database_errors += heard.errors.load();
        return report;
    }
    template <class Op, class Observer = detail::no_journal_observer>
        requires(!std::is_reference_v<Op>)
    run_report run(Op&& op, std::stop_token stop, Observer&& observer = {}) {
        return run<Op>(op, std::move(stop), std::forward<Observer>(observer));
    }

    /// Intents that ended `retry_later` max_attempts times, oldest first;
    /// only `requeue` brings one back.
    std::vector<effect_record> dead(std::size_t limit = 1000) { return in_state(effect_state::dead, limit); }

    /// A dead (or failed) effect back to pending, due at once and with its
    /// retries counted afresh; records who (`by`, default: the user running
    /// this process) and why. Refuses a key in any other state.
    void requeue(std::string_view key, std::string_view note, std::string_view by = {}) {
        detail::check_size("key", key, effect_limits::max_key, false);
        detail::check_size("requeue note", note, effect_limits::max_text, false);
        const std::string who = by.empty() ? detail::current_user() : std::string(by);
        detail::check_size("requeuer name", who, effect_limits::max_name, false);
        transact<policy_type>(db_, [&](auto& tx) {
            auto& journal = journal_of(tx);
            if (journal.requeue_effect(key, note, who)) {
                tx.after_commit([signal = signal_] { signal->notify(); });
                return;
            }
            const std::optional<effect_record> found = journal.find_effect(key);
            if (!found) throw error("sertx: requeue(): no effect has the key '" + detail::printable(key) + "'.");
            throw error("sertx: requeue(): effect '" + detail::printable(key) + "' is " +
                        std::string(to_string(found->state)) + "; only a dead or failed effect is requeued.");
        });
    }

    /// How much work the journal holds, in one read (for metrics).
    journal_stats stats() {
        return transact<read_policy>(db_, [&](auto& tx) { return journal_of(tx).effect_stats(); });
    }

    /// `recover()`, given the operation: the at-most-once intents of `Op`
    /// this dispatcher left started whose call had not begun go back to
    /// pending (requeued); those whose call began are put to
    /// `op.reconcile(payload)` when `Op` offers it: happened → done (noted as
    /// reconciled), not happened → pending, unknown → in_doubt. Then
    /// `recover()` as before (what is left of at-most-once: in_doubt).
    template <class Op>
    recover_report recover(Op& op) {
        check_callable<Op>();
        using Plain = std::remove_cvref_t<Op>;
        recover_report report;
        if constexpr (at_most_once_operation<Plain>) {
            const std::vector<expired_claim> mine = transact<policy_type>(db_, [&](auto& tx) {
                return journal_of(tx).expired_effects(Plain::name, dispatcher_, 0, 100'000);
            });
            detail::no_journal_observer none;
            detail::journal_events<detail::no_journal_observer> events{none};
            for (const expired_claim& row : mine) {
                if (row.effect != detail::effect_name<Plain>()) continue;
                if (row.call_began == 0) {
                    report.requeued += requeue_uncalled(row, "recover(op) of dispatcher '" + dispatcher_ + "'")
                                           .has_value();
                    continue;
                }
                if constexpr (reconciling_operation<Plain>) {
                    const std::optional<effect_state> now = reconcile(op, row, "recover(op)", events, false);
                    if (!now) continue;
                    ++(*now == effect_state::in_doubt ? report.in_doubt : report.reconciled);
                }
            }
        }
        const recover_report rest = recover();
        report.requeued += rest.requeued;
        report.in_doubt += rest.in_doubt;
        return report;
    }
    template <class Op>
        requires(!std::is_reference_v<Op>)
    recover_report recover(Op&& op) {
        return recover<Op>(op);
    }

private:
    template <class Op>
    static constexpr void check_callable() {
        detail::check_journaled<Op>();
        static_assert(std::is_invocable_v<Op&, const std::string&>,
                      "sertx: a journaled operation is called with its payload; give it an operator()(const "
                      "std::string&) (or std::string_view).");
        static_assert(std::is_void_v<std::invoke_result_t<Op&, const std::string&>> ||
                          std::is_convertible_v<std::invoke_result_t<Op&, const std::string&>, std::string>,
                      "sertx: a journaled operation returns void or bytes (std::string) to record as its "
                      "result; encode its result (JSON, a receipt id) before returning it.");
    }

public:

    /// At start-up, before this dispatcher dispatches: the intents it left
    /// `started` (it stopped between claiming one and recording its outcome)
    /// go back to `pending` when repeatable, and to `in_doubt` when
    /// at-most-once. Rows claimed under other dispatcher names are left alone.
    recover_report recover() {
        return transact<policy_type>(db_, [&](auto& tx) { return journal_of(tx).recover_effects(dispatcher_); });
    }

    /// Intents whose at-most-once operation may or may not have happened,
    /// oldest first: each needs an operator (docs/exactly-once.md).
    std::vector<effect_record> in_doubt(std::size_t limit = 1000) { return in_state(effect_state::in_doubt, limit); }
    /// Intents not claimed yet, oldest first.
    std::vector<effect_record> pending(std::size_t limit = 1000) { return in_state(effect_state::pending, limit); }

    /// The intent recorded under `key`, if any.
    std::optional<effect_record> find(std::string_view key) {
        detail::check_size("key", key, effect_limits::max_key, false);
        return transact<read_policy>(db_, [&](auto& tx) { return journal_of(tx).find_effect(key); });
    }

    /// Settles an in-doubt effect by hand, after checking the outside system:
    /// `done` (it happened) or `failed` (it did not). Records who (`by`,
    /// default: the user running this process), when, and why (`note`).
    /// Refuses a key that is not in doubt, so that nothing else is rewritten.
    void resolve(std::string_view key, effect_state outcome, std::string_view note, std::string_view by = {}) {
        if (outcome != effect_state::done && outcome != effect_state::failed)
            throw error("sertx: resolve() settles an in-doubt effect as done or failed, not " +
                        std::string(to_string(outcome)) + ".");
        detail::check_size("key", key, effect_limits::max_key, false);
        detail::check_size("resolution note", note, effect_limits::max_text, false);
        const std::string who = by.empty() ? detail::current_user() : std::string(by);
        detail::check_size("resolver name", who, effect_limits::max_name, false);
        transact<policy_type>(db_, [&](auto& tx) {
            auto& journal = journal_of(tx);
            if (journal.resolve_effect(key, outcome, who, note)) return;
            const std::optional<effect_record> found = journal.find_effect(key);
            if (!found) throw error("sertx: resolve(): no effect has the key '" + detail::printable(key) + "'.");
            throw error("sertx: resolve(): effect '" + detail::printable(key) + "' is " +
                        std::string(to_string(found->state)) +
                        ", not in_doubt; only an in-doubt effect is settled by hand.");
        });
    }

private:
    using policy_type = detail::journal_policy<backend_of<Db>>;
    using read_policy = policy<sertx::read_only>;

    /// What `run`'s listener thread tells the run.
    struct listener_state {
        std::atomic<std::size_t> errors{0};
        std::mutex mutex;
        std::string last_error;
    };

    /// The adapter's wake-ups from other processes (effect_wakeups), turned
    /// into the in-process signal, until `stop`: a failure is counted and the
    /// listening retried after a jittered backoff (the run polls meanwhile).
    void listen(std::stop_token stop, listener_state& heard) {
        unsigned failures = 0;
        while (!stop.stop_requested()) {
            try {
                if (!db_.listen_for_effects(stop, [signal = signal_] { signal->notify(); })) return;
                failures = 0;
            } catch (const std::exception& e) {
                ++failures;
                {
                    std::lock_guard lock(heard.mutex);
                    heard.last_error = e.what();
                }
                ++heard.errors;
            }
            if (stop.stop_requested()) return;
            const auto cap = static_cast<std::uint64_t>(detail::micros(options_.poll));
            const std::uint64_t d =
                detail::capped_exponential(std::min<std::uint64_t>(100'000, cap), cap, failures == 0 ? 1 : failures);
            std::mutex m;
            std::condition_variable_any never;
            std::unique_lock lock(m);
            never.wait_for(lock, stop, std::chrono::microseconds(detail::thread_rng().between(d - d / 2, d)),
                           [] { return false; });
        }
    }

    template <class Tx>
    static auto& journal_of(Tx& tx) {
        return tx.connection(detail::internal_access{}).journal();
    }

    /// The claims one `run` (or `dispatch`) holds and has not settled: one
    /// thread renews all their leases every lease/3, so that a long call, or
    /// a claim waiting its turn in a batch, is not rescued from a live
    /// dispatcher. A renewal that fails (the database down) is tried again at
    /// the next period; a claim found fenced is dropped: its outcome will be
    /// fenced too.
    class held_claims {
    public:
        explicit held_claims(effects& journal)
            : journal_(journal), renewer_([this](std::stop_token stop) { renew_until(stop); }) {}
        void hold(const claimed_effect& claim) {
            std::lock_guard lock(mutex_);
            held_.emplace_back(claim.key, claim.attempts);
        }
        void let_go(const claimed_effect& claim) {
            std::lock_guard lock(mutex_);
            std::erase(held_, std::pair{claim.key, claim.attempts});
        }
        void clear() {
            std::lock_guard lock(mutex_);
            held_.clear();
        }

    private:
        void renew_until(std::stop_token stop) {
            const std::int64_t lease = detail::micros(journal_.options_.lease);
            std::condition_variable_any never;
            std::unique_lock lock(mutex_);
            while (!never.wait_for(lock, stop, journal_.options_.lease / 3, [] { return false; }) &&
                   !stop.stop_requested()) {
                if (held_.empty()) continue;
                const std::vector<std::pair<std::string, unsigned>> now = held_;
                lock.unlock();
                std::vector<std::pair<std::string, unsigned>> fenced;
                try {
                    fenced = transact<policy_type>(journal_.db_, [&](auto& tx) {
                        std::vector<std::pair<std::string, unsigned>> lost;
                        for (const auto& [key, attempts] : now)
                            if (!journal_of(tx).renew_effect(key, attempts, lease)) lost.emplace_back(key, attempts);
                        return lost;
                    });
                } catch (const std::exception&) {
                    // the next period tries again; the leases still run
                }
                lock.lock();
                for (const auto& claim : fenced) std::erase(held_, claim);
            }
        }

        effects& journal_;
        std::mutex mutex_;
        std::vector<std::pair<std::string, unsigned>> held_;
        std::jthread renewer_;  // last: stopped and joined before the members it uses go
    };

    /// How many intents the next claim takes: as many as this dispatcher is
    /// expected to call within `window` by the calls it timed (at least one,
    /// at most journal_options::batch), so that fast operations cost one
    /// claim transaction per batch while slow ones are claimed one at a time
    /// and stay free for the fleet's other dispatchers.
    class claim_size {
    public:
        std::size_t next(std::size_t most) const {
            if (mean_ <= 0) return 1;
            return std::clamp<std::size_t>(static_cast<std::size_t>(window / mean_), 1, most);
        }
        void called(std::chrono::steady_clock::duration took) {
            const double t = std::chrono::duration<double>(took).count();
            mean_ = mean_ <= 0 ? t : mean_ + (t - mean_) / 8;  // a moving mean: calls speed up and slow down
        }

    private:
        static constexpr double window = 0.01;  // seconds
        double mean_ = 0;
    };

    /// How a call ended, to be recorded: `pending` stands for retry_later.
    struct settlement {
        effect_state state = effect_state::done;
        std::string result;
        std::string error;
    };

    /// What recording a settlement writes, decided before its transaction
    /// (the retry's jittered time among it), so that a re-run writes the same.
    struct outcome {
        claimed_effect claim;
        settlement call;
        effect_state state = effect_state::done;  ///< recorded: call.state, or dead for a last retry_later
        std::int64_t not_before = 0;              ///< a retry's
        std::string why;                          ///< a retry's error, with the dead letter's reason
    };

    outcome outcome_of(claimed_effect claim, settlement call) const {
        outcome o{std::move(claim), std::move(call)};
        o.claim.payload = {};  // called: not needed any more
        o.state = o.call.state;
        if (o.state != effect_state::pending) return o;
        const unsigned retries = o.claim.retries + 1;
        if (retries >= options_.max_attempts) o.state = effect_state::dead;
        o.not_before = detail::unix_micros(std::chrono::system_clock::now() + retry_delay(retries));
        o.why = detail::clip(o.call.error + (o.state == effect_state::dead
                                                 ? " [sertx: dead after " + std::to_string(retries) +
                                                       " calls ended retry_later; requeue() to try again]"
                                                 : ""));
        return o;
    }

    /// Writes `o`, fenced on its claim (a later claim's outcome is never
    /// overwritten), in the caller's transaction; false when fenced.
    template <class Journal>
    static bool write(Journal& journal, const outcome& o) {
        const claimed_effect& c = o.claim;
        const bool ours = o.call.state == effect_state::pending
                              ? journal.retry_effect(c.key, c.attempts, o.state, o.not_before, o.why)
                              : journal.settle_effect(c.key, c.attempts, o.state, o.call.result, o.call.error);
        Probe::at(detail::dispatch_point::settling, c.key);
        return ours;
    }

    /// After `o`'s transaction committed: counts and reports how it ended.
    template <class Events>
    static void finish(const outcome& o, bool recorded, run_report& report, Events& events, held_claims& held) {
        const claimed_effect& c = o.claim;
        held.let_go(c);
        Probe::at(detail::dispatch_point::settled, c.key);
        if (!recorded) {
            ++report.fenced;
            events.fenced(c.key);
            return;
        }
        switch (o.state) {
            case effect_state::done: ++report.done; events.done(c.key); return;
            case effect_state::failed: ++report.failed; events.failed(c.key, o.call.error); return;
            case effect_state::in_doubt: ++report.in_doubt; events.in_doubt(c.key, o.call.error); return;
            case effect_state::dead: ++report.dead; events.dead(c.key, o.call.error); return;
            default:
                ++report.retried;
                events.retried(c.key, c.retries + 1,
                               std::chrono::system_clock::time_point(std::chrono::microseconds(o.not_before)));
        }
    }

    /// In one transaction: records `outcomes` (then cleared), and claims the
    /// earliest due pending intents of `Op`, at most `n`, committed
    /// `started` under this dispatcher's name with a lease; what it claimed.
    template <class Op, class Events>
    std::vector<claimed_effect> record_and_claim(std::vector<outcome>& outcomes, std::size_t n, run_report& report,
                                                 Events& events, held_claims& held) {
        if (outcomes.empty() && n == 0) return {};
        const std::int64_t lease = detail::micros(options_.lease);
        std::vector<bool> recorded;
        std::vector<claimed_effect> claimed = transact<policy_type>(db_, [&](auto& tx) {
            auto& journal = journal_of(tx);
            recorded.clear();
            for (const outcome& o : outcomes) recorded.push_back(write(journal, o));
            std::vector<claimed_effect> found;
            if (n > 0) found = journal.claim_effects(Op::name, dispatcher_, lease, n);
            for (const claimed_effect& c : found) Probe::at(detail::dispatch_point::claiming, c.key);
            return found;
        });
        for (std::size_t i = 0; i < outcomes.size(); ++i) finish(outcomes[i], recorded[i], report, events, held);
        outcomes.clear();
        for (const claimed_effect& c : claimed) {
            held.hold(c);
            ++report.claimed;
            events.claimed(c.key, c.attempts);
        }
        return claimed;
    }

    /// Claims due intents and sees them through in order, one call at a
    /// time; how many it claimed, 0 when none was due. Repeatable operations
    /// are claimed in batches (claim_size, at most `most`) whose outcomes are
    /// recorded together. An at-most-once call begins only after its mark
    /// commits, fenced on its claim; its intents are claimed one at a time,
    /// so that a crash leaves at most one claim whose call has not begun
    /// (which recover() puts in doubt), and each claim travels with the
    /// previous call's outcome: two commits a call. On stop, what is claimed
    /// and not called is given back.
    template <class Op, class Events>
    std::size_t dispatch_batch(Op& op, const std::stop_token& stop, std::size_t most, run_report& report,
                               Events& events, held_claims& held, claim_size& size) {
        using Plain = std::remove_cvref_t<Op>;
        constexpr bool marks = at_most_once_operation<Plain>;
        // Left by an exception (the database failing), the claims are no
        // longer renewed: their leases run out and a rescue takes them.
        struct letting_go {
            held_claims& held;
            ~letting_go() { held.clear(); }
        } unheld_at_exit{held};
        const auto began = std::chrono::steady_clock::now();
        std::vector<outcome> unrecorded;
        std::vector<claimed_effect> batch =
            record_and_claim<Plain>(unrecorded, marks ? 1 : size.next(most), report, events, held);
        std::size_t taken = 0;
        while (!batch.empty()) {
            taken += batch.size();
            for (std::size_t i = 0; i < batch.size(); ++i) {
                claimed_effect& c = batch[i];
                if (stop.stop_requested()) {
                    give_back(std::span(batch).subspan(i), report, events, held);
                    break;
                }
                Probe::at(detail::dispatch_point::started, c.key);
                // A claim rescued meanwhile (this process paused past its
                // lease) was put back to pending as uncalled, maybe called by
                // another dispatcher already, so this one must not call. No
                // clock can tell that: a pause may fall after any check of
                // one; the fenced write can. Idempotent and read-only
                // operations may be called twice, and skip the mark.
                if constexpr (marks) {
                    if (!mark(c)) {
                        held.let_go(c);
                        ++report.abandoned;
                        events.abandoned(c.key);
                        continue;
                    }
                }
                Probe::at(detail::dispatch_point::calling, c.key);
                const auto called_at = std::chrono::steady_clock::now();
                settlement called = call(op, c);
                size.called(std::chrono::steady_clock::now() - called_at);
                Probe::at(detail::dispatch_point::returned, c.key);
                unrecorded.push_back(outcome_of(std::move(c), std::move(called)));
            }
            // The next at-most-once claim rides with this outcome, while the
            // chain is short of `most` and of a third of the lease (rescues
            // are looked for between chains).
            const bool go_on = marks && taken < most && !stop.stop_requested() &&
                               std::chrono::steady_clock::now() - began < options_.lease / 3;
            batch = record_and_claim<Plain>(unrecorded, go_on ? 1 : 0, report, events, held);
        }
        return taken;
    }

    /// The call-began mark of `c`, committed; false when `c` was rescued.
    bool mark(const claimed_effect& c) {
        return transact<policy_type>(db_, [&](auto& tx) {
            const bool ours = journal_of(tx).mark_call_began(c.key, c.attempts, detail::micros(options_.lease));
            Probe::at(detail::dispatch_point::marking, c.key);
            return ours;
        });
    }

    /// Claims not called, back to pending, in one transaction.
    template <class Events>
    void give_back(std::span<const claimed_effect> claims, run_report& report, Events& events, held_claims& held) {
        transact<policy_type>(db_, [&](auto& tx) {
            for (const claimed_effect& c : claims) journal_of(tx).release_effect(c.key, c.attempts);
        });
        for (const claimed_effect& c : claims) {
            held.let_go(c);
            ++report.abandoned;
            events.abandoned(c.key);
        }
    }

    /// Calls `op` outside any transaction. What it throws decides the
    /// outcome: retry_later means it did not happen, try later;
    /// effect_in_doubt puts an at-most-once effect in doubt; anything else
    /// means it failed (for at-most-once: it did not happen).
    template <class Op>
    static settlement call(Op& op, const claimed_effect& claimed) {
        settlement s;
        try {
            if constexpr (std::is_void_v<std::invoke_result_t<Op&, const std::string&>>)
                op(std::as_const(claimed.payload));
            else
                s.result = op(std::as_const(claimed.payload));
            return s;
        } catch (const retry_later& e) {
            s.state = effect_state::pending;
            s.error = e.what();
        } catch (const effect_in_doubt& e) {
            s.state = at_most_once_operation<std::remove_cvref_t<Op>> ? effect_state::in_doubt : effect_state::failed;
            s.error = e.what();
        } catch (const std::exception& e) {
            s.state = effect_state::failed;
            s.error = e.what();
        } catch (...) {
            s.state = effect_state::failed;
            s.error = "sertx: the operation threw an exception that is not a std::exception.";
        }
        s.error = detail::clip(std::move(s.error));
        return s;
    }

    /// The wait before retry number `retry` (1: the first): equal jitter on
    /// min(max_retry, first_retry·2^(retry−1)).
    std::chrono::microseconds retry_delay(unsigned retry) const {
        const std::uint64_t d = detail::capped_exponential(static_cast<std::uint64_t>(detail::micros(options_.first_retry)),
                                                           static_cast<std::uint64_t>(detail::micros(options_.max_retry)), retry);
        return std::chrono::microseconds(detail::thread_rng().between(d - d / 2, d));
    }

    /// Takes back the started intents of `Op` whose lease ended, whoever
    /// claimed them: repeatable → pending; at-most-once whose call had not
    /// begun (no mark) → pending, without asking anyone; at-most-once whose
    /// call began → reconcile() when offered, happened → done, anything else
    /// → in_doubt. Each is settled fenced on its claim, so two rescuers
    /// settle it once.
    template <class Op, class Events>
    void rescue(Op& op, run_report& report, Events& events) {
        using Plain = std::remove_cvref_t<Op>;
        const std::vector<expired_claim> expired = transact<policy_type>(db_, [&](auto& tx) {
            return journal_of(tx).expired_effects(Plain::name, "", detail::journal_now_micros(), 100);
        });
        for (const expired_claim& row : expired) {
            Probe::at(detail::dispatch_point::rescuing, row.key);
            std::optional<effect_state> now_in;
            if (row.effect != effect_tag_names[0]) {
                const std::string note = "sertx: rescued by dispatcher '" + dispatcher_ + "': the lease of '" +
                                         row.dispatcher + "' ended before it recorded an outcome; called again.";
                if (settle_rescued(row, effect_state::pending, "", "", note, ""))
                    now_in = effect_state::pending;
            } else if (row.call_began == 0) {
                now_in = requeue_uncalled(row, "rescued by dispatcher '" + dispatcher_ + "'");
            } else {
                now_in = reconcile(op, row, "a rescue", events, true);
                if (now_in == effect_state::done) ++report.reconciled;
            }
            if (!now_in) continue;  // another rescuer was first, or the claimer marked its call meanwhile
            ++report.rescued;
            const std::chrono::microseconds lag(detail::journal_now_micros() - row.lease_until);
            report.longest_rescue_lag = std::max(report.longest_rescue_lag, lag);
            events.rescued(row.key, row.dispatcher, *now_in);
        }
    }

    /// An at-most-once claim that had not begun its call (`call_began` 0),
    /// taken back: never called by its claimer, and never to be (its mark
    /// would be fenced), so back to pending without asking reconcile().
    std::optional<effect_state> requeue_uncalled(const expired_claim& row, const std::string& by_whom) {
        const std::string note = "sertx: " + by_whom + " before its call: '" + row.dispatcher +
                                 "' had not begun the call, and now never can; called again.";
        if (settle_rescued(row, effect_state::pending, "", "", note, "")) return effect_state::pending;
        return std::nullopt;
    }

    /// An at-most-once intent left started by `row.dispatcher` after its call
    /// began (or not known to be before it): asks `op.reconcile` where
    /// offered, and settles it fenced on the claim. By a rescue
    /// (`claimer_may_live`), not_happened is not trusted: the claimer may be
    /// a paused process whose request is still on its way, which reconcile()
    /// cannot see yet; only recover(op), whose claimer is this dispatcher's
    /// previous incarnation, gone, takes not_happened → pending. The state it
    /// is now in, or empty when another dispatcher settled it first.
    template <class Op, class Events>
    std::optional<effect_state> reconcile(Op& op, const expired_claim& row, std::string_view by_whom,
                                          Events& events, bool claimer_may_live) {
        using Plain = std::remove_cvref_t<Op>;
        const std::string who = "dispatcher '" + dispatcher_ + "' (" + std::string(by_whom) + ")";
        const std::string left =
            "sertx: dispatcher '" + row.dispatcher +
            (row.call_began > 0 ? "' began the call and stopped before recording its outcome, so it may or may not "
                                  "have happened"
                                : "' stopped after marking it started and before recording its outcome, so it may "
                                  "or may not have happened");
        if constexpr (reconciling_operation<Plain>) {
            reconciliation found;
            std::string trouble;
            try {
                found = op.reconcile(std::as_const(row.payload));
            } catch (const std::exception& e) {
                found = reconciliation{reconciliation::unknown, {}};
                trouble = std::string("; reconcile() threw: ") + e.what();
            } catch (...) {
                found = reconciliation{reconciliation::unknown, {}};
                trouble = "; reconcile() threw an exception that is not a std::exception";
            }
            events.reconciled(row.key, found.outcome);
            switch (found.outcome) {
                case reconciliation::happened:
                    if (settle_rescued(row, effect_state::done, found.result, "",
                                       "sertx: reconciled by " + who + ": reconcile() found it happened.",
                                       "reconciled"))
                        return effect_state::done;
                    return std::nullopt;
                case reconciliation::not_happened:
                    if (claimer_may_live) {
                        trouble = "; reconcile() found it did not happen, which a rescue cannot trust: '" +
                                  row.dispatcher + (row.call_began > 0 ? "' began" : "' may have begun") +
                                  " the call and may still be calling (a paused process)";
                        break;
                    }
                    if (settle_rescued(row, effect_state::pending, "", "",
                                       "sertx: reconciled by " + who +
                                           ": reconcile() found it did not happen; called again.",
                                       "reconciled"))
                        return effect_state::pending;
                    return std::nullopt;
                case reconciliation::unknown: break;
            }
            if (settle_rescued(row, effect_state::in_doubt, "",
                               detail::clip(left + (found.outcome == reconciliation::not_happened
                                                        ? trouble
                                                        : "; reconcile() could not tell" + trouble) +
                                            "."),
                               "sertx: put in doubt by " + who + ".", "")) {
                events.in_doubt(row.key, left);
                return effect_state::in_doubt;
            }
            return std::nullopt;
        } else {
            if (settle_rescued(row, effect_state::in_doubt, "", left + "; " + who + " put it in doubt.",
                               "sertx: put in doubt by " + who + ".", "")) {
                events.in_doubt(row.key, left);
                return effect_state::in_doubt;
            }
            return std::nullopt;
        }
    }

    bool settle_rescued(const expired_claim& row, effect_state state, const std::string& result,
                        const std::string& why, const std::string& note, std::string_view by) {
        const bool ours = transact<policy_type>(db_, [&](auto& tx) {
            return journal_of(tx).rescue_effect(row.key, row.attempts, row.call_began, state, result, why,
                                                detail::clip(note), by);
        });
        if (ours && state == effect_state::pending) signal_->notify();  // other dispatchers here may take it
        return ours;
    }

    std::vector<effect_record> in_state(effect_state s, std::size_t limit) {
        return transact<read_policy>(db_, [&](auto& tx) { return journal_of(tx).effects_in(s, limit); });
    }

    Db db_;
    std::string dispatcher_;
    journal_options options_;
    detail::effect_signal* signal_;
};

}  // namespace sertx

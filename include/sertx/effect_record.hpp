// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The effect journal's records, as its users and its adapters see them:
/// `effect_state`, `effect_record` and the reports of `dispatch` and
/// `recover` (effects.hpp runs the journal; adapter.hpp says what an adapter
/// stores).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace sertx {

/// Where an intent is in its life (docs/exactly-once.md has the diagram).
enum class effect_state : std::uint8_t {
    pending,   ///< recorded, not claimed yet
    started,   ///< claimed; the operation is being called (durable before the call)
    done,      ///< called; `result` holds what it returned
    failed,    ///< called and threw (for at-most-once: it did not happen); `error` says why
    in_doubt,  ///< at-most-once, outcome unknown; only `resolve()` settles it
    dead,      ///< ended `retry_later` max_attempts times; only `requeue()` brings it back
};

/// Each state's name, as stored in the journal, in the enum's order: the one
/// list that `to_string`, the adapters' parsing and the table's CHECK
/// constraint are made from. New states go at the end, so that stored names
/// and the enum's values keep their meaning.
inline constexpr std::string_view effect_state_names[] = {"pending", "started", "done", "failed", "in_doubt",
                                                          "dead"};

constexpr std::string_view to_string(effect_state s) noexcept {
    const auto i = static_cast<std::size_t>(s);
    return i < std::size(effect_state_names) ? effect_state_names[i] : "unknown";
}

/// The state named `name`; empty when it names none.
constexpr std::optional<effect_state> parse_effect_state(std::string_view name) noexcept {
    for (std::size_t i = 0; i < std::size(effect_state_names); ++i)
        if (effect_state_names[i] == name) return static_cast<effect_state>(i);
    return std::nullopt;
}

/// The names of the effect tags (operation.hpp), as stored in the journal.
inline constexpr std::string_view effect_tag_names[] = {"at_most_once", "idempotent", "read_only"};

/// One row of the journal, as an operator sees it. Times are those of the
/// clock of the process that wrote them; empty when not reached yet.
struct effect_record {
    std::string key;        ///< the bytes given to `schedule`
    std::string operation;  ///< the operation's `name`
    std::string effect;     ///< its tag: "at_most_once", "idempotent" or "read_only"
    std::string payload;    ///< the bytes given to `schedule`
    effect_state state = effect_state::pending;
    std::string result;      ///< what the operation returned (done)
    std::string error;       ///< why it failed, or why it is in doubt
    unsigned attempts = 0;   ///< how many times it was claimed
    std::string dispatcher;  ///< who claimed it last (the journal's `dispatcher` name)
    std::optional<std::chrono::system_clock::time_point> scheduled_at, started_at, settled_at;
    std::string resolved_by;  ///< who settled it by hand (resolve)
    std::string note;         ///< why they settled it so, or what recover(), a rescue or requeue() did
    unsigned retries = 0;     ///< how many calls ended `retry_later`
    std::optional<std::chrono::system_clock::time_point> not_before;  ///< not claimed before this time
    std::optional<std::chrono::system_clock::time_point> lease_until;  ///< started: the claim's lease
    /// At-most-once: when the last claim's call began (committed just before
    /// it); empty when it has not, or is not known (a claim by a sertx from
    /// before this mark).
    std::optional<std::chrono::system_clock::time_point> call_began;
};

/// What one `dispatch` call did.
struct dispatch_report {
    std::size_t done = 0;
    std::size_t failed = 0;
    std::size_t in_doubt = 0;
    std::size_t retried = 0;  ///< ended retry_later: pending again, after a backoff
    std::size_t dead = 0;     ///< ended retry_later for the max_attempts-th time
    std::size_t fenced = 0;   ///< outcome not recorded: the claim had been rescued meanwhile
    std::size_t abandoned = 0;  ///< not called: stop requested before the call, or the claim rescued before it (paused)
    /// Intents claimed by this call.
    std::size_t claimed() const noexcept { return done + failed + in_doubt + retried + dead + fenced + abandoned; }
};

/// What `recover()` found left `started` by a dispatcher that stopped.
struct recover_report {
    std::size_t requeued = 0;    ///< repeatable effects, back to pending
    std::size_t in_doubt = 0;    ///< at-most-once effects, now in doubt
    std::size_t reconciled = 0;  ///< at-most-once effects the operation's reconcile() settled (recover(op))
};

/// What one `run` call did, from its start to its return: the figures a
/// fleet's operator (and its tests) watch.
struct run_report {
    std::size_t claimed = 0;     ///< intents this dispatcher claimed
    std::size_t done = 0;        ///< ... whose call returned
    std::size_t failed = 0;      ///< ... whose call threw
    std::size_t in_doubt = 0;    ///< ... whose call threw effect_in_doubt
    std::size_t retried = 0;     ///< ... whose call threw retry_later, back to pending
    std::size_t dead = 0;        ///< ... whose call threw retry_later for the max_attempts-th time
    std::size_t abandoned = 0;   ///< claims not called: stop requested, or rescued before the call (a pause)
    std::size_t fenced = 0;      ///< outcomes not recorded: the claim had been rescued meanwhile
    std::size_t rescued = 0;     ///< expired leases of any dispatcher taken back by this one
    std::size_t reconciled = 0;  ///< ... of which reconcile() settled (found happened: done)
    std::size_t database_errors = 0;  ///< database failures survived (retried after a backoff)
    /// The longest time from an expired lease's end to its rescue by this
    /// dispatcher, by this machine's clock.
    std::chrono::microseconds longest_rescue_lag{0};
};

namespace detail {
/// A `run_report`'s outcomes as `dispatch` reports them: one place keeps the
/// two structs in step.
inline dispatch_report dispatch_report_of(const run_report& r) noexcept {
    return {.done = r.done,
            .failed = r.failed,
            .in_doubt = r.in_doubt,
            .retried = r.retried,
            .dead = r.dead,
            .fenced = r.fenced,
            .abandoned = r.abandoned};
}
}  // namespace detail

/// How much work the journal holds, from one read of it (`journal.stats()`):
/// what an operator graphs and alerts on (metrics.hpp exposes it).
struct journal_stats {
    std::uint64_t pending = 0;   ///< recorded, waiting for a dispatcher (including those not due yet)
    std::chrono::microseconds oldest_pending_age{0};  ///< how long the oldest pending intent has waited; 0 when none
    std::uint64_t started = 0;   ///< claimed, the operation being called
    std::uint64_t in_doubt = 0;  ///< waiting for an operator
    std::uint64_t dead = 0;      ///< gave up after max_attempts; waiting for requeue
};

/// Sizes the journal accepts; longer input is refused with a `sertx::error`
/// before anything is written.
struct effect_limits {
    static constexpr std::size_t max_key = 256;              ///< bytes
    static constexpr std::size_t max_payload = 1024 * 1024;  ///< bytes
    static constexpr std::size_t max_name = 128;             ///< operation and dispatcher names
    static constexpr std::size_t max_text = 4096;            ///< error texts (longer ones are cut), notes
};

/// A claimed intent, as the dispatcher needs it (what an adapter's
/// `claim_effect` returns).
struct claimed_effect {
    std::string key;
    std::string payload;
    unsigned attempts = 0;  ///< after this claim: fences the outcome to this claim
    unsigned retries = 0;   ///< calls that ended retry_later before this claim
};

/// A started intent whose claim's lease ran out (or, for `recover(op)`, one
/// this dispatcher left started): what an adapter's `expired_effects` returns.
struct expired_claim {
    std::string key;
    std::string payload;
    std::string effect;      ///< its tag's name (effect_tag_names)
    std::string dispatcher;  ///< who held the claim
    unsigned attempts = 0;   ///< the claim's fence
    std::int64_t lease_until = 0;  ///< unix microseconds; 0 when claimed by a sertx without leases
    /// 0: the claim had not begun its call (and now never can: its mark is
    /// fenced); > 0: it had (unix µs), so the call may have happened or be in
    /// flight; -1: not known (claimed by a sertx from before the mark).
    std::int64_t call_began = -1;
};

}  // namespace sertx

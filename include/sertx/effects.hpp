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
#include <sertx/detail/hex.hpp>
#include <sertx/effect_record.hpp>
#include <sertx/failure.hpp>
#include <sertx/operation.hpp>
#include <sertx/policy.hpp>
#include <sertx/transact.hpp>
#include <sertx/transaction.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx {

namespace detail {

/// Test-only: where `dispatch` can be stopped (the crash tests kill the
/// process there). Production code uses `no_probe`, which compiles away.
enum class dispatch_point {
    claiming,  ///< inside the claim transaction, before its COMMIT
    started,   ///< `started` committed; the operation not called yet
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
    else if constexpr (std::is_same_v<effect_of<Op>, idempotent>)
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
    /// restarts (a host name, a pod name).
    explicit effects(Db db, std::string dispatcher = "default")
        : db_(std::move(db)), dispatcher_(std::move(dispatcher)) {
        static_assert(detail::check_journal_adapter<Db>());
        detail::check_size("dispatcher name", dispatcher_, effect_limits::max_name, false);
    }

    /// Records the intent to run `Op` with `payload`, in the caller's
    /// transaction: it exists if and only if that transaction commits.
    /// Returns false, and changes nothing, when `key` was scheduled before.
    template <class Op, class Tx>
        requires writable_transaction<Tx>
    bool schedule(Tx& tx, std::string_view key, std::string_view payload) {
        detail::check_journaled<Op>();
        static_assert(std::is_same_v<typename std::remove_cvref_t<Tx>::connection_type, typename Db::connection_type>,
                      "sertx: schedule() needs a transaction on this journal's database; pass the tx of a "
                      "transact() on the same database.");
        using Plain = std::remove_cvref_t<Op>;
        detail::check_size("key", key, effect_limits::max_key, false);
        detail::check_size("payload", payload, effect_limits::max_payload, true);
        detail::check_size("operation name", Plain::name, effect_limits::max_name, false);
        return journal_of(tx).schedule_effect(key, Plain::name, detail::effect_name<Plain>(), payload);
    }

    /// Claims and runs at most `limit` pending intents of `Op`, oldest first,
    /// one at a time: each is committed `started` before `op(payload)` is
    /// called (outside any transaction), and `done` or `failed` after it.
    /// Throws when the database fails; an intent caught between `started`
    /// and its outcome then stays `started` until `recover()`.
    template <class Op>
    dispatch_report dispatch(Op& op, std::size_t limit = 100) {
        detail::check_journaled<Op>();
        static_assert(std::is_invocable_v<Op&, const std::string&>,
                      "sertx: a journaled operation is called with its payload; give it an operator()(const "
                      "std::string&) (or std::string_view).");
        static_assert(std::is_void_v<std::invoke_result_t<Op&, const std::string&>> ||
                          std::is_convertible_v<std::invoke_result_t<Op&, const std::string&>, std::string>,
                      "sertx: a journaled operation returns void or bytes (std::string) to record as its "
                      "result; encode its result (JSON, a receipt id) before returning it.");
        dispatch_report report;
        while (report.claimed() < limit) {
            std::optional<claimed_effect> claimed = claim<std::remove_cvref_t<Op>>();
            if (!claimed) break;
            Probe::at(detail::dispatch_point::started, claimed->key);
            const settlement outcome = call(op, *claimed);
            Probe::at(detail::dispatch_point::returned, claimed->key);
            settle(*claimed, outcome);
            Probe::at(detail::dispatch_point::settled, claimed->key);
            ++(outcome.state == effect_state::done       ? report.done
               : outcome.state == effect_state::in_doubt ? report.in_doubt
                                                         : report.failed);
        }
        return report;
    }
    /// The same, for an operation passed as a temporary.
    template <class Op>
        requires(!std::is_reference_v<Op>)
    dispatch_report dispatch(Op&& op, std::size_t limit = 100) {
        return dispatch<Op>(op, limit);
    }

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

    /// How a call ended, to be recorded.
    struct settlement {
        effect_state state = effect_state::done;
        std::string result;
        std::string error;
    };

    template <class Tx>
    static auto& journal_of(Tx& tx) {
        return tx.connection(detail::internal_access{}).journal();
    }

    /// The oldest pending intent of `Op`, committed `started` under this
    /// dispatcher's name; empty when none is pending.
    template <class Op>
    std::optional<claimed_effect> claim() {
        return transact<policy_type>(db_, [&](auto& tx) {
            auto found = journal_of(tx).claim_effect(Op::name, dispatcher_);
            if (found) Probe::at(detail::dispatch_point::claiming, found->key);
            return found;
        });
    }

    /// Calls `op` outside any transaction. What it throws decides the
    /// outcome: effect_in_doubt puts an at-most-once effect in doubt; anything
    /// else means it failed (for at-most-once: it did not happen).
    template <class Op>
    static settlement call(Op& op, const claimed_effect& claimed) {
        settlement s;
        try {
            if constexpr (std::is_void_v<std::invoke_result_t<Op&, const std::string&>>)
                op(std::as_const(claimed.payload));
            else
                s.result = op(std::as_const(claimed.payload));
            return s;
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

    /// Records the outcome of `claimed`'s claim (not of a later one).
    void settle(const claimed_effect& claimed, const settlement& outcome) {
        transact<policy_type>(db_, [&](auto& tx) {
            journal_of(tx).settle_effect(claimed.key, claimed.attempts, outcome.state, outcome.result, outcome.error);
            Probe::at(detail::dispatch_point::settling, claimed.key);
        });
    }

    std::vector<effect_record> in_state(effect_state s, std::size_t limit) {
        return transact<read_policy>(db_, [&](auto& tx) { return journal_of(tx).effects_in(s, limit); });
    }

    Db db_;
    std::string dispatcher_;
};

}  // namespace sertx

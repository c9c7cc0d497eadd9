// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Effect tags. An operation is a callable type that says what re-running it
/// would do, by a tag alias inside the type:
/// \code
/// struct fetch_rate { using effect = sertx::idempotent;   Rate operator()() const; };
/// struct broadcast  { using effect = sertx::at_most_once; Receipt operator()(const Payment&) const; };
/// \endcode
/// - `sertx::read_only`: changes nothing outside the database;
/// - `sertx::idempotent`: doing it twice is the same as doing it once;
/// - `sertx::at_most_once`: must never happen twice (a payment broadcast).
///
/// `tx.perform(op)` runs an operation inside a `transact` body, where the body
/// may be re-run: it accepts `read_only` and `idempotent` operations and
/// rejects `at_most_once` and untagged ones at compile time. At-most-once work
/// goes through the effect journal (`sertx::effects`), which runs it after
/// commit and never twice.

#include <sertx/failure.hpp>
#include <sertx/policy.hpp>

#include <string>
#include <type_traits>
#include <utility>

namespace sertx {

/// Effect tag: doing it twice is the same as doing it once.
struct idempotent {};
/// Effect tag: must never happen twice; only the effect journal may run it.
struct at_most_once {};

namespace detail {
template <class Op>
struct effect_of {
    using type = void;
};
template <class Op>
    requires requires { typename Op::effect; }
struct effect_of<Op> {
    using type = typename Op::effect;
};
}  // namespace detail

/// The effect tag an operation declares, or void.
template <class Op>
using effect_of = typename detail::effect_of<std::remove_cvref_t<Op>>::type;

/// An operation that declares one of the three effect tags.
template <class Op>
concept operation = std::is_same_v<effect_of<Op>, read_only> || std::is_same_v<effect_of<Op>, idempotent> ||
                    std::is_same_v<effect_of<Op>, at_most_once>;

/// An operation that may be repeated, and so may run inside a retried body.
template <class Op>
concept repeatable_operation = std::is_same_v<effect_of<Op>, read_only> || std::is_same_v<effect_of<Op>, idempotent>;

/// An operation that must never run twice.
template <class Op>
concept at_most_once_operation = std::is_same_v<effect_of<Op>, at_most_once>;

/// Thrown by a journaled operation: the call did not happen (the node was
/// unreachable, the service said "busy"), so calling it again later is still
/// at most once. The journal puts the intent back to pending after a jittered
/// backoff, and makes it `dead` once `max_attempts` calls have ended so.
/// A `sertx::error`, so that code catching sertx's errors sees it too; its
/// text is recorded as the effect's error.
class retry_later : public error {
public:
    using error::error;
};

/// What an at-most-once operation's `reconcile(payload)` found out about an
/// effect that a dead dispatcher left started (DESIGN §7.1):
/// `{reconciliation::happened, result}`, `{reconciliation::not_happened}` or
/// `{reconciliation::unknown}`. `not_happened` must be sure: the journal then
/// calls the operation again.
struct reconciliation {
    enum outcome_kind : unsigned char { happened, not_happened, unknown };
    outcome_kind outcome = unknown;
    std::string result{};  ///< happened: what to record as the call's result
};

/// An at-most-once operation that can tell whether a call happened.
template <class Op>
concept reconciling_operation = requires(Op& op, const std::string& payload) {
    { op.reconcile(payload) } -> std::convertible_to<reconciliation>;
};

}  // namespace sertx

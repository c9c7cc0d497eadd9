// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The handle a `transact` body receives, and the concepts domain code uses to
/// say what it needs:
/// \code
/// void debit(sertx::writable_transaction auto& tx, long account, long amount);
/// long balance(sertx::serializable_transaction auto& tx, long account);
/// \endcode
/// A raw `soci::session`, or a read-only handle passed to `debit`, does not
/// compile.

#include <sertx/detail/effect_buffer.hpp>
#include <sertx/operation.hpp>

#include <functional>
#include <utility>
#include <vector>

namespace sertx {

namespace detail {
/// A key only sertx's own code passes, to reach what users should not.
struct internal_access {
    explicit internal_access() = default;
};
}  // namespace detail

/// The handle of one attempt of a serializable transaction.
///
/// - `sql()`: the session (`soci::session&` with the SOCI adapters);
/// - `attempt()`: 1 for the first run of the body, 2 for the first retry...;
/// - `after_commit(f)`: run `f` once after this attempt commits; never for an
///   attempt that rolls back;
/// - `perform(op)`: run a repeatable operation (see operation.hpp).
template <class Connection, class Policy>
class transaction {
public:
    using connection_type = Connection;
    using session_type = typename Connection::session_type;
    using policy_type = Policy;
    /// Every transaction sertx runs is serializable; the concepts read this.
    static constexpr bool serializable = true;
    static constexpr bool writable = Policy::writes;

    transaction(Connection& connection, unsigned attempt, std::vector<std::function<void()>>& after_commit,
                detail::effect_buffer& effects) noexcept
        : connection_(connection), attempt_(attempt), after_commit_(after_commit), effects_(effects) {}

    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;

    session_type& sql() noexcept { return connection_.session(); }
    unsigned attempt() const noexcept { return attempt_; }

    /// Runs `f` once after the commit of this attempt. What must not be
    /// repeated and is not in the database (a message, a cache fill) goes here.
    template <class F>
    void after_commit(F&& f) {
        after_commit_.emplace_back(std::forward<F>(f));
    }

    /// Runs an operation that may safely be repeated with the body; an
    /// operation callable with the handle receives it.
    template <class Op, class... Args>
    decltype(auto) perform(Op&& op, Args&&... args) {
        static_assert(operation<Op>,
                      "sertx: tx.perform(op) needs an operation that declares its effect; add "
                      "`using effect = sertx::idempotent;` (or read_only, or at_most_once) to its type.");
        static_assert(!at_most_once_operation<Op>,
                      "sertx: an at_most_once operation cannot run inside transact(): the body may be re-run "
                      "on conflict, so it could happen twice; schedule it with sertx::effects<Db>::schedule "
                      "and run it with dispatch() after commit.");
        if constexpr (std::is_invocable_v<Op&, transaction&, Args...>)
            return std::invoke(op, *this, std::forward<Args>(args)...);
        else
            return std::invoke(op, std::forward<Args>(args)...);
    }

    /// The adapter's connection, for sertx's own tables (effects, migrations).
    Connection& connection(detail::internal_access) noexcept { return connection_; }
    /// The intents `effects::schedule` buffered in this attempt.
    detail::effect_buffer& effects(detail::internal_access) noexcept { return effects_; }

private:
    Connection& connection_;
    unsigned attempt_;
    std::vector<std::function<void()>>& after_commit_;
    detail::effect_buffer& effects_;
};

namespace detail {
template <class T>
inline constexpr bool is_transaction = false;
template <class S, class P>
inline constexpr bool is_transaction<transaction<S, P>> = true;
}  // namespace detail

/// A handle of a transaction sertx runs at SERIALIZABLE.
template <class T>
concept serializable_transaction = detail::is_transaction<std::remove_cvref_t<T>> && std::remove_cvref_t<T>::serializable;

/// A serializable handle that may write.
template <class T>
concept writable_transaction = serializable_transaction<T> && std::remove_cvref_t<T>::writable;

}  // namespace sertx

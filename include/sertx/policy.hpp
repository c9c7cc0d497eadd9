// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// `sertx::policy<Options...>`: how `transact` runs a body, chosen at compile
/// time. Each option has a kind; a policy names each kind at most once and
/// takes the default for the kinds it does not name.
///
/// | option                              | default                      |
/// |-------------------------------------|------------------------------|
/// | `max_attempts<N>`                   | `max_attempts<default_attempts>` |
/// | `deadline<Milliseconds>`            | none (attempts bound the loop) |
/// | backoff (`no_backoff`, `exponential<B,C>`, `full_jitter<B,C>`, `equal_jitter<B,C>`, `decorrelated_jitter<B,C>`) | `default_backoff` |
/// | `read_only` / `read_write`          | `read_write`                 |
/// | `observe<T...>`                     | no observers                 |
/// | `verify_isolation<on_open / every_transaction>` | `on_open`          |
/// | `nested<forbid / savepoint>`        | `forbid`                     |
/// | `resolve_unknown<by_txid>`          | none: a lost COMMIT throws `commit_unknown` |
/// | `lock_timeout<Milliseconds>`        | `default_lock_timeout`       |
///
/// \code
/// using patient = sertx::policy<sertx::max_attempts<50>, sertx::full_jitter<200, 50'000>>;
/// sertx::transact<patient>(db, body);
/// \endcode

#include <sertx/backoff.hpp>
#include <sertx/observe.hpp>

#include <chrono>
#include <cstdint>
#include <tuple>
#include <type_traits>

namespace sertx {

namespace detail::option {
struct attempts {};
struct deadline {};
struct access {};
struct verify {};
struct nesting {};
struct resolve {};
struct lock_wait {};
}  // namespace detail::option

/// At most N attempts of the body (N >= 1).
template <unsigned N>
struct max_attempts {
    using sertx_option = detail::option::attempts;
    static constexpr unsigned value = N;
};

/// Give up when the next attempt would start later than this many
/// milliseconds after the first one began.
template <std::uint64_t Milliseconds>
struct deadline {
    using sertx_option = detail::option::deadline;
    static constexpr std::chrono::milliseconds value{Milliseconds};
};

/// Transactions that only read. PostgreSQL: SERIALIZABLE READ ONLY
/// DEFERRABLE, which never fails with a serialization error; SQLite: BEGIN
/// DEFERRED on a WAL snapshot. Also an operation's effect tag: reads only.
struct read_only {
    using sertx_option = detail::option::access;
    static constexpr bool writes = false;
};
/// Transactions that may write (the default).
struct read_write {
    using sertx_option = detail::option::access;
    static constexpr bool writes = true;
};

/// When the isolation level is checked: once per session when it is opened,
/// or in every transaction too (one extra round trip each).
struct on_open {};
struct every_transaction {};
template <class When>
struct verify_isolation {
    static_assert(std::is_same_v<When, on_open> || std::is_same_v<When, every_transaction>,
                  "sertx: verify_isolation takes sertx::on_open or sertx::every_transaction.");
    using sertx_option = detail::option::verify;
    static constexpr bool every = std::is_same_v<When, every_transaction>;
};

/// What a `transact` inside another on the same thread does: throw
/// (`forbid`), or run as a savepoint of the outer transaction (`savepoint`).
struct forbid {};
struct savepoint {};
template <class How>
struct nested {
    static_assert(std::is_same_v<How, forbid> || std::is_same_v<How, savepoint>,
                  "sertx: nested takes sertx::forbid or sertx::savepoint.");
    using sertx_option = detail::option::nesting;
    static constexpr bool savepoints = std::is_same_v<How, savepoint>;
};

/// How a COMMIT whose outcome was lost is resolved without an idempotency
/// key: `by_txid` records the transaction id and asks the server afterwards.
struct by_txid {};
template <class How>
struct resolve_unknown {
    static_assert(std::is_same_v<How, by_txid>, "sertx: resolve_unknown takes sertx::by_txid.");
    using sertx_option = detail::option::resolve;
};

/// Bound lock waits: a statement that waits longer than this for a row lock
/// fails as `failure::busy` and the body is re-run. 0 keeps the server's
/// setting. Turns deadlocks, which PostgreSQL detects only after
/// deadlock_timeout, into quick retries.
template <std::uint64_t Milliseconds>
struct lock_timeout {
    using sertx_option = detail::option::lock_wait;
    static constexpr std::chrono::milliseconds value{Milliseconds};
};

/// Defaults, chosen by measurement: scripts/bench, figures in
/// docs/benchmarks.md ("Backoff strategies", "lock_timeout"); "hot" is the
/// transfer on 4 accounts at 8 clients, where 2 of 3 attempts fail.
///
/// 100 attempts: with 30 (the previous default) the hot workloads gave up on
/// 2 transactions in 9 s, and at 16 clients on 36–70 in 3 s; with 100 none
/// gave up, at the same throughput. A conflict that never clears now costs
/// about 5 s before retries_exhausted (see default_backoff); add deadline<>
/// for less.
inline constexpr unsigned default_attempts = 100;
/// Equal jitter from 0.7 ms to 70 ms: uniform in [d/2, d], d doubling from
/// 0.7 ms. On the hot workloads the mean wait decided throughput more than
/// the spread did: a longer wait throws away fewer attempts. Six alternating
/// repetitions each, hot-random then hot-ordered at 8 and 16 clients (tx/s):
/// - this default: 1044/868 and 1232/1160, 0.80 committed per attempt at 8;
/// - full_jitter<500, 50'000>, the previous default: 879/699 and 1173/1072,
///   0.62 per attempt; p99 264 ms against 220;
/// - exponential<500, 50'000>, whose mean wait this one matches: 1158/961 and
///   1291/1103, 0.79 per attempt, p99 159 ms.
/// The full run of docs/benchmarks.md (six repetitions more) gave 1083/936
/// and 1158/1160 for this default, 1008/935 and 1255/1102 for exponential,
/// 882/611 and 1083/970 for the previous default: equal jitter and
/// exponential at one mean wait are within their spread. Equal jitter is
/// kept for what these workloads do not show: without randomness, clients
/// that fail together (a failover, a burst) come back together at every
/// retry. Longer waits still won there (exponential<700, 70'000>: 1227/996);
/// a longer base is worth measuring.
/// A conflict that never clears costs about 100 × 52 ms ≈ 5 s before
/// retries_exhausted.
using default_backoff = equal_jitter<700, 70'000>;
/// 20 ms. On the hot workload with deadlocks (a→b against b→a), without a
/// lock timeout each deadlock waits deadlock_timeout (1 s): 10–103 tx/s in
/// the last runs. With 1, 5, 10, 20, 50 and 100 ms: 1389, 1371, 1303, 1186,
/// 1042 and 580 tx/s, then (with this default backoff) 1274, 1155, 1073,
/// 1019, 951 and 569. In account order, where every lock wait is a wait for
/// the holder's COMMIT, all values do alike on this disk (a sync takes
/// 0.15 ms). Shorter is faster on deadlocks, by up to a quarter at 1 ms; 20
/// ms is kept so that a wait for a COMMIT on a slow disk or a synchronous
/// replica (several milliseconds) does not become a retry. A transaction
/// that must wait for a long-held lock (a migration's table lock) needs
/// lock_timeout<0> (the server's setting).
inline constexpr std::uint64_t default_lock_timeout_ms = 20;

namespace detail {

template <class T>
concept policy_option = requires { typename T::sertx_option; };

template <class Kind, class... Options>
inline constexpr unsigned count_of_kind = (0u + ... + (std::is_same_v<typename Options::sertx_option, Kind> ? 1u : 0u));

template <class Kind, class Default, class... Options>
struct pick {
    using type = Default;
};
template <class Kind, class Default, class First, class... Rest>
struct pick<Kind, Default, First, Rest...>
    : std::conditional_t<std::is_same_v<typename First::sertx_option, Kind>, std::type_identity<First>,
                         pick<Kind, Default, Rest...>> {};

template <class Kind, class Default, class... Options>
using pick_t = typename pick<Kind, Default, Options...>::type;

struct no_deadline {
    static constexpr std::chrono::milliseconds value{0};
};
struct no_resolution {};

template <bool AllOptions, class... Options>
struct policy_checks {
    static constexpr bool ok = false;  // not all options: only the first assert is shown
};
template <class... Options>
struct policy_checks<true, Options...> {
    static_assert(count_of_kind<option::attempts, Options...> <= 1,
                  "sertx: policy<...> names max_attempts twice; keep one.");
    static_assert(count_of_kind<option::deadline, Options...> <= 1,
                  "sertx: policy<...> names deadline twice; keep one.");
    static_assert(count_of_kind<option::backoff, Options...> <= 1,
                  "sertx: policy<...> names two backoff strategies; keep one.");
    static_assert(count_of_kind<option::access, Options...> <= 1,
                  "sertx: policy<...> names read_only or read_write twice; keep one.");
    static_assert(count_of_kind<option::observe, Options...> <= 1,
                  "sertx: policy<...> names observe twice; list every observer in one observe<A, B, ...>.");
    static_assert(count_of_kind<option::verify, Options...> <= 1,
                  "sertx: policy<...> names verify_isolation twice; keep one.");
    static_assert(count_of_kind<option::nesting, Options...> <= 1,
                  "sertx: policy<...> names nested twice; keep one.");
    static_assert(count_of_kind<option::resolve, Options...> <= 1,
                  "sertx: policy<...> names resolve_unknown twice; keep one.");
    static_assert(count_of_kind<option::lock_wait, Options...> <= 1,
                  "sertx: policy<...> names lock_timeout twice; keep one.");
    static_assert(pick_t<option::attempts, max_attempts<1>, Options...>::value >= 1,
                  "sertx: max_attempts<0> would never run the body; use max_attempts<1> for no retries.");
    static_assert(!(count_of_kind<option::resolve, Options...> == 1 &&
                    !pick_t<option::access, read_write, Options...>::writes),
                  "sertx: resolve_unknown with read_only is contradictory: a read-only transaction has no "
                  "commit to lose; drop resolve_unknown.");
    static constexpr bool ok = true;
};

}  // namespace detail

/// A set of options for `transact`; see the table at the top of this file.
template <class... Options>
struct policy {
    static_assert((detail::policy_option<Options> && ...),
                  "sertx: policy<...> takes only sertx options (max_attempts, deadline, a backoff, read_only, "
                  "observe, verify_isolation, nested, resolve_unknown, lock_timeout).");
    static_assert(!(detail::policy_option<Options> && ...) ||
                  detail::policy_checks<(detail::policy_option<Options> && ...), Options...>::ok);

    static constexpr unsigned max_attempts =
        detail::pick_t<detail::option::attempts, sertx::max_attempts<default_attempts>, Options...>::value;
    /// Zero when the policy names no deadline.
    static constexpr std::chrono::milliseconds deadline =
        detail::pick_t<detail::option::deadline, detail::no_deadline, Options...>::value;
    using backoff = detail::pick_t<detail::option::backoff, default_backoff, Options...>;
    static constexpr bool writes = detail::pick_t<detail::option::access, read_write, Options...>::writes;
    using observers = typename detail::pick_t<detail::option::observe, observe<>, Options...>::observers;
    static constexpr bool verify_every_transaction =
        detail::pick_t<detail::option::verify, verify_isolation<on_open>, Options...>::every;
    static constexpr bool savepoint_when_nested =
        detail::pick_t<detail::option::nesting, nested<forbid>, Options...>::savepoints;
    static constexpr bool resolve_by_txid =
        std::is_same_v<detail::pick_t<detail::option::resolve, detail::no_resolution, Options...>,
                       resolve_unknown<by_txid>>;
    static constexpr std::chrono::milliseconds lock_wait =
        detail::pick_t<detail::option::lock_wait, lock_timeout<default_lock_timeout_ms>, Options...>::value;
};

/// The policy `transact` uses when none is named.
using default_policy = policy<>;

}  // namespace sertx

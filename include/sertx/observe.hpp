// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Observers and counters.
///
/// An observer is a default-constructible type named in the policy as
/// `sertx::observe<T...>`; one object of each is made per `transact` call.
/// It may define any of these members; those it lacks cost nothing:
/// \code
/// void on_begin(unsigned attempt);
/// void on_conflict(sertx::failure f, unsigned attempt, std::chrono::microseconds delay);
/// void on_commit(unsigned attempts);
/// void on_give_up(sertx::failure f, unsigned attempts);
/// void on_notice(std::string_view message);   // server NOTICE/WARNING text
/// \endcode
/// `db.stats()` returns the database's counters; each event costs one relaxed
/// atomic add.
///
/// The effect journal's `run(op, stop, observer)` takes an observer object
/// the same way (any type; the hooks it lacks cost nothing), called from the
/// thread running `run` (docs/exactly-once.md, "Observer events"):
/// \code
/// void on_effect_claimed(std::string_view key, unsigned attempt);
/// void on_effect_done(std::string_view key);
/// void on_effect_failed(std::string_view key, std::string_view error);
/// void on_effect_in_doubt(std::string_view key, std::string_view why);
/// void on_effect_retried(std::string_view key, unsigned retries, std::chrono::system_clock::time_point not_before);
/// void on_effect_dead(std::string_view key, std::string_view error);
/// void on_effect_abandoned(std::string_view key);  // claim not called (stop, or rescued before its call-began mark)
/// void on_effect_fenced(std::string_view key);     // late outcome of a rescued claim: not recorded
/// void on_effect_rescued(std::string_view key, std::string_view from_dispatcher, sertx::effect_state now);
/// void on_effect_reconciled(std::string_view key, sertx::reconciliation::outcome_kind found);
/// void on_journal_error(std::string_view what, std::chrono::microseconds retry_in);  // survived, retried
/// \endcode

#include <sertx/failure.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <tuple>

namespace sertx {

namespace detail::option {
struct observe {};
}  // namespace detail::option

/// Policy option: call these observers' hooks.
template <class... Observers>
struct observe {
    using sertx_option = detail::option::observe;
    using observers = std::tuple<Observers...>;
};

/// A snapshot of a database's counters.
struct stats {
    std::uint64_t commits = 0;
    /// Attempts that failed and were retried, by `sertx::failure`.
    std::array<std::uint64_t, failure_kinds> retries{};
    std::uint64_t give_ups = 0;
    std::uint64_t commit_unknown = 0;
    /// Lost COMMITs whose outcome was found out (idempotency key or txid).
    std::uint64_t commit_resolved = 0;
    std::uint64_t notices = 0;
    std::uint64_t sessions_opened = 0;
    std::uint64_t sessions_discarded = 0;
    /// False when the database was opened while accepting weaker durability.
    bool durable = true;
    /// The newest session found its commits waiting for a synchronous
    /// standby (PostgreSQL: synchronous_standby_names set, synchronous_commit
    /// on or remote_apply); false where the backend has no replication.
    bool synchronous_replication = false;

    std::uint64_t retries_of(failure f) const noexcept { return retries[static_cast<std::size_t>(f)]; }
    std::uint64_t total_retries() const noexcept {
        std::uint64_t n = 0;
        for (auto r : retries) n += r;
        return n;
    }
};

/// The live counters behind `stats`, which an adapter's database keeps (one
/// per pool) and returns from `counters()` for `transact` to count in; each
/// count is one relaxed atomic add, since they order nothing. An adapter also
/// counts its own events here: sessions opened and discarded, notices, and
/// `durable` set to false when it accepted weaker durability.
struct counters {
    std::atomic<std::uint64_t> commits{0};
    std::array<std::atomic<std::uint64_t>, failure_kinds> retries{};
    std::atomic<std::uint64_t> give_ups{0};
    std::atomic<std::uint64_t> commit_unknown{0};
    std::atomic<std::uint64_t> commit_resolved{0};
    std::atomic<std::uint64_t> notices{0};
    std::atomic<std::uint64_t> sessions_opened{0};
    std::atomic<std::uint64_t> sessions_discarded{0};
    std::atomic<bool> durable{true};
    std::atomic<bool> synchronous_replication{false};

    static void add(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
    void retry(failure f) noexcept { add(retries[static_cast<std::size_t>(f)]); }

    stats snapshot() const noexcept {
        stats s;
        s.commits = commits.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < failure_kinds; ++i) s.retries[i] = retries[i].load(std::memory_order_relaxed);
        s.give_ups = give_ups.load(std::memory_order_relaxed);
        s.commit_unknown = commit_unknown.load(std::memory_order_relaxed);
        s.commit_resolved = commit_resolved.load(std::memory_order_relaxed);
        s.notices = notices.load(std::memory_order_relaxed);
        s.sessions_opened = sessions_opened.load(std::memory_order_relaxed);
        s.sessions_discarded = sessions_discarded.load(std::memory_order_relaxed);
        s.durable = durable.load(std::memory_order_relaxed);
        s.synchronous_replication = synchronous_replication.load(std::memory_order_relaxed);
        return s;
    }
};

namespace detail {

/// Calls each observer's hook when it has one.
template <class Tuple>
struct observer_set;

template <class... Os>
struct observer_set<std::tuple<Os...>> {
    std::tuple<Os...> observers;

    void begin(unsigned attempt) {
        std::apply([&](auto&... o) { (call_begin(o, attempt), ...); }, observers);
    }
    void conflict(failure f, unsigned attempt, std::chrono::microseconds delay) {
        std::apply([&](auto&... o) { (call_conflict(o, f, attempt, delay), ...); }, observers);
    }
    void commit(unsigned attempts) {
        std::apply([&](auto&... o) { (call_commit(o, attempts), ...); }, observers);
    }
    void give_up(failure f, unsigned attempts) {
        std::apply([&](auto&... o) { (call_give_up(o, f, attempts), ...); }, observers);
    }
    void notice(std::string_view text) {
        std::apply([&](auto&... o) { (call_notice(o, text), ...); }, observers);
    }

private:
    template <class O>
    static void call_begin(O& o, unsigned a) {
        if constexpr (requires { o.on_begin(a); }) o.on_begin(a);
    }
    template <class O>
    static void call_conflict(O& o, failure f, unsigned a, std::chrono::microseconds d) {
        if constexpr (requires { o.on_conflict(f, a, d); }) o.on_conflict(f, a, d);
    }
    template <class O>
    static void call_commit(O& o, unsigned a) {
        if constexpr (requires { o.on_commit(a); }) o.on_commit(a);
    }
    template <class O>
    static void call_give_up(O& o, failure f, unsigned a) {
        if constexpr (requires { o.on_give_up(f, a); }) o.on_give_up(f, a);
    }
    template <class O>
    static void call_notice(O& o, std::string_view t) {
        if constexpr (requires { o.on_notice(t); }) o.on_notice(t);
    }
};

}  // namespace detail
}  // namespace sertx

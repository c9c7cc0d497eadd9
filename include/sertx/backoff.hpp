// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Backoff strategies: how long to wait before re-running a body after a
/// retryable failure. Each is a policy option; times are microseconds.
///
/// A strategy is a default-constructible type with `using sertx_option =
/// sertx::backoff_option;` and
/// `std::chrono::microseconds delay(unsigned retry, sertx::jitter_rng&)`,
/// where `retry` is 1 before the second attempt, 2 before the third, and so
/// on. One object lives for one `transact` call, so a strategy may keep state.

#include <chrono>
#include <cstdint>

namespace sertx {

/// The random source a backoff strategy draws its jitter from: splitmix64.
/// `transact` passes one per thread, seeded by the operating system, so that
/// threads that conflict together do not back off in lockstep; jitter needs
/// that decorrelation, not cryptographic quality, and must not lock. A test
/// seeds its own to replay a strategy's delays.
class jitter_rng {
public:
    explicit jitter_rng(std::uint64_t seed) noexcept : state_(seed) {}

    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    /// Uniform in [0, 1).
    double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// Uniform in [lo, hi] (inclusive); lo when hi <= lo.
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
        if (hi <= lo) return lo;
        const std::uint64_t span = hi - lo + 1;
        return lo + (span == 0 ? next() : next() % span);
    }

private:
    std::uint64_t state_;
};

namespace detail::option {
struct backoff {};
}  // namespace detail::option

/// What a backoff strategy declares as `using sertx_option = ...;`, so that
/// `policy<...>` takes it as the backoff option (one per policy).
using backoff_option = detail::option::backoff;

namespace detail {
/// min(cap, base * 2^(retry-1)) without overflow.
constexpr std::uint64_t capped_exponential(std::uint64_t base, std::uint64_t cap, unsigned retry) noexcept {
    const unsigned shift = retry == 0 ? 0 : retry - 1 < 62u ? retry - 1 : 62u;
    if (base != 0 && (cap / base) >> shift == 0) return cap;
    return base << shift < cap ? base << shift : cap;
}
}  // namespace detail

/// Re-run at once. Right for SQLite, whose BEGIN IMMEDIATE already waits in
/// the busy handler, and for tests.
struct no_backoff {
    using sertx_option = backoff_option;
    std::chrono::microseconds delay(unsigned, jitter_rng&) const noexcept { return {}; }
};

/// min(Cap, Base·2^(retry−1)), no randomness: threads that collided together
/// retry together, so prefer a jittered strategy under contention.
template <std::uint64_t Base, std::uint64_t Cap>
struct exponential {
    static_assert(Base > 0 && Base <= Cap, "sertx: exponential<Base, Cap> needs 0 < Base <= Cap (microseconds).");
    using sertx_option = backoff_option;
    std::chrono::microseconds delay(unsigned retry, jitter_rng&) const noexcept {
        return std::chrono::microseconds(detail::capped_exponential(Base, Cap, retry));
    }
};

/// Uniform in [0, min(Cap, Base·2^(retry−1))] ("full jitter").
template <std::uint64_t Base, std::uint64_t Cap>
struct full_jitter {
    static_assert(Base > 0 && Base <= Cap, "sertx: full_jitter<Base, Cap> needs 0 < Base <= Cap (microseconds).");
    using sertx_option = backoff_option;
    std::chrono::microseconds delay(unsigned retry, jitter_rng& rng) const noexcept {
        return std::chrono::microseconds(rng.between(0, detail::capped_exponential(Base, Cap, retry)));
    }
};

/// Uniform in [d/2, d] with d = min(Cap, Base·2^(retry−1)) ("equal
/// jitter"): half of exponential's wait is kept, so few retries come back
/// early, and the other half spreads transactions that collided together.
template <std::uint64_t Base, std::uint64_t Cap>
struct equal_jitter {
    static_assert(Base > 0 && Base <= Cap, "sertx: equal_jitter<Base, Cap> needs 0 < Base <= Cap (microseconds).");
    using sertx_option = backoff_option;
    std::chrono::microseconds delay(unsigned retry, jitter_rng& rng) const noexcept {
        const std::uint64_t d = detail::capped_exponential(Base, Cap, retry);
        return std::chrono::microseconds(rng.between(d - d / 2, d));
    }
};

/// min(Cap, uniform[Base, 3·previous]) with previous starting at Base
/// ("decorrelated jitter"): grows like exponential but spreads retries.
template <std::uint64_t Base, std::uint64_t Cap>
struct decorrelated_jitter {
    static_assert(Base > 0 && Base <= Cap,
                  "sertx: decorrelated_jitter<Base, Cap> needs 0 < Base <= Cap (microseconds).");
    using sertx_option = backoff_option;
    std::chrono::microseconds delay(unsigned, jitter_rng& rng) noexcept {
        const std::uint64_t drawn = rng.between(Base, previous_ * 3);
        previous_ = drawn < Cap ? drawn : Cap;
        return std::chrono::microseconds(previous_);
    }

private:
    std::uint64_t previous_ = Base;
};

}  // namespace sertx

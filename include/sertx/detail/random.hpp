// SPDX-License-Identifier: BSL-1.0
#pragma once
// A small, fast generator for backoff jitter: splitmix64. Jitter needs
// decorrelation between threads, not cryptographic quality, and must not lock.

#include <cstdint>
#include <functional>
#include <random>
#include <thread>

namespace sertx::detail {

class jitter_rng {
public:
    explicit jitter_rng(std::uint64_t seed) noexcept : state_(seed) {}

    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    /// Uniform in [lo, hi] (inclusive); lo when hi <= lo.
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
        if (hi <= lo) return lo;
        const std::uint64_t span = hi - lo + 1;
        return lo + (span == 0 ? next() : next() % span);
    }

private:
    std::uint64_t state_;
};

/// One generator per thread, seeded from the OS and the thread id, so that
/// threads that conflict together do not back off in lockstep.
inline jitter_rng& thread_rng() noexcept {
    thread_local jitter_rng rng{std::random_device{}() ^
                                (std::hash<std::thread::id>{}(std::this_thread::get_id()) << 1)};
    return rng;
}

}  // namespace sertx::detail

// SPDX-License-Identifier: BSL-1.0
#pragma once
// Randomness without <random>, which alone added a sixth to the compile time
// of a translation unit using sertx (docs/benchmarks.md, "Compile time"): the
// operating system's entropy for what must not repeat, and splitmix64 for
// backoff jitter, which needs decorrelation between threads, not
// cryptographic quality, and must not lock.

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#if defined(_WIN32)
#include <random>
#elif defined(__APPLE__)
#include <sys/random.h>
#else
#include <unistd.h>
#endif

namespace sertx::detail {

/// Fills `out` with the operating system's random bytes; nothing of the
/// process's state is involved, so a fork() cannot make two processes repeat.
inline void os_random(void* out, std::size_t size) {
#if defined(_WIN32)
    std::random_device device;
    auto* bytes = static_cast<unsigned char*>(out);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(device());
#else
    auto* bytes = static_cast<unsigned char*>(out);
    for (std::size_t done = 0; done < size; done += 256)  // getentropy's limit
        if (::getentropy(bytes + done, size - done < 256 ? size - done : 256) != 0)
            throw std::runtime_error("sertx: the operating system gave no random bytes (getentropy failed)");
#endif
}

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

/// One generator per thread, seeded by the operating system, so that threads
/// that conflict together do not back off in lockstep.
inline jitter_rng& thread_rng() {
    thread_local jitter_rng rng{[] {
        std::uint64_t seed;
        os_random(&seed, sizeof seed);
        return seed;
    }()};
    return rng;
}

}  // namespace sertx::detail

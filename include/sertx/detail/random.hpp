// SPDX-License-Identifier: BSL-1.0
#pragma once
// Randomness without <random>, which alone added a sixth to the compile time
// of a translation unit using sertx (docs/benchmarks.md, "Compile time"): the
// operating system's entropy for what must not repeat, and jitter_rng
// (backoff.hpp) for backoff jitter. <sys/random.h> declares getentropy and
// nothing else, so user code does not receive <unistd.h>'s names.

#include <sertx/backoff.hpp>
#include <sertx/failure.hpp>

#include <cstddef>
#include <cstdint>

#if defined(_WIN32)
#include <random>
#else
#include <sys/random.h>
#endif

namespace sertx::detail {

/// Fills `out` with the operating system's random bytes; nothing of the
/// process's state is involved, so a fork() cannot make two processes repeat.
inline void os_random(void* out, std::size_t size) {
    auto* bytes = static_cast<unsigned char*>(out);
#if defined(_WIN32)
    std::random_device device;
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(device());
#else
    for (std::size_t done = 0; done < size; done += 256)  // getentropy's limit
        if (::getentropy(bytes + done, size - done < 256 ? size - done : 256) != 0)
            throw error("sertx: the operating system gave no random bytes (getentropy failed)");
#endif
}

/// One generator per thread, seeded by the operating system.
inline jitter_rng& thread_rng() {
    thread_local jitter_rng rng{[] {
        std::uint64_t seed;
        os_random(&seed, sizeof seed);
        return seed;
    }()};
    return rng;
}

}  // namespace sertx::detail

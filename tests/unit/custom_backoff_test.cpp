// SPDX-License-Identifier: BSL-1.0
// A backoff strategy of the user's own names only public parts of sertx
// (backoff_option, jitter_rng) and is taken by a policy like a shipped one.
#include "support/catch.hpp"

#include <sertx/policy.hpp>

#include <chrono>
#include <type_traits>

namespace {

// A constant wait plus up to 100 µs of jitter.
struct constant_with_jitter {
    using sertx_option = sertx::backoff_option;
    std::chrono::microseconds delay(unsigned, sertx::jitter_rng& rng) const noexcept {
        return std::chrono::microseconds(1000 + rng.between(0, 100));
    }
};

}  // namespace

TEST_CASE("a user's own backoff strategy is a policy's backoff and draws from the jitter_rng it is given",
          "[policy]") {
    using p = sertx::policy<constant_with_jitter, sertx::max_attempts<5>>;
    STATIC_REQUIRE(std::is_same_v<p::backoff, constant_with_jitter>);
    sertx::jitter_rng rng(3), replay(3);
    p::backoff strategy;
    for (unsigned retry = 1; retry <= 100; ++retry) {
        const auto d = strategy.delay(retry, rng);
        CHECK(d.count() >= 1000);
        CHECK(d.count() <= 1100);
        CHECK(d.count() == 1000 + static_cast<long long>(replay.between(0, 100)));
    }
}

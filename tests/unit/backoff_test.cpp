// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"

#include <sertx/backoff.hpp>

#include <algorithm>
#include <cstdint>

using std::chrono::microseconds;

TEST_CASE("no_backoff never waits", "[backoff]") {
    sertx::jitter_rng rng(1);
    sertx::no_backoff b;
    for (unsigned r = 1; r < 100; ++r) CHECK(b.delay(r, rng) == microseconds(0));
}

TEST_CASE("exponential doubles from its base up to its cap", "[backoff]") {
    sertx::jitter_rng rng(1);
    sertx::exponential<100, 1000> b;
    CHECK(b.delay(1, rng) == microseconds(100));
    CHECK(b.delay(2, rng) == microseconds(200));
    CHECK(b.delay(3, rng) == microseconds(400));
    CHECK(b.delay(4, rng) == microseconds(800));
    CHECK(b.delay(5, rng) == microseconds(1000));
    CHECK(b.delay(200, rng) == microseconds(1000));  // no overflow for large retry counts
}

/// 2000 delays of `b` before retry `retry`: the least, the most, the mean.
struct spread {
    std::int64_t least = INT64_MAX, most = INT64_MIN;
    double mean = 0;
};
template <class Strategy>
spread draw(Strategy& b, unsigned retry, sertx::jitter_rng& rng) {
    constexpr int draws = 2000;
    spread s;
    for (int i = 0; i < draws; ++i) {
        const std::int64_t d = b.delay(retry, rng).count();
        s.least = std::min(s.least, d);
        s.most = std::max(s.most, d);
        s.mean += static_cast<double>(d) / draws;
    }
    return s;
}

/// The doubling delay both jitters draw under: min(cap, base*2^(retry-1)).
std::int64_t ceiling(std::int64_t base, std::int64_t cap, unsigned retry) {
    return std::min<std::int64_t>(cap, base << (retry - 1));
}

TEST_CASE("full_jitter stays within [0, min(cap, base*2^(n-1))] and spreads over it", "[backoff]") {
    sertx::jitter_rng rng(42);
    sertx::full_jitter<100, 10'000> b;
    for (unsigned retry = 1; retry <= 12; ++retry) {
        const std::int64_t top = ceiling(100, 10'000, retry);
        const spread s = draw(b, retry, rng);
        REQUIRE(s.least >= 0);
        REQUIRE(s.most <= top);
        // uniform: the mean is near half the ceiling, both quarters are used
        CHECK(s.mean > 0.4 * static_cast<double>(top));
        CHECK(s.mean < 0.6 * static_cast<double>(top));
        CHECK(s.least < top / 4);
        CHECK(s.most > 3 * top / 4);
    }
}

TEST_CASE("equal_jitter stays within [d/2, d] for d = min(cap, base*2^(n-1)) and spreads over it", "[backoff]") {
    sertx::jitter_rng rng(11);
    sertx::equal_jitter<100, 10'000> b;
    for (unsigned retry = 1; retry <= 12; ++retry) {
        const std::int64_t top = ceiling(100, 10'000, retry);
        const spread s = draw(b, retry, rng);
        REQUIRE(s.least >= top / 2);
        REQUIRE(s.most <= top);
        CHECK(s.mean > 0.7 * static_cast<double>(top));
        CHECK(s.mean < 0.8 * static_cast<double>(top));
        CHECK(s.least < 5 * top / 8);
        CHECK(s.most > 7 * top / 8);
    }
}

TEST_CASE("decorrelated_jitter stays within [base, cap] and grows from the previous delay", "[backoff]") {
    sertx::jitter_rng rng(7);
    sertx::decorrelated_jitter<100, 5'000> b;
    std::int64_t previous = 100;
    bool reached_cap_region = false;
    for (unsigned retry = 1; retry <= 200; ++retry) {
        const auto d = b.delay(retry, rng).count();
        REQUIRE(d >= 100);
        REQUIRE(d <= 5'000);
        REQUIRE(d <= std::max<std::int64_t>(100, previous * 3));
        if (d > 2'500) reached_cap_region = true;
        previous = d;
    }
    CHECK(reached_cap_region);
}

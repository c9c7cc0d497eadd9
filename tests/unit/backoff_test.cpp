// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"

#include <sertx/backoff.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

using std::chrono::microseconds;

TEST_CASE("no_backoff never waits", "[backoff]") {
    sertx::detail::jitter_rng rng(1);
    sertx::no_backoff b;
    for (unsigned r = 1; r < 100; ++r) CHECK(b.delay(r, rng) == microseconds(0));
}

TEST_CASE("exponential doubles from its base up to its cap", "[backoff]") {
    sertx::detail::jitter_rng rng(1);
    sertx::exponential<100, 1000> b;
    CHECK(b.delay(1, rng) == microseconds(100));
    CHECK(b.delay(2, rng) == microseconds(200));
    CHECK(b.delay(3, rng) == microseconds(400));
    CHECK(b.delay(4, rng) == microseconds(800));
    CHECK(b.delay(5, rng) == microseconds(1000));
    CHECK(b.delay(200, rng) == microseconds(1000));  // no overflow for large retry counts
}

TEST_CASE("full_jitter stays within [0, min(cap, base*2^(n-1))] and spreads over it", "[backoff]") {
    sertx::detail::jitter_rng rng(42);
    sertx::full_jitter<100, 10'000> b;
    for (unsigned retry = 1; retry <= 12; ++retry) {
        const std::uint64_t ceiling = std::min<std::uint64_t>(10'000, 100ull << (retry - 1));
        std::vector<std::int64_t> seen;
        for (int i = 0; i < 2000; ++i) {
            const auto d = b.delay(retry, rng).count();
            REQUIRE(d >= 0);
            REQUIRE(static_cast<std::uint64_t>(d) <= ceiling);
            seen.push_back(d);
        }
        // uniform: the mean is near half the ceiling, both quarters are used
        double mean = 0;
        for (auto d : seen) mean += static_cast<double>(d);
        mean /= static_cast<double>(seen.size());
        CHECK(mean > 0.4 * static_cast<double>(ceiling));
        CHECK(mean < 0.6 * static_cast<double>(ceiling));
        CHECK(*std::min_element(seen.begin(), seen.end()) < static_cast<std::int64_t>(ceiling / 4));
        CHECK(*std::max_element(seen.begin(), seen.end()) > static_cast<std::int64_t>(3 * ceiling / 4));
    }
}

TEST_CASE("equal_jitter stays within [d/2, d] for d = min(cap, base*2^(n-1)) and spreads over it", "[backoff]") {
    sertx::detail::jitter_rng rng(11);
    sertx::equal_jitter<100, 10'000> b;
    for (unsigned retry = 1; retry <= 12; ++retry) {
        const std::int64_t ceiling = std::min<std::int64_t>(10'000, 100ll << (retry - 1));
        std::int64_t least = ceiling, most = 0;
        double mean = 0;
        for (int i = 0; i < 2000; ++i) {
            const auto d = b.delay(retry, rng).count();
            REQUIRE(d >= ceiling / 2);
            REQUIRE(d <= ceiling);
            least = std::min(least, d);
            most = std::max(most, d);
            mean += static_cast<double>(d) / 2000;
        }
        CHECK(mean > 0.7 * static_cast<double>(ceiling));
        CHECK(mean < 0.8 * static_cast<double>(ceiling));
        CHECK(least < 5 * ceiling / 8);
        CHECK(most > 7 * ceiling / 8);
    }
}

TEST_CASE("decorrelated_jitter stays within [base, cap] and grows from the previous delay", "[backoff]") {
    sertx::detail::jitter_rng rng(7);
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

TEST_CASE("the same seed gives the same jitter", "[backoff]") {
    sertx::detail::jitter_rng a(99), b(99);
    sertx::full_jitter<100, 100'000> x, y;
    for (unsigned r = 1; r < 50; ++r) CHECK(x.delay(r, a) == y.delay(r, b));
}

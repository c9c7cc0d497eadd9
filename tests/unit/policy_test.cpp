// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"

#include <sertx/policy.hpp>

#include <chrono>
#include <cstdint>
#include <type_traits>

namespace {
struct counting_observer {
    void on_begin(unsigned) {}
};
}  // namespace

TEST_CASE("an empty policy takes every default", "[policy]") {
    using p = sertx::policy<>;
    STATIC_REQUIRE(p::max_attempts == sertx::default_attempts);
    STATIC_REQUIRE(p::deadline.count() == 0);
    STATIC_REQUIRE(std::is_same_v<p::backoff, sertx::default_backoff>);
    STATIC_REQUIRE(p::writes);
    STATIC_REQUIRE(!p::verify_every_transaction);
    STATIC_REQUIRE(!p::savepoint_when_nested);
    STATIC_REQUIRE(!p::resolve_by_txid);
    STATIC_REQUIRE(p::lock_wait == std::chrono::milliseconds(sertx::default_lock_timeout_ms));
    STATIC_REQUIRE(std::is_same_v<p::observers, std::tuple<>>);
}

TEST_CASE("a policy takes each named option and keeps the defaults of the others", "[policy]") {
    // Every value differs from its default, so a policy that ignored the
    // option and kept the default would fail here.
    constexpr std::uint64_t lock_ms = sertx::default_lock_timeout_ms * 3 + 7;
    STATIC_REQUIRE(lock_ms != sertx::default_lock_timeout_ms);
    STATIC_REQUIRE(sertx::default_attempts != 50);
    using p = sertx::policy<sertx::max_attempts<50>, sertx::full_jitter<200, 50'000>, sertx::deadline<1500>,
                            sertx::observe<counting_observer>, sertx::verify_isolation<sertx::every_transaction>,
                            sertx::nested<sertx::savepoint>, sertx::resolve_unknown<sertx::by_txid>,
                            sertx::lock_timeout<lock_ms>>;
    STATIC_REQUIRE(p::max_attempts == 50);
    STATIC_REQUIRE(std::is_same_v<p::backoff, sertx::full_jitter<200, 50'000>>);
    STATIC_REQUIRE(p::deadline == std::chrono::milliseconds(1500));
    STATIC_REQUIRE(std::is_same_v<p::observers, std::tuple<counting_observer>>);
    STATIC_REQUIRE(p::verify_every_transaction);
    STATIC_REQUIRE(p::savepoint_when_nested);
    STATIC_REQUIRE(p::resolve_by_txid);
    STATIC_REQUIRE(p::lock_wait == std::chrono::milliseconds(lock_ms));
    STATIC_REQUIRE(p::writes);
}

TEST_CASE("the order of options does not matter", "[policy]") {
    using a = sertx::policy<sertx::read_only, sertx::max_attempts<3>>;
    using b = sertx::policy<sertx::max_attempts<3>, sertx::read_only>;
    STATIC_REQUIRE(a::max_attempts == b::max_attempts);
    STATIC_REQUIRE(!a::writes);
    STATIC_REQUIRE(!b::writes);
}

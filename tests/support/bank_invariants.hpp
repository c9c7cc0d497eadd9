// SPDX-License-Identifier: BSL-1.0
#pragma once
// What every run of the bank (bank.hpp) must show, on any backend, and the
// bank case itself, written and registered once (SERTX_BANK_CASES, at the
// end; run by tests/*/bank_test.cpp). The backend comes as a fixture that
// the test file defines, deriving from sertx::test::sqlite3_backend or
// postgresql_backend (support/databases.hpp):
//
//     static constexpr workload load;        // how much this backend can do within a test's minute
//     using writers = sertx::policy<...>;    // the writers' policy on this backend
//     static constexpr bool writers_collide; // conflicts are retried (PostgreSQL), rather than
//                                            // waited out before BEGIN (SQLite's one writer)
//     auto open(std::size_t pool_size) const;

#include "bank.hpp"
#include "catch.hpp"
#include "databases.hpp"

#include <cstddef>

namespace sertx::test::bank {

/// No error; every transfer committed, moved or refused; every read saw the
/// total and no negative balance; money conserved; the log explains every
/// balance, one row per transfer that moved money; no transfer given up.
inline void check_invariants(const workload& w, const outcome& o) {
    CHECK(o.errors == 0);
    CHECK(o.first_error.empty());
    CHECK(o.transfers + o.refused == static_cast<long long>(w.writers) * w.transfers_per_writer);
    CHECK(o.reads > 0);
    CHECK(o.bad_reads == 0);
    CHECK(o.final_total == w.total());
    CHECK(o.final_min >= 0);
    CHECK(o.logged == o.transfers);
    CHECK(o.mismatched == 0);
    CHECK(o.stats.give_ups == 0);
}

}  // namespace sertx::test::bank

/// Registers the bank case for one backend; its test file calls it once:
/// SERTX_BANK_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_BANK_CASES(Fixture, backend_tag)                                                                         \
    TEMPLATE_TEST_CASE("concurrent read-check-write transfers conserve money, with every read consistent",             \
                       backend_tag "[concurrency]", Fixture) {                                                         \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        const TestType fixture;                                                                                        \
        constexpr ::sertx::test::bank::workload w = TestType::load;                                                    \
        auto db = fixture.open(static_cast<std::size_t>(w.writers) + 1);                                               \
        ::sertx::test::bank::open_accounts(db, w);                                                                     \
        const auto o = ::sertx::test::bank::run<typename TestType::writers>(db, w);                                    \
        WARN(::sertx::test::bank::summary(TestType::name, w, o));                                                      \
        ::sertx::test::bank::check_invariants(w, o);                                                                   \
        /* the writers did collide: the test proves something */                                                       \
        if constexpr (TestType::writers_collide) CHECK(o.stats.total_retries() > 0);                                   \
    }

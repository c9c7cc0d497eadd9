// SPDX-License-Identifier: BSL-1.0
#pragma once
// What every run of the bank (bank.hpp) must show, on any backend.

#include "bank.hpp"
#include "catch.hpp"

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

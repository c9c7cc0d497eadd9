// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"
#include "support/taking_turns.hpp"

// SQLite's busy handler polls with growing sleeps, so a writer that keeps
// committing starves one that waits; the adapter queues its writers instead.
// How evenly they share is checked in writer_queue_soak_test.cpp (label
// soak): that bound is the scheduler's. Here, what holds on any scheduler.
TEST_CASE("SQLite writers of one database take turns, first come first served", "[sqlite3][concurrency]") {
    const auto r = sertx::test::run_hog_and_waiter();
    // Left to the busy handler, the waiter can wait out the hog's whole
    // limit (seen): 20 000 commits against the waiter's 100 is starvation,
    // not a scheduler's unevenness.
    INFO("the hog committed " << r.hog_when_waiter_done << " times while the waiter committed " << r.waiter_needs);
    CHECK(r.hog_when_waiter_done < r.hog_limit);
}

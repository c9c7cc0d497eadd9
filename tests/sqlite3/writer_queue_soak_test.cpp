// SPDX-License-Identifier: BSL-1.0
// How evenly SQLite's queued writers share the database (label soak, from
// the file name): a bound on the scheduler as much as on sertx.
#include "support/catch.hpp"
#include "support/taking_turns.hpp"

TEST_CASE("SQLite writers of one database take turns: a hog and a waiter commit about as often",
          "[sqlite3][concurrency][soak]") {
    const auto r = sertx::test::run_hog_and_waiter();
    // Taking turns, each commits about once per turn of the other, so the
    // hog commits about as often as the waiter meanwhile (measured: close to
    // 1:1). Within a factor of ten either way: the scheduler may let a
    // thread that was just woken run late (two cores shared by the test,
    // the other engineers' builds, sanitizers), and the hog may take up to
    // writer_queue::overtakes (8) turns in a row ahead of a waiter that has
    // not woken yet.
    // Left to SQLite's busy handler, one of them starves: seen both ways
    // (the hog committing 0 times, or the waiter waiting out its limit).
    INFO("the hog committed " << r.hog_when_waiter_done << " times while the waiter committed " << r.waiter_needs);
    CHECK(r.hog_when_waiter_done < r.hog_limit);
    CHECK(r.hog_when_waiter_done <= 10 * r.waiter_needs);
    CHECK(r.hog_when_waiter_done >= r.waiter_needs / 10);
}

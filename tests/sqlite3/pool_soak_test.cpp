// SPDX-License-Identifier: BSL-1.0
// How evenly the session pool hands out its sessions (label soak, from the
// file name): a bound on the scheduler as much as on sertx.

#include "support/catch.hpp"
#include "support/taking_turns.hpp"

TEST_CASE("a pool smaller than its threads hands its session to each thread in turn",
          "[sqlite3][concurrency][soak]") {
    const auto r = sertx::test::run_pool_turns();
    // With first-come-first-served hand-over, a thread that gives the
    // session back finds the others queued before it: runs of one. Up to
    // ten: when the other three threads are all descheduled (two cores,
    // four workers, plus whatever else runs) the only thread awake takes
    // the free session again; the scheduler's time slice (milliseconds)
    // against a transaction of tens of microseconds allows a few such runs,
    // not a thread keeping the session while the others wait.
    INFO("longest run of one thread: " << r.longest_run());
    CHECK(r.longest_run() <= 10);
    CHECK(r.exhausted == 0);
    CHECK(r.done == r.threads * r.each);
    CHECK(r.counted == r.done);
}

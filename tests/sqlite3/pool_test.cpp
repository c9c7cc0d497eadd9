// SPDX-License-Identifier: BSL-1.0
// The session pool both adapters share, on a real SQLite file.

#include "support/catch.hpp"
#include "support/taking_turns.hpp"

// A thread that gives a session back and comes straight back for another
// would win it again and again, and a waiting thread could wait out its
// acquire_timeout although the sessions were busy only with short work.
// How evenly the turns go is checked in pool_soak_test.cpp (label soak):
// that bound is the scheduler's. Here, what holds on any scheduler.
TEST_CASE("a pool smaller than its threads serves every thread in turn: none waits out acquire_timeout",
          "[sqlite3][concurrency]") {
    const auto r = sertx::test::run_pool_turns();
    INFO("longest run of one thread: " << r.longest_run());
    CHECK(r.exhausted == 0);
    CHECK(r.done == r.threads * r.each);
    CHECK(r.counted == r.done);
}

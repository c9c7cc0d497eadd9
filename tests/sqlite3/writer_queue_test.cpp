// SPDX-License-Identifier: BSL-1.0
#include "support/catch.hpp"
#include "support/taking_turns.hpp"

#include <sertx/soci/sqlite3.hpp>

#include <atomic>
#include <chrono>
#include <thread>

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

namespace {
using sertx::sqlite3::detail::writer_queue;
constexpr std::chrono::milliseconds long_wait{60'000};  // never reached unless a waiter is forgotten

/// Returns once `q` has a writer waiting.
void until_waited_on(writer_queue& q) {
    while (!q.waited_on()) std::this_thread::yield();
}
}  // namespace

TEST_CASE("A SQLite writer that keeps coming back takes at most writer_queue::overtakes turns ahead of a waiter",
          "[sqlite3][concurrency]") {
    writer_queue q;
    REQUIRE(q.enter(long_wait));
    std::atomic<bool> waiter_had_turn{false};
    std::thread waiter([&] {
        REQUIRE(q.enter(long_wait));
        waiter_had_turn = true;
        q.leave();
    });
    until_waited_on(q);
    // The hog leaves and comes straight back, as a thread committing in a
    // loop does; however late the waiter is scheduled, its turn comes.
    unsigned ahead = 0;
    for (;;) {
        q.leave();
        REQUIRE(q.enter(long_wait));
        if (waiter_had_turn) break;
        ++ahead;
    }
    q.leave();
    waiter.join();
    CHECK(ahead <= writer_queue::overtakes);
}

TEST_CASE("A SQLite writer that leaves while another waits lets it in, though it does not come back",
          "[sqlite3][concurrency]") {
    writer_queue q;
    REQUIRE(q.enter(long_wait));
    std::atomic<bool> entered{false};
    std::thread waiter([&] {
        entered = q.enter(long_wait);
        if (entered) q.leave();
    });
    until_waited_on(q);
    q.leave();  // woken, not handed the turn: it takes the turn itself
    waiter.join();
    CHECK(entered);
}

TEST_CASE("A SQLite writer that waits out its timeout leaves the queue, and the next writer still gets the turn",
          "[sqlite3][concurrency]") {
    writer_queue q;
    REQUIRE(q.enter(long_wait));
    CHECK_FALSE(q.enter(std::chrono::milliseconds(1)));  // the holder is still in
    CHECK_FALSE(q.waited_on());
    std::atomic<bool> entered{false};
    std::thread waiter([&] {
        entered = q.enter(long_wait);
        if (entered) q.leave();
    });
    until_waited_on(q);
    q.leave();
    waiter.join();
    CHECK(entered);
}

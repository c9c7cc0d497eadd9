// SPDX-License-Identifier: BSL-1.0
#pragma once
// Waiting for an event rather than for a time: a test that needs something
// to have happened (a proxy's counter, a number of commits, a retry seen)
// goes on as soon as it has, and fails clearly when it never does, instead
// of sleeping a guess that is too long on a fast machine and too short on a
// loaded one.

#include <chrono>
#include <thread>

namespace sertx::test {

/// Polls `happened` every `poll` until it returns true (then true) or until
/// `limit` has passed (then false, after one last look). Use the result in a
/// REQUIRE, with an INFO saying what was awaited.
template <class Predicate, class Rep, class Period>
bool wait_until(Predicate happened, std::chrono::duration<Rep, Period> limit,
                std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!happened()) {
        if (std::chrono::steady_clock::now() >= give_up) return happened();
        std::this_thread::sleep_for(poll);
    }
    return true;
}

}  // namespace sertx::test

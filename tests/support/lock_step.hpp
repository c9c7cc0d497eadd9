// SPDX-License-Identifier: BSL-1.0
#pragma once
// Makes the first attempts of several transaction bodies really overlap: each
// body joins a lock_step and calls step() at the same points ("both read",
// "both wrote"), so no body can finish before the others have reached the
// same point.
//
//     sertx::test::lock_step steps(2);
//     ... in each body:  auto me = steps.join(tx);  read...;  me.step();  write...;  me.step();
//
// Only first attempts take part: a re-run body would wait for partners that
// have finished. A first attempt that ends, by returning or by an exception
// (the conflict the test provokes may abort it half-way), leaves the barrier,
// so its partners never wait for it.

#include <barrier>
#include <cstddef>
#include <exception>
#include <thread>
#include <utility>

namespace sertx::test {

class lock_step {
public:
    explicit lock_step(std::ptrdiff_t parties) : barrier_(parties) {}
    lock_step(const lock_step&) = delete;
    lock_step& operator=(const lock_step&) = delete;

    /// One body's place in the lock step, for the length of its attempt.
    class party {
    public:
        party(lock_step& steps, unsigned attempt) noexcept : steps_(attempt == 1 ? &steps : nullptr) {}
        party(const party&) = delete;
        party& operator=(const party&) = delete;
        ~party() {
            if (steps_) steps_->barrier_.arrive_and_drop();
        }
        /// Waits until every party still taking part has reached its step().
        void step() {
            if (steps_) steps_->barrier_.arrive_and_wait();
        }

    private:
        lock_step* steps_;
    };

    template <class Tx>
    party join(const Tx& tx) noexcept {
        return party(*this, tx.attempt());
    }

private:
    std::barrier<> barrier_;
};

/// Runs `a()` and `b()` on two threads and returns both values; an exception
/// from either is rethrown here, after both have finished.
template <class A, class B>
auto run_together(A&& a, B&& b) {
    std::exception_ptr failed_a, failed_b;
    decltype(a()) result_a{};
    decltype(b()) result_b{};
    std::thread ta([&] {
        try {
            result_a = a();
        } catch (...) {
            failed_a = std::current_exception();
        }
    });
    std::thread tb([&] {
        try {
            result_b = b();
        } catch (...) {
            failed_b = std::current_exception();
        }
    });
    ta.join();
    tb.join();
    if (failed_a) std::rethrow_exception(failed_a);
    if (failed_b) std::rethrow_exception(failed_b);
    return std::pair(std::move(result_a), std::move(result_b));
}

}  // namespace sertx::test

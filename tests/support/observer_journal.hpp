// SPDX-License-Identifier: BSL-1.0
#pragma once
// An observer that writes every hook it receives into one journal, as text,
// so that a test can compare what happened, in order, with what should have.
// transact makes a fresh observer per call, so the journal is shared (static).

#include <sertx/failure.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sertx::test {

class observer_journal {
public:
    static void add(std::string event) {
        std::lock_guard lock(mutex_);
        events_.push_back(std::move(event));
    }
    static void clear() {
        std::lock_guard lock(mutex_);
        events_.clear();
    }
    /// The events so far, oldest first; the journal is left empty.
    static std::vector<std::string> take() {
        std::lock_guard lock(mutex_);
        return std::exchange(events_, {});
    }

private:
    static inline std::mutex mutex_;
    static inline std::vector<std::string> events_;
};

/// "begin 1", "conflict serialization 1", "commit 2", "give_up busy 3", "notice <text>".
struct recording_observer {
    void on_begin(unsigned attempt) { observer_journal::add("begin " + std::to_string(attempt)); }
    void on_conflict(failure f, unsigned attempt, std::chrono::microseconds) {
        observer_journal::add("conflict " + std::string(to_string(f)) + " " + std::to_string(attempt));
    }
    void on_commit(unsigned attempts) { observer_journal::add("commit " + std::to_string(attempts)); }
    void on_give_up(failure f, unsigned attempts) {
        observer_journal::add("give_up " + std::string(to_string(f)) + " " + std::to_string(attempts));
    }
    void on_notice(std::string_view text) { observer_journal::add("notice " + std::string(text)); }
};

}  // namespace sertx::test

// SPDX-License-Identifier: BSL-1.0
#pragma once
// The live view of a run on stderr: a progress bar redrawn in place when
// stderr is a terminal, a plain line every second otherwise (a log, a CI
// job), so that the output is readable either way.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

namespace ledger {

/// What the view shows; read from the workers' counters and db.stats().
struct progress_figures {
    std::uint64_t transactions = 0;
    std::uint64_t conflicts_retried = 0;
    std::uint64_t payouts = 0;
    bool finishing = false;  ///< the workers stopped; the dispatcher pays out what they scheduled last
};

/// Thousands separated by commas: 1234567 -> "1,234,567".
template <std::integral T>
std::string grouped(T n) {
    const bool negative = n < 0;
    std::string digits = std::to_string(n), out = negative ? "-" : "";
    if (negative) digits.erase(0, 1);
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

class progress {
public:
    progress(std::chrono::seconds length, std::function<progress_figures()> read)
        : length_(length), read_(std::move(read)), terminal_(::isatty(STDERR_FILENO) == 1),
          started_(std::chrono::steady_clock::now()), thread_([this] { loop(); }) {}

    /// Stops the view and leaves the last figures on screen.
    ~progress() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
        draw();
        if (terminal_) std::fputc('\n', stderr);
    }
    progress(const progress&) = delete;
    progress& operator=(const progress&) = delete;

    /// Ends the bar's line so that a message printed now starts on its own.
    void interrupt() const {
        if (terminal_) std::fputc('\n', stderr);
        std::fflush(stderr);
    }

private:
    void loop() {
        const auto period = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, period, [this] { return stopping_; })) draw();
    }

    void draw() const {
        const progress_figures f = read_();
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        const double length = static_cast<double>(std::max<long long>(1, length_.count()));
        const double share = f.finishing ? 1.0 : std::min(1.0, elapsed / length);
        char when[32];
        std::snprintf(when, sizeof when, "%5.1fs/%llds", share * length, static_cast<long long>(length_.count()));
        const std::string figures = grouped(f.transactions) + " transactions  " + grouped(f.conflicts_retried) +
                                    " conflicts retried  " + grouped(f.payouts) + " payouts" +
                                    (f.finishing ? "  (paying out the last)" : "");
        if (terminal_) {
            constexpr int width = 24;
            const int done = static_cast<int>(share * width);
            std::string bar = "[" + std::string(static_cast<std::size_t>(done), '#') +
                              std::string(static_cast<std::size_t>(width - done), '.') + "]";
            std::fprintf(stderr, "\r\033[K  %s %s  %s", bar.c_str(), when, figures.c_str());
        } else {
            std::fprintf(stderr, "  progress %s  %s\n", when, figures.c_str());
        }
        std::fflush(stderr);
    }

    std::chrono::seconds length_;
    std::function<progress_figures()> read_;
    bool terminal_;
    std::chrono::steady_clock::time_point started_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once everything it reads is set
};

}  // namespace ledger

// SPDX-License-Identifier: BSL-1.0
#pragma once
// Load for the fault tests: writers running in the background while a test
// breaks things, and the soak (many writers for a bounded time, the bank
// checked at every read, the process's memory measured).

#include "keyed_bank.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <future>
#include <numeric>
#include <string>
#include <thread>

namespace sertx::test {

/// Writers running on another thread while the test breaks things.
class background_writers {
public:
    template <class Run>
    explicit background_writers(Run run) : done_(std::async(std::launch::async, std::move(run))) {}

    /// Tells the writers to stop and waits for them, at most `limit` (far
    /// beyond any policy's deadline): a writer still running then is hung.
    bool finish(std::atomic<bool>& stop, std::chrono::seconds limit = std::chrono::seconds(120)) {
        stop = true;
        return wait(limit);
    }
    /// Waits for the writers to finish their transfers.
    bool wait(std::chrono::seconds limit = std::chrono::seconds(120)) {
        return done_.wait_for(limit) == std::future_status::ready;
    }

private:
    std::future<void> done_;
};

/// The process's resident memory, from /proc/self/statm.
inline long long rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    long long pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

/// Sanitizers keep freed memory in quarantine: RSS then says nothing about leaks.
inline bool rss_is_meaningful() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return false;
#else
    return true;
#endif
#else
    return true;
#endif
}

/// Generous: the answers the workers keep and the database's caches grow a
/// little with the data; a leak per transaction grows without bound.
inline constexpr long long rss_growth_bound = 64LL << 20;

/// How long a soak runs: $SERTX_SOAK_SECONDS, else 20 s.
inline std::chrono::seconds soak_duration() {
    if (const char* v = std::getenv("SERTX_SOAK_SECONDS"); v && std::atoi(v) > 0) return std::chrono::seconds(std::atoi(v));
    return std::chrono::seconds(20);
}

struct soak_result {
    keyed_bank::verdict verdict;
    long long reads = 0;      ///< snapshots of every balance taken while the writers ran
    long long bad_reads = 0;  ///< snapshots whose total was off or with a negative balance
    std::size_t acknowledged = 0;
    std::size_t failed = 0;
    std::string failures;
    long long rss_after_warm_up = 0, rss_at_end = 0, rss_growth_bytes = 0;
    double seconds = 0;

    std::string summary() const {
        return std::to_string(acknowledged) + " transfers in " + std::to_string(static_cast<int>(seconds)) + " s (" +
               std::to_string(static_cast<long long>(acknowledged / std::max(seconds, 1.0))) + "/s), " +
               std::to_string(failed) + " failed, " + std::to_string(reads) + " consistent-snapshot checks (" +
               std::to_string(bad_reads) + " bad), " + std::to_string(verdict.checked) + " answers audited; RSS " +
               std::to_string(rss_after_warm_up >> 20) + " MiB after warm-up, " + std::to_string(rss_at_end >> 20) +
               " MiB at the end";
    }
};

/// `w.writers` keyed writers for soak_duration(), a reader checking every
/// balance all the while, RSS measured after the first quarter and at the end.
template <class Policy, class Db>
soak_result soak(Db& db, const keyed_bank::workload& w) {
    soak_result r;
    keyed_bank::answers seen;
    std::atomic<bool> stop{false};
    std::atomic<long long> reads{0}, bad_reads{0};
    const auto started = std::chrono::steady_clock::now();
    std::thread reader([&] {
        while (!stop.load()) {
            try {
                const auto b = bank::balances(db, w);
                const long long total = std::accumulate(b.begin(), b.end(), 0LL);
                ++reads;
                if (total != w.total() || *std::min_element(b.begin(), b.end()) < 0) ++bad_reads;
            } catch (const std::exception&) {
                ++bad_reads;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // leave the CPU to the writers
        }
    });
    background_writers writers([&] {
        keyed_bank::run_writers<Policy>(db, w, seen, stop, INT_MAX, [](int) { return keyed_bank::resolution::key; });
    });
    const auto total = soak_duration();
    std::this_thread::sleep_for(total / 4);
    r.rss_after_warm_up = rss_bytes();
    std::this_thread::sleep_for(total - total / 4);
    r.rss_at_end = rss_bytes();
    const bool finished = writers.finish(stop);
    reader.join();
    if (!finished) throw std::runtime_error("test: soak writers hung");
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    r.rss_growth_bytes = r.rss_at_end - r.rss_after_warm_up;
    r.reads = reads;
    r.bad_reads = bad_reads;
    r.acknowledged = seen.acknowledged();
    r.failed = seen.count(keyed_bank::answers::failed) + seen.count(keyed_bank::answers::unknown);
    r.failures = seen.failure_sample();
    r.verdict = keyed_bank::audit(db, w, seen);
    return r;
}

}  // namespace sertx::test

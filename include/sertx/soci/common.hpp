// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// What the SOCI adapters share: a pool of checked sessions, the lease that
/// returns a session to it (or discards a broken one), and the statements on
/// sertx's own tables, written once for both dialects.
///
/// SOCI's own `connection_pool` hands out dead connections (DESIGN §5), so
/// health and reconnection are done here: a session is checked when it is
/// taken from the pool, and a session whose connection failed is never put
/// back.

#include <sertx/failure.hpp>
#include <sertx/observe.hpp>
#include <sertx/soci/effect_statements.hpp>
#include <sertx/soci/migration_statements.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sertx::detail {

/// Lower-case hex of any bytes: keys are stored as hex text so that any byte
/// string (NUL included) is a valid key on every backend and in every tool.
inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

inline std::int64_t unix_micros_now() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Statements every SOCI connection runs the same way. `Connection` provides
/// `session()`, `execute(const char*)` and `static constexpr sql_dialect dialect`.
template <class Connection>
class soci_statements : public effect_statements<Connection>, public migration_statements<Connection> {
public:
    void savepoint(unsigned depth) { self().execute(("SAVEPOINT sertx_" + std::to_string(depth)).c_str()); }
    void release(unsigned depth) { self().execute(("RELEASE SAVEPOINT sertx_" + std::to_string(depth)).c_str()); }
    void rollback_to(unsigned depth) {
        self().execute(("ROLLBACK TO SAVEPOINT sertx_" + std::to_string(depth)).c_str());
    }

    bool key_committed(std::string_view key) {
        const std::string hex = to_hex(key);
        int found = 0;
        self().session() << "select count(*) from sertx_commit_log where key = :k", ::soci::use(hex),
            ::soci::into(found);
        return found != 0;
    }

    void record_key(std::string_view key) {
        const std::string hex = to_hex(key);
        const long long now = unix_micros_now();
        self().session() << "insert into sertx_commit_log(key, committed_at) values(:k, :t)", ::soci::use(hex),
            ::soci::use(now);
    }

private:
    Connection& self() { return static_cast<Connection&>(*this); }
};

/// A thread-safe pool of at most `size` connections, opened on demand.
/// `Connection` provides: `static std::unique_ptr<Connection> open(const
/// Config&, counters&)`, `bool healthy() noexcept` (checked when taken from
/// the pool) and `bool reusable() const noexcept` (false once its connection
/// failed).
template <class Connection, class Config>
class soci_pool : public std::enable_shared_from_this<soci_pool<Connection, Config>> {
public:
    soci_pool(Config config, std::size_t size, std::chrono::milliseconds acquire_timeout, std::string what)
        : config_(std::move(config)), size_(size), acquire_timeout_(acquire_timeout), what_(std::move(what)) {
        idle_.reserve(size_);  // so that give_back never allocates
    }

    /// A connection on loan; goes back to the pool, or is discarded when its
    /// connection failed, at the end of the lease.
    class lease {
    public:
        lease(soci_pool& pool, std::unique_ptr<Connection> c) noexcept : pool_(&pool), c_(std::move(c)) {}
        lease(lease&& other) noexcept : pool_(other.pool_), c_(std::move(other.c_)) {}
        lease& operator=(lease&&) = delete;
        ~lease() {
            if (c_) pool_->give_back(std::move(c_));
        }
        Connection& connection() noexcept { return *c_; }

    private:
        soci_pool* pool_;
        std::unique_ptr<Connection> c_;
    };

    /// Waits at most the acquire timeout, and never past `deadline`.
    lease acquire(std::chrono::steady_clock::time_point deadline) {
        const auto now = std::chrono::steady_clock::now();
        const auto limit = (deadline - now > acquire_timeout_) ? now + acquire_timeout_ : deadline;
        std::unique_lock lock(mutex_);
        if (!available_.wait_until(lock, limit, [&] { return !idle_.empty() || open_ < size_; }))
            throw pool_exhausted("sertx: all " + std::to_string(size_) + " sessions of " + what_ +
                                 " stayed in use for " + std::to_string(acquire_timeout_.count()) +
                                 " ms; raise pool_size or acquire_timeout, or shorten transactions.");
        while (!idle_.empty()) {
            std::unique_ptr<Connection> c = std::move(idle_.back());
            idle_.pop_back();
            lock.unlock();
            if (c->healthy()) return lease(*this, std::move(c));
            c.reset();  // its server went away while it was idle
            counters::add(counters_.sessions_discarded);
            lock.lock();
            --open_;
        }
        ++open_;
        lock.unlock();
        try {
            auto c = Connection::open(config_, counters_);
            counters::add(counters_.sessions_opened);
            return lease(*this, std::move(c));
        } catch (...) {
            lock.lock();
            --open_;
            available_.notify_one();
            throw;
        }
    }

    detail::counters& counters() noexcept { return counters_; }

private:
    void give_back(std::unique_ptr<Connection> c) noexcept {
        const bool keep = c->reusable();
        if (!keep) {
            c.reset();
            counters::add(counters_.sessions_discarded);
        }
        {
            std::lock_guard lock(mutex_);
            if (keep)
                idle_.push_back(std::move(c));
            else
                --open_;
        }
        available_.notify_one();
    }

    Config config_;
    std::size_t size_;
    std::chrono::milliseconds acquire_timeout_;
    std::string what_;
    detail::counters counters_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    std::size_t open_ = 0;
};

/// The database handle both adapters share: copies share one pool.
template <class Backend, class Connection, class Config>
class soci_database {
public:
    using backend = Backend;
    using connection_type = Connection;
    using session_type = ::soci::session;
    using pool_type = soci_pool<Connection, Config>;

    explicit soci_database(std::shared_ptr<pool_type> pool) : pool_(std::move(pool)) {}

    typename pool_type::lease acquire(std::chrono::steady_clock::time_point deadline) {
        return pool_->acquire(deadline);
    }
    sertx::stats stats() const { return pool_->counters().snapshot(); }
    detail::counters& counters() noexcept { return pool_->counters(); }
    const void* identity() const noexcept { return pool_.get(); }

    /// After a lost COMMIT: whether `key` is in the commit log, asked on a
    /// fresh session; empty when the database cannot be reached before
    /// `deadline` or `resolve_timeout`, whichever is sooner.
    std::optional<bool> key_committed_elsewhere(std::string_view key, std::chrono::steady_clock::time_point deadline) {
        return ask_until(deadline, [&](Connection& c) -> std::optional<bool> {
            c.begin(false, std::chrono::milliseconds{0});
            const bool found = c.key_committed(key);
            c.rollback();
            return found;
        });
    }

protected:
    /// Runs `question` on a pooled session until it answers, retrying lost
    /// connections with a short pause, for at most resolve_timeout.
    template <class Question>
    std::optional<bool> ask_until(std::chrono::steady_clock::time_point deadline, Question&& question) {
        const auto limit = std::min(deadline, std::chrono::steady_clock::now() + resolve_timeout);
        for (;;) {
            try {
                auto lease = acquire(limit);
                auto& c = lease.connection();
                try {
                    if (auto answer = question(c)) return answer;
                } catch (...) {
                    const failure f = c.classify(std::current_exception());
                    c.abandon(f);
                    if (!is_retryable(f)) return std::nullopt;
                }
            } catch (const connection_error&) {  // server still down: ask again until the limit
            } catch (const pool_exhausted&) {
            }
            if (std::chrono::steady_clock::now() + resolve_pause >= limit) return std::nullopt;
            std::this_thread::sleep_for(resolve_pause);
        }
    }

    static constexpr std::chrono::milliseconds resolve_timeout{30'000};
    static constexpr std::chrono::milliseconds resolve_pause{200};

    std::shared_ptr<pool_type> pool_;
};

}  // namespace sertx::detail

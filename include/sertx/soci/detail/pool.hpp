// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// What the SOCI adapters share: a pool of checked connections, the lease
/// that returns a connection to it (or discards a broken one), the database
/// handle over the pool, and what every SOCI connection does alike.
///
/// SOCI's own `connection_pool` hands out dead connections (DESIGN §5), so
/// health and reconnection are done here: a connection is checked when it is
/// taken from the pool, and one whose server connection failed is never put
/// back.

#include <sertx/adapter.hpp>
#include <sertx/failure.hpp>
#include <sertx/observe.hpp>

#include <soci/soci.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx::detail {

/// What every SOCI connection does alike, mixed into each adapter's
/// connection: savepoints, named by depth, and the hook the chaos injector
/// runs before each statement. `Connection` provides `session()` and
/// `execute(const char*)`.
template <class Connection>
class soci_connection {
public:
    void savepoint(unsigned depth) { self().execute(("SAVEPOINT sertx_" + std::to_string(depth)).c_str()); }
    void release(unsigned depth) { self().execute(("RELEASE SAVEPOINT sertx_" + std::to_string(depth)).c_str()); }
    void rollback_to(unsigned depth) {
        self().execute(("ROLLBACK TO SAVEPOINT sertx_" + std::to_string(depth)).c_str());
    }

    /// Calls `hook` before each statement sent through `session()`, with
    /// SOCI's query transformation (called once per statement: a one-time
    /// statement each time it runs, a prepared one when it is prepared); an
    /// exception it throws reaches the caller before the statement reaches
    /// the server. An empty hook removes it.
    void before_each_statement(std::function<void()> hook) {
        if (!hook) return self().session().set_query_transformation([](const std::string& query) { return query; });
        self().session().set_query_transformation([hook = std::move(hook)](const std::string& query) {
            hook();
            return query;
        });
    }

private:
    Connection& self() { return static_cast<Connection&>(*this); }
};

/// Objects kept with one session, at most one of each type, made on first
/// use (`sertx::prepared<T>`). The connection declares it after its session,
/// so that they go first: a prepared statement must not outlive its session.
class session_objects {
public:
    template <class T, class Session>
    T& get(Session& session) {
        for (auto& e : objects_)
            if (e.type == &type_tag<T>) return *static_cast<T*>(e.object.get());
        std::unique_ptr<void, void (*)(void*)> made(new T(session), [](void* p) { delete static_cast<T*>(p); });
        objects_.push_back({&type_tag<T>, std::move(made)});
        return *static_cast<T*>(objects_.back().object.get());
    }

    /// Destroys them all (in the reverse order of their making).
    void clear() noexcept {
        while (!objects_.empty()) objects_.pop_back();
    }

private:
    template <class T>
    static constexpr char type_tag = 0;  // its address names T
    struct entry {
        const void* type;
        std::unique_ptr<void, void (*)(void*)> object;
    };
    std::vector<entry> objects_;
};

/// Threads waiting for an `Item`, served first come, first served. A thread
/// that gives an item back while others wait hands it to the first of them
/// instead of releasing it: a releasing thread that comes straight back would
/// otherwise win again and again, and a waiter could starve until its
/// timeout (a pool smaller than its threads gave pool_exhausted within 5 s
/// while its sessions were busy every moment). Each waiter sleeps on its own
/// condition variable, on its own stack: a hand-over wakes one thread and
/// allocates nothing. Every call is made under the owner's mutex.
///
/// An owner may also `nudge` the first waiter instead of handing it an item:
/// the waiter then tries `take` itself and, when that gives nothing (another
/// thread was quicker), waits on, still first.
template <class Item>
class handoff_queue {
public:
    bool empty() const noexcept { return !first_; }

    /// Waits, releasing `lock` meanwhile, until an item is handed over or
    /// `limit` passes (then empty).
    std::optional<Item> wait(std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point limit) {
        return wait(lock, limit, [] { return std::optional<Item>(); });
    }

    /// As above; also, each time `nudge` wakes this waiter, calls `take()`
    /// (under the lock) and leaves the queue with the item it gives, if any.
    template <class Take>
    std::optional<Item> wait(std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point limit,
                             Take take) {
        waiter me;
        me.before = last_;
        (last_ ? last_->after : first_) = &me;
        last_ = &me;
        for (;;) {
            // A nudge that comes as `limit` passes is still seen: the wait
            // returns what the predicate says once it holds the lock again.
            if (!me.wake.wait_until(lock, limit, [&] { return me.item.has_value() || me.nudged; })) {
                unlink(me);
                return std::nullopt;
            }
            if (me.item) return std::move(me.item);
            me.nudged = false;
            if (std::optional<Item> taken = take()) {
                unlink(me);
                return taken;
            }
        }
    }

    /// Gives `item` to the first waiter; the queue must not be empty.
    void hand_over(Item item) noexcept {
        waiter& next = *first_;
        unlink(next);
        next.item.emplace(std::move(item));
        next.wake.notify_one();  // under the lock: `next` lives until its owner takes the lock again
    }

    /// Wakes the first waiter to try `take`; the queue must not be empty.
    void nudge() noexcept {
        if (first_->nudged) return;  // awake already
        first_->nudged = true;
        first_->wake.notify_one();
    }

private:
    struct waiter {
        std::condition_variable wake;
        std::optional<Item> item;
        bool nudged = false;
        waiter* before = nullptr;
        waiter* after = nullptr;
    };
    void unlink(waiter& w) noexcept {
        (w.before ? w.before->after : first_) = w.after;
        (w.after ? w.after->before : last_) = w.before;
    }
    waiter* first_ = nullptr;
    waiter* last_ = nullptr;
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

    /// What the pool's connections are opened with.
    const Config& config() const noexcept { return config_; }

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

    /// Waits at most the acquire timeout, and never past `deadline`; waiters
    /// are served in turn.
    lease acquire(std::chrono::steady_clock::time_point deadline) {
        const auto now = std::chrono::steady_clock::now();
        const auto limit = (deadline - now > acquire_timeout_) ? now + acquire_timeout_ : deadline;
        std::unique_lock lock(mutex_);
        std::unique_ptr<Connection> c;  // null: a free place, to open a session in
        if (!idle_.empty()) {           // (only when nobody waits: give_back hands over first)
            c = std::move(idle_.back());
            idle_.pop_back();
        } else if (open_ < size_) {
            ++open_;
        } else if (auto given = waiting_.wait(lock, limit)) {
            c = std::move(*given);
        } else {
            throw pool_exhausted("sertx: all " + std::to_string(size_) + " sessions of " + what_ +
                                 " stayed in use for " + std::to_string(acquire_timeout_.count()) +
                                 " ms; raise pool_size or acquire_timeout, or shorten transactions.");
        }
        lock.unlock();
        if (c && c->healthy()) return lease(*this, std::move(c));
        if (c) {  // its server went away while it was idle: open another in its place
            c.reset();
            sertx::counters::add(counters_.sessions_discarded);
        }
        return open_session();
    }

    sertx::counters& counters() noexcept { return counters_; }

private:
    /// Opens a session in a place already counted in open_.
    lease open_session() {
        try {
            auto c = Connection::open(config_, counters_);
            sertx::counters::add(counters_.sessions_opened);
            return lease(*this, std::move(c));
        } catch (...) {
            std::lock_guard lock(mutex_);
            free_place();
            throw;
        }
    }

    /// A counted place fell free: the first waiter opens a session in it.
    void free_place() noexcept {
        if (waiting_.empty())
            --open_;
        else
            waiting_.hand_over(nullptr);
    }

    void give_back(std::unique_ptr<Connection> c) noexcept {
        if (!c->reusable()) {
            c.reset();
            sertx::counters::add(counters_.sessions_discarded);
        }
        std::lock_guard lock(mutex_);
        if (!c)
            free_place();
        else if (!waiting_.empty())
            waiting_.hand_over(std::move(c));
        else
            idle_.push_back(std::move(c));
    }

    Config config_;
    std::size_t size_;
    std::chrono::milliseconds acquire_timeout_;
    std::string what_;
    sertx::counters counters_;
    std::mutex mutex_;
    handoff_queue<std::unique_ptr<Connection>> waiting_;
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
    sertx::counters& counters() noexcept { return pool_->counters(); }
    const void* identity() const noexcept { return pool_.get(); }

    /// After a lost COMMIT: the attempt that wrote `key` into the commit log
    /// (an empty inner optional: no attempt did), asked on a fresh session;
    /// empty when the database cannot be reached before `deadline` or
    /// `resolve_timeout`, whichever is sooner.
    std::optional<std::optional<committed_key>> key_committed_elsewhere(
        std::string_view key, std::chrono::steady_clock::time_point deadline) {
        return ask_until(deadline, [&](Connection& c) -> std::optional<std::optional<committed_key>> {
            c.begin(transaction_start{access_mode::read_only_deferrable});
            std::optional<committed_key> written = c.journal().key_committed(key);
            c.rollback();
            return written;
        });
    }

protected:
    /// Runs `question` on a pooled session until it answers, retrying lost
    /// connections with a short pause, for at most resolve_timeout.
    template <class Question>
    auto ask_until(std::chrono::steady_clock::time_point deadline, Question&& question)
        -> std::invoke_result_t<Question&, Connection&> {
        const auto patience = std::chrono::steady_clock::now() + resolve_timeout;
        const auto limit = deadline < patience ? deadline : patience;
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

/// The one way both adapters open a database: a pool of at most `size`
/// connections, one of them opened and checked at once, so that a wrong
/// connection string, a server that is down or a weak setting fails here.
template <class Database, class Config>
Database open_database(Config config, std::size_t size, std::chrono::milliseconds acquire_timeout,
                       std::string what) {
    Database db(std::make_shared<typename Database::pool_type>(std::move(config), size, acquire_timeout,
                                                               std::move(what)));
    db.acquire(std::chrono::steady_clock::time_point::max());
    return db;
}

}  // namespace sertx::detail


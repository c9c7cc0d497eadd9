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
///
/// The templates here are instantiated with each adapter's own types, once
/// per program with SERTX_SEPARATE_COMPILATION: their heavy members are
/// defined out of the class (impl/pool.ipp), and an adapter names its
/// instantiations with SERTX_SOCI_ADAPTER_TEMPLATES below, in its header
/// (`extern template`) and in its .ipp (`template`). A member defined inside
/// a class is inline, and GCC instantiates it in every unit that calls it
/// even under `extern template`: keep only one-liners there.

#include <sertx/adapter.hpp>
#include <sertx/detail/config.hpp>
#include <sertx/observe.hpp>

#include <soci/soci.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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
    void savepoint(unsigned depth);
    void release(unsigned depth);
    void rollback_to(unsigned depth);

    /// Calls `hook` before each statement sent through `session()`, with
    /// SOCI's query transformation (called once per statement: a one-time
    /// statement each time it runs, a prepared one when it is prepared); an
    /// exception it throws reaches the caller before the statement reaches
    /// the server. An empty hook removes it.
    void before_each_statement(std::function<void()> hook);

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
    std::optional<Item> wait(std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point limit);

    /// As above; also, each time `nudge` wakes this waiter, calls `take()`
    /// (under the lock) and leaves the queue with the item it gives, if any.
    template <class Take>
    std::optional<Item> wait(std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point limit,
                             Take take);

    /// Gives `item` to the first waiter; the queue must not be empty.
    void hand_over(Item item) noexcept;

    /// Wakes the first waiter to try `take`; the queue must not be empty.
    void nudge() noexcept;

private:
    struct waiter;  // defined with the members that use it: its condition variable stays out of this header
    void unlink(waiter& w) noexcept;
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
    lease acquire(std::chrono::steady_clock::time_point deadline);

    sertx::counters& counters() noexcept { return counters_; }

private:
    /// Opens a session in a place already counted in open_.
    lease open_session();
    /// A counted place fell free: the first waiter opens a session in it.
    void free_place() noexcept;
    void give_back(std::unique_ptr<Connection> c) noexcept;

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
        std::string_view key, std::chrono::steady_clock::time_point deadline);

protected:
    /// Runs `question` on a pooled session until it answers, retrying lost
    /// connections with a short pause, for at most resolve_timeout.
    /// (Defined in impl/pool.ipp: call it from an adapter's .ipp.)
    template <class Question>
    auto ask_until(std::chrono::steady_clock::time_point deadline, Question&& question)
        -> std::invoke_result_t<Question&, Connection&>;

    static constexpr std::chrono::milliseconds resolve_timeout{30'000};
    static constexpr std::chrono::milliseconds resolve_pause{200};

    std::shared_ptr<pool_type> pool_;
};

/// The one way both adapters open a database: a pool of at most `size`
/// connections, one of them opened and checked at once, so that a wrong
/// connection string, a server that is down or a weak setting fails here.
/// (Defined in impl/pool.ipp: call it from an adapter's .ipp.)
template <class Database, class Config>
Database open_database(Config config, std::size_t size, std::chrono::milliseconds acquire_timeout,
                       std::string what);

}  // namespace sertx::detail


/// The shared templates an adapter instantiates with its own types, each
/// named once: `SERTX_SOCI_ADAPTER_TEMPLATES(extern template, ...)` in its
/// header under SERTX_SEPARATE_COMPILATION (no unit that includes the
/// header instantiates them) and `SERTX_SOCI_ADAPTER_TEMPLATES(template,
/// ...)` in its .ipp (the one unit that does), at global scope, after the
/// adapter's connection and with effect_statements.hpp and
/// migration_statements.hpp included. Types with a comma need a typedef.
#define SERTX_SOCI_ADAPTER_TEMPLATES(KEYWORDS, Backend, Connection, Config)                \
    KEYWORDS class sertx::detail::soci_connection<Connection>;                             \
    KEYWORDS class sertx::detail::handoff_queue<std::unique_ptr<Connection>>;              \
    KEYWORDS class sertx::detail::soci_pool<Connection, Config>;                           \
    KEYWORDS class sertx::detail::soci_database<Backend, Connection, Config>;              \
    KEYWORDS class sertx::detail::effect_statements<Connection>;                           \
    KEYWORDS class sertx::detail::migration_statements<Connection>

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/detail/impl/pool.ipp>
#endif

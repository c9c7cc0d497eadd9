// SPDX-License-Identifier: BSL-1.0
#pragma once
// The out-of-class members of soci/detail/pool.hpp: included by that header
// when header-only, else by the adapters' .ipp files (detail/config.hpp).

#include <sertx/soci/detail/pool.hpp>

#include <sertx/failure.hpp>

#include <condition_variable>
#include <thread>

namespace sertx::detail {

template <class Connection>
void soci_connection<Connection>::savepoint(unsigned depth) {
    self().execute(("SAVEPOINT sertx_" + std::to_string(depth)).c_str());
}

template <class Connection>
void soci_connection<Connection>::release(unsigned depth) {
    self().execute(("RELEASE SAVEPOINT sertx_" + std::to_string(depth)).c_str());
}

template <class Connection>
void soci_connection<Connection>::rollback_to(unsigned depth) {
    self().execute(("ROLLBACK TO SAVEPOINT sertx_" + std::to_string(depth)).c_str());
}

template <class Connection>
void soci_connection<Connection>::before_each_statement(std::function<void()> hook) {
    if (!hook) return self().session().set_query_transformation([](const std::string& query) { return query; });
    self().session().set_query_transformation([hook = std::move(hook)](const std::string& query) {
        hook();
        return query;
    });
}

template <class Item>
struct handoff_queue<Item>::waiter {
    std::condition_variable wake;
    std::optional<Item> item;
    bool nudged = false;
    waiter* before = nullptr;
    waiter* after = nullptr;
};

template <class Item>
std::optional<Item> handoff_queue<Item>::wait(std::unique_lock<std::mutex>& lock,
                                              std::chrono::steady_clock::time_point limit) {
    return wait(lock, limit, [] { return std::optional<Item>(); });
}

template <class Item>
template <class Take>
std::optional<Item> handoff_queue<Item>::wait(std::unique_lock<std::mutex>& lock,
                                              std::chrono::steady_clock::time_point limit, Take take) {
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

template <class Item>
void handoff_queue<Item>::hand_over(Item item) noexcept {
    waiter& next = *first_;
    unlink(next);
    next.item.emplace(std::move(item));
    next.wake.notify_one();  // under the lock: `next` lives until its owner takes the lock again
}

template <class Item>
void handoff_queue<Item>::nudge() noexcept {
    if (first_->nudged) return;  // awake already
    first_->nudged = true;
    first_->wake.notify_one();
}

template <class Item>
void handoff_queue<Item>::unlink(waiter& w) noexcept {
    (w.before ? w.before->after : first_) = w.after;
    (w.after ? w.after->before : last_) = w.before;
}

template <class Connection, class Config>
auto soci_pool<Connection, Config>::acquire(std::chrono::steady_clock::time_point deadline) -> lease {
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
        throw pool_exhausted("sertx: all " + std::to_string(size_) + " sessions of " + what_ + " stayed in use for " +
                             std::to_string(acquire_timeout_.count()) +
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

template <class Connection, class Config>
auto soci_pool<Connection, Config>::open_session() -> lease {
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

template <class Connection, class Config>
void soci_pool<Connection, Config>::free_place() noexcept {
    if (waiting_.empty())
        --open_;
    else
        waiting_.hand_over(nullptr);
}

template <class Connection, class Config>
void soci_pool<Connection, Config>::give_back(std::unique_ptr<Connection> c) noexcept {
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

template <class Backend, class Connection, class Config>
std::optional<std::optional<committed_key>> soci_database<Backend, Connection, Config>::key_committed_elsewhere(
    std::string_view key, std::chrono::steady_clock::time_point deadline) {
    return ask_until(deadline, [&](Connection& c) -> std::optional<std::optional<committed_key>> {
        c.begin(transaction_start{access_mode::read_only_deferrable});
        std::optional<committed_key> written = c.journal().key_committed(key);
        c.rollback();
        return written;
    });
}

template <class Backend, class Connection, class Config>
template <class Question>
auto soci_database<Backend, Connection, Config>::ask_until(std::chrono::steady_clock::time_point deadline,
                                                           Question&& question)
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

template <class Database, class Config>
Database open_database(Config config, std::size_t size, std::chrono::milliseconds acquire_timeout,
                       std::string what) {
    Database db(std::make_shared<typename Database::pool_type>(std::move(config), size, acquire_timeout,
                                                               std::move(what)));
    db.acquire(std::chrono::steady_clock::time_point::max());
    return db;
}

}  // namespace sertx::detail

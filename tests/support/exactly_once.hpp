// SPDX-License-Identifier: BSL-1.0
#pragma once
// What the exactly-once tests share across backends: operations that write
// down every real call, in-process stops for the dispatcher, and scenarios
// written and registered once (SERTX_EXACTLY_ONCE_CASES, at the end) and run
// on PostgreSQL and SQLite (tests/*/exactly_once_test.cpp). Each scenario
// takes the `db` of a fixture that the test file defines, deriving from
// sertx::test::sqlite3_backend or postgresql_backend (support/databases.hpp):
// a fresh, empty database with a pool of 8.

#include "catch.hpp"
#include "databases.hpp"

#include <sertx/sertx.hpp>

#include <soci/soci.h>

#include <atomic>
#include <barrier>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sertx::test {

/// Every real call of an operation, by payload; thread-safe.
class call_log {
public:
    void add(const std::string& payload) {
        std::lock_guard lock(mutex_);
        ++calls_[payload];
    }
    int calls(const std::string& payload) const {
        std::lock_guard lock(mutex_);
        auto it = calls_.find(payload);
        return it == calls_.end() ? 0 : it->second;
    }
    std::size_t distinct() const {
        std::lock_guard lock(mutex_);
        return calls_.size();
    }
    /// The largest number of calls any payload got.
    int most() const {
        std::lock_guard lock(mutex_);
        int m = 0;
        for (const auto& [_, n] : calls_) m = std::max(m, n);
        return m;
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, int> calls_;
};

/// An at-most-once operation (a payment broadcast, in the tests' story).
struct pay {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "pay";
    call_log* log;
    std::string operator()(const std::string& payload) const {
        log->add(payload);
        if (payload.rfind("fail", 0) == 0) throw std::runtime_error("card declined for " + payload);
        if (payload.rfind("doubt", 0) == 0) throw sertx::effect_in_doubt("the gateway timed out for " + payload);
        return "paid:" + payload;
    }
};

/// An idempotent operation (a cache refresh).
struct refresh {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "refresh";
    call_log* log;
    void operator()(const std::string& payload) const { log->add(payload); }
};

/// Thrown by `stop_at` to leave `dispatch` where a crash would.
struct dispatcher_stopped : std::runtime_error {
    dispatcher_stopped() : std::runtime_error("test: dispatcher stopped") {}
};

/// A probe that stops the dispatcher at `Point`, in this process: the
/// in-process stand-in for the crash tests' SIGKILL.
template <sertx::detail::dispatch_point Point>
struct stop_at {
    static void at(sertx::detail::dispatch_point p, std::string_view) {
        if (p == Point) throw dispatcher_stopped();
    }
};

template <class Db>
void exec(Db& db, const std::string& sql) {
    sertx::transact(db, [&](auto& tx) { tx.sql() << sql; });
}

template <class Db>
long long count(Db& db, const std::string& sql) {
    return sertx::transact(db, [&](auto& tx) {
        long long n = 0;
        tx.sql() << sql, soci::into(n);
        return n;
    });
}

/// Schedules `pay` (or `Op`) intents with these keys, payload = key, in one transaction.
template <class Op = pay, class Journal, class Db>
void schedule_all(Db& db, Journal& journal, const std::vector<std::string>& keys) {
    sertx::transact(db, [&](auto& tx) {
        for (const auto& k : keys) journal.template schedule<Op>(tx, k, k);
    });
}

// ---- scenarios -------------------------------------------------------------

template <class Db>
void install_twice(Db& db) {
    sertx::install(db);
    sertx::install(db);
    CHECK(count(db, "select count(*) from sertx_commit_log") == 0);
    CHECK(count(db, "select count(*) from sertx_effect") == 0);
    CHECK(count(db, "select count(*) from sertx_schema") == 0);
}

template <class Db>
void concurrent_installs(Db& db) {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::barrier start(4);
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            start.arrive_and_wait();
            try {
                sertx::install(db);
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++failures;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    CHECK(count(db, "select count(*) from sertx_effect") == 0);
}

template <class Db>
void keyed_body_commits_once(Db& db) {
    sertx::install(db);
    exec(db, "create table t (n integer)");
    int runs = 0;
    auto body = [&](auto& tx) {
        ++runs;
        tx.sql() << "insert into t (n) values (1)";
        return 41;
    };
    const std::optional<int> first = sertx::transact(db, sertx::idempotency_key{"transfer-42"}, body);
    const std::optional<int> again = sertx::transact(db, sertx::idempotency_key{"transfer-42"}, body);
    CHECK(first == 41);
    CHECK_FALSE(again.has_value());
    CHECK(runs == 1);
    CHECK(count(db, "select count(*) from t") == 1);

    const bool ran = sertx::transact(db, sertx::idempotency_key{"void-1"},
                                     [&](auto& tx) { tx.sql() << "insert into t (n) values (2)"; });
    const bool ran_again = sertx::transact(db, sertx::idempotency_key{"void-1"},
                                           [&](auto& tx) { tx.sql() << "insert into t (n) values (2)"; });
    CHECK(ran);
    CHECK_FALSE(ran_again);
    CHECK(count(db, "select count(*) from t where n = 2") == 1);
}

template <class Db>
void keyed_body_that_throws_leaves_no_key(Db& db) {
    sertx::install(db);
    exec(db, "create table t (n integer)");
    CHECK_THROWS_AS(sertx::transact(db, sertx::idempotency_key{"k"},
                                    [&](auto& tx) -> int {
                                        tx.sql() << "insert into t (n) values (1)";
                                        throw std::logic_error("no");
                                    }),
                    std::logic_error);
    CHECK(count(db, "select count(*) from sertx_commit_log") == 0);
    CHECK(sertx::transact(db, sertx::idempotency_key{"k"}, [&](auto& tx) {
              tx.sql() << "insert into t (n) values (1)";
              return 1;
          }) == 1);
    CHECK(count(db, "select count(*) from t") == 1);
}

template <class Db>
void keys_are_any_bytes_within_a_limit(Db& db) {
    sertx::install(db);
    const std::string nul_a("k\0a", 3), nul_b("k\0b", 3), high("\xff\xfe'; drop table t; --", 22);
    for (const auto& k : {nul_a, nul_b, high})
        CHECK(sertx::transact(db, sertx::idempotency_key{k}, [](auto&) { return 1; }) == 1);
    for (const auto& k : {nul_a, nul_b, high})
        CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{k}, [](auto&) { return 1; }).has_value());
    CHECK(count(db, "select count(*) from sertx_commit_log") == 3);

    const std::string longest(sertx::idempotency_key::max_length, 'x');
    CHECK(sertx::transact(db, sertx::idempotency_key{longest}, [](auto&) { return 1; }) == 1);
    try {
        sertx::transact(db, sertx::idempotency_key{longest + "x"}, [](auto&) { return 1; });
        FAIL("a key over the limit was accepted");
    } catch (const sertx::error& e) {
        CHECK(std::string(e.what()).rfind("sertx: an idempotency_key is at most 256 bytes", 0) == 0);
    }
    CHECK_THROWS_AS(sertx::transact(db, sertx::idempotency_key{""}, [](auto&) { return 1; }), sertx::error);
}

/// Runs call(t) for t in [0, threads) on threads of their own, each a keyed
/// transact: exactly one gets the body's value, the others an empty answer,
/// and none an error.
template <class Call>
void one_value_the_rest_empty(int threads, Call call) {
    std::atomic<int> values{0}, empties{0}, errors{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            try {
                const std::optional<int> r = call(t);
                ++(r ? values : empties);
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++errors;
            }
        });
    for (auto& p : pool) p.join();
    REQUIRE(errors == 0);
    REQUIRE(values == 1);
    REQUIRE(empties == threads - 1);
}

/// 8 threads, one key, at once, `rounds` times: one commit per round. The
/// bodies write only rows of their own, so the only conflict is the key.
template <class Db>
void same_key_from_eight_threads(Db& db, int rounds) {
    sertx::install(db);
    exec(db, "create table applied (round integer not null, thread integer not null)");
    constexpr int threads = 8;
    for (int round = 0; round < rounds; ++round) {
        const std::string key = "round-" + std::to_string(round);
        std::barrier start(threads);
        one_value_the_rest_empty(threads, [&](int t) {
            start.arrive_and_wait();
            return sertx::transact(db, sertx::idempotency_key{key}, [&](auto& tx) {
                tx.sql() << "insert into applied (round, thread) values (:r, :t)", soci::use(round), soci::use(t);
                return t;
            });
        });
    }
    CHECK(count(db, "select count(*) from applied") == rounds);
    CHECK(count(db, "select count(distinct round) from applied") == rounds);
}

struct square {
    using effect = sertx::idempotent;
    int operator()(int x) const { return x * x; }
};
struct one_from_the_database {
    using effect = sertx::read_only;
    template <class Tx>
    int operator()(Tx& tx) const {
        int one = 0;
        tx.sql() << "select 1", soci::into(one);
        return one;
    }
};

template <class Db>
void perform_runs_repeatable_operations(Db& db) {
    const int r =
        sertx::transact(db, [](auto& tx) { return tx.perform(square{}, 7) + tx.perform(one_from_the_database{}); });
    CHECK(r == 50);
}

template <class Db>
void prune_forgets_old_keys_only(Db& db) {
    sertx::install(db);
    for (const char* k : {"old", "new"}) sertx::transact(db, sertx::idempotency_key{k}, [](auto&) {});
    // "old" committed two days ago, by the clock the log keeps.
    exec(db, "update sertx_commit_log set committed_at = committed_at - 172800000000 where key = '6f6c64'");
    CHECK(sertx::prune_commit_log(db, std::chrono::hours(24)) == 1);
    CHECK(sertx::transact(db, sertx::idempotency_key{"old"}, [](auto&) {}));        // forgotten: runs again
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"new"}, [](auto&) {}));  // kept
    CHECK_THROWS_AS(sertx::prune_commit_log(db, std::chrono::seconds(-1)), sertx::error);
}

/// A key reused for another request (its .request fingerprint differs) is
/// an error naming the key; the same request, or a call without one, gets
/// the usual empty answer.
template <class Db>
void fingerprints_tell_a_reused_key(Db& db) {
    sertx::install(db);
    exec(db, "create table t (n integer)");
    int runs = 0;
    auto body = [&](auto& tx) {
        ++runs;
        tx.sql() << "insert into t (n) values (1)";
        return 7;
    };
    CHECK(sertx::transact(db, sertx::idempotency_key{.value = "pay-9", .request = "to=alice;amount=5"}, body) == 7);
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{.value = "pay-9", .request = "to=alice;amount=5"}, body));
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{"pay-9"}, body));  // no fingerprint: nothing to compare
    try {
        sertx::transact(db, sertx::idempotency_key{.value = "pay-9", .request = "to=mallory;amount=500"}, body);
        FAIL("a reused key with another request returned");
    } catch (const sertx::idempotency_mismatch& e) {
        CHECK(std::string(e.what()).find("'pay-9'") != std::string::npos);
    }
    CHECK(runs == 1);
    CHECK(count(db, "select count(*) from t") == 1);
    const std::string too_long(sertx::idempotency_key::max_request_length + 1, 'r');
    CHECK_THROWS_AS(sertx::transact(db, sertx::idempotency_key{.value = "pay-10", .request = too_long}, body),
                    sertx::error);
}

/// A commit log made by a sertx from before request fingerprints gains the
/// column when install() runs again, and its keys still count.
template <class Db>
void install_upgrades_an_old_commit_log(Db& db) {
    exec(db, "create table sertx_commit_log (key text primary key, attempt text not null, committed_at bigint not null)");
    exec(db, "insert into sertx_commit_log (key, attempt, committed_at) values ('" + sertx::detail::to_hex("old") +
                 "', 'a', 1)");
    sertx::install(db);
    sertx::install(db);
    CHECK_FALSE(sertx::transact(db, sertx::idempotency_key{.value = "old", .request = "r"}, [](auto&) { return 1; }));
    CHECK(sertx::transact(db, sertx::idempotency_key{.value = "new", .request = "r"}, [](auto&) { return 1; }) == 1);
    CHECK_THROWS_AS(sertx::transact(db, sertx::idempotency_key{.value = "new", .request = "s"}, [](auto&) { return 1; }),
                    sertx::idempotency_mismatch);
}

/// 8 threads race one key with two different requests: one commit; the
/// callers with the winner's request get its value or empty, the others
/// idempotency_mismatch.
template <class Db>
void racing_requests_on_one_key(Db& db, int rounds) {
    sertx::install(db);
    exec(db, "create table applied (round integer not null, request integer not null)");
    constexpr int threads = 8;
    for (int round = 0; round < rounds; ++round) {
        const std::string key = "race-" + std::to_string(round);
        std::barrier start(threads);
        std::atomic<int> values{0}, empties{0}, mismatches{0}, errors{0};
        std::atomic<int> winner{-1};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                const int request = t % 2;
                try {
                    start.arrive_and_wait();
                    const auto r = sertx::transact(
                        db, sertx::idempotency_key{.value = key, .request = "request-" + std::to_string(request)},
                        [&](auto& tx) {
                            tx.sql() << "insert into applied (round, request) values (:r, :q)", soci::use(round),
                                soci::use(request);
                            return request;
                        });
                    if (r) winner = *r;
                    ++(r ? values : empties);
                } catch (const sertx::idempotency_mismatch&) {
                    ++mismatches;
                } catch (const std::exception& e) {
                    UNSCOPED_INFO(e.what());
                    ++errors;
                }
            });
        for (auto& p : pool) p.join();
        REQUIRE(errors == 0);
        REQUIRE(values == 1);
        CHECK(empties == threads / 2 - 1);
        CHECK(mismatches == threads / 2);
        CHECK(count(db, "select count(*) from applied where round = " + std::to_string(round)) == 1);
        CHECK(count(db, "select count(*) from applied where round = " + std::to_string(round) +
                            " and request = " + std::to_string(winner.load())) == 1);
    }
}

/// prune_effects removes settled effects older than asked, and nothing
/// pending, started or in doubt, however old.
template <class Db>
void prune_effects_keeps_everything_unsettled(Db& db) {
    sertx::install(db);
    sertx::effects journal(db);
    const std::vector<std::string> keys = {"pending", "started", "done", "failed", "in_doubt", "done-now"};
    schedule_all(db, journal, keys);
    for (const std::string state : {"started", "done", "failed", "in_doubt"})
        exec(db, "update sertx_effect set state = '" + state + "', settled_at = 1, scheduled_at = 1 where key = '" +
                     sertx::detail::to_hex(state) + "'");
    exec(db, "update sertx_effect set state = 'done', settled_at = scheduled_at where key = '" +
                 sertx::detail::to_hex("done-now") + "'");
    exec(db, "update sertx_effect set scheduled_at = 1 where key = '" + sertx::detail::to_hex("pending") + "'");
    CHECK(sertx::prune_effects(db, std::chrono::hours(1)) == 2);
    for (const std::string kept : {"pending", "started", "in_doubt", "done-now"}) CHECK(journal.find(kept).has_value());
    for (const std::string gone : {"done", "failed"}) CHECK_FALSE(journal.find(gone).has_value());
    CHECK(sertx::prune_effects(db, std::chrono::seconds(0)) == 1);  // done-now, settled before now
    CHECK(count(db, "select count(*) from sertx_effect") == 3);
    CHECK_THROWS_AS(sertx::prune_effects(db, std::chrono::seconds(-1)), sertx::error);
}

template <class Db>
void schedule_commits_with_the_transaction(Db& db) {
    sertx::install(db);
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) { CHECK(journal.template schedule<pay>(tx, "a", "payload-a")); });
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        journal.template schedule<pay>(tx, "b", "payload-b");
                                        throw std::logic_error("changed my mind");
                                    }),
                    std::logic_error);
    sertx::transact(db, [&](auto& tx) { CHECK_FALSE(journal.template schedule<pay>(tx, "a", "other payload")); });
    const auto pending = journal.pending();
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].key == "a");
    CHECK(pending[0].payload == "payload-a");  // the first schedule's, unchanged
    CHECK(pending[0].operation == "pay");
    CHECK(pending[0].effect == "at_most_once");
    CHECK(pending[0].state == sertx::effect_state::pending);
    CHECK(pending[0].scheduled_at.has_value());
    CHECK_FALSE(pending[0].started_at.has_value());
    CHECK_FALSE(journal.find("b").has_value());
}

/// An operation whose name holds what would end an SQL literal: the name
/// travels in COMMIT's batch as text, so it must arrive as itself.
struct awkwardly_named {
    using effect = sertx::idempotent;
    static constexpr std::string_view name = "it's a \\ name'; drop table sertx_effect; --";
    void operator()(const std::string&) const {}
};

/// schedule's result: never asked, the intent goes with COMMIT (the body's
/// own reads do not see it before); asked inside the body, it is written at
/// once and says whether the key was new; asked after the transaction, it
/// throws rather than guess.
template <class Db>
void schedule_is_written_with_commit_unless_asked(Db& db) {
    sertx::install(db);
    sertx::effects journal(db);
    const auto rows_in = [](auto& tx) {
        long long n = 0;
        tx.sql() << "select count(*) from sertx_effect", soci::into(n);
        return n;
    };
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<pay>(tx, "a", "first");
        CHECK(rows_in(tx) == 0);  // buffered
        journal.template schedule<pay>(tx, "a", "second in the same transaction");
        const sertx::scheduled b = journal.template schedule<pay>(tx, "b", "b");
        CHECK(rows_in(tx) == 0);
        const bool b_new = b;  // writes all three now
        CHECK(b_new);
        CHECK(rows_in(tx) == 2);
        CHECK(b);  // asked again: the same answer
    });
    CHECK(journal.find("a")->payload == "first");
    // Unasked, a key scheduled before changes nothing; asked, it says false.
    sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, "a", "unasked"); });
    sertx::transact(db, [&](auto& tx) {
        CHECK_FALSE(journal.template schedule<pay>(tx, "a", "asked"));
        bool c = journal.template schedule<pay>(tx, "c", "c");
        CHECK(c);
    });
    CHECK(journal.find("a")->payload == "first");
    CHECK(journal.pending().size() == 3);
    // Unasked and rolled back: no intent.
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        journal.template schedule<pay>(tx, "d", "d");
                                        throw std::logic_error("changed my mind");
                                    }),
                    std::logic_error);
    CHECK_FALSE(journal.find("d").has_value());
    // Asked after its transaction: committed or not, the answer was never read, so it throws.
    const sertx::scheduled late = sertx::transact(db, [&](auto& tx) { return journal.template schedule<pay>(tx, "e", "e"); });
    CHECK_THROWS_WITH(static_cast<bool>(late), has_text("asked after its transaction ended"));
    CHECK(journal.find("e")->state == sertx::effect_state::pending);
    std::optional<sertx::scheduled> rolled_back;
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        rolled_back = journal.template schedule<pay>(tx, "f", "f");
                                        throw std::logic_error("changed my mind");
                                    }),
                    std::logic_error);
    CHECK_THROWS_AS(static_cast<bool>(*rolled_back), sertx::error);
    // Asked inside: the answer stays true afterwards.
    const sertx::scheduled asked = sertx::transact(db, [&](auto& tx) {
        sertx::scheduled g = journal.template schedule<pay>(tx, "g", "g");
        CHECK(g);
        return g;
    });
    CHECK(asked);
    // Any bytes in the key and the payload, and a name with quotes, arrive as themselves.
    using namespace std::string_literals;
    const std::string key = "k'\\\0\"; x"s, payload = "p'\\\0\xff"s;
    sertx::transact(db, [&](auto& tx) { journal.template schedule<awkwardly_named>(tx, key, payload); });
    const std::optional<sertx::effect_record> odd = journal.find(key);
    REQUIRE(odd.has_value());
    CHECK(odd->payload == payload);
    CHECK(odd->operation == awkwardly_named::name);
    CHECK(odd->effect == "idempotent");
}

/// A nested<savepoint> that rolls back drops the intents scheduled inside
/// it, and only those.
template <class Db>
void schedule_in_a_savepoint_rolls_back_with_it(Db& db) {
    using inner = sertx::policy<sertx::nested<sertx::savepoint>>;
    sertx::install(db);
    sertx::effects journal(db);
    std::optional<sertx::scheduled> dropped;
    sertx::transact(db, [&](auto& tx) {
        journal.template schedule<pay>(tx, "outer-before", "o");
        try {
            sertx::transact<inner>(db, [&](auto& in) {
                dropped = journal.template schedule<pay>(in, "inner-dropped", "i");
                throw std::logic_error("inner gives up");
            });
        } catch (const std::logic_error&) {
        }
        sertx::transact<inner>(db, [&](auto& in) { journal.template schedule<pay>(in, "inner-kept", "i"); });
        journal.template schedule<pay>(tx, "outer-after", "o");
    });
    CHECK_THROWS_AS(static_cast<bool>(*dropped), sertx::error);
    CHECK_FALSE(journal.find("inner-dropped").has_value());
    for (const char* k : {"outer-before", "inner-kept", "outer-after"}) {
        INFO(k);
        CHECK(journal.find(k).has_value());
    }
}

template <class Db>
void dispatch_records_each_outcome(Db& db) {
    sertx::install(db);
    call_log log;
    sertx::effects journal(db);
    schedule_all(db, journal, {"ok-1", "fail-1", "doubt-1", "ok-2"});
    schedule_all<refresh>(db, journal, {"cache-1"});

    const sertx::dispatch_report r = journal.dispatch(pay{&log}, 10);
    CHECK(r.done == 2);
    CHECK(r.failed == 1);
    CHECK(r.in_doubt == 1);
    for (const char* k : {"ok-1", "fail-1", "doubt-1", "ok-2"}) CHECK(log.calls(k) == 1);
    CHECK(log.calls("cache-1") == 0);  // another operation's intent

    const auto ok = journal.find("ok-1");
    REQUIRE(ok);
    CHECK(ok->state == sertx::effect_state::done);
    CHECK(ok->result == "paid:ok-1");
    CHECK(ok->attempts == 1);
    CHECK(ok->dispatcher == "default");
    CHECK(ok->started_at.has_value());
    CHECK(ok->settled_at.has_value());
    const auto failed = journal.find("fail-1");
    REQUIRE(failed);
    CHECK(failed->state == sertx::effect_state::failed);
    CHECK(failed->error == "card declined for fail-1");
    const auto doubt = journal.in_doubt();
    REQUIRE(doubt.size() == 1);
    CHECK(doubt[0].key == "doubt-1");
    CHECK(doubt[0].error == "the gateway timed out for doubt-1");

    CHECK(journal.dispatch(pay{&log}, 10).claimed() == 0);  // nothing runs twice
    CHECK(journal.dispatch(refresh{&log}).done == 1);
    CHECK(log.calls("cache-1") == 1);
    CHECK(journal.pending().empty());
}

template <class Db>
void dispatch_stops_at_its_limit_oldest_first(Db& db) {
    sertx::install(db);
    call_log log;
    sertx::effects journal(db);
    for (const char* k : {"1", "2", "3", "4", "5"}) schedule_all(db, journal, {k});
    CHECK(journal.dispatch(pay{&log}, 2).done == 2);
    CHECK(log.calls("1") == 1);
    CHECK(log.calls("2") == 1);
    CHECK(journal.pending().size() == 3);
}

template <class Db>
void payloads_and_results_are_any_bytes_within_a_limit(Db& db) {
    sertx::install(db);
    sertx::effects journal(db);
    static constexpr char key_bytes[] = "\0key\xff", payload_bytes[] = "\0\x01\x02\xfe\xff' or 1=1 --";
    const std::string key(key_bytes, sizeof key_bytes - 1), payload(payload_bytes, sizeof payload_bytes - 1);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, key, payload); });
    call_log log;
    journal.dispatch(pay{&log});
    CHECK(log.calls(payload) == 1);
    const auto e = journal.find(key);
    REQUIRE(e);
    CHECK(e->key == key);
    CHECK(e->payload == payload);
    CHECK(e->result == "paid:" + payload);

    const std::string big(sertx::effect_limits::max_payload + 1, 'p');
    try {
        sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, "big", big); });
        FAIL("an oversized payload was accepted");
    } catch (const sertx::error& e) {
        CHECK(std::string(e.what()).rfind("sertx: an effect's payload is at most", 0) == 0);
    }
    CHECK_THROWS_AS(sertx::transact(db,
                                    [&](auto& tx) {
                                        journal.template schedule<pay>(
                                            tx, std::string(sertx::effect_limits::max_key + 1, 'k'), "p");
                                    }),
                    sertx::error);
    CHECK_THROWS_AS(sertx::transact(db, [&](auto& tx) { journal.template schedule<pay>(tx, "", "p"); }), sertx::error);
    CHECK_FALSE(journal.find("big").has_value());
}

/// Stops a dispatcher in this process at every point of its state machine,
/// then restarts: recover() and dispatch again.
template <class Db>
void recover_after_a_stop_at_each_point(Db& db) {
    using sertx::effect_state;
    using sertx::detail::dispatch_point;
    sertx::install(db);
    call_log log;
    auto stop_once = [&]<dispatch_point P, class Op>(const std::string& key, Op op) {
        sertx::effects<Db, stop_at<P>> stopping(db, "node-1");
        sertx::transact(db, [&](auto& tx) { stopping.template schedule<Op>(tx, key, key); });
        CHECK_THROWS_AS(stopping.dispatch(op, 1), dispatcher_stopped);
    };
    stop_once.template operator()<dispatch_point::started>("amo-started", pay{&log});
    stop_once.template operator()<dispatch_point::returned>("amo-returned", pay{&log});
    stop_once.template operator()<dispatch_point::settling>("amo-settling", pay{&log});
    stop_once.template operator()<dispatch_point::settled>("amo-settled", pay{&log});
    // Last: its claim rolls back, so it stays the oldest pending intent.
    stop_once.template operator()<dispatch_point::claiming>("amo-claiming", pay{&log});
    stop_once.template operator()<dispatch_point::started>("idem-started", refresh{&log});
    stop_once.template operator()<dispatch_point::returned>("idem-returned", refresh{&log});

    sertx::effects journal(db, "node-1");
    const sertx::recover_report rec = journal.recover();
    CHECK(rec.in_doubt == 3);
    CHECK(rec.requeued == 2);
    CHECK(journal.dispatch(pay{&log}).done == 1);  // amo-claiming: its claim had rolled back
    CHECK(journal.dispatch(refresh{&log}).done == 2);

    const std::map<std::string, std::pair<effect_state, int>> expected = {
        {"amo-claiming", {effect_state::done, 1}},     {"amo-started", {effect_state::in_doubt, 0}},
        {"amo-returned", {effect_state::in_doubt, 1}}, {"amo-settling", {effect_state::in_doubt, 1}},
        {"amo-settled", {effect_state::done, 1}},      {"idem-started", {effect_state::done, 1}},
        {"idem-returned", {effect_state::done, 2}},
    };
    for (const auto& [key, want] : expected) {
        INFO(key);
        const auto e = journal.find(key);
        REQUIRE(e);
        CHECK(e->state == want.first);
        CHECK(log.calls(key) == want.second);
    }
    const auto doubt = journal.in_doubt();
    REQUIRE(doubt.size() == 3);
    CHECK(doubt[0].error.find("dispatcher 'node-1' stopped") != std::string::npos);
}

template <class Db>
void recover_leaves_other_dispatchers_rows(Db& db) {
    sertx::install(db);
    call_log log;
    sertx::effects<Db, stop_at<sertx::detail::dispatch_point::started>> other(db, "node-2");
    schedule_all(db, other, {"theirs"});
    CHECK_THROWS_AS(other.dispatch(pay{&log}), dispatcher_stopped);

    sertx::effects mine(db, "node-1");
    const auto rec = mine.recover();
    CHECK(rec.in_doubt == 0);
    CHECK(rec.requeued == 0);
    CHECK(mine.find("theirs")->state == sertx::effect_state::started);
    CHECK(sertx::effects(db, "node-2").recover().in_doubt == 1);
}

template <class Db>
void resolve_settles_only_what_is_in_doubt(Db& db) {
    sertx::install(db);
    call_log log;
    sertx::effects journal(db);
    schedule_all(db, journal, {"doubt-1", "doubt-2", "ok-1"});
    journal.dispatch(pay{&log});
    REQUIRE(journal.in_doubt().size() == 2);

    journal.resolve("doubt-1", sertx::effect_state::done, "gateway shows charge ch_123", "alice");
    journal.resolve("doubt-2", sertx::effect_state::failed, "gateway has no charge for it");
    const auto one = journal.find("doubt-1");
    CHECK(one->state == sertx::effect_state::done);
    CHECK(one->resolved_by == "alice");
    CHECK(one->note == "gateway shows charge ch_123");
    CHECK(one->settled_at.has_value());
    const auto two = journal.find("doubt-2");
    CHECK(two->state == sertx::effect_state::failed);
    CHECK_FALSE(two->resolved_by.empty());  // the user running the test
    CHECK(journal.in_doubt().empty());

    auto refused = [&](std::string_view key, sertx::effect_state s, std::string_view note, std::string_view says) {
        try {
            journal.resolve(key, s, note, "bob");
            FAIL("resolve accepted " << key);
        } catch (const sertx::error& e) {
            const std::string what = e.what();
            CHECK(what.rfind("sertx:", 0) == 0);
            CHECK(what.find(says) != std::string::npos);
        }
    };
    refused("ok-1", sertx::effect_state::failed, "oops", "is done, not in_doubt");
    refused("doubt-1", sertx::effect_state::failed, "second thoughts", "is done, not in_doubt");
    refused("no-such", sertx::effect_state::done, "?", "no effect has the key 'no-such'");
    refused("doubt-2", sertx::effect_state::pending, "retry", "not pending");
    refused("doubt-2", sertx::effect_state::done, "", "non-empty resolution note");
    CHECK(journal.find("doubt-1")->resolved_by == "alice");
}

/// `dispatchers` threads, each with its own journal and session, drain
/// `effects` intents: each is called exactly once.
template <class Db>
void concurrent_dispatchers_call_each_once(Db& db, int dispatchers, int effects) {
    sertx::install(db);
    call_log log;
    sertx::effects journal(db);
    std::vector<std::string> keys;
    for (int i = 0; i < effects; ++i) keys.push_back("e" + std::to_string(i));
    for (std::size_t at = 0; at < keys.size(); at += 100)
        schedule_all(db, journal,
                     std::vector<std::string>(keys.begin() + at, keys.begin() + std::min(at + 100, keys.size())));
    std::barrier start(dispatchers);
    std::atomic<std::size_t> claimed{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> pool;
    for (int d = 0; d < dispatchers; ++d)
        pool.emplace_back([&, d] {
            sertx::effects mine(db, "worker-" + std::to_string(d));
            start.arrive_and_wait();
            try {
                for (;;) {
                    const auto r = mine.dispatch(pay{&log}, 25);
                    claimed += r.claimed();
                    if (r.claimed() == 0) break;
                }
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++errors;
            }
        });
    for (auto& t : pool) t.join();
    CHECK(errors == 0);
    CHECK(claimed == static_cast<std::size_t>(effects));
    CHECK(log.distinct() == static_cast<std::size_t>(effects));
    CHECK(log.most() == 1);
    CHECK(count(db, "select count(*) from sertx_effect where state = 'done'") == effects);
}

}  // namespace sertx::test

/// Registers the scenarios above for one backend; its test file calls it once:
/// SERTX_EXACTLY_ONCE_CASES(SQLite, "[sqlite3]") (see support/databases.hpp).
#define SERTX_EXACTLY_ONCE_CASES(Fixture, backend_tag)                                                                 \
    TEMPLATE_TEST_CASE("install creates sertx's tables and may be called again", backend_tag "[exactly_once]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::install_twice(fixture.db);                                                                      \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("concurrent installs all succeed", backend_tag "[exactly_once][concurrency]", Fixture) {        \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::concurrent_installs(fixture.db);                                                                \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a keyed body commits once and a repeat returns empty", backend_tag "[exactly_once]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::keyed_body_commits_once(fixture.db);                                                            \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a key reused for another request is an idempotency_mismatch", backend_tag "[exactly_once]",  \
                       Fixture) {                                                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::fingerprints_tell_a_reused_key(fixture.db);                                                     \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("install adds the request column to a commit log from before fingerprints",                 \
                       backend_tag "[exactly_once]", Fixture) {                                                        \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::install_upgrades_an_old_commit_log(fixture.db);                                                 \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("8 threads racing one key with two requests: one commit, the other request mismatches",       \
                       backend_tag "[exactly_once][concurrency]", Fixture) {                                           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::racing_requests_on_one_key(fixture.db, 10);                                                     \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("prune_effects removes old settled effects and nothing unsettled", backend_tag "[exactly_once]", \
                       Fixture) {                                                                                      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::prune_effects_keeps_everything_unsettled(fixture.db);                                           \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("a keyed body that throws leaves its key free", backend_tag "[exactly_once]", Fixture) {        \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::keyed_body_that_throws_leaves_no_key(fixture.db);                                               \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("idempotency keys are any bytes up to the limit", backend_tag "[exactly_once]", Fixture) {      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::keys_are_any_bytes_within_a_limit(fixture.db);                                                  \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("the same key from 8 threads at once applies once", backend_tag "[exactly_once][concurrency]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::same_key_from_eight_threads(fixture.db, 25);                                                    \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("prune_commit_log forgets only keys older than the age", backend_tag "[exactly_once]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::prune_forgets_old_keys_only(fixture.db);                                                        \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("tx.perform runs idempotent and read-only operations, handing over the handle when asked", backend_tag "[exactly_once]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::perform_runs_repeatable_operations(fixture.db);                                                 \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("an intent exists only if its transaction committed", backend_tag "[effects]", Fixture) {       \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::schedule_commits_with_the_transaction(fixture.db);                                              \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("schedule goes with COMMIT unless its result is asked, and never answers after it", backend_tag "[effects]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::schedule_is_written_with_commit_unless_asked(fixture.db);                                       \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("intents scheduled in a savepoint that rolls back are dropped with it", backend_tag "[effects]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::schedule_in_a_savepoint_rolls_back_with_it(fixture.db);                                         \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("dispatch records done, failed and in-doubt outcomes", backend_tag "[effects]", Fixture) {      \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::dispatch_records_each_outcome(fixture.db);                                                      \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("dispatch runs the oldest intents up to its limit", backend_tag "[effects]", Fixture) {         \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::dispatch_stops_at_its_limit_oldest_first(fixture.db);                                           \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("effect keys, payloads and results are any bytes up to the limit", backend_tag "[effects]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::payloads_and_results_are_any_bytes_within_a_limit(fixture.db);                                  \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("recover puts started at-most-once effects in doubt and re-runs idempotent ones", backend_tag "[effects]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::recover_after_a_stop_at_each_point(fixture.db);                                                 \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("recover leaves rows of other dispatchers alone", backend_tag "[effects]", Fixture) {           \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::recover_leaves_other_dispatchers_rows(fixture.db);                                              \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("resolve settles only in-doubt effects and records who and why", backend_tag "[effects]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::resolve_settles_only_what_is_in_doubt(fixture.db);                                              \
    }                                                                                                                  \
    TEMPLATE_TEST_CASE("four dispatcher threads call each of 400 effects once", backend_tag "[effects][concurrency]", Fixture) { \
        SERTX_REQUIRE_BACKEND(TestType);                                                                               \
        TestType fixture;                                                                                              \
        ::sertx::test::concurrent_dispatchers_call_each_once(fixture.db, 4, 400);                                      \
    }

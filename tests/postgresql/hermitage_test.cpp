// SPDX-License-Identifier: BSL-1.0
// Hermitage's anomalies (github.com/ept/hermitage) that SERIALIZABLE exists to
// stop, each run through sertx::transact by two threads whose first attempts
// are held in lock step, so that the two transactions really overlap. Each
// must end in a state that some serial order of the two would give, and the
// conflict PostgreSQL reported must show in db.stats(). Each is repeated, to
// show that the outcome is not luck of scheduling.

#include "support/catch.hpp"
#include "support/databases.hpp"
#include "support/lock_step.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>

#include <soci/postgresql/soci-postgresql.h>  // soci::postgresql, for the REPEATABLE READ session

#include <algorithm>
#include <cstdint>
#include <latch>
#include <string>
#include <utility>
#include <vector>

using sertx::test::lock_step;
using sertx::test::run_together;

namespace {

constexpr int repetitions = 10;

// A retry runs without the lock step, so a few attempts are plenty.
using hermitage = sertx::policy<sertx::max_attempts<10>, sertx::full_jitter<1'000, 10'000>>;

std::uint64_t conflicts(const sertx::stats& s) {
    return s.retries_of(sertx::failure::serialization) + s.retries_of(sertx::failure::deadlock);
}

sertx::postgresql::database open_with(const sertx::test::pg_database& pg, const char* schema) {
    auto db = sertx::postgresql::open(pg.conninfo(), {.pool_size = 2});
    sertx::transact(db, [&](auto& tx) { tx.sql() << schema; });
    return db;
}

template <class Db>
long long value_of(Db& db, const std::string& query) {
    return sertx::transact<sertx::policy<sertx::read_only>>(db, [&](auto& tx) {
        long long v = 0;
        tx.sql() << query, soci::into(v);
        return v;
    });
}

// The same bodies run by hand at REPEATABLE READ (snapshot isolation), on two
// plain SOCI sessions: what the lock step does without sertx.
struct snapshot_transaction {
    soci::session& session;
    soci::session& sql() { return session; }
    unsigned attempt() const { return 1; }
};

template <class Body>
auto at_repeatable_read(const std::string& conninfo, Body body) {
    soci::session session(soci::postgresql, conninfo);
    session << "begin isolation level repeatable read";
    snapshot_transaction tx{session};
    auto result = body(tx);
    session << "commit";
    return result;
}

// Write skew, the shape of G2-item and G2: each body reads what decides
// whether it may write (may_write), waits until both have read, then writes
// or refuses, and waits until both have written, so that neither commits
// before the other has written. The body returns whether it wrote.
template <class MayWrite, class Write>
auto read_check_write(lock_step& steps, MayWrite may_write, Write write) {
    return [&steps, may_write, write](auto& tx) {
        auto me = steps.join(tx);
        const bool allowed = may_write(tx);
        me.step();  // both have read
        if (!allowed) return false;
        write(tx);
        me.step();  // both have written; neither has committed
        return true;
    };
}

// G2-item: two withdrawals of 80, each allowed while the two accounts
// together hold at least 80; each reads both and debits its own account.
auto withdraw_80(lock_step& steps, int account) {
    return read_check_write(
        steps,
        [](auto& tx) {
            long long x = 0, y = 0;
            tx.sql() << "select balance from account where id = 1", soci::into(x);
            tx.sql() << "select balance from account where id = 2", soci::into(y);
            return x + y >= 80;
        },
        [account](auto& tx) {
            tx.sql() << "update account set balance = balance - 80 where id = :id", soci::use(account);
        });
}

// G2: a booking of room 1, slot 9, allowed while nobody has booked it.
auto book_slot_9(lock_step& steps, std::string who) {
    return read_check_write(
        steps,
        [](auto& tx) {
            long long taken = 0;
            tx.sql() << "select count(*) from booking where room = 1 and slot = 9", soci::into(taken);
            return taken == 0;
        },
        [who](auto& tx) { tx.sql() << "insert into booking(room, slot, who) values (1, 9, :who)", soci::use(who); });
}

// G2 on a count: a doctor going off call, allowed while two are on call.
auto go_off_call(lock_step& steps, std::string name) {
    return read_check_write(
        steps,
        [](auto& tx) {
            long long on_call = 0;
            tx.sql() << "select count(*) from doctor where on_call", soci::into(on_call);
            return on_call >= 2;
        },
        [name](auto& tx) { tx.sql() << "update doctor set on_call = false where name = :n", soci::use(name); });
}

// P4: an increment by read, then write; returns the value it read.
auto increment(lock_step& steps) {
    return [&steps](auto& tx) {
        auto me = steps.join(tx);
        long long seen = 0;
        tx.sql() << "select value from counter where id = 1", soci::into(seen);
        me.step();  // both have read 0
        // No second step: the second UPDATE waits for the first one's row
        // lock, which is released only when the first commits.
        const long long next = seen + 1;
        tx.sql() << "update counter set value = :v where id = 1", soci::use(next);
        return seen;
    };
}

// One repetition: `reset`, then body_a and body_b (in lock step) through
// transact<hermitage> on two threads. PostgreSQL must have reported a
// conflict. Returns what the two bodies returned.
template <class BodyA, class BodyB>
auto overlapping(sertx::postgresql::database& db, const char* reset, BodyA body_a, BodyB body_b) {
    sertx::transact(db, [&](auto& tx) { tx.sql() << reset; });
    const auto before = db.stats();
    const auto results = run_together([&] { return sertx::transact<hermitage>(db, body_a); },
                                      [&] { return sertx::transact<hermitage>(db, body_b); });
    CHECK(conflicts(db.stats()) > conflicts(before));
    return results;
}

constexpr const char* two_accounts =
    "create table account(id integer primary key, balance bigint not null)";
constexpr const char* two_accounts_of_50 = "delete from account; insert into account values (1, 50), (2, 50)";

}  // namespace

TEST_CASE("write skew on two items (G2-item) is stopped: of two overlapping withdrawals one is re-run and refused",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with(pg, two_accounts);
    for (int i = 0; i < repetitions; ++i) {
        lock_step steps(2);
        const auto [first, second] = overlapping(db, two_accounts_of_50, withdraw_80(steps, 1), withdraw_80(steps, 2));
        CHECK(first != second);  // serial: the second sees 20 left and refuses
        CHECK(value_of(db, "select sum(balance) from account") == 20);
    }
}

TEST_CASE("the same overlapping withdrawals at REPEATABLE READ both commit and overdraw (the lock step is real)",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with(pg, two_accounts);
    sertx::transact(db, [](auto& tx) { tx.sql() << two_accounts_of_50; });
    lock_step steps(2);
    const auto [first, second] = run_together([&] { return at_repeatable_read(pg.conninfo(), withdraw_80(steps, 1)); },
                                              [&] { return at_repeatable_read(pg.conninfo(), withdraw_80(steps, 2)); });
    CHECK(first);
    CHECK(second);
    CHECK(value_of(db, "select sum(balance) from account") == -60);
}

TEST_CASE("write skew on a predicate (G2) is stopped: two overlapping bookings of one free slot leave one booking",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    // No unique constraint: only serializability keeps the slot single.
    auto db = open_with(pg, "create table booking(room integer not null, slot integer not null, who text not null)");
    for (int i = 0; i < repetitions; ++i) {
        lock_step steps(2);
        const auto [alice, bob] =
            overlapping(db, "delete from booking", book_slot_9(steps, "alice"), book_slot_9(steps, "bob"));
        CHECK(alice != bob);
        CHECK(value_of(db, "select count(*) from booking where room = 1 and slot = 9") == 1);
    }
}

TEST_CASE("write skew on a predicate count (G2) is stopped: of two doctors going off call at once, one stays on call",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with(pg, "create table doctor(name text primary key, on_call boolean not null)");
    for (int i = 0; i < repetitions; ++i) {
        lock_step steps(2);
        const auto [alice, bob] =
            overlapping(db, "delete from doctor; insert into doctor values ('alice', true), ('bob', true)",
                        go_off_call(steps, "alice"), go_off_call(steps, "bob"));
        CHECK(alice != bob);
        CHECK(value_of(db, "select count(*) from doctor where on_call") == 1);
    }
}

TEST_CASE("a lost update (P4) is stopped: two overlapping read-then-write increments both count",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    auto db = open_with(pg, "create table counter(id integer primary key, value bigint not null)");
    for (int i = 0; i < repetitions; ++i) {
        lock_step steps(2);
        const auto [first, second] = overlapping(db, "delete from counter; insert into counter values (1, 0)",
                                                 increment(steps), increment(steps));
        CHECK(std::min(first, second) == 0);
        CHECK(std::max(first, second) == 1);  // serial: the second read the first's write
        CHECK(value_of(db, "select value from counter where id = 1") == 2);
    }
}

TEST_CASE("read skew (G-single) is stopped: a body that read x before and y after another commit is re-run",
          "[postgresql][concurrency][hermitage]") {
    SERTX_REQUIRE_PG(pg);
    // x (id 1) + y (id 2) is always 30. The mover shifts 2 from y to x; the
    // fixer reads x, then y, and writes y = 30 - x. Fed a stale x and a fresh
    // y (read skew) it would leave x + y = 32.
    auto db = open_with(pg, "create table test(id integer primary key, value bigint not null)");
    for (int i = 0; i < repetitions; ++i) {
        sertx::transact(db, [](auto& tx) { tx.sql() << "delete from test; insert into test values (1, 10), (2, 20)"; });
        const auto before = db.stats();
        lock_step steps(2);
        std::latch mover_committed(1);
        std::vector<long long> sums_seen;
        auto fixer = [&] {
            return sertx::transact<hermitage>(db, [&](auto& tx) {
                auto me = steps.join(tx);
                long long x = 0, y = 0;
                tx.sql() << "select value from test where id = 1", soci::into(x);
                me.step();  // x read: the mover may start
                if (tx.attempt() == 1) mover_committed.wait();
                tx.sql() << "select value from test where id = 2", soci::into(y);
                sums_seen.push_back(x + y);
                const long long fixed = 30 - x;
                tx.sql() << "update test set value = :v where id = 2", soci::use(fixed);
                return tx.attempt();
            });
        };
        auto mover = [&] {
            struct announce {
                std::latch& done;
                ~announce() { done.count_down(); }  // also when it throws: the fixer must not wait forever
            } committed{mover_committed};
            return sertx::transact<hermitage>(db, [&](auto& tx) {
                auto me = steps.join(tx);
                me.step();  // the fixer has read x
                tx.sql() << "update test set value = value + 2 where id = 1";
                tx.sql() << "update test set value = value - 2 where id = 2";
                return tx.attempt();
            });
        };
        const auto [fixer_attempts, mover_attempts] = run_together(fixer, mover);
        CHECK(mover_attempts == 1u);
        CHECK(fixer_attempts >= 2u);
        // Every attempt read one snapshot, never a mix.
        CHECK(std::all_of(sums_seen.begin(), sums_seen.end(), [](long long s) { return s == 30; }));
        // Serial either way: x = 12, y = 18.
        CHECK(value_of(db, "select value from test where id = 1") == 12);
        CHECK(value_of(db, "select value from test where id = 2") == 18);
        CHECK(conflicts(db.stats()) > conflicts(before));
    }
}

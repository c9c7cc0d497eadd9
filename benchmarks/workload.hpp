// SPDX-License-Identifier: BSL-1.0
#pragma once
// The work every contender does, written once: a TPC-B-like transfer (read
// two balances, update both, insert a history row) and a read-only report,
// the schema they run on, and their statements in each client's placeholder
// syntax. Contenders differ only in how they run these statements.

#include <sertx/detail/random.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bench {

/// The order in which a transfer updates its two accounts.
enum class order {
    random,      // from, then to: a→b against b→a deadlocks
    by_account,  // lower id first: no deadlock, only serialization conflicts
};

struct workload {
    std::string_view name;
    long long accounts;
    bool transfer;  // false: the read-only report
    order updates;
    std::string_view database;  // which database (PostgreSQL) or file (SQLite) holds its accounts
};

inline constexpr long long many_accounts = 100'000;
inline constexpr long long hot_accounts = 4;
inline constexpr long long report_span = 1'000;  // accounts summed by one report

inline constexpr workload workloads[] = {
    {"uncontended", many_accounts, true, order::random, "many"},
    {"hot-random", hot_accounts, true, order::random, "hot"},
    {"hot-ordered", hot_accounts, true, order::by_account, "hot"},
    {"report", many_accounts, false, order::random, "many"},
};

inline const workload& find_workload(std::string_view name) {
    for (const auto& w : workloads)
        if (w.name == name) return w;
    throw std::invalid_argument("bench: unknown workload '" + std::string(name) + "'");
}

/// One generator per client, so that clients do not share state: sertx's own
/// backoff jitter generator (splitmix64), seeded per client for repeatable runs.
using rng = sertx::jitter_rng;

/// Uniform in [lo, hi], for the signed ids and amounts of the workload.
inline long long draw(rng& r, long long lo, long long hi) noexcept {
    return lo + static_cast<long long>(r.between(0, static_cast<std::uint64_t>(hi - lo)));
}

/// One transfer: `amount` from `from` to `to`, applied as `first += first_delta`
/// then `second += second_delta`.
struct transfer {
    long long from, to, amount;
    long long first, first_delta, second, second_delta;
};

/// The same draw as the pgbench script below.
inline transfer next_transfer(rng& r, const workload& w) {
    transfer t{};
    t.from = draw(r, 1, w.accounts);
    t.to = 1 + (t.from + draw(r, 0, w.accounts - 2)) % w.accounts;  // never from
    t.amount = draw(r, 1, 100);
    const bool from_first = w.updates == order::random || t.from < t.to;
    t.first = from_first ? t.from : t.to;
    t.second = from_first ? t.to : t.from;
    t.first_delta = from_first ? -t.amount : t.amount;
    t.second_delta = -t.first_delta;
    return t;
}

/// The first account of a report; it sums `report_span` accounts.
inline long long next_report(rng& r, const workload& w) { return draw(r, 1, w.accounts - report_span + 1); }

/// Tables, in SQL both PostgreSQL and SQLite accept. sertx_commit_log is the
/// idempotency-key table (sertx::install creates it where that exists).
inline constexpr const char* schema[] = {
    "create table if not exists account (id integer primary key, balance bigint not null)",
    "create table if not exists history (src integer not null, dst integer not null, amount bigint not null)",
    "create table if not exists sertx_commit_log (key text primary key, attempt text not null, committed_at bigint not null)",
};
inline constexpr long long initial_balance = 1'000'000'000;

/// The statements, by placeholder syntax.
namespace soci_sql {  // SOCI: named
inline constexpr const char* read = "select balance from account where id = :id";
inline constexpr const char* update = "update account set balance = balance + :delta where id = :id";
inline constexpr const char* insert = "insert into history(src, dst, amount) values(:src, :dst, :amount)";
inline constexpr const char* report =
    "select count(*), cast(sum(balance) as bigint) from account where id between :lo and :hi";
}  // namespace soci_sql
namespace pq_sql {  // libpq, libpqxx: numbered
inline constexpr const char* read = "select balance from account where id = $1";
inline constexpr const char* update = "update account set balance = balance + $1 where id = $2";
inline constexpr const char* insert = "insert into history(src, dst, amount) values($1, $2, $3)";
inline constexpr const char* report =
    "select count(*), cast(sum(balance) as bigint) from account where id between $1 and $2";
}  // namespace pq_sql
namespace sqlite_sql {  // SQLite C API: positional
inline constexpr const char* read = "select balance from account where id = ?";
inline constexpr const char* update = "update account set balance = balance + ? where id = ?";
inline constexpr const char* insert = "insert into history(src, dst, amount) values(?, ?, ?)";
}  // namespace sqlite_sql

inline constexpr const char* pg_begin = "BEGIN ISOLATION LEVEL SERIALIZABLE";
inline constexpr const char* pg_begin_read_only = "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE";

/// The pgbench script of a workload: the same draw and the same statements.
inline std::string pgbench_script(const workload& w) {
    std::string s;
    if (!w.transfer) {
        s += "\\set lo random(1, :accounts - " + std::to_string(report_span) + " + 1)\n";
        s += "\\set hi :lo + " + std::to_string(report_span) + " - 1\n";
        s += std::string(pg_begin_read_only) + ";\n";
        s += "select count(*), cast(sum(balance) as bigint) from account where id between :lo and :hi;\n";
        s += "COMMIT;\n";
        return s;
    }
    const bool ordered = w.updates == order::by_account;
    s += "\\set from random(1, :accounts)\n";
    s += "\\set to 1 + (:from + random(0, :accounts - 2)) % :accounts\n";
    s += "\\set amount random(1, 100)\n";
    s += ordered ? "\\set first least(:from, :to)\n" : "\\set first :from\n";
    s += ordered ? "\\set second greatest(:from, :to)\n" : "\\set second :to\n";
    s += "\\set d1 case when :first = :from then 0 - :amount else :amount end\n";
    s += "\\set d2 0 - :d1\n";
    s += std::string(pg_begin) + ";\n";
    s += "select balance from account where id = :from;\n";
    s += "select balance from account where id = :to;\n";
    s += "update account set balance = balance + :d1 where id = :first;\n";
    s += "update account set balance = balance + :d2 where id = :second;\n";
    s += "insert into history(src, dst, amount) values(:from, :to, :amount);\n";
    s += "COMMIT;\n";
    return s;
}

}  // namespace bench

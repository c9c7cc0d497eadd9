// SPDX-License-Identifier: BSL-1.0
#pragma once
// What the driver and the micro-benchmarks share: the workload's statements
// on a SOCI session (the same code runs inside sertx::transact and in the
// hand-written SOCI loop), and the setup of the benchmark databases.

#include "workload.hpp"

#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <soci/postgresql/soci-postgresql.h>  // soci::postgresql, soci::postgresql_soci_error
#include <soci/sqlite3/soci-sqlite3.h>  // SQLite's C API, in namespace sqlite_api

#include <libpq-fe.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace bench {

using sqlite_api::sqlite3;
using sqlite_api::sqlite3_stmt;

// ---------------------------------------------------------------------------
// The workload on a SOCI session


/// The transfer's statements, prepared once per session.
struct soci_transfer_statements {
    explicit soci_transfer_statements(soci::session& sql)
        : read((sql.prepare << soci_sql::read, soci::use(read_id), soci::into(balance))),
          update((sql.prepare << soci_sql::update, soci::use(delta), soci::use(update_id))),
          insert((sql.prepare << soci_sql::insert, soci::use(src), soci::use(dst), soci::use(amount))) {}
    // Declared before the statements that bind them.
    long long read_id = 0, balance = 0, delta = 0, update_id = 0, src = 0, dst = 0, amount = 0;
    soci::statement read, update, insert;
};

struct soci_report_statements {
    explicit soci_report_statements(soci::session& sql)
        : run((sql.prepare << soci_sql::report, soci::use(lo), soci::use(hi), soci::into(count),
               soci::into(sum))) {}
    long long lo = 0, hi = 0, count = 0, sum = 0;
    soci::statement run;
};

inline void transfer_prepared(soci_transfer_statements& st, const transfer& t) {
    st.read_id = t.from;
    st.read.execute(true);
    st.read_id = t.to;
    st.read.execute(true);
    st.delta = t.first_delta;
    st.update_id = t.first;
    st.update.execute(true);
    st.delta = t.second_delta;
    st.update_id = t.second;
    st.update.execute(true);
    st.src = t.from;
    st.dst = t.to;
    st.amount = t.amount;
    st.insert.execute(true);
}

inline void transfer_once(soci::session& sql, const transfer& t) {
    long long balance = 0;
    sql << soci_sql::read, soci::use(t.from), soci::into(balance);
    sql << soci_sql::read, soci::use(t.to), soci::into(balance);
    sql << soci_sql::update, soci::use(t.first_delta), soci::use(t.first);
    sql << soci_sql::update, soci::use(t.second_delta), soci::use(t.second);
    sql << soci_sql::insert, soci::use(t.from), soci::use(t.to), soci::use(t.amount);
}

inline long long report_prepared(soci_report_statements& st, long long lo) {
    st.lo = lo;
    st.hi = lo + report_span - 1;
    st.run.execute(true);
    return st.sum;
}

inline long long report_once(soci::session& sql, long long lo) {
    const long long hi = lo + report_span - 1;
    long long count = 0, sum = 0;
    sql << soci_sql::report, soci::use(lo), soci::use(hi), soci::into(count), soci::into(sum);
    return sum;
}

// ---------------------------------------------------------------------------
// PostgreSQL setup

using pg_conn = std::unique_ptr<PGconn, decltype(&PQfinish)>;

inline pg_conn pg_connect(const std::string& conninfo) {
    pg_conn c(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK)
        throw std::runtime_error("bench: cannot connect to PostgreSQL: " + std::string(PQerrorMessage(c.get())));
    return c;
}

/// Runs one statement; returns the first value of its result, if any.
inline std::string pg_exec(PGconn* c, const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c, sql.c_str()), &PQclear);
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        throw std::runtime_error("bench: " + sql + ": " + PQresultErrorMessage(r.get()));
    return st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : "";
}

inline void quiet_notices(void*, const char*) {}

/// Database `name` on the server of `admin` with `accounts` accounts and an
/// empty history, vacuumed and checkpointed, so that every run starts from
/// the same state. Returns its connection string.
inline std::string pg_setup(const std::string& admin, const std::string& name, long long accounts) {
    {
        auto a = pg_connect(admin);
        if (pg_exec(a.get(), "select count(*) from pg_database where datname = '" + name + "'") == "0")
            pg_exec(a.get(), "create database " + name);
    }
    const std::string conninfo = admin + " dbname=" + name;
    auto c = pg_connect(conninfo);
    PQsetNoticeProcessor(c.get(), &quiet_notices, nullptr);
    for (const char* s : schema) pg_exec(c.get(), s);
    if (pg_exec(c.get(), "select count(*) from account") != std::to_string(accounts)) {
        pg_exec(c.get(), "truncate account");
        pg_exec(c.get(), "insert into account select g, " + std::to_string(initial_balance) +
                             " from generate_series(1, " + std::to_string(accounts) + ") g");
    }
    pg_exec(c.get(), "truncate history");
    pg_exec(c.get(), "do $$ begin if to_regclass('sertx_commit_log') is not null then truncate sertx_commit_log; end if; end $$");
    pg_exec(c.get(), "do $$ begin if to_regclass('sertx_effect') is not null then truncate sertx_effect; end if; end $$");
    pg_exec(c.get(), "vacuum analyze account");
    pg_exec(c.get(), "checkpoint");
    return conninfo;
}

// ---------------------------------------------------------------------------
// SQLite setup

/// What sertx sets on every SQLite connection; the peers get the same.
inline constexpr const char* sqlite_pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON";
inline constexpr int sqlite_busy_ms = 5000;

inline void sqlite_check(sqlite3* db, int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        throw std::runtime_error(std::string("bench: SQLite ") + what + ": " + sqlite_api::sqlite3_errmsg(db));
}

inline void sqlite_exec(sqlite3* db, const std::string& sql) {
    sqlite_check(db, sqlite_api::sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), sql.c_str());
}

/// A connection of the C API, set up as sertx sets up its own.
struct sqlite_handle {
    sqlite3* db = nullptr;
    explicit sqlite_handle(const std::string& path) {
        if (sqlite_api::sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
            SQLITE_OK)
            throw std::runtime_error("bench: cannot open " + path);
        sqlite_api::sqlite3_busy_timeout(db, sqlite_busy_ms);
        sqlite_exec(db, sqlite_pragmas);
    }
    ~sqlite_handle() { sqlite_api::sqlite3_close(db); }
    sqlite_handle(const sqlite_handle&) = delete;
    sqlite_handle& operator=(const sqlite_handle&) = delete;
};

/// Fills an empty account table (SQLite).
inline std::string sqlite_populate(long long accounts) {
    return "with recursive n(i) as (select 1 union all select i + 1 from n where i < " + std::to_string(accounts) +
           ") insert into account select i, " + std::to_string(initial_balance) + " from n";
}

/// The tables with `accounts` accounts and an empty history.
inline void sqlite_setup(sqlite3* db, long long accounts) {
    for (const char* s : schema) sqlite_exec(db, s);
    sqlite3_stmt* count = nullptr;
    sqlite_api::sqlite3_prepare_v2(db, "select count(*) from account", -1, &count, nullptr);
    sqlite_api::sqlite3_step(count);
    const long long have = sqlite_api::sqlite3_column_int64(count, 0);
    sqlite_api::sqlite3_finalize(count);
    if (have != accounts)
        sqlite_exec(db, "begin; delete from account; " + sqlite_populate(accounts) + "; commit");
    sqlite_exec(db, "delete from history");
    sqlite_exec(db, "delete from sertx_commit_log");
    // The journal exists once a sertx-effect run installed it.
    sqlite3_stmt* journal = nullptr;
    sqlite_api::sqlite3_prepare_v2(db, "select count(*) from sqlite_master where name = 'sertx_effect'", -1, &journal,
                                   nullptr);
    sqlite_api::sqlite3_step(journal);
    const bool installed = sqlite_api::sqlite3_column_int64(journal, 0) > 0;
    sqlite_api::sqlite3_finalize(journal);
    if (installed) sqlite_exec(db, "delete from sertx_effect");
}

}  // namespace bench

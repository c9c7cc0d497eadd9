// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Schema migrations (DESIGN §8): each migration commits with its version row
/// in a serializable transaction, or not at all.
///
/// \code
/// const sertx::migration schema[] = {
///     {1, "accounts", "create table account (id bigint primary key, balance bigint not null);"
///                     "create index account_balance on account (balance)"},
///     {2, "audit", "alter table account add column opened_at bigint"},
/// };
/// sertx::migrate(db, schema);                                    // applies what is missing
/// auto plan = sertx::migrate(db, schema, sertx::dry_run);       // what it would apply
/// sertx::schema_status s = sertx::migration_status(db, schema); // applied, pending, problems
/// \endcode
///
/// **Statements.** `migration::sql` is a script of one or more statements,
/// split where the backend's own shell would split it (psql, sqlite3): a ';'
/// inside a string literal, quoted identifier, comment, PostgreSQL dollar
/// quote (`$$ ... $$`) or BEGIN ATOMIC body, or a SQLite `CREATE TRIGGER ...
/// BEGIN ...; END` does not end a statement. Each statement runs on its own,
/// so a failure names it. Transaction control (BEGIN, COMMIT, END, ROLLBACK,
/// START TRANSACTION, PREPARE TRANSACTION) is refused: sertx owns the
/// transaction. `ROLLBACK TO SAVEPOINT` is allowed.
///
/// **Guarantees.**
/// - Each migration and its row in `sertx_schema(version, name, checksum,
///   applied_at)` commit together in one serializable transaction; a failed
///   statement rolls the whole migration back and throws `migration_error`
///   naming the migration, the statement ("statement 3 of 4" and its text)
///   and the database's message. Migrations applied before it stay applied.
/// - A conflict (serialization failure, deadlock, busy) re-runs the whole
///   migration, as the policy says; a migration is never re-run in part.
/// - Concurrent migrators (threads, processes, machines) are serialized; the
///   one that waited sees what the other applied and applies nothing twice.
/// - Before anything is applied, the database is compared with the code. A
///   refusal throws `migration_error` naming each problem and applies nothing:
///   an applied migration whose checksum changed (both checksums named), a
///   migration in the database that the code does not have (the database is
///   newer than the code), a migration the code has that is older than the
///   database's newest one (it would apply out of order).
/// - The input is checked first: versions start at 1 and strictly increase,
///   each script splits and holds at least one statement.
///
/// **Checksum.** 16 hex digits of FNV-1a (64 bits) over the statements as
/// split, each followed by a NUL byte, with CR LF read as LF. So a change to
/// any statement's text is drift (a comment or whitespace *inside* a
/// statement included, since the database receives it), and these are not:
/// whitespace and comments between statements, a final ';', the line ending
/// convention, and the migration's name.
///
/// **Requirements.** `migrate` needs a `migratable_backend`: serializable with
/// transactional DDL. A backend that commits DDL implicitly (MySQL's InnoDB)
/// is refused at compile time; see docs/backends.md. The database's
/// connection provides `execute(const char*)` and `migrations()` with the
/// statements of `sertx::migration_statements` (adapter.hpp; the SOCI
/// adapters: soci/detail/migration_statements.hpp), the script splitter
/// among them.

#include <sertx/backend.hpp>
#include <sertx/adapter.hpp>
#include <sertx/detail/hex.hpp>
#include <sertx/failure.hpp>
#include <sertx/policy.hpp>
#include <sertx/transact.hpp>
#include <sertx/transaction.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sertx {

/// One schema change: a version (>= 1, strictly increasing along the list), a
/// name for people, and a script of one or more statements.
struct migration {
    std::int64_t version;
    std::string name;
    std::string sql;
};

/// A migration as sertx runs it: its statements as split, and its checksum.
/// `migrate` returns the steps it applied; the dry run those it would apply.
struct migration_step {
    std::int64_t version;
    std::string name;
    std::string checksum;
    std::vector<std::string> statements;
};

/// A row of `sertx_schema`: a migration that the database has committed.
/// `applied_at` is the migrating process's clock at the time.
struct applied_migration {
    std::int64_t version;
    std::string name;
    std::string checksum;
    std::chrono::system_clock::time_point applied_at;
};

/// What `migration_status` reports.
struct schema_status {
    /// The database's applied migrations, in version order.
    std::vector<applied_migration> applied;
    /// What `migrate` would apply, in order (only when given the migrations).
    std::vector<migration_step> pending;
    /// Why `migrate` would refuse, one sentence each; empty when it would
    /// proceed (only when given the migrations).
    std::vector<std::string> problems;

    /// The newest applied version; 0 for a database never migrated.
    std::int64_t version() const noexcept { return applied.empty() ? 0 : applied.back().version; }
};

/// Tag for `migrate(db, migrations, sertx::dry_run)`.
struct dry_run_t {
    explicit dry_run_t() = default;
};
inline constexpr dry_run_t dry_run{};

namespace detail {

/// FNV-1a, 64 bits: defined byte by byte, so checksums stored by one build,
/// platform or compiler match those of any other.
class fnv1a {
public:
    void add(char c) noexcept {
        hash_ ^= static_cast<unsigned char>(c);
        hash_ *= 1099511628211ull;
    }
    std::uint64_t value() const noexcept { return hash_; }

private:
    std::uint64_t hash_ = 14695981039346656037ull;
};

/// 16 hex digits, most significant first.
inline std::string hex64(std::uint64_t v) {
    char bytes[8];
    for (int i = 7; i >= 0; --i, v >>= 8) bytes[i] = static_cast<char>(v & 0xff);
    return to_hex(std::string_view(bytes, sizeof bytes));
}

/// The checksum of a migration's statements; see "Checksum" above.
inline std::string migration_checksum(const std::vector<std::string>& statements) {
    fnv1a h;
    for (const std::string& s : statements) {
        for (std::size_t i = 0; i < s.size(); ++i)
            if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) h.add(s[i]);
        h.add('\0');
    }
    return hex64(h.value());
}

constexpr bool is_sql_space(char c) noexcept {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v';
}

/// A statement for a message: whitespace runs as one space, at most 60 bytes.
inline std::string shorten(std::string_view statement) {
    constexpr std::size_t limit = 60;
    std::string out;
    for (char c : statement) {
        const bool space = is_sql_space(c);
        if (space && (out.empty() || out.back() == ' ')) continue;
        if (out.size() == limit) return out + "...";
        out.push_back(space ? ' ' : c);
    }
    return out;
}

inline std::string describe(std::int64_t version, std::string_view name) {
    return "migration " + std::to_string(version) + " '" + std::string(name) + "'";
}

/// Whether a statement starts, ends or hands off the transaction sertx runs
/// the migration in; such a statement would commit part of a migration.
inline bool controls_transaction(std::string_view statement) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (words.size() < 3) {
        while (i < statement.size() && is_sql_space(statement[i])) ++i;
        std::string word;
        for (; i < statement.size(); ++i) {
            const char c = statement[i];
            if (c >= 'A' && c <= 'Z') word.push_back(static_cast<char>(c - 'A' + 'a'));
            else if ((c >= 'a' && c <= 'z') || c == '_') word.push_back(c);
            else break;
        }
        if (word.empty()) break;
        words.push_back(std::move(word));
    }
    if (words.empty()) return false;
    const std::string& first = words[0];
    if (first == "begin" || first == "start" || first == "commit" || first == "end" || first == "abort") return true;
    if (first == "rollback")  // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x stays inside the transaction
        return !((words.size() > 1 && words[1] == "to") || (words.size() > 2 && words[2] == "to"));
    return first == "prepare" && words.size() > 1 && words[1] == "transaction";
}

/// Checks the input and splits each script with `split` (the adapter's
/// `split_script`); throws `migration_error` before any database is touched.
template <class Split>
std::vector<migration_step> prepare_migrations(std::span<const migration> migrations, Split split) {
    std::vector<migration_step> steps;
    steps.reserve(migrations.size());
    for (const migration& m : migrations) {
        if (m.version < 1)
            throw migration_error("sertx: " + describe(m.version, m.name) +
                                  " has a version below 1; number migrations from 1 upwards.");
        if (!steps.empty() && m.version <= steps.back().version)
            throw migration_error("sertx: " + describe(m.version, m.name) + " follows " +
                                  describe(steps.back().version, steps.back().name) +
                                  " in the list; versions must strictly increase, so give each migration a "
                                  "version above the one before it.");
        // The database drivers pass text as C strings: a NUL byte would cut
        // the name or a statement short without a word.
        if (m.name.find('\0') != std::string::npos || m.sql.find('\0') != std::string::npos)
            throw migration_error("sertx: migration " + std::to_string(m.version) + " holds a NUL byte in its " +
                                  (m.name.find('\0') != std::string::npos ? "name" : "SQL") +
                                  ", where the database would cut the text short; remove it.");
        migration_step step{m.version, m.name, {}, {}};
        try {
            for (std::string_view s : split(m.sql)) step.statements.emplace_back(s);
        } catch (const error& e) {
            std::throw_with_nested(migration_error("sertx: " + describe(m.version, m.name) +
                                                   " cannot be split into statements: " + e.what()));
        }
        if (step.statements.empty())
            throw migration_error("sertx: " + describe(m.version, m.name) +
                                  " has no statements (only whitespace or comments); give it its SQL.");
        for (std::size_t i = 0; i < step.statements.size(); ++i)
            if (controls_transaction(step.statements[i]))
                throw migration_error("sertx: " + describe(m.version, m.name) + ", statement " +
                                      std::to_string(i + 1) + " of " + std::to_string(step.statements.size()) +
                                      " (`" + shorten(step.statements[i]) +
                                      "`), would start or end a transaction; sertx runs each migration in a "
                                      "transaction of its own, so remove BEGIN/COMMIT/ROLLBACK from it.");
        step.checksum = migration_checksum(step.statements);
        steps.push_back(std::move(step));
    }
    return steps;
}

/// The database compared with the code: what would be applied, and why it
/// must not be. `applied` is in version order.
struct migration_plan {
    std::vector<const migration_step*> pending;
    std::vector<std::string> problems;
};

inline migration_plan plan_migrations(const std::vector<applied_migration>& applied,
                                      const std::vector<migration_step>& steps) {
    migration_plan plan;
    const std::int64_t newest_known = steps.empty() ? 0 : steps.back().version;
    const std::int64_t newest_applied = applied.empty() ? 0 : applied.back().version;
    auto known = [&](std::int64_t version) -> const migration_step* {
        for (const migration_step& s : steps)
            if (s.version == version) return &s;
        return nullptr;
    };
    for (const applied_migration& a : applied) {
        const migration_step* step = known(a.version);
        if (!step && a.version > newest_known)
            plan.problems.push_back(describe(a.version, a.name) + " (checksum " + a.checksum +
                                    ") is applied, but the newest migration this code knows is " +
                                    std::to_string(newest_known) +
                                    ": the database is newer than the code; run the newer build");
        else if (!step)
            plan.problems.push_back(describe(a.version, a.name) + " (checksum " + a.checksum +
                                    ") is applied, but the code has no migration " + std::to_string(a.version) +
                                    "; put it back in the list");
        else if (step->checksum != a.checksum)
            plan.problems.push_back(describe(a.version, a.name) + " was applied with checksum " + a.checksum +
                                    ", but the code's migration " + std::to_string(a.version) +
                                    " now has checksum " + step->checksum +
                                    "; an applied migration must not change: restore its text and put the "
                                    "change in a new migration");
    }
    auto is_applied = [&](std::int64_t version) {
        for (const applied_migration& a : applied)
            if (a.version == version) return true;
        return false;
    };
    for (const migration_step& s : steps) {
        if (is_applied(s.version)) continue;
        if (s.version < newest_applied)
            plan.problems.push_back(describe(s.version, s.name) + " is not applied, but the database is already at "
                                    "version " + std::to_string(newest_applied) +
                                    ", and migrations apply in order; give it a version above " +
                                    std::to_string(newest_applied));
        else
            plan.pending.push_back(&s);
    }
    return plan;
}

inline std::string refusal(const std::vector<std::string>& problems, std::size_t applied_before) {
    std::string text = "sertx: migrate refused: ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    return text + (applied_before == 0 ? ". Nothing was applied."
                                       : ". Nothing more was applied (this call had applied " +
                                             std::to_string(applied_before) + " before the problem appeared).");
}

inline std::int64_t micros_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

template <class Statements>
std::vector<applied_migration> read_applied(Statements& c) {
    std::vector<applied_migration> applied;
    if (!c.migration_table_exists()) return applied;
    c.read_migrations([&](std::int64_t version, const std::string& name, const std::string& checksum,
                          std::int64_t applied_at) {
        applied.push_back({version, name, checksum,
                           std::chrono::system_clock::time_point(std::chrono::duration_cast<
                               std::chrono::system_clock::duration>(std::chrono::microseconds(applied_at)))});
    });
    return applied;
}

template <class Connection>
void run_step(Connection& c, const migration_step& step) {
    const std::size_t count = step.statements.size();
    for (std::size_t i = 0; i < count; ++i) {
        const std::string& statement = step.statements[i];
        try {
            c.execute(statement.c_str());
        } catch (const std::exception& e) {
            if (is_retryable(c.classify(std::current_exception()))) throw;  // transact re-runs it whole
            // The migration error names the statement itself: of the
            // adapter's error, only the database's message.
            const auto* failed = dynamic_cast<const database_error*>(&e);
            std::throw_with_nested(migration_error(
                "sertx: " + describe(step.version, step.name) + " failed at statement " + std::to_string(i + 1) +
                " of " + std::to_string(count) + " (`" + shorten(statement) +
                "`) and was rolled back whole: " + (failed ? failed->message() : std::string(e.what()))));
        }
    }
}

template <class Db, class Policy>
constexpr bool check_migrate_requirements() {
    using B = backend_of<Db>;
    static_assert(backend<B>,
                  "sertx: migrate() needs a database whose backend is described by sertx::backend_traits; pass "
                  "a sertx::postgresql or sertx::sqlite3 database, or specialize sertx::backend_traits.");
    if constexpr (backend<B>) {
        static_assert(serializable_backend<B>,
                      "sertx: migrate() runs each migration in a SERIALIZABLE transaction, which this backend "
                      "cannot guarantee; use a serializable backend or describe one in sertx::backend_traits.");
        if constexpr (serializable_backend<B>)
            static_assert(has_capability<B, cap::transactional_ddl>,
                          "sertx: migrate() needs a backend whose DDL is transactional; this one commits DDL "
                          "implicitly (as MySQL's InnoDB does), so a migration failing half-way would leave a "
                          "half-changed schema that no rollback can undo. Migrate such a database with a tool "
                          "that expects it (one statement per migration, written to be re-run), or describe a "
                          "backend with cap::transactional_ddl true in sertx::backend_traits.");
    }
    static_assert(Policy::writes, "sertx: migrate() writes the schema; give it a read_write policy.");
    static_assert(!Policy::savepoint_when_nested,
                  "sertx: migrate() commits each migration on its own; nested<savepoint> would fold them into "
                  "a caller's transaction. Drop nested<savepoint> from its policy.");
    if constexpr (migratable_backend<B>)
        return check_transact_adapter<Db>() && check_migration_adapter<Db>();
    else
        return false;
}

/// The adapter's script splitter.
template <class Db>
auto script_splitter() {
    using statements = std::remove_cvref_t<decltype(std::declval<typename Db::connection_type&>().migrations())>;
    return [](std::string_view script) { return statements::split_script(script); };
}

/// Applies the pending steps one transaction each; returns those applied.
template <class Policy, class Db>
std::vector<migration_step> apply(Db& db, const std::vector<migration_step>& steps) {
    transact<Policy>(db, [](auto& tx) {
        auto& schema = tx.connection(internal_access{}).migrations();
        if (!schema.migration_table_exists()) schema.create_migration_table();
    });
    std::vector<migration_step> applied;
    for (;;) {
        const migration_step* trying = nullptr;
        const migration_step* done = nullptr;
        try {
            done = transact<Policy>(db, [&](auto& tx) -> const migration_step* {
                auto& c = tx.connection(internal_access{});
                auto& schema = c.migrations();
                schema.lock_migration_table();  // waits for any other migrator; its work is then visible
                const migration_plan plan = plan_migrations(read_applied(schema), steps);
                if (!plan.problems.empty()) throw migration_error(refusal(plan.problems, applied.size()));
                if (plan.pending.empty()) return nullptr;
                trying = plan.pending.front();
                run_step(c, *trying);
                schema.record_migration(trying->version, trying->name, trying->checksum,
                                   micros_since_epoch(std::chrono::system_clock::now()));
                return trying;
            });
        } catch (const retries_exhausted&) {
            std::throw_with_nested(migration_error(
                "sertx: " + (trying ? describe(trying->version, trying->name) : std::string("the next migration")) +
                " was not applied: its transaction kept failing on conflicts or waits until the policy gave up (the "
                "nested exception says which); it was rolled back whole. Run migrate again, or give it a more "
                "patient policy."));
        }
        if (!done) return applied;
        applied.push_back(*done);
    }
}

inline std::vector<migration_step> copies(const std::vector<const migration_step*>& steps) {
    std::vector<migration_step> out;
    out.reserve(steps.size());
    for (const migration_step* s : steps) out.push_back(*s);
    return out;
}

}  // namespace detail

/// The policy `migrate` uses when none is named: the defaults, except that a
/// migrator waits for another's table lock as long as the server lets it
/// (`lock_timeout<0>`), since a migration may rightly hold it for minutes;
/// the default 20 ms bound would make the waiter give up instead.
using migration_policy = policy<lock_timeout<0>>;

/// Applies the migrations the database lacks, in version order, each in a
/// serializable transaction with its `sertx_schema` row; returns those this
/// call applied (empty when the database was up to date). Throws
/// `migration_error` when the input is malformed, the database disagrees with
/// the code (nothing applied), or a migration fails (it is rolled back whole;
/// those before it stay applied).
template <class Policy = migration_policy, class Db>
std::vector<migration_step> migrate(Db& db, std::span<const migration> migrations) {
    if constexpr (detail::check_migrate_requirements<Db, Policy>()) {
        return detail::apply<Policy>(db, detail::prepare_migrations(migrations, detail::script_splitter<Db>()));
    } else {
        return {};
    }
}

/// The migrations the database has applied (`sertx_schema`), in a read-only
/// transaction; `pending` and `problems` stay empty.
template <class Db>
schema_status migration_status(Db& db) {
    return transact<policy<read_only>>(db, [](auto& tx) {
        return schema_status{detail::read_applied(tx.connection(detail::internal_access{}).migrations()), {}, {}};
    });
}

/// The database compared with `migrations`: what is applied, what `migrate`
/// would apply, and why it would refuse, without throwing for the latter.
/// Throws `migration_error` only when `migrations` itself is malformed.
template <class Db>
schema_status migration_status(Db& db, std::span<const migration> migrations) {
    const auto steps = detail::prepare_migrations(migrations, detail::script_splitter<Db>());
    schema_status status = migration_status(db);
    detail::migration_plan plan = detail::plan_migrations(status.applied, steps);
    status.pending = detail::copies(plan.pending);
    status.problems = std::move(plan.problems);
    return status;
}

/// The dry run: what `migrate(db, migrations)` would apply now, split into
/// statements, without changing anything; throws `migration_error` where
/// `migrate` would refuse.
template <class Policy = migration_policy, class Db>
std::vector<migration_step> migrate(Db& db, std::span<const migration> migrations, dry_run_t) {
    if constexpr (detail::check_migrate_requirements<Db, Policy>()) {
        schema_status status = migration_status(db, migrations);
        if (!status.problems.empty()) throw migration_error(detail::refusal(status.problems, 0));
        return std::move(status.pending);
    } else {
        return {};
    }
}

}  // namespace sertx

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// `sertx::testing::chaos<Db>`: a database that injects the failures a
/// retrying framework must survive, so that a test suite finds the bodies
/// that are not safe to re-run.
///
/// **What it is.** A wrapper around an adapter's database (`sertx::postgresql`
/// or `sertx::sqlite3`) that `sertx::transact` accepts like the database
/// itself: same backend, same `tx.sql()` session, same pool. With a seed and
/// rates, it makes statements and COMMITs fail the way a busy server does:
/// serialization failures, deadlocks, lock timeouts (`busy`), a connection
/// lost before COMMIT, and a lost COMMIT (`commit_unknown`) — sometimes after
/// the transaction really committed, sometimes after it rolled back.
///
/// \code
/// auto real = sertx::postgresql::open(conninfo);
/// sertx::testing::chaos db(real, {.seed = 42,
///                                 .at_statement = {.serialization = 0.05, .deadlock = 0.02},
///                                 .at_commit = {.serialization = 0.05, .connection_lost = 0.02,
///                                               .lost_commit_applied = 0.02,
///                                               .lost_commit_rolled_back = 0.02}});
/// run_my_suite(db);                        // everything that takes a database takes this one
/// std::cout << db.injected().total();      // what was injected
/// \endcode
///
/// **The bug it finds.** A body is re-run whole on a retryable failure. A body
/// that changes anything outside the database — a counter captured by
/// reference, a message sent, a cache filled — does it once per attempt:
/// \code
/// int sent = 0;
/// sertx::transact(db, [&](auto& tx) { debit(tx, 1, 10); ++sent; });          // counts every attempt
/// sertx::transact(db, [&](auto& tx) { debit(tx, 1, 10); tx.after_commit([&] { ++sent; }); });  // once
/// \endcode
/// Under real load such a body double-counts only when two transactions
/// collide; under chaos it does so in every run. docs/testing-your-code.md
/// walks through it.
///
/// **Where failures are injected.**
/// - *Statements*: every statement sent through `tx.sql()` (and sertx's own
///   idempotency-key statements) while an attempt runs, through SOCI's
///   query transformation, which is called once per statement: a one-time
///   statement (`sql << ...`) each time it runs, a prepared `soci::statement`
///   once, when it is prepared. The failure is thrown before the statement
///   reaches the server. A body that catches it and carries on is refused
///   with a permanent error at its next statement or at COMMIT, as
///   PostgreSQL would (it aborts a transaction at its first error).
/// - *COMMIT*: a retryable failure instead of COMMIT (the transaction is
///   rolled back, the body re-run); or a lost COMMIT: the transaction is
///   committed (`lost_commit_applied`) or rolled back
///   (`lost_commit_rolled_back`) and the attempt fails as if the connection
///   dropped while COMMIT was in flight. sertx then resolves the outcome
///   through the idempotency key or `resolve_unknown<by_txid>`, or throws
///   `sertx::commit_unknown`.
/// - A "lost connection" is a classified failure: the PostgreSQL adapter
///   discards the session and opens a fresh one, as after a real loss; the
///   SQLite adapter (which has no connection to lose) rolls back and reuses it.
///
/// - sertx's own statements inside a transaction (idempotency key,
///   migrations, the effect journal) are disturbed like the body's, when
///   `migrate` or `effects` are given the chaos database.
///
/// **What it does not inject.** Failures at BEGIN or ROLLBACK; in statements
/// run outside `transact` or in `after_commit` actions; real network faults
/// (timeouts, half-open sockets): for those, see the fault tests in
/// tests/postgresql/faults_test.cpp.
///
/// **Laws.**
/// - Deterministic: the n-th decision depends only on the seed and n. One
///   thread running the same calls sees the same faults in every run; with
///   several threads the decisions are the same sequence, handed out in
///   scheduling order.
/// - Bounded: only the first `faulty_attempts` attempts of each `transact`
///   call are disturbed, so a correct body always commits when the policy
///   allows more attempts than that.
/// - Honest: by default a lost COMMIT is injected only into attempts sertx can
///   resolve (an idempotency key was written, or the policy has
///   `resolve_unknown<by_txid>`), so that a suite that does not expect
///   `commit_unknown` does not see it; set `lose_commits_only_when_resolvable
///   = false` to check that your code handles it.
/// - Everything injected is counted (`injected()`); the database's own
///   `stats()` count the retries the failures caused.
///
/// **Requirements.** `Db` is an adapter's database (adapter.hpp) whose
/// connection also gives `failure_code(failure)` and
/// `before_each_statement(hook)` (`sertx::chaos_adapter`).
///
/// **Models.** Any adapter database `Db` of this repository: `chaos<Db>` is a
/// database for `transact`. Copies share the pool, the seed's sequence and
/// the counters.

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/backoff.hpp>
#include <sertx/failure.hpp>
#include <sertx/observe.hpp>
#include <sertx/transact.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sertx::testing {

/// Probabilities (0 to 1) of each retryable failure at one statement.
struct fault_rates {
    double serialization = 0;
    double deadlock = 0;
    double busy = 0;
    double connection_lost = 0;
};

/// Probabilities (0 to 1) of each failure at one COMMIT.
struct commit_fault_rates {
    double serialization = 0;
    double deadlock = 0;
    double busy = 0;
    /// The connection fails before COMMIT is sent: nothing was applied.
    double connection_lost = 0;
    /// COMMIT is applied but its answer is lost: `failure::commit_unknown`.
    double lost_commit_applied = 0;
    /// COMMIT never arrives and the transaction rolls back; the client cannot
    /// tell this from the case above: `failure::commit_unknown`.
    double lost_commit_rolled_back = 0;
};

/// How `chaos` injects failures.
struct chaos_options {
    /// The same seed gives the same sequence of decisions.
    std::uint64_t seed = 1;
    fault_rates at_statement{};
    commit_fault_rates at_commit{};
    /// Attempts of one `transact` call that may be disturbed; later attempts
    /// run undisturbed, so a correct body still commits under a policy with
    /// more attempts than this (the default policy has 30).
    unsigned faulty_attempts = 4;
    /// Lose COMMITs only in attempts sertx can resolve (idempotency key, or
    /// `resolve_unknown<by_txid>`); false also loses them where the caller
    /// then receives `sertx::commit_unknown`.
    bool lose_commits_only_when_resolvable = true;
};

/// What a `chaos` database injected so far.
struct chaos_stats {
    /// Statements and COMMITs that were candidates for a failure.
    std::uint64_t statements = 0;
    std::uint64_t commits = 0;
    /// Failures injected at statements and at COMMIT, by `sertx::failure`.
    std::array<std::uint64_t, failure_kinds> at_statement{};
    std::array<std::uint64_t, failure_kinds> at_commit{};
    /// Lost COMMITs by what really happened (their sum is
    /// `at_commit[commit_unknown]`).
    std::uint64_t lost_commits_applied = 0;
    std::uint64_t lost_commits_rolled_back = 0;
    /// Attempts whose body caught an injected failure and went on to another
    /// statement or to COMMIT; refused with a permanent error (a bug in the
    /// body).
    std::uint64_t swallowed = 0;

    std::uint64_t injected_at_statement(failure f) const noexcept { return at_statement[static_cast<std::size_t>(f)]; }
    std::uint64_t injected_at_commit(failure f) const noexcept { return at_commit[static_cast<std::size_t>(f)]; }
    std::uint64_t total() const noexcept {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < failure_kinds; ++i) n += at_statement[i] + at_commit[i];
        return n;
    }
};

}  // namespace sertx::testing

namespace sertx::detail {

/// The decisions and counters that copies of one `chaos` database share.
class chaos_state {
public:
    explicit chaos_state(const testing::chaos_options& options) noexcept : options_(options) {}

    const testing::chaos_options& options() const noexcept { return options_; }

    /// The next decision, uniform in [0, 1): the n-th output of splitmix64
    /// seeded with the seed, whatever thread asks.
    double draw() noexcept {
        const std::uint64_t n = draws_.fetch_add(1, std::memory_order_relaxed);
        return jitter_rng(options_.seed + n * 0x9e3779b97f4a7c15ULL).unit();
    }

    static void add(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }

    std::atomic<std::uint64_t> statements{0}, commits{0}, lost_applied{0}, lost_rolled_back{0}, swallowed{0};
    std::array<std::atomic<std::uint64_t>, failure_kinds> at_statement{}, at_commit{};

    testing::chaos_stats snapshot() const noexcept {
        testing::chaos_stats s;
        s.statements = statements.load(std::memory_order_relaxed);
        s.commits = commits.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < failure_kinds; ++i) {
            s.at_statement[i] = at_statement[i].load(std::memory_order_relaxed);
            s.at_commit[i] = at_commit[i].load(std::memory_order_relaxed);
        }
        s.lost_commits_applied = lost_applied.load(std::memory_order_relaxed);
        s.lost_commits_rolled_back = lost_rolled_back.load(std::memory_order_relaxed);
        s.swallowed = swallowed.load(std::memory_order_relaxed);
        return s;
    }

private:
    testing::chaos_options options_;
    std::atomic<std::uint64_t> draws_{0};
};

/// Which of the outcomes, whose rates are laid end to end on [0, 1), draw
/// `u` falls on; none when it falls past them all.
template <std::size_t N>
std::optional<std::size_t> chaos_pick(double u, const std::array<double, N>& rates) noexcept {
    double edge = 0;
    for (std::size_t i = 0; i < N; ++i) {
        edge += rates[i];
        if (u < edge) return i;
    }
    return std::nullopt;
}

/// The connection a `chaos` database lends: the adapter's connection, with
/// failures injected at its statements and at COMMIT. It forwards each member
/// of the adapter contract (adapter.hpp) that `Inner` has; those sertx's own
/// tables use (`journal()`, `migrations()`) send their SQL through the same
/// session, so chaos reaches it there.
template <class Inner>
class chaos_connection {
public:
    using session_type = typename Inner::session_type;
    using inner_type = Inner;

    chaos_connection(Inner& inner, chaos_state& state) : inner_(inner), state_(state) {
        inner_.before_each_statement([this] { fail_statement(); });
    }
    ~chaos_connection() {
        // The connection goes back to a pool the unwrapped database shares.
        inner_.before_each_statement({});
    }
    chaos_connection(const chaos_connection&) = delete;
    chaos_connection& operator=(const chaos_connection&) = delete;

    session_type& session() noexcept { return inner_.session(); }
    /// The adapter's own connection, undisturbed.
    Inner& inner() noexcept { return inner_; }

    void begin(const transaction_start& start) {
        inner_.begin(start);
        armed_ = start.attempt <= state_.options().faulty_attempts;
        resolvable_ = start.commit_resolvable;
        injected_ = false;
        refused_ = false;
    }

    /// A statement sertx runs itself (a migration's): disturbed like the
    /// body's.
    void execute(const char* sql) {
        fail_statement();
        inner_.execute(sql);
    }

    auto& journal()
        requires requires(Inner& i) { i.journal(); }
    {
        return inner_.journal();
    }
    auto& migrations()
        requires requires(Inner& i) { i.migrations(); }
    {
        return inner_.migrations();
    }
    auto current_txid()
        requires requires(Inner& i) { i.current_txid(); }
    {
        return inner_.current_txid();
    }
    static std::string failure_code(failure f) { return Inner::failure_code(f); }

    void commit() {
        if (!armed_) return inner_.commit();
        if (injected_) refuse("COMMIT");
        armed_ = false;
        state_.add(state_.commits);
        const auto& r = state_.options().at_commit;
        const bool may_lose = resolvable_ || !state_.options().lose_commits_only_when_resolvable;
        const std::array<double, 6> rates{r.serialization, r.deadlock, r.busy, r.connection_lost,
                                          may_lose ? r.lost_commit_applied : 0.0,
                                          may_lose ? r.lost_commit_rolled_back : 0.0};
        const auto which = chaos_pick(state_.draw(), rates);
        if (!which) return inner_.commit();
        if (*which < retryable.size()) inject(state_.at_commit, retryable[*which], "at COMMIT");
        if (*which == 4) {
            inner_.commit();
            state_.add(state_.lost_applied);
        } else {
            inner_.rollback();
            state_.add(state_.lost_rolled_back);
        }
        inject(state_.at_commit, failure::commit_unknown,
               *which == 4 ? "(COMMIT applied, its answer lost)" : "(COMMIT lost, rolled back)");
    }

    void rollback() {
        armed_ = false;
        inner_.rollback();
    }
    void abandon(failure f) noexcept {
        armed_ = false;
        inner_.abandon(f);
    }
    failure classify(const std::exception_ptr& e) const noexcept { return inner_.classify(e); }
    template <class F>
    void take_notices(F&& f) {
        inner_.take_notices(std::forward<F>(f));
    }

    void savepoint(unsigned depth) { inner_.savepoint(depth); }
    void release(unsigned depth) { inner_.release(depth); }
    void rollback_to(unsigned depth) { inner_.rollback_to(depth); }

private:
    void fail_statement() {
        if (!armed_) return;
        if (injected_) refuse("a statement");
        state_.add(state_.statements);
        const auto& r = state_.options().at_statement;
        const auto which =
            chaos_pick(state_.draw(), std::array<double, 4>{r.serialization, r.deadlock, r.busy, r.connection_lost});
        if (!which) return;
        injected_ = true;  // cleared by the next attempt's BEGIN
        inject(state_.at_statement, retryable[*which], "at a statement");
    }

    /// After an injected failure the body should have let go; PostgreSQL
    /// refuses everything in a transaction after its first error, and so
    /// does chaos, on both backends.
    [[noreturn]] void refuse(const char* what) {
        if (!refused_) state_.add(state_.swallowed);
        refused_ = true;
        throw database_error(failure::permanent, "25P02",
                             std::string("sertx: chaos injected a failure into this transaction and the body "
                                         "caught it and went on to ") +
                                 what + "; a real database would have aborted the transaction. Let retryable "
                                        "failures propagate out of the body.");
    }

    /// The retryable failures, in the order of the rates in fault_rates.
    static constexpr std::array<failure, 4> retryable{failure::serialization, failure::deadlock, failure::busy,
                                                      failure::connection_lost};

    [[noreturn]] void inject(std::array<std::atomic<std::uint64_t>, failure_kinds>& counts, failure f,
                             const char* where) {
        state_.add(counts[static_cast<std::size_t>(f)]);
        throw database_error(f, Inner::failure_code(f),
                             std::string("sertx: chaos injected a ") + std::string(to_string(f)) + " failure " +
                                 where + " (seed " + std::to_string(state_.options().seed) + ")");
    }

    Inner& inner_;
    chaos_state& state_;
    bool armed_ = false;       // this attempt may be disturbed
    bool resolvable_ = false;  // a lost COMMIT of this attempt can be resolved
    bool injected_ = false;    // a failure was injected into a statement of this attempt
    bool refused_ = false;     // and the body went on regardless
};

}  // namespace sertx::detail

namespace sertx::testing {

/// A database that behaves as `Db` and injects failures; see the top of
/// this file.
template <class Db>
class chaos {
    using inner_lease = decltype(std::declval<Db&>().acquire(std::chrono::steady_clock::time_point{}));

public:
    using backend = backend_of<Db>;
    using connection_type = sertx::detail::chaos_connection<typename Db::connection_type>;
    using session_type = typename connection_type::session_type;

    /// Wraps `db`; the two share the pool, so a test can check invariants
    /// through `db` while chaos runs.
    chaos(Db db, chaos_options options)
        : db_(std::move(db)), state_(std::make_shared<sertx::detail::chaos_state>(checked(options))) {
        static_assert(chaos_adapter<Db>,
                      "sertx: testing::chaos needs the adapter's connection to give failure_code(sertx::failure) "
                      "and before_each_statement(hook); it injects failures with the database's own codes, "
                      "before each statement (see sertx/adapter.hpp).");
    }

    /// A connection on loan from the wrapped pool, disturbed while it is lent.
    class lease {
    public:
        lease(inner_lease inner, sertx::detail::chaos_state& state)
            : inner_(std::move(inner)), connection_(std::make_unique<connection_type>(inner_.connection(), state)) {}
        lease(lease&&) noexcept = default;
        lease& operator=(lease&&) = delete;
        connection_type& connection() noexcept { return *connection_; }

    private:
        inner_lease inner_;  // returned to the pool after connection_ let go of it
        // On the heap: SOCI holds its address while it is lent.
        std::unique_ptr<connection_type> connection_;
    };

    lease acquire(std::chrono::steady_clock::time_point deadline) { return lease(db_.acquire(deadline), *state_); }

    /// The wrapped database's counters: the retries that the failures caused.
    sertx::stats stats() const { return db_.stats(); }
    sertx::counters& counters() noexcept { return db_.counters(); }
    /// Distinct from the wrapped database's: a nested `transact` must use the
    /// same wrapper as the one around it.
    const void* identity() const noexcept { return state_.get(); }

    /// What was injected so far.
    chaos_stats injected() const noexcept { return state_->snapshot(); }
    const chaos_options& options() const noexcept { return state_->options(); }
    /// The wrapped database.
    Db& inner() noexcept { return db_; }

    /// Resolving a lost COMMIT asks the wrapped database, undisturbed.
    auto key_committed_elsewhere(std::string_view key, std::chrono::steady_clock::time_point deadline)
        requires keyed_adapter<Db>
    {
        return db_.key_committed_elsewhere(key, deadline);
    }
    auto txid_committed(std::int64_t txid, std::chrono::steady_clock::time_point deadline)
        requires txid_adapter<Db>
    {
        return db_.txid_committed(txid, deadline);
    }

private:
    static const chaos_options& checked(const chaos_options& o) {
        const auto& s = o.at_statement;
        const auto& c = o.at_commit;
        const double statement_rates[] = {s.serialization, s.deadlock, s.busy, s.connection_lost};
        const double commit_rates[] = {c.serialization,   c.deadlock,          c.busy, c.connection_lost,
                                       c.lost_commit_applied, c.lost_commit_rolled_back};
        auto valid = [](const auto& rates) {
            double sum = 0;
            for (double r : rates) {
                if (!(r >= 0 && r <= 1)) return false;
                sum += r;
            }
            return sum <= 1;
        };
        if (!valid(statement_rates) || !valid(commit_rates))
            throw error("sertx: chaos rates are probabilities: each between 0 and 1, and those of one place "
                        "(at_statement, at_commit) adding up to at most 1.");
        return o;
    }

    Db db_;
    std::shared_ptr<sertx::detail::chaos_state> state_;
};

}  // namespace sertx::testing

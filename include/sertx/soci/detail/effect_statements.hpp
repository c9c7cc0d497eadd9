// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The SQL of sertx's exactly-once tables on a SOCI session: the commit log
/// of idempotency keys (`sertx_commit_log`) and the effect journal
/// (`sertx_effect`): what each SOCI adapter's connection returns from
/// `journal()` (`sertx::journal_statements`, adapter.hpp). One text serves
/// both dialects; where they differ, the connection's `dialect` says. Keys, payloads and results are bound parameters, stored as
/// hex text, so that any bytes (NUL included) are valid on every backend and
/// readable in every tool; times are microseconds since 1970 (UTC), 0 for
/// "not yet".

#include <sertx/adapter.hpp>
#include <sertx/detail/config.hpp>
#include <sertx/effect_record.hpp>

#include <soci/soci.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sertx::detail {

/// The bytes of a column that `to_hex` wrote; a value that is not hex was
/// written by something other than sertx.
SERTX_DECL std::string column_bytes(std::string_view hex, const char* column, const char* table = "sertx_effect");

SERTX_DECL std::int64_t unix_micros_now();

/// `Connection` provides `session()`, `execute(const char*)` and a
/// `dialect` (its backend's, e.g. sertx::postgresql::dialect). The
/// statements run inside a transaction the caller opened (`transact`); see
/// `sertx::journal_statements` in adapter.hpp for what each one means.
template <class Connection>
class effect_statements {
public:
    explicit effect_statements(Connection& connection) noexcept : connection_(connection) {}

    /// Creates the tables when missing; the effect states and tags allowed by
    /// the CHECK constraints are the lists of effect_record.hpp.
    void install_exactly_once();

    /// The journal's table, named `name` (SQLite's upgrade builds a new one
    /// beside the old). Times are unix microseconds, 0 for "not yet".
    static std::string effect_table(const std::string& name);

    /// A journal made by a sertx from before leases (issue 14) gains the
    /// columns of leases, retries, not_before and call_began, and its state
    /// CHECK the state `dead`, in the install's transaction: whole or not at
    /// all; one made with leases but before the call-began mark gains
    /// call_began alone (an ADD COLUMN in both dialects).
    /// PostgreSQL alters the table in place; SQLite cannot change a CHECK, so
    /// the table is rebuilt and its rows copied (SQLite's documented way,
    /// "Making Other Kinds Of Table Schema Changes"). Either way the stored
    /// states keep their names, so every row keeps its meaning.
    void upgrade_effect_table();

    /// A commit log whose age index is of an older kind than the dialect's
    /// (PostgreSQL: the btree of sertx before issue 15) gets the dialect's.
    void upgrade_commit_log_age();

    // ---- the commit log ----

    std::optional<committed_key> key_committed(std::string_view key);

    void record_key(std::string_view key, std::string_view attempt, std::string_view request);

    std::size_t prune_keys(std::int64_t committed_before);

    // ---- the effect journal ----

    /// Settled effects (done or failed, by a dispatcher or by hand) settled
    /// before `settled_before`; never one that is pending, started, in doubt or dead.
    std::size_t prune_effects(std::int64_t settled_before);

    /// `not_before` 0: due now (the scheduling time, so that claims go in
    /// the order intents were scheduled).
    bool schedule_effect(std::string_view key, std::string_view operation, std::string_view effect,
                         std::string_view payload, std::int64_t not_before);

    /// Up to `limit` due pending intents of `operation`, oldest first, now
    /// started by `dispatcher` with a lease of `lease` microseconds. Where
    /// the dialect offers `claim_effects` (PostgreSQL: one UPDATE over a
    /// `FOR UPDATE SKIP LOCKED` pick), dispatchers claiming at once take
    /// different rows rather than conflict on the oldest; elsewhere (SQLite,
    /// one writer at a time) the rows are read and each is updated.
    std::vector<claimed_effect> claim_effects(std::string_view operation, std::string_view dispatcher,
                                              std::int64_t lease, std::size_t limit);

    /// The same intents as SQL text, for an adapter that sends them with
    /// COMMIT in one simple query (PostgreSQL): each call adds one row to
    /// one INSERT in `batch` (empty: the statement starts), and
    /// `close_effect_rows` ends it. Rows go in the order given, so that of
    /// two with one key the first is kept, as two `schedule_effect` calls
    /// would keep it. Nothing of the caller's is spliced into the text as
    /// itself: key and payload are stored as hex already, and the names
    /// travel as hex digits that the server decodes, so that no quote or
    /// backslash in them can end the literal.
    static void append_effect_row(std::string& batch, std::string_view key, std::string_view operation,
                                  std::string_view effect, std::string_view payload, std::int64_t not_before);
    /// Ends the INSERT of `append_effect_row`: a key scheduled before changes
    /// nothing, as in `schedule_effect`.
    static void close_effect_rows(std::string& batch) { batch.append(" on conflict (key) do nothing"); }

    /// Extends the lease of the claim fenced by `attempts` to `lease`
    /// microseconds from now; false when that claim was rescued meanwhile.
    bool renew_effect(std::string_view key, unsigned attempts, std::int64_t lease);

    /// The claim fenced by `attempts` is about to call its at-most-once
    /// operation: records when (`call_began`), with a fresh lease of `lease`
    /// microseconds; false when that claim was rescued meanwhile, and then
    /// the call must not be made. Committed before the call, so that a
    /// rescuer knows whether the call may have begun.
    bool mark_call_began(std::string_view key, unsigned attempts, std::int64_t lease);

    /// The earliest time something of `operation` needs a dispatcher: a
    /// pending intent falls due, or a lease runs out; 0 when nothing is
    /// waiting.
    std::int64_t next_effect_due(std::string_view operation);

    /// Records the outcome of the claim that raised `attempts` to its value:
    /// a row claimed again since (after recover) is not overwritten.
    bool settle_effect(std::string_view key, unsigned attempts, effect_state state, std::string_view result,
                       std::string_view why);

    /// A call of the claim fenced by `attempts` ended `retry_later`: back to
    /// `pending` not before `not_before`, or `dead` (`state`); one more retry.
    bool retry_effect(std::string_view key, unsigned attempts, effect_state state, std::int64_t not_before,
                      std::string_view why);

    /// The claim fenced by `attempts` goes back to pending uncalled. Its
    /// call_began of 0 becomes -1 ("not known"), as every row's that no
    /// claim holds: 0 must only ever mean "this claim has not called", and a
    /// dispatcher of an older sertx that claims the row next writes nothing
    /// there.
    bool release_effect(std::string_view key, unsigned attempts);

    /// Started intents of `operation` to take back, at most `limit`: with an
    /// empty `dispatcher`, those of any dispatcher whose lease ended before
    /// `before` (unix µs); with a name, all of that dispatcher's.
    std::vector<expired_claim> expired_effects(std::string_view operation, std::string_view dispatcher,
                                               std::int64_t before, std::size_t limit);

    /// Settles a started intent taken back from the claim fenced by
    /// `attempts` (a rescue, or recover(op)): `state` with `result` and
    /// `why`, noted and signed; false when that claim is no longer the
    /// intent's (another dispatcher rescued or settled it first), or when
    /// its call_began is no longer `call_began`, the value the rescuer
    /// decided on: a claimer slow but alive may commit its mark between the
    /// rescuer's read and this write, and then its call must not be taken
    /// as not begun. A call_began of 0 (only an uncalled claim's, which goes
    /// back to pending) becomes -1, as in release_effect.
    bool rescue_effect(std::string_view key, unsigned attempts, std::int64_t call_began, effect_state state,
                       std::string_view result, std::string_view why, std::string_view note, std::string_view by);

    /// A dead or failed intent back to pending, due now, with its retries
    /// counted afresh; recorded with who and why.
    bool requeue_effect(std::string_view key, std::string_view note, std::string_view by);

    /// The counts of `journal.stats()`, in one read of the table.
    journal_stats effect_stats();

    recover_report recover_effects(std::string_view dispatcher);

    std::vector<effect_record> effects_in(effect_state state, std::size_t limit);

    std::optional<effect_record> find_effect(std::string_view key);

    bool resolve_effect(std::string_view key, effect_state state, std::string_view by, std::string_view note);

private:
    Connection& self() noexcept { return connection_; }

    static constexpr const char* schedule_sql =
        "insert into sertx_effect (key, operation, effect, payload, state, scheduled_at, not_before) values (:k, "
        ":o, :e, :p, 'pending', :t, :n) on conflict (key) do nothing";

    /// Whether schedule_effect's INSERT stays prepared with the connection
    /// (the dialect's `keep_schedule_statement`; SQLite: preparing it each
    /// time was about 130 000 of the 337 000 client instructions of a
    /// scheduled effect). Not on PostgreSQL, where a SOCI prepared statement
    /// costs round trips of its own and the intents travel with COMMIT.
    static constexpr bool keeps_schedule_statement = [] {
        if constexpr (requires { Connection::dialect::keep_schedule_statement; })
            return Connection::dialect::keep_schedule_statement;
        else
            return false;
    }();

    /// schedule_effect's INSERT and the values it is bound to, prepared once
    /// per connection among its session objects (`sertx::prepared`'s).
    struct schedule_statement {
        std::string key, operation, effect, payload;
        long long now = 0, due = 0;
        ::soci::statement statement;
        explicit schedule_statement(::soci::session& session)
            : statement((session.prepare << schedule_sql, ::soci::use(key), ::soci::use(operation),
                         ::soci::use(effect), ::soci::use(payload), ::soci::use(now), ::soci::use(due))) {}
    };
    bool schedule_kept(std::string key, std::string operation, std::string effect, std::string payload,
                       long long now, long long due);

    /// A statement to run once: one round trip. SOCI's `prepare <<` makes a
    /// named server-side statement on PostgreSQL, which costs three (prepare,
    /// execute, DEALLOCATE) for a statement run once per transaction.
    template <class... Exchange>
    ::soci::statement once(const std::string& sql, Exchange&&... exchanges);

    /// Runs a statement that returns no rows; the rows it changed.
    static std::size_t changed(::soci::statement st);

    struct effect_row;  // a row of sertx_effect as SOCI reads it

    template <class... Params>
    std::vector<effect_record> select_effects(const std::string& where, Params&... params);

    Connection& connection_;
};

}  // namespace sertx::detail

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/detail/impl/effect_statements.ipp>
#endif

// SPDX-License-Identifier: BSL-1.0
// sertx-ledger: a small custodial ledger on sertx, and the operator's view of
// it. Exit codes: 0 done (and, for the demo, every invariant holds); 1 an
// invariant or the schema check does not hold; 2 the command could not run
// (bad arguments, a database that cannot be reached, a refused state).

#include "cli.hpp"
#include "demo.hpp"
#include "ledger.hpp"
#include "payment_network.hpp"

#include <sertx/effects.hpp>
#include <sertx/migrate.hpp>
#include <sertx/sertx.hpp>
#include <sertx/soci/postgresql.hpp>
#include <sertx/soci/sqlite3.hpp>
#include <sertx/version.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace ledger {
namespace {

const option_spec db_option{"db", "DB",
                            "the ledger's database: a file (SQLite; default sertx-ledger.db), or a postgresql:// URI "
                            "or libpq \"key=value ...\" string (PostgreSQL)"};
const option_spec network_option{"network-log", "FILE",
                                 "the payment network's record of payouts (default: sertx-ledger-network.log beside "
                                 "the SQLite file, or in the current directory)"};

const command_spec demo_command{
    "demo", "", 0,
    "Opens (or continues) a ledger, runs concurrent workers doing transfers, deposits and withdrawals while two\n"
    "dispatchers (this process and a second one) pay withdrawals out through sertx's effect journal with run(),\n"
    "then checks that money is conserved, no balance is negative and every payout was made exactly once. Exit\n"
    "code 0 only if every invariant holds.",
    {db_option,
     {"workers", "N", "concurrent workers (default 4)"},
     {"seconds", "S", "how long the workers run (default 10)"},
     {"crash-after", "N", "kill this process (SIGKILL) inside the N-th payout, after the network received it"},
     {"resume", "", "continue after a crash: list the payouts recovery found in doubt, then run"},
     {"kill-dispatcher", "", "kill the second dispatcher (SIGKILL) inside a payout; this one rescues its claim"},
     network_option}};
const command_spec dispatch_command{
    "dispatch", "", 0,
    "The demo's second dispatcher (the demo starts it): pays payouts out with the journal's run() until SIGTERM.",
    {db_option,
     {"name", "NAME", "its dispatcher name in the journal (default sertx-ledger-2)"},
     {"crash-after", "N", "kill this process (SIGKILL) inside its N-th payout, after the network received it"},
     network_option}};
const command_spec effects_list_command{
    "effects list", "", 0,
    "Shows the journal's figures (journal.stats()), lists the payouts in doubt (started, outcome unknown: never\n"
    "paid again automatically) with what the payment network recorded for each, and counts the payouts pending.",
    {db_option, network_option}};
const command_spec effects_resolve_command{
    "effects resolve", "KEY done|failed", 2,
    "Settles a payout in doubt after checking the payment network: done (it was paid) or failed (it was not;\n"
    "the withdrawal is refunded to its account). The journal records who settled it, when and why.",
    {{"note", "TEXT", "why (required): what the network showed"}, db_option}};
const command_spec schema_status_command{
    "schema status", "", 0, "Lists the ledger's migrations: applied (when, checksum) and pending.", {db_option}};

constexpr std::string_view overview =
    "usage: sertx-ledger COMMAND [options]\n"
    "\n"
    "A small custodial ledger on sertx: accounts, deposits, transfers, and withdrawals paid out at most once\n"
    "through the effect journal to a simulated payment network.\n"
    "\n"
    "commands:\n"
    "  demo                          run concurrent workers, then check the invariants\n"
    "  effects list                  payouts in doubt and pending (the operator's view)\n"
    "  effects resolve KEY done|failed --note TEXT\n"
    "                                settle a payout in doubt, after checking the network\n"
    "  schema status                 the ledger's migrations, applied and pending\n"
    "\n"
    "Each command takes --db DB (default sertx-ledger.db, an SQLite file) and --help.\n";

/// Where the ledger lives, as the user named it.
struct place {
    bool postgresql = false;
    std::string target;  ///< the SQLite path, or the PostgreSQL connection string
    std::string shown;   ///< for messages: never the connection string, which may hold a password
};

place locate(const arguments& args) {
    const std::string db = args.value("db").value_or("sertx-ledger.db");
    if (db.empty()) args.fail("--db needs a file name or a PostgreSQL connection string");
    if (db.starts_with("postgresql://") || db.starts_with("postgres://") || db.find('=') != std::string::npos)
        return {true, db, "PostgreSQL"};
    return {false, db, "SQLite '" + db + "'"};
}

std::filesystem::path network_log(const arguments& args, const place& p) {
    if (auto chosen = args.value("network-log")) return *chosen;
    const std::filesystem::path beside = p.postgresql ? "" : std::filesystem::path(p.target).parent_path();
    return beside / "sertx-ledger-network.log";
}

/// Opens the database and runs `f(db)`. A database that cannot be opened is
/// the user's to fix (exit 2); an operator command never creates a ledger.
template <class F>
int with_database(const place& p, std::size_t pool_size, bool must_exist, F&& f) {
    if (must_exist && !p.postgresql && !std::filesystem::exists(p.target))
        throw usage_error("no ledger at '" + p.target + "'; 'sertx-ledger demo --db " + p.target + "' makes one");
    auto opened = [&](auto open) {
        try {
            return open();
        } catch (const sertx::error& e) {
            throw usage_error("cannot open the ledger's database, " + p.shown + ": " + e.what());
        }
    };
    auto run = [&](auto& db) {
        if (must_exist && sertx::migration_status(db).version() == 0)
            throw usage_error("no ledger in " + p.shown + " (no migration applied); 'sertx-ledger demo' makes one");
        return f(db);
    };
    if (p.postgresql) {
        auto db = opened([&] { return sertx::postgresql::open(p.target, {.pool_size = pool_size}); });
        return run(db);
    }
    auto db = opened([&] { return sertx::sqlite3::open(p.target, {.pool_size = pool_size}); });
    return run(db);
}

int show(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    return 0;
}

std::string local_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) return "-";
    const std::time_t seconds = std::chrono::system_clock::to_time_t(*t);
    std::tm parts{};
    localtime_r(&seconds, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
    return text;
}

int demo(std::span<char* const> words) {
    const arguments args(demo_command, words);
    if (args.help()) return show(help_text(demo_command));
    demo_options o;
    o.workers = static_cast<int>(args.number("workers", 1, 64, 4));
    o.length = std::chrono::seconds(args.number("seconds", 1, 3600, 10));
    o.crash_after = static_cast<std::uint64_t>(args.number("crash-after", 1, 1'000'000'000, 0));
    o.resume = args.flag("resume");
    o.kill_dispatcher = args.flag("kill-dispatcher");
    const place p = locate(args);
    const auto log = network_log(args, p);
    // A session per worker, two for the dispatcher (its wake-ups), one for the summary.
    return with_database(p, static_cast<std::size_t>(o.workers) + 3, false,
                         [&](auto& db) { return run_demo(db, p.target, p.shown, log, o); });
}

int dispatch(std::span<char* const> words) {
    const arguments args(dispatch_command, words);
    if (args.help()) return show(help_text(dispatch_command));
    const std::string name = args.value("name").value_or(second_dispatcher_name);
    const auto crash_after = static_cast<std::uint64_t>(args.number("crash-after", 1, 1'000'000'000, 0));
    const place p = locate(args);
    const auto log = network_log(args, p);
    return with_database(p, 3, true, [&](auto& db) { return run_dispatcher(db, name, log, crash_after); });
}

int effects_list(std::span<char* const> words) {
    const arguments args(effects_list_command, words);
    if (args.help()) return show(help_text(effects_list_command));
    const place p = locate(args);
    const auto log = network_log(args, p);
    return with_database(p, 2, true, [&](auto& db) {
        sertx::effects<std::remove_cvref_t<decltype(db)>> journal(db, dispatcher_name);
        const auto doubt = journal.in_doubt();
        const std::size_t pending = journal.pending().size();
        const auto received = payment_network::received(log, ledger_id(db));
        const sertx::journal_stats s = journal.stats();
        std::printf("journal.stats(): %llu pending (oldest %.1fs), %llu started, %llu in doubt, %llu dead\n",
                    static_cast<unsigned long long>(s.pending),
                    std::chrono::duration<double>(s.oldest_pending_age).count(),
                    static_cast<unsigned long long>(s.started), static_cast<unsigned long long>(s.in_doubt),
                    static_cast<unsigned long long>(s.dead));
        std::printf("payouts in doubt in %s: %zu\n", p.shown.c_str(), doubt.size());
        if (!doubt.empty()) {
            std::printf("  %-20s  %-28s  %-19s  %-18s  %s\n", "KEY", "PAYOUT", "STARTED", "NETWORK RECEIVED",
                        "WHY");
            for (const auto& e : doubt) {
                const auto r = received.find(e.key);
                std::printf("  %-20s  %-28s  %-19s  %-18s  %s\n", e.key.c_str(), describe_payout(e.payload).c_str(),
                            local_time(e.started_at).c_str(),
                            (std::to_string(r == received.end() ? 0u : r->second) + " time(s)").c_str(),
                            (e.note.empty() ? e.error : e.note).c_str());
            }
            std::printf("settle each after checking the network: sertx-ledger effects resolve KEY done|failed --note "
                        "TEXT\n");
        }
        std::printf("payouts pending (scheduled, not started; the next demo run pays them): %zu\n", pending);
        return 0;
    });
}

int effects_resolve(std::span<char* const> words) {
    const arguments args(effects_resolve_command, words);
    if (args.help()) return show(help_text(effects_resolve_command));
    const std::string& key = args.operand(0);
    const std::string& word = args.operand(1);
    if (word != "done" && word != "failed") args.fail("the outcome is 'done' or 'failed', not '" + word + "'");
    const auto outcome = word == "done" ? sertx::effect_state::done : sertx::effect_state::failed;
    const auto note = args.value("note");
    if (!note || note->empty())
        args.fail("--note TEXT is required: say what the network showed, for whoever reads the journal later");
    const place p = locate(args);
    return with_database(p, 2, true, [&](auto& db) {
        sertx::effects<std::remove_cvref_t<decltype(db)>> journal(db, dispatcher_name);
        const auto found = journal.find(key);
        if (!found)
            throw usage_error("no payout has the key '" + key + "'; 'sertx-ledger effects list' shows those in doubt");
        if (found->state == sertx::effect_state::in_doubt) {
            journal.resolve(key, outcome, *note);
            std::printf("payout %s (%s) settled as %s\n", key.c_str(), describe_payout(found->payload).c_str(),
                        word.c_str());
        } else if (!(found->state == sertx::effect_state::failed && outcome == sertx::effect_state::failed)) {
            throw usage_error("payout '" + key + "' is " + std::string(sertx::to_string(found->state)) +
                              ", not in doubt; only a payout in doubt is settled by hand");
        }
        // A failed payout's money goes back, once: a re-run after a crash
        // between the two steps finds the refund done or does it.
        if (outcome == sertx::effect_state::failed) {
            const bool now = sertx::transact(db, sertx::idempotency_key{"sertx-ledger: refund " + key},
                                             [&](auto& tx) { refund(tx, key); });
            std::printf("withdrawal %s %s\n", key.c_str(), now ? "refunded to its account" : "was refunded before");
        }
        return 0;
    });
}

int schema_status(std::span<char* const> words) {
    const arguments args(schema_status_command, words);
    if (args.help()) return show(help_text(schema_status_command));
    const place p = locate(args);
    return with_database(p, 1, !p.postgresql, [&](auto& db) {
        const sertx::schema_status s = sertx::migration_status(db, schema);
        std::printf("schema of the ledger in %s: version %lld; this program knows %zu migration(s)\n", p.shown.c_str(),
                    static_cast<long long>(s.version()), std::size(schema));
        std::printf("  %-8s %-24s %-8s %-19s %s\n", "VERSION", "NAME", "STATE", "APPLIED", "CHECKSUM");
        for (const auto& a : s.applied)
            std::printf("  %-8lld %-24s %-8s %-19s %s\n", static_cast<long long>(a.version), a.name.c_str(), "applied",
                        local_time(a.applied_at).c_str(), a.checksum.c_str());
        for (const auto& m : s.pending)
            std::printf("  %-8lld %-24s %-8s %-19s %s\n", static_cast<long long>(m.version), m.name.c_str(), "pending",
                        "-", m.checksum.c_str());
        for (const auto& problem : s.problems) std::printf("problem: %s\n", problem.c_str());
        return s.problems.empty() ? 0 : 1;
    });
}

int run(std::span<char* const> words) {
    const auto is = [&](std::size_t i, std::string_view w) { return words.size() > i && words[i] == w; };
    if (words.empty())
        throw usage_error("a command is needed: demo, effects list, effects resolve or schema status; see "
                          "'sertx-ledger --help'");
    if (is(0, "--help") || is(0, "-h") || is(0, "help")) return show(std::string(overview));
    if (is(0, "--version"))
        return show("sertx-ledger (sertx " + std::to_string(sertx::version_major) + "." +
                    std::to_string(sertx::version_minor) + "." + std::to_string(sertx::version_patch) + ")\n");
    if (is(0, "demo")) return demo(words.subspan(1));
    if (is(0, "dispatch")) return dispatch(words.subspan(1));
    if (is(0, "effects") && is(1, "list")) return effects_list(words.subspan(2));
    if (is(0, "effects") && is(1, "resolve")) return effects_resolve(words.subspan(2));
    if (is(0, "schema") && is(1, "status")) return schema_status(words.subspan(2));
    if (is(0, "effects")) throw usage_error("'effects' takes 'list' or 'resolve'; see 'sertx-ledger --help'");
    if (is(0, "schema")) throw usage_error("'schema' takes 'status'; see 'sertx-ledger --help'");
    throw usage_error("unknown command '" + std::string(words[0]) + "'; see 'sertx-ledger --help'");
}

/// An exception's message followed by those it nests (retries_exhausted
/// nests the last failure): the whole story in one line.
std::string explain(const std::exception& e) {
    std::string text = e.what();
    try {
        std::rethrow_if_nested(e);
    } catch (const std::exception& cause) {
        text += "; because: " + explain(cause);
    } catch (...) {
    }
    return text;
}

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) {
    try {
        return ledger::run(std::span<char* const>(argv + 1, static_cast<std::size_t>(argc - 1)));
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::string why = ledger::explain(e);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();  // libpq ends with one
        std::fprintf(stderr, "sertx-ledger: %s\n", why.c_str());
        return 2;
    }
}

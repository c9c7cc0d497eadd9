// SPDX-License-Identifier: BSL-1.0
// The Prometheus text exposition of sertx::stats and sertx::journal_stats
// (include/sertx/metrics.hpp): the exact text for given values, the label
// escaping, the label checks, and promtool's verdict on a text with hostile
// label values. The exposition of real databases' stats is checked in
// tests/*/metrics_test.cpp.
#include "support/catch.hpp"
#include "support/promtool.hpp"

#include <sertx/metrics.hpp>

#include <chrono>
#include <string>

namespace {

sertx::stats some_stats() {
    sertx::stats s;
    s.commits = 1'000'000;  // printed in full, not as 1e+06
    s.retries[static_cast<std::size_t>(sertx::failure::serialization)] = 7;
    s.retries[static_cast<std::size_t>(sertx::failure::busy)] = 2;
    s.give_ups = 1;
    s.commit_unknown = 3;
    s.commit_resolved = 2;
    s.notices = 4;
    s.sessions_opened = 5;
    s.sessions_discarded = 1;
    s.durable = true;
    s.synchronous_replication = false;
    return s;
}

}  // namespace

TEST_CASE("a database's stats print as the exact Prometheus text, with HELP and TYPE per metric", "[metrics]") {
    CHECK(sertx::prometheus_text(some_stats(), {{"database", "ledger"}}) ==
          "# HELP sertx_commits_total Transactions committed.\n"
          "# TYPE sertx_commits_total counter\n"
          "sertx_commits_total{database=\"ledger\"} 1000000\n"
          "# HELP sertx_retries_total Attempts that failed and were run again, by failure kind.\n"
          "# TYPE sertx_retries_total counter\n"
          "sertx_retries_total{database=\"ledger\",kind=\"serialization\"} 7\n"
          "sertx_retries_total{database=\"ledger\",kind=\"deadlock\"} 0\n"
          "sertx_retries_total{database=\"ledger\",kind=\"busy\"} 2\n"
          "sertx_retries_total{database=\"ledger\",kind=\"connection_lost\"} 0\n"
          "sertx_retries_total{database=\"ledger\",kind=\"commit_unknown\"} 0\n"
          "sertx_retries_total{database=\"ledger\",kind=\"permanent\"} 0\n"
          "# HELP sertx_give_ups_total Transactions given up: attempts or deadline exhausted, or a failure not "
          "retried.\n"
          "# TYPE sertx_give_ups_total counter\n"
          "sertx_give_ups_total{database=\"ledger\"} 1\n"
          "# HELP sertx_commit_unknown_total COMMITs whose outcome was lost with the connection.\n"
          "# TYPE sertx_commit_unknown_total counter\n"
          "sertx_commit_unknown_total{database=\"ledger\"} 3\n"
          "# HELP sertx_commit_resolved_total Lost COMMITs whose outcome was found out (idempotency key or "
          "transaction id).\n"
          "# TYPE sertx_commit_resolved_total counter\n"
          "sertx_commit_resolved_total{database=\"ledger\"} 2\n"
          "# HELP sertx_notices_total NOTICE and WARNING messages the server sent.\n"
          "# TYPE sertx_notices_total counter\n"
          "sertx_notices_total{database=\"ledger\"} 4\n"
          "# HELP sertx_sessions_opened_total Database sessions opened.\n"
          "# TYPE sertx_sessions_opened_total counter\n"
          "sertx_sessions_opened_total{database=\"ledger\"} 5\n"
          "# HELP sertx_sessions_discarded_total Database sessions discarded as broken.\n"
          "# TYPE sertx_sessions_discarded_total counter\n"
          "sertx_sessions_discarded_total{database=\"ledger\"} 1\n"
          "# HELP sertx_durable 1 when the database keeps every acknowledged commit through a crash, 0 when it "
          "was opened accepting weaker durability.\n"
          "# TYPE sertx_durable gauge\n"
          "sertx_durable{database=\"ledger\"} 1\n"
          "# HELP sertx_synchronous_replication 1 when the newest session's commits wait for a synchronous "
          "standby, else 0.\n"
          "# TYPE sertx_synchronous_replication gauge\n"
          "sertx_synchronous_replication{database=\"ledger\"} 0\n");
}

TEST_CASE("a journal's stats print as gauges, the oldest pending age in seconds", "[metrics]") {
    sertx::journal_stats j;
    j.pending = 12;
    j.oldest_pending_age = std::chrono::milliseconds(1500);
    j.started = 3;
    j.in_doubt = 1;
    j.dead = 2;
    CHECK(sertx::prometheus_text(j) ==
          "# HELP sertx_journal_pending Effects recorded and waiting for a dispatcher, including those not due "
          "yet.\n"
          "# TYPE sertx_journal_pending gauge\n"
          "sertx_journal_pending 12\n"
          "# HELP sertx_journal_oldest_pending_age_seconds How long the oldest pending effect has waited; 0 when "
          "none.\n"
          "# TYPE sertx_journal_oldest_pending_age_seconds gauge\n"
          "sertx_journal_oldest_pending_age_seconds 1.5\n"
          "# HELP sertx_journal_started Effects claimed by a dispatcher, the operation being called.\n"
          "# TYPE sertx_journal_started gauge\n"
          "sertx_journal_started 3\n"
          "# HELP sertx_journal_in_doubt At-most-once effects whose outcome is unknown, waiting for an operator.\n"
          "# TYPE sertx_journal_in_doubt gauge\n"
          "sertx_journal_in_doubt 1\n"
          "# HELP sertx_journal_dead Effects given up after max_attempts, waiting for a requeue.\n"
          "# TYPE sertx_journal_dead gauge\n"
          "sertx_journal_dead 2\n");
}

TEST_CASE("label values escape backslash, double quote and newline, and nothing else", "[metrics]") {
    sertx::journal_stats j;
    const std::string text = sertx::prometheus_text(j, {{"database", "a\\b\"c\nd{e}=f,g é"}});
    CHECK_THAT(text, sertx::test::has_text("sertx_journal_dead{database=\"a\\\\b\\\"c\\nd{e}=f,g é\"} 0\n"));
}

TEST_CASE("several databases and journals share one HELP and TYPE line per metric", "[metrics]") {
    sertx::prometheus_exposition m;
    m.add(sertx::journal_stats{}, {{"database", "ledger"}});  // first, yet printed after the databases' metrics
    m.add(some_stats(), {{"database", "ledger"}, {"region", "eu"}});
    m.add(some_stats(), {{"database", "audit"}, {"region", "eu"}});
    const std::string text = m.text();
    CHECK(text.find("# TYPE sertx_commits_total") == text.rfind("# TYPE sertx_commits_total"));
    CHECK(text.find("sertx_commits_total{database=\"ledger\",region=\"eu\"} 1000000\n"
                    "sertx_commits_total{database=\"audit\",region=\"eu\"} 1000000\n") != std::string::npos);
    CHECK(text.find("sertx_retries_total{database=\"audit\",region=\"eu\",kind=\"busy\"} 2\n") != std::string::npos);
    CHECK(text.find("# HELP sertx_synchronous_replication") < text.find("# HELP sertx_journal_pending"));
    REQUIRE(m.families().size() == std::size(sertx::metric::all));
    for (std::size_t i = 0; i < m.families().size(); ++i)
        CHECK(m.families()[i].description.name == sertx::metric::all[i]->name);
}

TEST_CASE("a label name that is not valid, repeats or is 'kind' is refused with an error saying so", "[metrics]") {
    const sertx::stats s;
    for (const char* bad : {"", "1st", "__reserved", "data-base", "database name"}) {
        INFO(bad);
        try {
            sertx::prometheus_text(s, {{bad, "x"}});
            FAIL("accepted");
        } catch (const sertx::error& e) {
            CHECK_THAT(std::string(e.what()), sertx::test::has_text("sertx: '" + std::string(bad) +
                                                                     "' is not a valid metric label name"));
        }
    }
    CHECK_THROWS_WITH(sertx::prometheus_text(s, {{"kind", "x"}}),
                      sertx::test::has_text("sertx: the metric label name 'kind' is sertx_retries_total's own"));
    CHECK_THROWS_WITH(sertx::prometheus_text(s, {{"db", "x"}, {"db", "y"}}),
                      sertx::test::has_text("sertx: the metric label 'db' is given twice"));
    CHECK_NOTHROW(sertx::prometheus_text(s, {{"_db", ""}, {"Db2", "x"}}));
}

TEST_CASE("promtool parses and lints the exposition of hostile label values without a complaint", "[metrics]") {
    SERTX_REQUIRE_PROMTOOL();
    sertx::prometheus_exposition m;
    m.add(some_stats(), {{"database", "quote\" backslash\\ newline\n end"}});
    m.add(some_stats(), {{"database", ""}});
    sertx::journal_stats j;
    j.oldest_pending_age = std::chrono::microseconds(1);
    m.add(j, {{"database", "ü\\n"}});
    const auto verdict = sertx::test::promtool_check(m.text());
    INFO(m.text());
    CHECK(verdict.output == "");
    CHECK(verdict.exit_code == 0);
}

TEST_CASE("promtool rejects a text with an unescaped quote, so that its silence above means something",
          "[metrics]") {
    SERTX_REQUIRE_PROMTOOL();
    const auto verdict = sertx::test::promtool_check("# HELP x_total x\n# TYPE x_total counter\nx_total{a=\"b\"c\"} 1\n");
    CHECK(verdict.exit_code != 0);
}

// SPDX-License-Identifier: BSL-1.0
#pragma once
// The metrics of a real database (include/sertx/metrics.hpp and
// prometheus.hpp) on PostgreSQL and SQLite alike, written and registered once
// (SERTX_METRICS_CASES, at the end) and run by tests/*/metrics_test.cpp: the
// text exposition of its stats after real transactions, and the
// prometheus-cpp Collectable in a real prometheus::Registry, both checked by
// promtool. The backend comes as a fixture that the test file defines,
// deriving from sertx::test::sqlite3_backend or postgresql_backend
// (support/databases.hpp):
//
//     Db db;                                            // a fresh, empty database
//     static sertx::testing::chaos_options failures();  // retryable failures this backend has

#include "catch.hpp"
#include "databases.hpp"
#include "promtool.hpp"

#include <sertx/metrics.hpp>
#include <sertx/sertx.hpp>
#include <sertx/testing/chaos.hpp>

#if defined(SERTX_TEST_PROMETHEUS_CPP)
#include <sertx/prometheus.hpp>

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#endif

#include <soci/soci.h>

#include <string>

namespace sertx::test::metrics_cases {

/// Real transactions, some of them failing at COMMIT with the backend's own
/// codes and retried (sertx::testing::chaos around the real database), some
/// keyed: the counters then hold commits, retries and sessions.
template <class Fixture>
void run_transactions(Fixture& f, int n) {
    sertx::install(f.db);
    sertx::transact(f.db, [](auto& tx) { tx.sql() << "create table hits (n integer)"; });
    sertx::testing::chaos disturbed(f.db, Fixture::failures());
    for (int i = 0; i < n; ++i) {
        auto hit = [&](auto& tx) { tx.sql() << "insert into hits values (" << i << ")"; };
        if (i % 2) sertx::transact(disturbed, sertx::idempotency_key{"hit-" + std::to_string(i)}, hit);
        else sertx::transact(disturbed, hit);
    }
}

/// The value of the sample `series` (name and labels as printed) in `text`; -1 when absent.
inline double sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

template <class Fixture>
void text_of_real_stats_passes_promtool(Fixture& f) {
    run_transactions(f, 40);
    const sertx::stats s = f.db.stats();
    REQUIRE(s.total_retries() > 0);  // chaos made some attempts fail

    const std::string text = sertx::prometheus_text(s, {{"database", std::string(Fixture::name) + " \"main\""}});
    INFO(text);
    const std::string labels = "{database=\"" + std::string(Fixture::name) + " \\\"main\\\"\"";
    CHECK(sample(text, "sertx_commits_total" + labels + "}") == static_cast<double>(s.commits));
    CHECK(sample(text, "sertx_sessions_opened_total" + labels + "}") == static_cast<double>(s.sessions_opened));
    CHECK(sample(text, "sertx_durable" + labels + "}") == 1);
    for (std::size_t k = 0; k < sertx::failure_kinds; ++k) {
        const auto kind = std::string(to_string(static_cast<sertx::failure>(k)));
        CHECK(sample(text, "sertx_retries_total" + labels + ",kind=\"" + kind + "\"}") ==
              static_cast<double>(s.retries[k]));
    }

    const auto verdict = sertx::test::promtool_check(text);
    CHECK(verdict.output == "");
    CHECK(verdict.exit_code == 0);
}

#if defined(SERTX_TEST_PROMETHEUS_CPP)
template <class Fixture>
void collectable_in_a_registry_passes_promtool(Fixture& f) {
    run_transactions(f, 10);
    // A service's own metrics, in its own registry, served beside sertx's as
    // prometheus::Exposer does: each registered Collectable's families, one text.
    prometheus::Registry registry;
    prometheus::BuildCounter().Name("app_requests_total").Help("Requests served.").Register(registry).Add({}).Increment();
    sertx::prometheus_collectable metrics;
    metrics.add(f.db, {{"database", "main"}});
    auto scrape = [&] {
        auto families = registry.Collect();
        for (auto& family : metrics.Collect()) families.push_back(std::move(family));
        return prometheus::TextSerializer().Serialize(families);
    };

    const std::string first = scrape();
    INFO(first);
    const double commits = sample(first, "sertx_commits_total{database=\"main\"}");
    CHECK(commits == static_cast<double>(f.db.stats().commits));
    CHECK(sample(first, "app_requests_total") == 1);
    // The same families, names, help texts and values as the text exposition.
    const auto expected = sertx::prometheus_exposition().add(f.db.stats(), {{"database", "main"}}).families();
    const auto collected = metrics.Collect();
    REQUIRE(collected.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK(collected[i].name == expected[i].description.name);
        CHECK(collected[i].help == expected[i].description.help);
        REQUIRE(collected[i].metric.size() == expected[i].samples.size());
        for (std::size_t j = 0; j < expected[i].samples.size(); ++j) {
            const auto& m = collected[i].metric[j];
            CHECK((collected[i].type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value) ==
                  expected[i].samples[j].value);
        }
    }
    const auto verdict = sertx::test::promtool_check(first);
    CHECK(verdict.output == "");
    CHECK(verdict.exit_code == 0);

    // Each scrape reads the database's counters anew.
    sertx::transact(f.db, [](auto& tx) { tx.sql() << "insert into hits values (-1)"; });
    CHECK(sample(scrape(), "sertx_commits_total{database=\"main\"}") == commits + 1);
}
#else
template <class Fixture>
void collectable_in_a_registry_passes_promtool(Fixture&) {}  // never reached: the case skips first
#endif

}  // namespace sertx::test::metrics_cases

#define SERTX_METRICS_CASES(Fixture, backend_tag)                                                                   \
    TEMPLATE_TEST_CASE("the text exposition of a database's stats after real transactions passes promtool",        \
                       backend_tag "[metrics]", Fixture) {                                                          \
        SERTX_REQUIRE_BACKEND(TestType);                                                                            \
        SERTX_REQUIRE_PROMTOOL();                                                                                   \
        TestType fixture;                                                                                           \
        ::sertx::test::metrics_cases::text_of_real_stats_passes_promtool(fixture);                                  \
    }                                                                                                               \
    TEMPLATE_TEST_CASE("the prometheus-cpp Collectable beside a Registry reads the stats at each scrape, "          \
                       "and promtool accepts the text",                                                             \
                       backend_tag "[metrics]", Fixture) {                                                          \
        SERTX_REQUIRE_BACKEND(TestType);                                                                            \
        SERTX_REQUIRE_PROMTOOL();                                                                                   \
        SERTX_REQUIRE_PROMETHEUS_CPP();                                                                             \
        TestType fixture;                                                                                           \
        ::sertx::test::metrics_cases::collectable_in_a_registry_passes_promtool(fixture);                           \
    }

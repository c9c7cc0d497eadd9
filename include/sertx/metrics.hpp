// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Metrics for Prometheus: a database's counters (`db.stats()`) and an
/// effect journal's state (`journal.stats()`) as metric families, and as the
/// Prometheus text exposition format (version 0.0.4) that a service serves
/// from its own HTTP endpoint; sertx runs no server. docs/metrics.md lists
/// the metrics. `<sertx/prometheus.hpp>` gives the same families to
/// prometheus-cpp as a `prometheus::Collectable`.
///
/// \code
/// sertx::prometheus_exposition m;
/// m.add(ledger.stats(), {{"database", "ledger"}});
/// m.add(audit.stats(), {{"database", "audit"}});
/// m.add(payouts.stats(), {{"database", "ledger"}});   // an effect journal
/// std::string body = m.text();   // Content-Type: sertx::prometheus_content_type
/// \endcode
///
/// Several databases go into one exposition, told apart by labels: the format
/// allows each metric's HELP and TYPE lines only once, so two texts of two
/// databases must not simply be concatenated.

#include <sertx/effect_record.hpp>
#include <sertx/failure.hpp>
#include <sertx/observe.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace sertx {

/// The Content-Type of the text `prometheus_exposition::text()` returns.
inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// One label of a sample: `name="value"`.
struct metric_label {
    std::string name;   ///< `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`
    std::string value;  ///< any UTF-8 text; escaped in the text format
};

/// The labels a caller gives to every sample of one database or journal,
/// e.g. `{{"database", "ledger"}}`.
using metric_labels = std::vector<metric_label>;

/// Whether a metric counts events since the process started (only goes up)
/// or reads a level now.
enum class metric_type : std::uint8_t { counter, gauge };

/// What a metric is: its name, help text and type, as the text exposition
/// and `<sertx/prometheus.hpp>` both print them.
struct metric_description {
    std::string_view name;  ///< with `_total` for counters and a unit suffix where there is a unit
    std::string_view help;
    metric_type type;
};

/// The metrics of `sertx::stats` and `sertx::journal_stats`, in the order
/// they are exposed: the one list of their names and help texts.
namespace metric {
inline constexpr metric_description commits{"sertx_commits_total", "Transactions committed.", metric_type::counter};
inline constexpr metric_description retries{
    "sertx_retries_total", "Attempts that failed and were run again, by failure kind.", metric_type::counter};
inline constexpr metric_description give_ups{
    "sertx_give_ups_total", "Transactions given up: attempts or deadline exhausted, or a failure not retried.",
    metric_type::counter};
inline constexpr metric_description commit_unknown{
    "sertx_commit_unknown_total", "COMMITs whose outcome was lost with the connection.", metric_type::counter};
inline constexpr metric_description commit_resolved{
    "sertx_commit_resolved_total", "Lost COMMITs whose outcome was found out (idempotency key or transaction id).",
    metric_type::counter};
inline constexpr metric_description notices{
    "sertx_notices_total", "NOTICE and WARNING messages the server sent.", metric_type::counter};
inline constexpr metric_description sessions_opened{
    "sertx_sessions_opened_total", "Database sessions opened.", metric_type::counter};
inline constexpr metric_description sessions_discarded{
    "sertx_sessions_discarded_total", "Database sessions discarded as broken.", metric_type::counter};
inline constexpr metric_description durable{
    "sertx_durable", "1 when the database keeps every acknowledged commit through a crash, 0 when it was opened "
                     "accepting weaker durability.",
    metric_type::gauge};
inline constexpr metric_description synchronous_replication{
    "sertx_synchronous_replication",
    "1 when the newest session's commits wait for a synchronous standby, else 0.", metric_type::gauge};

inline constexpr metric_description journal_pending{
    "sertx_journal_pending", "Effects recorded and waiting for a dispatcher, including those not due yet.",
    metric_type::gauge};
inline constexpr metric_description journal_oldest_pending_age{
    "sertx_journal_oldest_pending_age_seconds", "How long the oldest pending effect has waited; 0 when none.",
    metric_type::gauge};
inline constexpr metric_description journal_started{
    "sertx_journal_started", "Effects claimed by a dispatcher, the operation being called.", metric_type::gauge};
inline constexpr metric_description journal_in_doubt{
    "sertx_journal_in_doubt", "At-most-once effects whose outcome is unknown, waiting for an operator.",
    metric_type::gauge};
inline constexpr metric_description journal_dead{
    "sertx_journal_dead", "Effects given up after max_attempts, waiting for a requeue.", metric_type::gauge};

/// Every metric above, in the order they are exposed.
inline constexpr const metric_description* all[] = {
    &commits,         &retries,          &give_ups,        &commit_unknown,
    &commit_resolved, &notices,          &sessions_opened, &sessions_discarded,
    &durable,         &synchronous_replication,            &journal_pending,
    &journal_oldest_pending_age,         &journal_started, &journal_in_doubt,
    &journal_dead};

/// The label that tells `sertx_retries_total`'s samples apart; its values
/// are `to_string(sertx::failure)`.
inline constexpr std::string_view retries_kind_label = "kind";
}  // namespace metric

/// One sample: a value under a set of labels.
struct metric_sample {
    metric_labels labels;  ///< the caller's labels, then the metric's own (`kind`)
    double value = 0;
};

/// A metric and its samples, one per database or journal added.
struct metric_family {
    metric_description description;
    std::vector<metric_sample> samples;
};

/// Collects the metrics of one or more databases and journals, each with
/// the labels that tell it apart, and prints them in the Prometheus text
/// format. Built afresh for each scrape: it holds a snapshot, not live
/// counters.
class prometheus_exposition {
public:
    /// Adds a database's counters (`db.stats()`) under `labels`. Throws
    /// `sertx::error` when a label name is not valid or repeats, or is
    /// `kind` (`sertx_retries_total`'s own).
    prometheus_exposition& add(const stats& s, const metric_labels& labels = {}) {
        check(labels);
        auto one = [&](const metric_description& d, double v) { family(d).samples.push_back({labels, v}); };
        one(metric::commits, static_cast<double>(s.commits));
        auto& retries = family(metric::retries);
        for (std::size_t i = 0; i < failure_kinds; ++i) {
            metric_labels l = labels;
            l.push_back({std::string(metric::retries_kind_label), std::string(to_string(static_cast<failure>(i)))});
            retries.samples.push_back({std::move(l), static_cast<double>(s.retries[i])});
        }
        one(metric::give_ups, static_cast<double>(s.give_ups));
        one(metric::commit_unknown, static_cast<double>(s.commit_unknown));
        one(metric::commit_resolved, static_cast<double>(s.commit_resolved));
        one(metric::notices, static_cast<double>(s.notices));
        one(metric::sessions_opened, static_cast<double>(s.sessions_opened));
        one(metric::sessions_discarded, static_cast<double>(s.sessions_discarded));
        one(metric::durable, s.durable ? 1 : 0);
        one(metric::synchronous_replication, s.synchronous_replication ? 1 : 0);
        return *this;
    }

    /// Adds an effect journal's state (`journal.stats()`) under `labels`.
    /// Throws `sertx::error` as the other overload does.
    prometheus_exposition& add(const journal_stats& s, const metric_labels& labels = {}) {
        check(labels);
        auto one = [&](const metric_description& d, double v) { family(d).samples.push_back({labels, v}); };
        one(metric::journal_pending, static_cast<double>(s.pending));
        one(metric::journal_oldest_pending_age, static_cast<double>(s.oldest_pending_age.count()) / 1e6);
        one(metric::journal_started, static_cast<double>(s.started));
        one(metric::journal_in_doubt, static_cast<double>(s.in_doubt));
        one(metric::journal_dead, static_cast<double>(s.dead));
        return *this;
    }

    /// The metric families added so far, each once, in the order of
    /// `sertx::metric` (what `<sertx/prometheus.hpp>` hands to prometheus-cpp).
    const std::vector<metric_family>& families() const noexcept { return families_; }

    /// The text exposition: for each family its `# HELP` and `# TYPE` lines,
    /// then one line per sample; label values escaped (`\\`, `\"`, `\n`).
    std::string text() const {
        std::string out;
        for (const auto& f : families_) {
            out += "# HELP ";
            out += f.description.name;
            out += ' ';
            append_escaped(out, f.description.help, false);
            out += "\n# TYPE ";
            out += f.description.name;
            out += f.description.type == metric_type::counter ? " counter\n" : " gauge\n";
            for (const auto& s : f.samples) {
                out += f.description.name;
                if (!s.labels.empty()) {
                    out += '{';
                    for (std::size_t i = 0; i < s.labels.size(); ++i) {
                        if (i) out += ',';
                        out += s.labels[i].name;
                        out += "=\"";
                        append_escaped(out, s.labels[i].value, true);
                        out += '"';
                    }
                    out += '}';
                }
                out += ' ';
                append_number(out, s.value);
                out += '\n';
            }
        }
        return out;
    }

private:
    metric_family& family(const metric_description& d) {
        for (auto& f : families_)
            if (f.description.name == d.name) return f;
        // Families keep the order of sertx::metric whatever order add() is called in.
        auto at = families_.begin();
        while (at != families_.end() && rank(at->description) < rank(d)) ++at;
        return *families_.insert(at, metric_family{d, {}});
    }

    static std::size_t rank(const metric_description& d) noexcept {
        for (std::size_t i = 0; i < std::size(metric::all); ++i)
            if (metric::all[i]->name == d.name) return i;
        return std::size(metric::all);
    }

    static void check(const metric_labels& labels) {
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const std::string& n = labels[i].name;
            bool ok = !n.empty() && !(n[0] >= '0' && n[0] <= '9') && n.rfind("__", 0) != 0;
            for (char c : n)
                ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
            if (!ok)
                throw error("sertx: '" + n + "' is not a valid metric label name; use letters, digits and '_', "
                            "not starting with a digit or '__'.");
            if (n == metric::retries_kind_label)
                throw error("sertx: the metric label name 'kind' is sertx_retries_total's own; name the label "
                            "that tells databases apart otherwise (e.g. 'database').");
            for (std::size_t j = 0; j < i; ++j)
                if (labels[j].name == n)
                    throw error("sertx: the metric label '" + n + "' is given twice; give each label once.");
        }
    }

    // The text format escapes '\' and newline in HELP texts, and also '"' in label values.
    static void append_escaped(std::string& out, std::string_view text, bool quote) {
        for (char c : text) {
            if (c == '\\') out += "\\\\";
            else if (c == '\n') out += "\\n";
            else if (c == '"' && quote) out += "\\\"";
            else out += c;
        }
    }

    // The shortest text that reads back as the same double; whole numbers (every
    // counter) in fixed notation, so that 1000000 does not print as 1e+06.
    static void append_number(std::string& out, double v) {
        char buf[32];
        const bool whole = v < 1e15 && v > -1e15 && v == static_cast<double>(static_cast<std::int64_t>(v));
        const auto r = whole ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                             : std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, r.ec == std::errc{} ? r.ptr : buf);
    }

    std::vector<metric_family> families_;
};

/// The text exposition of one database's counters:
/// `prometheus_exposition().add(s, labels).text()`.
inline std::string prometheus_text(const stats& s, const metric_labels& labels = {}) {
    return prometheus_exposition().add(s, labels).text();
}

/// The text exposition of one effect journal's state:
/// `prometheus_exposition().add(s, labels).text()`.
inline std::string prometheus_text(const journal_stats& s, const metric_labels& labels = {}) {
    return prometheus_exposition().add(s, labels).text();
}

}  // namespace sertx

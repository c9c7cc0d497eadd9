// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// sertx's metrics as a prometheus-cpp `prometheus::Collectable`, for
/// services that already serve metrics with prometheus-cpp (1.0 or later).
/// Link `sertx::prometheus` (CMake), which brings prometheus-cpp's core library; the
/// rest of sertx never needs prometheus-cpp. The metrics, their names and
/// help texts are metrics.hpp's (docs/metrics.md lists them).
///
/// \code
/// auto metrics = std::make_shared<sertx::prometheus_collectable>();
/// metrics->add(ledger, {{"database", "ledger"}});     // reads ledger.stats() at each scrape
/// metrics->add(payouts, {{"database", "ledger"}});    // an effect journal: payouts.stats()
/// prometheus::Exposer exposer{"127.0.0.1:9464"};
/// exposer.RegisterCollectable(metrics);
/// \endcode

#include <sertx/metrics.hpp>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sertx {

/// What `prometheus_collectable::add` accepts: a database (`db.stats()`
/// returns `sertx::stats`) or an effect journal (`journal.stats()` returns
/// `sertx::journal_stats`).
template <class Source>
concept metrics_source = requires(const Source& s, prometheus_exposition& e) { e.add(s.stats()); };

/// The families of a `prometheus_exposition`, as prometheus-cpp represents
/// them.
inline std::vector<::prometheus::MetricFamily> to_prometheus(const prometheus_exposition& e) {
    std::vector<::prometheus::MetricFamily> out;
    out.reserve(e.families().size());
    for (const auto& f : e.families()) {
        ::prometheus::MetricFamily pf;
        pf.name = std::string(f.description.name);
        pf.help = std::string(f.description.help);
        const bool counter = f.description.type == metric_type::counter;
        pf.type = counter ? ::prometheus::MetricType::Counter : ::prometheus::MetricType::Gauge;
        for (const auto& s : f.samples) {
            ::prometheus::ClientMetric m;
            for (const auto& l : s.labels) m.label.push_back({l.name, l.value});
            if (counter) m.counter.value = s.value;
            else m.gauge.value = s.value;
            pf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(pf));
    }
    return out;
}

/// A `prometheus::Collectable` that reads the `stats()` of the databases and
/// journals added to it at each scrape. Register it with
/// `prometheus::Exposer::RegisterCollectable`, or merge its `Collect()` with
/// a `prometheus::Registry`'s. Add every source before registering it:
/// `Collect()` may run on the exposer's thread while `add` is not
/// synchronised. The sources must outlive it.
class prometheus_collectable : public ::prometheus::Collectable {
public:
    /// Reads `source.stats()` at each scrape and exposes it under `labels`
    /// (checked now: throws `sertx::error` as `prometheus_exposition::add`
    /// does).
    template <metrics_source Source>
    prometheus_collectable& add(const Source& source, metric_labels labels = {}) {
        prometheus_exposition check;
        check.add(source.stats(), labels);
        sources_.push_back([&source, labels = std::move(labels)](prometheus_exposition& e) {
            e.add(source.stats(), labels);
        });
        return *this;
    }

    /// A temporary source would be gone at the first scrape.
    template <metrics_source Source>
    prometheus_collectable& add(const Source&& source, metric_labels labels = {}) = delete;

    /// The metric families of every source, read now. A source whose
    /// `stats()` throws (a journal whose database is down) is left out of
    /// this scrape, so its series go missing rather than the whole scrape
    /// failing.
    std::vector<::prometheus::MetricFamily> Collect() const override {
        prometheus_exposition e;
        for (const auto& read : sources_) {
            try {
                read(e);  // stats() is read before add() changes anything
            } catch (const std::exception&) {
            }
        }
        return to_prometheus(e);
    }

private:
    std::vector<std::function<void(prometheus_exposition&)>> sources_;
};

}  // namespace sertx

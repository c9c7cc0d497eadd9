// SPDX-License-Identifier: BSL-1.0
// sertx::prometheus: the metrics reach prometheus-cpp's serializer, and
// metrics.hpp (the text exposition) needs nothing beyond the core.
#include <sertx/metrics.hpp>
#include <sertx/prometheus.hpp>

#include <prometheus/text_serializer.h>

#include <cstdio>
#include <string>

int main() {
    const sertx::stats counters;
    const std::string ours = sertx::prometheus_text(counters, {{"database", "consumer"}});
    const std::string theirs = prometheus::TextSerializer().Serialize(
        sertx::to_prometheus(sertx::prometheus_exposition().add(counters, {{"database", "consumer"}})));
    const sertx::prometheus_collectable empty;
    for (const std::string* text : {&ours, &theirs}) {
        if (text->find("sertx_commits_total{database=\"consumer\"} 0") == std::string::npos) {
            std::printf("consumer: no sertx_commits_total sample in\n%s\n", text->c_str());
            return 1;
        }
    }
    if (!empty.Collect().empty()) return 1;
    std::printf("consumer: sertx::prometheus works\n");
    return 0;
}

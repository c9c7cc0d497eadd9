// SPDX-License-Identifier: BSL-1.0
#pragma once
// Prometheus's own parser and linter on a text exposition: `promtool check
// metrics` (Debian: prometheus), which reads the text from stdin, exits 0
// and prints nothing when the text parses and every metric follows the
// naming conventions (HELP present, `_total` on counters, units, ...).

#include "catch.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace sertx::test {

/// The promtool binary, or empty.
inline std::string promtool_bin() {
    for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"})
        if (std::filesystem::exists(p)) return p;
    return "";
}

/// CI (SERTX_REQUIRE_POSTGRES=1) installs every tool the tests use, so a
/// missing one fails there instead of skipping.
inline bool tools_required() {
    const char* v = std::getenv("SERTX_REQUIRE_POSTGRES");
    return v && std::string(v) == "1";
}

/// What promtool said of a text: its exit code (0: valid and lint-clean;
/// 1: does not parse; 3: lint problems) and its output.
struct promtool_verdict {
    int exit_code = -1;
    std::string output;
};

inline promtool_verdict promtool_check(const std::string& text) {
    const auto file = std::filesystem::temp_directory_path() /
                      ("sertx_metrics_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()) + ".prom");
    { std::ofstream(file, std::ios::binary) << text; }
    const std::string command = promtool_bin() + " check metrics < '" + file.string() + "' 2>&1";
    promtool_verdict v;
    if (FILE* p = ::popen(command.c_str(), "r")) {
        std::array<char, 4096> buf;
        while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) v.output.append(buf.data(), n);
        const int status = ::pclose(p);
        v.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::filesystem::remove(file);
    return v;
}

}  // namespace sertx::test

/// For a test case that checks a text with promtool: a skip when it is not
/// installed (a failure under SERTX_REQUIRE_POSTGRES=1, as in CI).
#define SERTX_REQUIRE_PROMTOOL()                                                                      \
    if (::sertx::test::promtool_bin().empty()) {                                                      \
        if (::sertx::test::tools_required()) FAIL("promtool not found (Debian: prometheus)");         \
        SERTX_SKIP("promtool not found (Debian: prometheus): cannot check the exposition's format");  \
    }

/// For a test case of sertx::prometheus_collectable: a skip when this build
/// has no sertx::prometheus (a failure under SERTX_REQUIRE_POSTGRES=1).
#if defined(SERTX_TEST_PROMETHEUS_CPP)
#define SERTX_REQUIRE_PROMETHEUS_CPP()
#else
#define SERTX_REQUIRE_PROMETHEUS_CPP()                                                                       \
    if (::sertx::test::tools_required()) FAIL("no sertx::prometheus: prometheus-cpp not found (Debian: prometheus-cpp-dev)"); \
    SERTX_SKIP("no sertx::prometheus in this build: prometheus-cpp not found (Debian: prometheus-cpp-dev)")
#endif

// SPDX-License-Identifier: BSL-1.0
// Catch2 2's main; Catch2 3 links Catch2::Catch2WithMain instead.
//
// Catch2 2 has no SKIP: SERTX_SKIP (support/catch.hpp) records the skipped
// test cases, and this main lists them at the end and gives the exit code
// Catch2 3 gives, sertx::test::skipped_exit_code, when every test case it
// ran was skipped (ctest runs one test case per process, and reports that
// code as "Skipped"). A run with failures never exits with that code.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch.hpp"

#include <cstdint>
#include <iostream>

namespace {

std::uint64_t test_cases_run = 0;

struct count_test_cases : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        ++test_cases_run;
        TestEventListenerBase::testCaseEnded(stats);
    }
};

}  // namespace

CATCH_REGISTER_LISTENER(count_test_cases)

int main(int argc, char* argv[]) {
    const int failed = Catch::Session().run(argc, argv);
    const auto& skipped = sertx::test::skipped_cases();
    if (!skipped.empty()) {
        std::cout << "sertx: " << skipped.size() << " of " << test_cases_run
                  << " test case(s) SKIPPED, neither passed nor failed:\n";
        for (const auto& s : skipped) std::cout << "  SKIPPED: " << s.name << " -- " << s.reason << "\n";
        std::cout.flush();
    }
    // Catch2 2 returns the number of failed assertions: four of them must not read as "skipped".
    if (failed != 0) return failed == sertx::test::skipped_exit_code ? failed + 1 : failed;
    if (!skipped.empty() && skipped.size() == test_cases_run) return sertx::test::skipped_exit_code;
    return 0;
}

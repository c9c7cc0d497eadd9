// SPDX-License-Identifier: BSL-1.0
// The backend-agnostic core alone: policies are checked at compile time.
#include <sertx/sertx.hpp>

#include <cstdio>
#include <cstring>
#include <string>

using patient = sertx::policy<sertx::max_attempts<50>, sertx::full_jitter<200, 50'000>>;
static_assert(patient::max_attempts == 50);

int main() {
#ifdef CONSUMED_VERSION
    // The package's version (sertxConfigVersion.cmake) is the header's.
    const std::string header = std::to_string(sertx::version_major) + "." + std::to_string(sertx::version_minor) +
                               "." + std::to_string(sertx::version_patch);
    if (header != CONSUMED_VERSION) {
        std::printf("consumer: package version %s, header version %s\n", CONSUMED_VERSION, header.c_str());
        return 1;
    }
#endif
    std::printf("consumer: sertx %d.%d.%d core works\n", sertx::version_major, sertx::version_minor,
                sertx::version_patch);
    return 0;
}

# SPDX-License-Identifier: BSL-1.0
# An overlay port that builds the sertx checkout it lives in:
#
#   vcpkg install sertx --overlay-ports=<checkout>/packaging/vcpkg/ports
#
# A registry port would fetch a release instead of the checkout:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/sertx
#                     REF "v${VERSION}" SHA512 <the archive's SHA-512> HEAD_REF main)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)

# Header-only: one configuration is enough, and nothing goes to lib/ or debug/.
set(VCPKG_BUILD_TYPE release)

# The package goes straight to where vcpkg wants it (share/sertx,
# share/pkgconfig), so CMake itself writes the relative paths and the fixup
# below has nothing to move.
# Feature "prometheus": sertx::prometheus, a prometheus::Collectable.
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS FEATURES prometheus SERTX_WITH_PROMETHEUS)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DSERTX_BUILD_TESTS=OFF
        -DSERTX_BUILD_EXAMPLES=OFF
        -DSERTX_BUILD_BENCHMARKS=OFF
        -DSERTX_INSTALL=ON
        -DSERTX_COMPILED=OFF  # header-only; separate compilation: docs/packaging.md
        "-DSERTX_INSTALL_CMAKEDIR=share/${PORT}"
        -DSERTX_INSTALL_PKGCONFIGDIR=share/pkgconfig
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH "share/${PORT}")
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")

# SPDX-License-Identifier: BSL-1.0
# Installs the headers and a relocatable CMake package: find_package(sertx).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SERTX_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/sertx" CACHE STRING
    "Where sertxConfig.cmake goes (header-only: architecture-independent)")

install(TARGETS sertx sertx_soci sertx_postgresql sertx_sqlite3 EXPORT sertxTargets
        FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sertxTargets NAMESPACE sertx:: DESTINATION ${SERTX_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/sertxConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfig.cmake" INSTALL_DESTINATION ${SERTX_INSTALL_CMAKEDIR})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/sertxConfigVersion.cmake"
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfigVersion.cmake"
  cmake/sertxDependencies.cmake
  cmake/FindSOCI.cmake
  DESTINATION ${SERTX_INSTALL_CMAKEDIR})

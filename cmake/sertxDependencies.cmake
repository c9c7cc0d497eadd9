# SPDX-License-Identifier: BSL-1.0
# Finds what sertx needs the way users will have it, and names the targets in
# SERTX_*_TARGET: used by the build and by the installed sertxConfig.cmake.

# Boost.Hana: vcpkg's boost-hana port exports Boost::hana; Debian, Conan and
# Boost's own config give Boost::headers (Boost::boost in older FindBoost).
find_package(Boost 1.74 QUIET CONFIG COMPONENTS hana)
if(TARGET Boost::hana)
  set(SERTX_HANA_TARGET Boost::hana)
else()
  find_package(Boost 1.74 REQUIRED)
  if(TARGET Boost::headers)
    set(SERTX_HANA_TARGET Boost::headers)
  else()
    set(SERTX_HANA_TARGET Boost::boost)
  endif()
endif()

# SOCI: its CMake config names targets differently by source (upstream 4.1:
# SOCI::Core, SOCI::PostgreSQL...; vcpkg: SOCI::soci_core...); Debian's
# libsoci-dev ships no config at all, hence cmake/FindSOCI.cmake.
find_package(SOCI QUIET CONFIG)
if(NOT SOCI_FOUND)
  find_package(SOCI MODULE REQUIRED)
endif()
function(_sertx_first_target out)
  foreach(candidate IN LISTS ARGN)
    if(TARGET ${candidate})
      set(${out} ${candidate} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "sertx: SOCI was found but none of the targets ${ARGN} exists")
endfunction()
_sertx_first_target(SERTX_SOCI_CORE_TARGET SOCI::soci_core SOCI::Core SOCI::soci_core_static soci_core)
_sertx_first_target(SERTX_SOCI_POSTGRESQL_TARGET SOCI::soci_postgresql SOCI::PostgreSQL SOCI::soci_postgresql_static soci_postgresql)
_sertx_first_target(SERTX_SOCI_SQLITE3_TARGET SOCI::soci_sqlite3 SOCI::SQLite3 SOCI::soci_sqlite3_static soci_sqlite3)

find_package(PostgreSQL REQUIRED)
find_package(SQLite3 REQUIRED)

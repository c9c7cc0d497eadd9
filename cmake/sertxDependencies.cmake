# SPDX-License-Identifier: BSL-1.0
# Finds what sertx needs the way users will have it, and names the targets in
# SERTX_*_TARGET. Two callers:
# - the build (CMakeLists.txt): every dependency is required;
# - the installed sertxConfig.cmake, which sets SERTX_FIND_BACKENDS to the
#   components the user asked for and _sertx_from_config, so that a missing
#   dependency makes sertx "not found" with the reason (find_dependency)
#   instead of stopping the user's configure.

if(NOT DEFINED SERTX_FIND_BACKENDS)
  set(SERTX_FIND_BACKENDS postgresql sqlite3)
endif()

# The last resort for each dependency: required in the build, find_dependency
# from the package config (whose return() leaves this file with sertx_FOUND
# false; sertxConfig.cmake checks it).
macro(_sertx_require)
  if(_sertx_from_config)
    find_dependency(${ARGN})
  else()
    find_package(${ARGN} REQUIRED)
  endif()
endmacro()

# Boost.Hana: vcpkg's boost-hana port exports Boost::hana; Debian, Conan and
# Boost's own config give Boost::headers (Boost::boost in older FindBoost).
find_package(Boost 1.74 QUIET CONFIG COMPONENTS hana)
if(TARGET Boost::hana)
  set(SERTX_HANA_TARGET Boost::hana)
else()
  _sertx_require(Boost 1.74)
  if(TARGET Boost::headers)
    set(SERTX_HANA_TARGET Boost::headers)
  else()
    set(SERTX_HANA_TARGET Boost::boost)
  endif()
endif()

# SOCI: its CMake config names targets differently by source (upstream 4.1:
# SOCI::Core, SOCI::PostgreSQL...; vcpkg: SOCI::soci_core...; Conan and
# vcpkg static builds: SOCI::soci_core_static...); Debian's libsoci-dev ships
# no config at all, hence cmake/FindSOCI.cmake, installed beside this file.
# The core alone (find_package(sertx COMPONENTS core)) needs no SOCI.
if(NOT SERTX_FIND_BACKENDS)
  return()
endif()
find_package(SOCI QUIET CONFIG)
if(NOT SOCI_FOUND)
  _sertx_require(SOCI MODULE COMPONENTS ${SERTX_FIND_BACKENDS})
endif()

# Sets `out` to the first of the candidate targets that exists. None: a
# fatal error in the build; "sertx not found" with the reason from the config.
function(_sertx_first_target out what)
  foreach(candidate IN LISTS ARGN)
    if(TARGET ${candidate})
      set(${out} ${candidate} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(why "sertx: SOCI was found but has no ${what} target (looked for ${ARGN}); install SOCI with its ${what} backend.")
  if(_sertx_from_config)
    set(sertx_FOUND FALSE PARENT_SCOPE)
    set(sertx_NOT_FOUND_MESSAGE "${why}" PARENT_SCOPE)
  else()
    message(FATAL_ERROR "${why}")
  endif()
endfunction()

_sertx_first_target(SERTX_SOCI_CORE_TARGET core SOCI::soci_core SOCI::Core SOCI::soci_core_static soci_core)
if("postgresql" IN_LIST SERTX_FIND_BACKENDS)
  _sertx_first_target(SERTX_SOCI_POSTGRESQL_TARGET postgresql
    SOCI::soci_postgresql SOCI::PostgreSQL SOCI::soci_postgresql_static soci_postgresql)
  _sertx_require(PostgreSQL)
endif()
if("sqlite3" IN_LIST SERTX_FIND_BACKENDS)
  _sertx_first_target(SERTX_SOCI_SQLITE3_TARGET sqlite3
    SOCI::soci_sqlite3 SOCI::SQLite3 SOCI::soci_sqlite3_static soci_sqlite3)
  _sertx_require(SQLite3)
endif()

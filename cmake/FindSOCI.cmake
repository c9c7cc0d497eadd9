# SPDX-License-Identifier: BSL-1.0
# Finds SOCI where it ships no CMake config (Debian's libsoci-dev 4.0.3) and
# makes the targets vcpkg's config would: SOCI::soci_core,
# SOCI::soci_postgresql, SOCI::soci_sqlite3.
include(FindPackageHandleStandardArgs)

find_path(SOCI_INCLUDE_DIR soci/soci.h PATH_SUFFIXES include)
find_library(SOCI_CORE_LIBRARY NAMES soci_core)
find_library(SOCI_POSTGRESQL_LIBRARY NAMES soci_postgresql)
find_library(SOCI_SQLITE3_LIBRARY NAMES soci_sqlite3)

if(SOCI_INCLUDE_DIR AND EXISTS "${SOCI_INCLUDE_DIR}/soci/version.h")
  file(STRINGS "${SOCI_INCLUDE_DIR}/soci/version.h" _soci_lib_version REGEX "#define SOCI_LIB_VERSION \"")
  string(REGEX REPLACE ".*\"([0-9_]+)\".*" "\\1" _soci_lib_version "${_soci_lib_version}")
  string(REPLACE "_" "." SOCI_VERSION "${_soci_lib_version}")
endif()

find_package_handle_standard_args(SOCI
  REQUIRED_VARS SOCI_INCLUDE_DIR SOCI_CORE_LIBRARY SOCI_POSTGRESQL_LIBRARY SOCI_SQLITE3_LIBRARY
  VERSION_VAR SOCI_VERSION)

if(SOCI_FOUND)
  foreach(_part IN ITEMS core postgresql sqlite3)
    string(TOUPPER ${_part} _PART)
    if(NOT TARGET SOCI::soci_${_part})
      add_library(SOCI::soci_${_part} UNKNOWN IMPORTED)
      set_target_properties(SOCI::soci_${_part} PROPERTIES
        IMPORTED_LOCATION "${SOCI_${_PART}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR}")
      if(NOT _part STREQUAL "core")
        set_property(TARGET SOCI::soci_${_part} APPEND PROPERTY INTERFACE_LINK_LIBRARIES SOCI::soci_core)
      endif()
    endif()
  endforeach()
endif()
mark_as_advanced(SOCI_INCLUDE_DIR SOCI_CORE_LIBRARY SOCI_POSTGRESQL_LIBRARY SOCI_SQLITE3_LIBRARY)

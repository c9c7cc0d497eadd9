# SPDX-License-Identifier: BSL-1.0
# Finds SOCI where it ships no CMake config (Debian's libsoci-dev 4.0.3) and
# makes the targets vcpkg's config would: SOCI::soci_core, and for each
# component asked for (default: postgresql sqlite3) SOCI::soci_<component>.
#
#   find_package(SOCI MODULE REQUIRED COMPONENTS sqlite3)
include(FindPackageHandleStandardArgs)

if(NOT SOCI_FIND_COMPONENTS)
  set(SOCI_FIND_COMPONENTS postgresql sqlite3)
  set(SOCI_FIND_REQUIRED_postgresql TRUE)
  set(SOCI_FIND_REQUIRED_sqlite3 TRUE)
endif()

find_path(SOCI_INCLUDE_DIR soci/soci.h PATH_SUFFIXES include)
find_library(SOCI_CORE_LIBRARY NAMES soci_core)
foreach(_soci_part IN LISTS SOCI_FIND_COMPONENTS)
  string(TOUPPER ${_soci_part} _SOCI_PART)
  find_library(SOCI_${_SOCI_PART}_LIBRARY NAMES soci_${_soci_part})
  mark_as_advanced(SOCI_${_SOCI_PART}_LIBRARY)
  if(SOCI_${_SOCI_PART}_LIBRARY)
    set(SOCI_${_soci_part}_FOUND TRUE)
  else()
    set(SOCI_${_soci_part}_FOUND FALSE)
  endif()
endforeach()

if(SOCI_INCLUDE_DIR AND EXISTS "${SOCI_INCLUDE_DIR}/soci/version.h")
  file(STRINGS "${SOCI_INCLUDE_DIR}/soci/version.h" _soci_lib_version REGEX "#define SOCI_LIB_VERSION \"")
  string(REGEX REPLACE ".*\"([0-9_]+)\".*" "\\1" _soci_lib_version "${_soci_lib_version}")
  string(REPLACE "_" "." SOCI_VERSION "${_soci_lib_version}")
endif()

find_package_handle_standard_args(SOCI
  REQUIRED_VARS SOCI_INCLUDE_DIR SOCI_CORE_LIBRARY
  VERSION_VAR SOCI_VERSION
  HANDLE_COMPONENTS)

if(SOCI_FOUND)
  if(NOT TARGET SOCI::soci_core)
    add_library(SOCI::soci_core UNKNOWN IMPORTED)
    set_target_properties(SOCI::soci_core PROPERTIES
      IMPORTED_LOCATION "${SOCI_CORE_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR}")
  endif()
  foreach(_soci_part IN LISTS SOCI_FIND_COMPONENTS)
    string(TOUPPER ${_soci_part} _SOCI_PART)
    if(SOCI_${_soci_part}_FOUND AND NOT TARGET SOCI::soci_${_soci_part})
      add_library(SOCI::soci_${_soci_part} UNKNOWN IMPORTED)
      set_target_properties(SOCI::soci_${_soci_part} PROPERTIES
        IMPORTED_LOCATION "${SOCI_${_SOCI_PART}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR}"
        INTERFACE_LINK_LIBRARIES SOCI::soci_core)
    endif()
  endforeach()
endif()
mark_as_advanced(SOCI_INCLUDE_DIR SOCI_CORE_LIBRARY)

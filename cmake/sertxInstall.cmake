# SPDX-License-Identifier: BSL-1.0
# Installs the headers, a relocatable CMake package (find_package(sertx)) and
# pkg-config files (sertx, sertx-postgresql, sertx-sqlite3, sertx-compiled),
# for the adapters this build has (SERTX_BACKENDS), and sertx::compiled's library.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SERTX_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/sertx" CACHE STRING
    "Where sertxConfig.cmake goes, relative to the prefix (vcpkg: share/sertx)")
set(SERTX_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where the pkg-config files go, relative to the prefix (vcpkg: share/pkgconfig)")

# Installed names are the ones users link in every form: sertx::postgresql,
# not sertx::sertx_postgresql.
if(SERTX_BACKENDS)
  set_target_properties(sertx_soci PROPERTIES EXPORT_NAME soci)
endif()
foreach(_sertx_backend IN LISTS SERTX_BACKENDS)
  set_target_properties(sertx_${_sertx_backend} PROPERTIES EXPORT_NAME ${_sertx_backend})
endforeach()

set(_sertx_header_targets ${SERTX_TARGETS})
list(REMOVE_ITEM _sertx_header_targets sertx_compiled)  # below: an export of its own
install(TARGETS ${_sertx_header_targets} EXPORT sertxTargets
        FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sertxTargets NAMESPACE sertx:: DESTINATION ${SERTX_INSTALL_CMAKEDIR})
# sertx::prometheus in a file of its own, which sertxConfig.cmake loads only
# where prometheus-cpp is found: the rest of the package never needs it.
set(SERTX_WITH_PROMETHEUS_TARGET FALSE)
if(TARGET sertx_prometheus)
  set(SERTX_WITH_PROMETHEUS_TARGET TRUE)
  set_target_properties(sertx_prometheus PROPERTIES EXPORT_NAME prometheus)
  install(TARGETS sertx_prometheus EXPORT sertxPrometheusTargets
          FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT sertxPrometheusTargets NAMESPACE sertx:: DESTINATION ${SERTX_INSTALL_CMAKEDIR})
endif()

# sertx::compiled in a file of its own too: a static library, of this build's
# architecture only (the rest of the package is header-only and serves any),
# which sertxConfig.cmake loads where every adapter it holds is found.
set(SERTX_COMPILED_TARGET FALSE)
if(TARGET sertx_compiled)
  set(SERTX_COMPILED_TARGET TRUE)
  set_target_properties(sertx_compiled PROPERTIES EXPORT_NAME compiled)
  install(TARGETS sertx_compiled EXPORT sertxCompiledTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT sertxCompiledTargets NAMESPACE sertx:: DESTINATION ${SERTX_INSTALL_CMAKEDIR})
endif()

configure_package_config_file(cmake/sertxConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfig.cmake" INSTALL_DESTINATION ${SERTX_INSTALL_CMAKEDIR})
# Header-only (but for sertx::compiled, loaded only for its own architecture):
# one package serves 32- and 64-bit consumers alike.
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/sertxConfigVersion.cmake"
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/sertxConfigVersion.cmake"
  cmake/sertxDependencies.cmake
  cmake/FindSOCI.cmake
  DESTINATION ${SERTX_INSTALL_CMAKEDIR})

# pkg-config. Boost and SOCI ship no .pc file, so the files name their
# include and library directories, when the compiler would not search them
# anyway, and SOCI's libraries.
function(_sertx_library_dir out target)
  set(${out} "" PARENT_SCOPE)
  if(NOT TARGET ${target})
    return()
  endif()
  foreach(property IN ITEMS IMPORTED_LOCATION IMPORTED_LOCATION_RELEASE IMPORTED_LOCATION_NOCONFIG
                            IMPORTED_LOCATION_RELWITHDEBINFO IMPORTED_LOCATION_DEBUG)
    get_target_property(location ${target} ${property})
    if(location)
      get_filename_component(dir "${location}" DIRECTORY)
      if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
        set(${out} "-L${dir} " PARENT_SCOPE)
      endif()
      return()
    endif()
  endforeach()
endfunction()

file(RELATIVE_PATH _sertx_pc_to_prefix "${CMAKE_INSTALL_PREFIX}/${SERTX_INSTALL_PKGCONFIGDIR}" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" _sertx_pc_to_prefix "${_sertx_pc_to_prefix}")
set(SERTX_PC_PREFIX "\${pcfiledir}/${_sertx_pc_to_prefix}")
if(SERTX_BACKENDS)
  _sertx_library_dir(SERTX_PC_SOCI_LIBDIR ${SERTX_SOCI_CORE_TARGET})
endif()
set(SERTX_PC_BOOST_CFLAGS "")
get_target_property(_sertx_boost_includes ${SERTX_HANA_TARGET} INTERFACE_INCLUDE_DIRECTORIES)
foreach(_sertx_dir IN LISTS _sertx_boost_includes)
  if(_sertx_dir AND NOT _sertx_dir MATCHES "\\$<" AND NOT _sertx_dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND SERTX_PC_BOOST_CFLAGS " -I${_sertx_dir}")
  endif()
endforeach()
set(_sertx_pcs sertx)
foreach(_sertx_backend IN LISTS SERTX_BACKENDS)
  list(APPEND _sertx_pcs sertx-${_sertx_backend})
endforeach()
if(TARGET sertx_compiled)
  list(APPEND _sertx_pcs sertx-compiled)
  set(SERTX_PC_COMPILED_REQUIRES "")
  foreach(_sertx_backend IN LISTS SERTX_BACKENDS)
    list(APPEND SERTX_PC_COMPILED_REQUIRES "sertx-${_sertx_backend} = ${PROJECT_VERSION}")
  endforeach()
  list(JOIN SERTX_PC_COMPILED_REQUIRES ", " SERTX_PC_COMPILED_REQUIRES)
  list(JOIN SERTX_BACKENDS ", " SERTX_PC_COMPILED_ADAPTERS)
endif()
foreach(_sertx_pc IN LISTS _sertx_pcs)
  configure_file(cmake/${_sertx_pc}.pc.in "${CMAKE_CURRENT_BINARY_DIR}/${_sertx_pc}.pc" @ONLY)
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/${_sertx_pc}.pc" DESTINATION ${SERTX_INSTALL_PKGCONFIGDIR})
endforeach()

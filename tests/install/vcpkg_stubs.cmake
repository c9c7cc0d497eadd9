# SPDX-License-Identifier: BSL-1.0
# Runs packaging/vcpkg/ports/sertx/portfile.cmake the way vcpkg would, with
# vcpkg's helper functions replaced by stubs that do what the real ones do
# for this port (configure, install, check the package) and no more. vcpkg
# itself is not here: what this proves is that the portfile's own logic and
# the options it passes work with sertx's CMake, and that the result has
# the layout vcpkg expects.
#
#   cmake -DSOURCE_DIR=... -DVCPKG_ROOT=<scratch> -DGENERATOR=... -P vcpkg_stubs.cmake
cmake_minimum_required(VERSION 3.23)

set(PORT sertx)
set(TARGET_TRIPLET x64-linux)
set(CURRENT_PORT_DIR "${SOURCE_DIR}/packaging/vcpkg/ports/sertx")
set(CURRENT_PACKAGES_DIR "${VCPKG_ROOT}/packages/${PORT}_${TARGET_TRIPLET}")
set(CURRENT_BUILDTREES_DIR "${VCPKG_ROOT}/buildtrees/${PORT}")
set(CURRENT_INSTALLED_DIR "${VCPKG_ROOT}/installed/${TARGET_TRIPLET}")
file(READ "${CURRENT_PORT_DIR}/vcpkg.json" _manifest)
string(JSON VERSION GET "${_manifest}" version)

function(_stub_run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "vcpkg stub: `${command}` failed (${rc})")
  endif()
endfunction()

# The configurations vcpkg would build: both, unless the port says release.
function(_stub_configurations out)
  if(VCPKG_BUILD_TYPE STREQUAL "release")
    set(${out} rel PARENT_SCOPE)
  else()
    set(${out} rel dbg PARENT_SCOPE)
  endif()
endfunction()

# As vcpkg: FEATURES holds the features asked for (here -DFEATURES=... or
# none: "core" only); each FEATURES <feature> <option> pair becomes
# -D<option>=ON or OFF.
list(APPEND FEATURES core)
function(vcpkg_check_features)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "OUT_FEATURE_OPTIONS;PREFIX" "FEATURES;INVERTED_FEATURES")
  set(options "")
  while(arg_FEATURES)
    list(POP_FRONT arg_FEATURES feature option)
    if(feature IN_LIST FEATURES)
      list(APPEND options "-D${option}=ON")
    else()
      list(APPEND options "-D${option}=OFF")
    endif()
  endwhile()
  set(${arg_OUT_FEATURE_OPTIONS} ${options} PARENT_SCOPE)
endfunction()

function(vcpkg_from_github)
  message(FATAL_ERROR "vcpkg stub: the overlay port builds its own checkout; vcpkg_from_github is not expected")
endfunction()

# As vcpkg: one build tree per configuration, installing into the package
# directory (debug into debug/), with the options vcpkg always adds that
# matter here.
function(vcpkg_cmake_configure)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH" "OPTIONS;OPTIONS_RELEASE;OPTIONS_DEBUG")
  if(NOT EXISTS "${arg_SOURCE_PATH}/CMakeLists.txt")
    message(FATAL_ERROR "vcpkg stub: SOURCE_PATH ${arg_SOURCE_PATH} has no CMakeLists.txt")
  endif()
  _stub_configurations(configs)
  foreach(config IN LISTS configs)
    if(config STREQUAL "rel")
      set(prefix "${CURRENT_PACKAGES_DIR}")
      set(type Release)
      set(extra ${arg_OPTIONS_RELEASE})
    else()
      set(prefix "${CURRENT_PACKAGES_DIR}/debug")
      set(type Debug)
      set(extra ${arg_OPTIONS_DEBUG})
    endif()
    set(build "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-${config}")
    file(REMOVE_RECURSE "${build}")
    set(tools -G "${GENERATOR}")
    if(CXX_COMPILER)
      list(APPEND tools "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
    endif()
    if(MAKE_PROGRAM)
      list(APPEND tools "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
    endif()
    _stub_run(${CMAKE_COMMAND} -S "${arg_SOURCE_PATH}" -B "${build}" ${tools} --no-warn-unused-cli
              "-DCMAKE_BUILD_TYPE=${type}" "-DCMAKE_INSTALL_PREFIX=${prefix}"
              -DCMAKE_INSTALL_LIBDIR:STRING=lib -DCMAKE_INSTALL_BINDIR:STRING=bin
              -DFETCHCONTENT_FULLY_DISCONNECTED=ON -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON
              -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DCMAKE_ERROR_ON_ABSOLUTE_INSTALL_DESTINATION=ON
              ${arg_OPTIONS} ${extra})
  endforeach()
endfunction()

function(vcpkg_cmake_install)
  _stub_configurations(configs)
  foreach(config IN LISTS configs)
    set(build "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-${config}")
    _stub_run(${CMAKE_COMMAND} --build "${build}" --parallel 2)
    _stub_run(${CMAKE_COMMAND} --install "${build}")
  endforeach()
endfunction()

# The real one moves CONFIG_PATH to share/<package> and rewrites paths; here
# the port installs there already, so this checks there is nothing to fix:
# the config exists where vcpkg looks, and no file names a build-time path.
function(vcpkg_cmake_config_fixup)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "PACKAGE_NAME;CONFIG_PATH" "")
  if(NOT arg_PACKAGE_NAME)
    set(arg_PACKAGE_NAME ${PORT})
  endif()
  if(NOT arg_CONFIG_PATH)
    set(arg_CONFIG_PATH "share/${arg_PACKAGE_NAME}")
  endif()
  if(NOT arg_CONFIG_PATH STREQUAL "share/${arg_PACKAGE_NAME}")
    message(FATAL_ERROR "vcpkg stub: CONFIG_PATH ${arg_CONFIG_PATH} would need the real fixup's path rewriting")
  endif()
  set(dir "${CURRENT_PACKAGES_DIR}/${arg_CONFIG_PATH}")
  if(NOT EXISTS "${dir}/${arg_PACKAGE_NAME}Config.cmake")
    message(FATAL_ERROR "vcpkg stub: no ${arg_PACKAGE_NAME}Config.cmake in ${dir}")
  endif()
  file(GLOB files "${dir}/*.cmake")
  foreach(file IN LISTS files)
    file(READ "${file}" text)
    foreach(path IN ITEMS "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}" "${SOURCE_DIR}")
      string(FIND "${text}" "${path}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "vcpkg stub: ${file} names ${path}; the package would not be relocatable")
      endif()
    endforeach()
  endforeach()
endfunction()

# The real one rewrites the prefix line to ${pcfiledir}; check it needs not.
function(vcpkg_fixup_pkgconfig)
  file(GLOB pcs "${CURRENT_PACKAGES_DIR}/lib/pkgconfig/*.pc" "${CURRENT_PACKAGES_DIR}/share/pkgconfig/*.pc")
  if(NOT pcs)
    message(FATAL_ERROR "vcpkg stub: no pkg-config file installed")
  endif()
  foreach(pc IN LISTS pcs)
    file(READ "${pc}" text)
    string(FIND "${text}" "${CURRENT_PACKAGES_DIR}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "vcpkg stub: ${pc} names the package directory")
    endif()
  endforeach()
endfunction()

function(vcpkg_install_copyright)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "" "FILE_LIST")
  set(text "")
  foreach(file IN LISTS arg_FILE_LIST)
    if(NOT EXISTS "${file}")
      message(FATAL_ERROR "vcpkg stub: copyright file ${file} is missing")
    endif()
    file(READ "${file}" part)
    string(APPEND text "${part}")
  endforeach()
  file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright" "${text}")
endfunction()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}")
# The portfile runs as vcpkg runs it: included, with CMAKE_CURRENT_LIST_DIR the port's folder.
include("${CURRENT_PORT_DIR}/portfile.cmake")

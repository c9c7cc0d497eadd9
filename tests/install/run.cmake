# SPDX-License-Identifier: BSL-1.0
# One step of the install tests, run as `cmake -DSTEP=... -P run.cmake`:
#
#   install        configure the source tree alone, `cmake --install` it into
#                  WORK_DIR/prefix and check the layout
#   find_package   build and run tests/install/consumer against that prefix,
#                  whole and by component
#   add_subdirectory, FetchContent
#                  the same consumer with sertx as a subproject (FetchContent
#                  from an archive of the source tree, checked by its hash)
#   pkg-config     compile the consumer's sources with `pkg-config --cflags --libs` (sertx-compiled too)
#   conan          build packaging/conan/test_package's CMake project against the prefix
#   vcpkg          run the overlay port's portfile.cmake with the vcpkg helpers
#                  stubbed (tests/install/vcpkg_stubs.cmake), check what it
#                  installed, and build the consumer against it
#   versions       vcpkg.json, the port's vcpkg.json and the header agree
#   sqlite3-only   configure with SERTX_WITH_POSTGRESQL=OFF and libpq made
#                  unfindable, install into WORK_DIR/sqlite3-only-prefix, check
#                  no PostgreSQL adapter is there, and build the consumer on it
#
# Inputs: SOURCE_DIR, WORK_DIR, STEP; GENERATOR, CXX_COMPILER, MAKE_PROGRAM,
# TOOLCHAIN_FILE and PREFIX_PATH (':'-separated) from the outer build, so that
# nested builds find what it found; WITH_PROMETHEUS, whether it found
# prometheus-cpp (and so made sertx::prometheus); PKG_CONFIG.
cmake_minimum_required(VERSION 3.23)

foreach(_required IN ITEMS SOURCE_DIR WORK_DIR STEP)
  if(NOT DEFINED ${_required})
    message(FATAL_ERROR "run.cmake: pass -D${_required}=...")
  endif()
endforeach()
set(PREFIX "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "install test: `${command}` failed (${rc})")
  endif()
endfunction()

function(expect_file path)
  if(NOT EXISTS "${path}")
    message(FATAL_ERROR "install test: ${path} is missing")
  endif()
endfunction()

# What every nested configure passes on from the outer build; -O0 keeps the
# consumers quick to compile.
set(NESTED_ARGS -G "${GENERATOR}" "-DCMAKE_CXX_FLAGS=-O0")
foreach(_pass IN ITEMS CXX_COMPILER MAKE_PROGRAM TOOLCHAIN_FILE)
  if(${_pass})
    list(APPEND NESTED_ARGS "-DCMAKE_${_pass}=${${_pass}}")
  endif()
endforeach()

# Configures, builds and runs the consumer; extra arguments go to configure.
# The PostgreSQL adapter's link line is proved once, against the install
# (CONSUMER_POSTGRESQL=OFF elsewhere): it is the slowest part to compile.
function(build_consumer name)
  set(build "${WORK_DIR}/consumer-${name}")
  file(REMOVE_RECURSE "${build}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install/consumer" -B "${build}" ${NESTED_ARGS} ${ARGN})
  run(${CMAKE_COMMAND} --build "${build}" --parallel 2)
  run("${build}/consumer_core")
  if(EXISTS "${build}/consumer_prometheus")
    run("${build}/consumer_prometheus")
  endif()
  foreach(mode IN ITEMS "" _compiled)
    if(EXISTS "${build}/consumer_sqlite3${mode}")
      run("${build}/consumer_sqlite3${mode}")
    endif()
    if(EXISTS "${build}/consumer_postgresql${mode}")
      run("${build}/consumer_postgresql${mode}")  # no argument: linked, not connected
    endif()
  endforeach()
endfunction()

# Reads "version" from a vcpkg.json.
function(json_version out file)
  file(READ "${file}" json)
  string(JSON version GET "${json}" version)
  set(${out} "${version}" PARENT_SCOPE)
endfunction()

include("${SOURCE_DIR}/cmake/sertxVersion.cmake")
sertx_read_version("${SOURCE_DIR}" HEADER_VERSION)
string(REPLACE "." ";" _v "${HEADER_VERSION}")
list(GET _v 0 _v_MAJOR)
list(GET _v 1 _v_MINOR)

# Nested builds search the outer build's prefixes (and, for the consumers
# of an install, the install) through the environment: no list quoting.
function(search_prefixes)
  list(APPEND ARGN ${PREFIX_PATH})
  list(JOIN ARGN ":" joined)
  set(ENV{CMAKE_PREFIX_PATH} "${joined}")
endfunction()
search_prefixes()

if(STEP STREQUAL "install")
  set(build "${WORK_DIR}/install-build")
  file(REMOVE_RECURSE "${build}" "${PREFIX}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${build}" ${NESTED_ARGS}
      -DSERTX_BUILD_TESTS=OFF -DSERTX_BUILD_EXAMPLES=OFF -DSERTX_BUILD_BENCHMARKS=OFF
      "-DCMAKE_INSTALL_PREFIX=${PREFIX}")
  run(${CMAKE_COMMAND} --build "${build}" --parallel 2)  # sertx::compiled's library
  run(${CMAKE_COMMAND} --install "${build}")

  # Every public header is installed, at the same place under include/.
  file(GLOB_RECURSE headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/sertx/*.hpp"
       "${SOURCE_DIR}/include/sertx/*.ipp")
  # (prometheus.hpp with sertx::prometheus, made where prometheus-cpp is found).
  foreach(header IN LISTS headers)
    if(header STREQUAL "sertx/prometheus.hpp" AND NOT WITH_PROMETHEUS)
      continue()
    endif()
    expect_file("${PREFIX}/include/${header}")
  endforeach()
  # The package: lib/cmake/sertx (lib64 or lib/<multiarch> where the platform says so).
  file(GLOB config "${PREFIX}/lib*/cmake/sertx/sertxConfig.cmake" "${PREFIX}/lib/*/cmake/sertx/sertxConfig.cmake")
  if(NOT config)
    message(FATAL_ERROR "install test: no lib/cmake/sertx/sertxConfig.cmake under ${PREFIX}")
  endif()
  get_filename_component(cmakedir "${config}" DIRECTORY)
  foreach(file IN ITEMS sertxConfigVersion.cmake sertxTargets.cmake sertxCompiledTargets.cmake sertxDependencies.cmake
                        FindSOCI.cmake)
    expect_file("${cmakedir}/${file}")
  endforeach()
  # The version file, asked as find_package would ask it: a 32-bit consumer
  # is served (ARCH_INDEPENDENT), another major version is not (SameMajorVersion).
  function(version_check requested pointer_size out)
    set(PACKAGE_FIND_VERSION ${requested})
    string(REPLACE "." ";" parts "${requested}")
    list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
    set(CMAKE_SIZEOF_VOID_P ${pointer_size})
    include("${cmakedir}/sertxConfigVersion.cmake")
    if(PACKAGE_VERSION_COMPATIBLE AND NOT PACKAGE_VERSION_UNSUITABLE)
      set(${out} TRUE PARENT_SCOPE)
    else()
      set(${out} FALSE PARENT_SCOPE)
    endif()
  endfunction()
  version_check(${_v_MAJOR}.${_v_MINOR} 4 served)
  if(NOT served)
    message(FATAL_ERROR "install test: a 32-bit consumer is refused; a header-only package is ARCH_INDEPENDENT")
  endif()
  math(EXPR next_major "${_v_MAJOR} + 1")
  version_check(${next_major}.0 8 served)
  if(served)
    message(FATAL_ERROR "install test: version ${next_major}.0 was accepted from ${HEADER_VERSION} (SameMajorVersion)")
  endif()
  # Relocatable: nothing installed names the prefix it was installed to.
  file(GLOB_RECURSE installed "${cmakedir}/*" "${PREFIX}/lib*/pkgconfig/sertx*.pc" "${PREFIX}/lib/*/pkgconfig/sertx*.pc")
  foreach(file IN LISTS installed)
    file(READ "${file}" text)
    string(FIND "${text}" "${PREFIX}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "install test: ${file} names the install prefix; the package would not move")
    endif()
  endforeach()
  file(GLOB pc "${PREFIX}/lib*/pkgconfig/sertx.pc" "${PREFIX}/lib/*/pkgconfig/sertx.pc")
  if(NOT pc)
    message(FATAL_ERROR "install test: no sertx.pc under ${PREFIX}/lib/pkgconfig")
  endif()

elseif(STEP STREQUAL "find_package")
  search_prefixes("${PREFIX}")
  # sertx::prometheus comes with prometheus-cpp, when the machine has it.
  if(WITH_PROMETHEUS)
    set(with_prometheus -DCONSUMER_PROMETHEUS=ON)
  endif()
  build_consumer(find_package -DSERTX_CONSUME=find_package ${with_prometheus})
  # A component needs only its own dependencies: the others are made
  # unfindable, as on a machine without them.
  build_consumer(components-core -DSERTX_CONSUME=components -DSERTX_COMPONENTS=core
                 -DCMAKE_DISABLE_FIND_PACKAGE_SOCI=ON -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON
                 -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON -DCMAKE_DISABLE_FIND_PACKAGE_prometheus-cpp=ON)
  if(WITH_PROMETHEUS)
    build_consumer(components-prometheus -DSERTX_CONSUME=components -DSERTX_COMPONENTS=prometheus
                   -DCONSUMER_PROMETHEUS=ON -DCMAKE_DISABLE_FIND_PACKAGE_SOCI=ON
                   -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON)
  endif()
  build_consumer(components-sqlite3 -DSERTX_CONSUME=components -DSERTX_COMPONENTS=sqlite3
                 -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON)
  # `compiled` brings the adapters it holds.
  build_consumer(components-compiled -DSERTX_CONSUME=components -DSERTX_COMPONENTS=compiled)

elseif(STEP STREQUAL "sqlite3-only")
  set(build "${WORK_DIR}/sqlite3-only-build")
  set(prefix "${WORK_DIR}/sqlite3-only-prefix")
  file(REMOVE_RECURSE "${build}" "${prefix}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${build}" ${NESTED_ARGS} -DSERTX_WITH_POSTGRESQL=OFF
      -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON
      -DSERTX_BUILD_TESTS=OFF -DSERTX_BUILD_EXAMPLES=OFF -DSERTX_BUILD_BENCHMARKS=OFF
      "-DCMAKE_INSTALL_PREFIX=${prefix}")
  run(${CMAKE_COMMAND} --build "${build}" --parallel 2)
  run(${CMAKE_COMMAND} --install "${build}")
  expect_file("${prefix}/include/sertx/soci/sqlite3.hpp")
  file(GLOB_RECURSE unwanted "${prefix}/include/sertx/soci/postgresql.hpp" "${prefix}/*/sertx-postgresql.pc")
  if(unwanted)
    message(FATAL_ERROR "install test: a build without the PostgreSQL adapter installed ${unwanted}")
  endif()
  search_prefixes("${prefix}")
  build_consumer(sqlite3-only -DSERTX_CONSUME=components -DSERTX_COMPONENTS=sqlite3
                 -DCONSUMER_ABSENT=postgresql -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON)

elseif(STEP STREQUAL "add_subdirectory")
  build_consumer(add_subdirectory -DSERTX_CONSUME=add_subdirectory -DCONSUMER_POSTGRESQL=OFF "-DSERTX_SOURCE_DIR=${SOURCE_DIR}")

elseif(STEP STREQUAL "FetchContent")
  # What a release archive holds for a consumer: the build files, the headers and src/ (sertx::compiled).
  set(archive "${WORK_DIR}/sertx-${HEADER_VERSION}.tar.gz")
  set(staging "${WORK_DIR}/archive/sertx-${HEADER_VERSION}")
  file(REMOVE_RECURSE "${WORK_DIR}/archive" "${archive}")
  file(MAKE_DIRECTORY "${staging}")
  file(COPY "${SOURCE_DIR}/CMakeLists.txt" "${SOURCE_DIR}/LICENSE" "${SOURCE_DIR}/cmake" "${SOURCE_DIR}/include"
       "${SOURCE_DIR}/src" DESTINATION "${staging}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar czf "${archive}" "sertx-${HEADER_VERSION}"
                  WORKING_DIRECTORY "${WORK_DIR}/archive" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: could not archive the source tree")
  endif()
  file(SHA256 "${archive}" sha256)
  build_consumer(FetchContent -DSERTX_CONSUME=FetchContent -DCONSUMER_POSTGRESQL=OFF "-DSERTX_ARCHIVE=${archive}"
                 "-DSERTX_ARCHIVE_SHA256=${sha256}")

elseif(STEP STREQUAL "pkg-config")
  file(GLOB pcdir "${PREFIX}/lib*/pkgconfig" "${PREFIX}/lib/*/pkgconfig")
  set(ENV{PKG_CONFIG_PATH} "${pcdir}")
  execute_process(COMMAND "${PKG_CONFIG}" --modversion sertx OUTPUT_VARIABLE version
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT version STREQUAL HEADER_VERSION)
    message(FATAL_ERROR "install test: pkg-config says sertx is '${version}', the header says ${HEADER_VERSION}")
  endif()
  foreach(adapter IN ITEMS sqlite3 postgresql)
    execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs sertx-${adapter} OUTPUT_VARIABLE flags
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "install test: pkg-config --cflags --libs sertx-${adapter} failed")
    endif()
    separate_arguments(flags UNIX_COMMAND "${flags}")
    run("${CXX_COMPILER}" -std=c++20 -O0 "${SOURCE_DIR}/tests/install/consumer/${adapter}.cpp"
        -o "${WORK_DIR}/pkg-config-${adapter}" ${flags})
    run("${WORK_DIR}/pkg-config-${adapter}")
  endforeach()
  # Separate compilation: sertx-compiled.pc defines SERTX_SEPARATE_COMPILATION
  # (the consumer checks it) and links the adapters' library.
  execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs sertx-compiled OUTPUT_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: pkg-config --cflags --libs sertx-compiled failed")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run("${CXX_COMPILER}" -std=c++20 -O0 -DCONSUMER_COMPILED "${SOURCE_DIR}/tests/install/consumer/sqlite3.cpp"
      -o "${WORK_DIR}/pkg-config-compiled" ${flags})
  run("${WORK_DIR}/pkg-config-compiled")

elseif(STEP STREQUAL "conan")
  set(build "${WORK_DIR}/conan-test_package")
  file(REMOVE_RECURSE "${build}")
  search_prefixes("${PREFIX}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/packaging/conan/test_package" -B "${build}" ${NESTED_ARGS})
  run(${CMAKE_COMMAND} --build "${build}" --parallel 2)
  run("${build}/test_package")

elseif(STEP STREQUAL "vcpkg")
  set(vcpkg "${WORK_DIR}/vcpkg")
  file(REMOVE_RECURSE "${vcpkg}")
  run(${CMAKE_COMMAND} "-DSOURCE_DIR=${SOURCE_DIR}" "-DVCPKG_ROOT=${vcpkg}" "-DGENERATOR=${GENERATOR}"
      "-DCXX_COMPILER=${CXX_COMPILER}" "-DMAKE_PROGRAM=${MAKE_PROGRAM}"
      -P "${SOURCE_DIR}/tests/install/vcpkg_stubs.cmake")
  set(packages "${vcpkg}/packages/sertx_x64-linux")
  foreach(file IN ITEMS include/sertx/sertx.hpp include/sertx/soci/postgresql.hpp share/sertx/sertxConfig.cmake
                        share/sertx/sertxConfigVersion.cmake share/sertx/FindSOCI.cmake share/sertx/copyright
                        share/sertx/usage share/pkgconfig/sertx.pc)
    expect_file("${packages}/${file}")
  endforeach()
  # Header-only: nothing in lib/ or debug/ (vcpkg's post-build checks refuse empty folders).
  foreach(dir IN ITEMS lib debug)
    if(EXISTS "${packages}/${dir}")
      message(FATAL_ERROR "install test: the port installed ${dir}/, which a header-only port must not")
    endif()
  endforeach()
  # Without the feature "prometheus", nothing of sertx::prometheus.
  if(EXISTS "${packages}/share/sertx/sertxPrometheusTargets.cmake" OR EXISTS "${packages}/include/sertx/prometheus.hpp")
    message(FATAL_ERROR "install test: the port installed sertx::prometheus without its feature \"prometheus\"")
  endif()
  search_prefixes("${packages}")
  build_consumer(vcpkg -DSERTX_CONSUME=find_package -DCONSUMER_POSTGRESQL=OFF -DCONSUMER_COMPILED=OFF)

elseif(STEP STREQUAL "versions")
  foreach(file IN ITEMS vcpkg.json packaging/vcpkg/ports/sertx/vcpkg.json)
    json_version(version "${SOURCE_DIR}/${file}")
    if(NOT version STREQUAL HEADER_VERSION)
      message(FATAL_ERROR "install test: ${file} says version ${version}, include/sertx/version.hpp says ${HEADER_VERSION}")
    endif()
  endforeach()

else()
  message(FATAL_ERROR "run.cmake: unknown STEP '${STEP}'")
endif()

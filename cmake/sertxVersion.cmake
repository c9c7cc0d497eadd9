# SPDX-License-Identifier: BSL-1.0
# sertx_read_version(<source dir> <out var>): the version written once, in
# include/sertx/version.hpp, as MAJOR.MINOR.PATCH; for CMake scripts that run
# outside the project (tests/install/run.cmake).
function(sertx_read_version source_dir out)
  file(STRINGS "${source_dir}/include/sertx/version.hpp" lines REGEX "#define SERTX_VERSION_(MAJOR|MINOR|PATCH) ")
  foreach(line IN LISTS lines)
    string(REGEX MATCH "SERTX_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)" _ "${line}")
    set(part_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
  endforeach()
  set(${out} "${part_MAJOR}.${part_MINOR}.${part_PATCH}" PARENT_SCOPE)
endfunction()

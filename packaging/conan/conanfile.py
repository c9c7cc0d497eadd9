# SPDX-License-Identifier: BSL-1.0
"""Conan 2 recipe for sertx, a header-only library.

From a checkout:  conan create packaging/conan --build=missing
The version is read from include/sertx/version.hpp, the one place it is written.
"""
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class SertxConan(ConanFile):
    name = "sertx"
    description = ("Checked SERIALIZABLE transactions for C++20 with compile-time retry policies "
                   "and exactly-once effects, on SOCI, for PostgreSQL and SQLite.")
    license = "BSL-1.0"
    topics = ("database", "transactions", "serializable", "postgresql", "sqlite", "soci", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True
    # SOCI's recipe builds no backend by default; sertx's adapters need these
    # two. Boost is used for Hana, which is header-only.
    # with_prometheus: sertx::prometheus (include/sertx/prometheus.hpp), a
    # prometheus::Collectable; only its users need prometheus-cpp.
    options = {"with_prometheus": [True, False]}
    default_options = {
        "with_prometheus": False,
        "soci/*:with_postgresql": True,
        "soci/*:with_sqlite3": True,
        "boost/*:header_only": True,
    }

    @property
    def _root(self):
        # The recipe lives in packaging/conan/ of the source tree it packages.
        return os.path.join(self.recipe_folder, "..", "..")

    def set_version(self):
        text = load(self, os.path.join(self._root, "include", "sertx", "version.hpp"))
        parts = [re.search(r"#define SERTX_VERSION_%s (\d+)" % p, text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def export_sources(self):
        copy(self, "LICENSE", src=self._root, dst=self.export_sources_folder)
        for pattern in ("*.hpp", "*.ipp"):  # .ipp: the adapters' code, included by their headers
            copy(self, pattern, src=os.path.join(self._root, "include"),
                 dst=os.path.join(self.export_sources_folder, "include"))

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # The headers include SOCI's, libpq's and SQLite's: consumers compile
        # against them and link their libraries.
        self.requires("boost/[>=1.74 <2]", transitive_headers=True)
        self.requires("soci/4.0.3", transitive_headers=True, transitive_libs=True)
        self.requires("libpq/[>=13 <18]", transitive_headers=True, transitive_libs=True)
        self.requires("sqlite3/[>=3.38 <4]", transitive_headers=True, transitive_libs=True)
        if self.options.with_prometheus:
            self.requires("prometheus-cpp/[>=1.0 <2]", transitive_headers=True, transitive_libs=True)

    def validate(self):
        check_min_cppstd(self, 20)

    def package_id(self):
        self.info.clear()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        for pattern in ("*.hpp", "*.ipp"):
            copy(self, pattern, src=os.path.join(self.source_folder, "include"),
                 dst=os.path.join(self.package_folder, "include"))

    def package_info(self):
        # The same file and target names as sertx's own CMake package, so that
        # a CMakeLists.txt works unchanged with either.
        self.cpp_info.set_property("cmake_file_name", "sertx")
        self.cpp_info.set_property("cmake_target_name", "sertx::sertx_all")
        self.cpp_info.set_property("pkg_config_name", "sertx_all")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []

        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "sertx::sertx")
        core.set_property("pkg_config_name", "sertx")
        core.requires = ["boost::headers"]
        core.bindirs = []
        core.libdirs = []

        soci = self.cpp_info.components["soci"]
        soci.set_property("cmake_target_name", "sertx::soci")
        soci.requires = ["core", "soci::soci_core"]
        soci.bindirs = []
        soci.libdirs = []

        postgresql = self.cpp_info.components["postgresql"]
        postgresql.set_property("cmake_target_name", "sertx::postgresql")
        postgresql.set_property("pkg_config_name", "sertx-postgresql")
        postgresql.requires = ["soci", "soci::soci_postgresql", "libpq::libpq"]
        postgresql.bindirs = []
        postgresql.libdirs = []

        sqlite3 = self.cpp_info.components["sqlite3"]
        sqlite3.set_property("cmake_target_name", "sertx::sqlite3")
        sqlite3.set_property("pkg_config_name", "sertx-sqlite3")
        sqlite3.requires = ["soci", "soci::soci_sqlite3", "sqlite3::sqlite3"]
        sqlite3.bindirs = []
        sqlite3.libdirs = []

        if self.options.with_prometheus:
            prometheus = self.cpp_info.components["prometheus"]
            prometheus.set_property("cmake_target_name", "sertx::prometheus")
            prometheus.requires = ["core", "prometheus-cpp::prometheus-cpp-core"]
            prometheus.bindirs = []
            prometheus.libdirs = []

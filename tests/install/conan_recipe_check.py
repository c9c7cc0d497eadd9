#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Runs packaging/conan/conanfile.py's methods without Conan, which cannot be
installed here, against a stand-in for the few `conan` names it imports, and
checks what a consumer would get: the header's version, the exported sources,
requirements for every component dependency, and the CMake target names of
sertx's own package.

    conan_recipe_check.py <source dir>

What this cannot check: Conan's own behaviour (the dependency graph, CMakeDeps'
output, the requirement traits), nor that the ConanCenter recipes of the
dependencies have the component names used; docs/packaging.md lists them.
"""
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import types


def fail(message):
    print("conan recipe check: " + message)
    sys.exit(1)


def install_stand_in():
    """A `conan` package with the names the recipe and test_package import."""

    class ConanFile:
        pass

    def copy(conanfile, pattern, src, dst, **_):
        import fnmatch
        for folder, _dirs, files in os.walk(src):
            for name in files:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, src)
                if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(relative, pattern):
                    target = os.path.join(dst, relative)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(path, target)

    def load(conanfile, path, **_):
        with open(path, encoding="utf-8") as f:
            return f.read()

    def nothing(*_args, **_kwargs):
        return None

    modules = {
        "conan": {"ConanFile": ConanFile},
        "conan.tools": {},
        "conan.tools.build": {"check_min_cppstd": nothing, "can_run": lambda _: True},
        "conan.tools.files": {"copy": copy, "load": load},
        "conan.tools.layout": {"basic_layout": nothing},
        "conan.tools.cmake": {"CMake": object, "cmake_layout": nothing},
    }
    for name, names in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(names)
        sys.modules[name] = module


def load_recipe(path):
    spec = importlib.util.spec_from_file_location("recipe_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Component:
    def __init__(self):
        self.properties = {}
        self.requires = []
        self.bindirs = ["bin"]
        self.libdirs = ["lib"]

    def set_property(self, name, value):
        self.properties[name] = value


class CppInfo(Component):
    def __init__(self):
        super().__init__()
        self.components = {}

    def __getattr__(self, name):
        raise AttributeError(name)


class Components(dict):
    def __missing__(self, key):
        self[key] = Component()
        return self[key]


def main():
    source = os.path.abspath(sys.argv[1])
    install_stand_in()
    recipe_path = os.path.join(source, "packaging", "conan", "conanfile.py")
    recipe = load_recipe(recipe_path)
    load_recipe(os.path.join(source, "packaging", "conan", "test_package", "conanfile.py"))

    conanfile = recipe.SertxConan()
    conanfile.recipe_folder = os.path.dirname(recipe_path)
    # Options as Conan gives them, each at its default; with_prometheus is
    # checked on (below) as well as off.
    if conanfile.default_options.get("with_prometheus") is not False:
        fail("with_prometheus must default to False: only its users need prometheus-cpp")
    conanfile.options = types.SimpleNamespace(with_prometheus=False)
    if conanfile.package_type != "header-library":
        fail("package_type is %r, not 'header-library'" % conanfile.package_type)

    # The version is the header's.
    with open(os.path.join(source, "include", "sertx", "version.hpp"), encoding="utf-8") as f:
        header = f.read()
    expected = ".".join(re.search(r"#define SERTX_VERSION_%s (\d+)" % p, header).group(1)
                        for p in ("MAJOR", "MINOR", "PATCH"))
    conanfile.set_version()
    if conanfile.version != expected:
        fail("set_version() gives %s, include/sertx/version.hpp says %s" % (conanfile.version, expected))

    # Every public header (and .ipp) and the license are exported, and packaged.
    with tempfile.TemporaryDirectory() as scratch:
        conanfile.export_sources_folder = os.path.join(scratch, "export")
        conanfile.export_sources()
        conanfile.source_folder = conanfile.export_sources_folder
        conanfile.package_folder = os.path.join(scratch, "package")
        conanfile.package()
        for folder, _dirs, files in os.walk(os.path.join(source, "include")):
            for name in files:
                if name.endswith((".hpp", ".ipp")):
                    relative = os.path.relpath(os.path.join(folder, name), source)
                    if not os.path.exists(os.path.join(conanfile.package_folder, relative)):
                        fail("%s is not in the package" % relative)
        if not os.path.exists(os.path.join(conanfile.package_folder, "licenses", "LICENSE")):
            fail("the license is not in the package")

    # Requirements, and the components' use of them, with sertx::prometheus
    # (the other targets are the same without it: checked first).
    required = []
    conanfile.requires = lambda reference, **traits: required.append((reference.split("/")[0], traits))
    conanfile.requirements()
    if "prometheus-cpp" in {name for name, _ in required}:
        fail("prometheus-cpp is required although with_prometheus is False")
    conanfile.cpp_info = CppInfo()
    conanfile.cpp_info.components = Components()
    conanfile.package_info()
    if "sertx::prometheus" in {c.properties.get("cmake_target_name") for c in conanfile.cpp_info.components.values()}:
        fail("sertx::prometheus is declared although with_prometheus is False")
    conanfile.options.with_prometheus = True
    required = []
    conanfile.requirements()
    dependencies = {name for name, _ in required}
    for name, traits in required:
        if not traits.get("transitive_headers"):
            fail("%s is required without transitive_headers; sertx's headers include its headers" % name)
    for backend in ("with_postgresql", "with_sqlite3"):
        if conanfile.default_options.get("soci/*:" + backend) is not True:
            fail("SOCI's recipe builds no backend by default; soci/*:%s must be True" % backend)

    conanfile.cpp_info = CppInfo()
    conanfile.cpp_info.components = Components()
    conanfile.package_info()
    components = conanfile.cpp_info.components
    targets = {c.properties.get("cmake_target_name") for c in components.values()}
    wanted = {"sertx::sertx", "sertx::soci", "sertx::postgresql", "sertx::sqlite3", "sertx::prometheus"}
    if not wanted <= targets:
        fail("CMake targets %s are missing (the CMake package has them)" % sorted(wanted - targets))
    if conanfile.cpp_info.properties.get("cmake_file_name") != "sertx":
        fail("cmake_file_name must be 'sertx', as find_package(sertx) looks for")
    if conanfile.cpp_info.properties.get("cmake_target_name") in targets:
        fail("the package's own target name collides with a component's")
    for name, component in components.items():
        if component.libdirs or component.bindirs:
            fail("component %s of a header-only package has lib or bin folders" % name)
        for requirement in component.requires:
            if "::" in requirement:
                dependency = requirement.split("::")[0]
                if dependency not in dependencies:
                    fail("component %s requires %s, but the recipe does not require %s" % (name, requirement,
                                                                                         dependency))
            elif requirement not in components:
                fail("component %s requires %s, which is not a component" % (name, requirement))

    print("conan recipe check: sertx %s, components %s" % (conanfile.version, ", ".join(sorted(components))))


if __name__ == "__main__":
    main()

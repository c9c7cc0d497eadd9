// SPDX-License-Identifier: BSL-1.0
#pragma once
// Child processes started at the same moment, for races between processes
// (two migrators of one fresh database).

#include "catch.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <vector>

namespace sertx::test {

/// Runs child(start) in two processes. start() returns once both have called
/// it, so that they race from the same moment. Returns each exit code: what
/// the child returned, 100 when it threw, -1 when it did not exit.
template <class Child>
std::vector<int> in_two_processes(Child child) {
    int ready[2], go[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < 2; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            ::close(go[1]);
            int code = 100;
            try {
                code = child([&] {
                    char c = 1;
                    (void)!::write(ready[1], &c, 1);
                    ::close(ready[1]);  // so that a sibling that died early cannot hang the parent
                    (void)!::read(go[0], &c, 1);
                });
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child process %d: %s\n", i, e.what());
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    for (int i = 0; i < 2 && ::read(ready[0], &c, 1) == 1; ++i) {
    }
    (void)!::write(go[1], "gg", 2);
    ::close(go[1]);
    ::close(ready[0]);
    std::vector<int> codes;
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return codes;
}

}  // namespace sertx::test

// SPDX-License-Identifier: BSL-1.0
#pragma once
// A Patroni cluster of the test's own: one etcd member and three PostgreSQL
// nodes under Patroni with synchronous_mode, started, hurt and stopped by
// scripts/cluster (scripts/lib/cluster.sh), the same script a person uses.
// 127.0.0.1 and free ports only; everything in one temporary directory,
// stopped and deleted at the end whatever happened.

#include "databases.hpp"
#include "pg_server.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef SERTX_SOURCE_DIR
#error "tests/CMakeLists.txt defines SERTX_SOURCE_DIR for the ha tests (they run scripts/cluster)"
#endif

namespace sertx::test {

inline bool patroni_installed() {
    return std::filesystem::exists("/usr/bin/patroni") && std::filesystem::exists("/usr/bin/patronictl") &&
           std::filesystem::exists("/usr/bin/etcd") && !pg_bin().empty();
}

/// For a test case on a Patroni cluster: a skip when Patroni, etcd or the
/// server binaries are missing, a failure under SERTX_REQUIRE_POSTGRES=1 (CI
/// installs them: scripts/lib/common.sh).
#define SERTX_REQUIRE_PATRONI()                                                                                   \
    if (!::sertx::test::patroni_installed()) {                                                                    \
        if (::sertx::test::postgres_required()) FAIL("patroni, etcd or PostgreSQL not found (Debian: patroni etcd-server postgresql)"); \
        SERTX_SKIP("patroni, etcd or PostgreSQL not found: cannot start a Patroni cluster");                       \
    }

/// Milliseconds since the epoch, the clock scripts/cluster prints its kills in.
inline long long unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class patroni_cluster {
public:
    patroni_cluster() {
        char tmpl[] = "/tmp/sertx-cluster.XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("test: mkdtemp failed");
        dir_ = tmpl;
        try {
            run("up");
        } catch (...) {
            down();
            throw;
        }
        std::ifstream env(dir_ + "/cluster.env");
        std::string line;
        while (std::getline(env, line))
            if (const auto eq = line.find('='); eq != std::string::npos) env_[line.substr(0, eq)] = line.substr(eq + 1);
        for (int n = 0; n < 3; ++n) ports_[static_cast<std::size_t>(n)] = std::stoi(env_.at("SERTX_CLUSTER_PG_" + std::to_string(n)));
    }
    ~patroni_cluster() { down(); }
    patroni_cluster(const patroni_cluster&) = delete;
    patroni_cluster& operator=(const patroni_cluster&) = delete;

    /// The multi-host connection string an application uses: libpq tries
    /// the three nodes and keeps the one that accepts writes.
    std::string conninfo() const {
        return "host=127.0.0.1,127.0.0.1,127.0.0.1 port=" + std::to_string(ports_[0]) + "," +
               std::to_string(ports_[1]) + "," + std::to_string(ports_[2]) +
               " user=postgres dbname=postgres target_session_attrs=read-write sslmode=disable gssencmode=disable "
               "connect_timeout=2";
    }
    /// One node, directly.
    std::string node_conninfo(int port) const {
        return "host=127.0.0.1 port=" + std::to_string(port) +
               " user=postgres dbname=postgres sslmode=disable gssencmode=disable connect_timeout=2";
    }

    /// The leader's name and port, or {"", 0} while there is none.
    std::pair<std::string, int> leader() const {
        std::smatch m;
        const std::string out = run("leader", false);
        if (!std::regex_search(out, m, std::regex("(n[0-9]) ([0-9]+)"))) return {"", 0};
        return {m[1], std::stoi(m[2])};
    }

    /// SIGKILL of the leader's postmaster or Patroni (`what`): the moment
    /// of the kill, in unix ms.
    long long failover(const std::string& what) { return time_of(run("failover " + what), "at"); }
    /// patronictl switchover --force: the moment it was asked, in unix ms.
    long long switchover() { return time_of(run("switchover"), "at"); }
    /// SIGKILL of a node's Patroni and PostgreSQL: a machine lost.
    long long kill_node(const std::string& node) { return time_of(run("kill " + node), "at"); }
    /// Restarts every Patroni that was killed; its node rejoins. Its
    /// PostgreSQL is SIGKILLed first, as a watchdog would, unless `unfenced`.
    void heal(bool unfenced = false) { run(unfenced ? "heal --unfenced" : "heal"); }
    /// Waits for a leader with `standbys` running standbys, one named synchronous.
    void wait_healthy(int standbys = 2, int seconds = 120) {
        run("wait " + std::to_string(standbys) + " " + std::to_string(seconds));
    }
    std::string status() const { return run("status", false); }

    struct member {
        std::string name, role, state;  ///< role: leader, sync_standby, replica
        int port = 0;
    };
    /// The members Patroni lists now.
    std::vector<member> members() const {
        std::vector<member> out;
        std::istringstream lines(status());
        std::string line;
        std::getline(lines, line);  // the heading
        while (std::getline(lines, line)) {
            std::istringstream words(line);
            member m;
            if (words >> m.name >> m.role >> m.state >> m.port) out.push_back(m);
        }
        return out;
    }
    /// The member with this role, or an empty one.
    member with_role(const std::string& role) const {
        for (const auto& m : members())
            if (m.role == role) return m;
        return {};
    }

    /// Every node's port, for messages and direct checks.
    const std::array<int, 3>& ports() const { return ports_; }

private:
    std::string run(const std::string& args, bool must_succeed = true) const {
        const std::string command = "SERTX_CLUSTER_DIR=" + shell_quote(dir_) + " " +
                                    shell_quote(std::string(SERTX_SOURCE_DIR) + "/scripts/cluster") + " " + args +
                                    " 2>&1";
        std::unique_ptr<FILE, decltype(&::pclose)> pipe(::popen(command.c_str(), "r"), &::pclose);
        if (!pipe) throw std::runtime_error("test: cannot run " + command);
        std::string out;
        std::array<char, 4096> buffer{};
        while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) out.append(buffer.data(), n);
        const int status = ::pclose(pipe.release());
        if (must_succeed && status != 0) throw std::runtime_error("test: scripts/cluster " + args + " failed:\n" + out);
        return out;
    }
    static long long time_of(const std::string& out, const std::string& word) {
        std::smatch m;
        if (!std::regex_search(out, m, std::regex(word + " ([0-9]{13})")))
            throw std::runtime_error("test: no time in scripts/cluster's answer: " + out);
        return std::stoll(m[1]);
    }
    void down() noexcept {
        // SERTX_CLUSTER_KEEP_LOGS=dir: the nodes' and etcd's logs are kept there.
        if (const char* keep = std::getenv("SERTX_CLUSTER_KEEP_LOGS"); keep && *keep)
            std::system(("mkdir -p " + shell_quote(keep) + " && cd " + shell_quote(dir_) +
                         " && tar cf - etcd.log */patroni.log */data/log 2>/dev/null | tar xf - -C " +
                         shell_quote(keep))
                            .c_str());
        try {
            run("down", false);
        } catch (...) {
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::string dir_;
    std::map<std::string, std::string> env_;
    std::array<int, 3> ports_{};
};

}  // namespace sertx::test

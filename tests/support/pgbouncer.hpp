// SPDX-License-Identifier: BSL-1.0
#pragma once
// A PgBouncer of the test's own, in transaction pooling mode with fewer
// server connections than sertx sessions, in front of the shared test server
// (SERTX_PG): consecutive transactions of one sertx session then run on
// different server connections. 127.0.0.1 and a free port only; stopped and
// deleted at the end. PgBouncer refuses to run as root, so it runs as the
// `postgres` user, as the servers of pg_server.hpp do.

#include "databases.hpp"
#include "pg_server.hpp"
#include "wait.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>

namespace sertx::test {

/// The pgbouncer binary, or empty.
inline std::string pgbouncer_bin() {
    for (const char* p : {"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"})
        if (std::filesystem::exists(p)) return p;
    return "";
}

/// For a test case behind PgBouncer: a skip when it is not installed (a
/// failure under SERTX_REQUIRE_POSTGRES=1, as in CI, which installs it).
#define SERTX_REQUIRE_PGBOUNCER()                                                              \
    if (::sertx::test::pgbouncer_bin().empty()) {                                              \
        if (::sertx::test::postgres_required()) FAIL("pgbouncer not found (Debian: pgbouncer)"); \
        SERTX_SKIP("pgbouncer not found: cannot test behind a transaction pooler");            \
    }

class pgbouncer {
public:
    /// In front of the server of `server_conninfo` (its host and port).
    explicit pgbouncer(const std::string& server_conninfo, int server_connections = 2)
        : port_(free_loopback_port()) {
        std::smatch m;
        if (!std::regex_search(server_conninfo, m, std::regex("port=([0-9]+)")))
            throw std::runtime_error("test: no port in " + server_conninfo);
        char tmpl[] = "/tmp/sertx-pgbouncer.XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("test: mkdtemp failed");
        dir_ = tmpl;
        ::chmod(dir_.c_str(), 0755);
        std::ofstream(dir_ + "/users.txt") << "\"postgres\" \"\"\n";
        std::ofstream(dir_ + "/pgbouncer.ini")
            << "[databases]\n* = host=127.0.0.1 port=" << m[1] << "\n"
            << "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " << port_ << "\nunix_socket_dir =\n"
            << "auth_type = trust\nauth_file = " << dir_ << "/users.txt\npool_mode = transaction\n"
            << "default_pool_size = " << server_connections << "\nmax_client_conn = 200\n"
            << "server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
            << "pidfile = " << dir_ << "/pgbouncer.pid\nlogfile = " << dir_ << "/pgbouncer.log\n";
        if (::getuid() == 0) {
            const passwd* pg = ::getpwnam("postgres");
            if (!pg) throw std::runtime_error("test: running as root needs a postgres user for pgbouncer");
            for (const char* f : {"", "/users.txt", "/pgbouncer.ini"})
                if (::chown((dir_ + f).c_str(), pg->pw_uid, pg->pw_gid) != 0)
                    throw std::runtime_error("test: chown failed");
        }
        const std::string command = shell_quote(pgbouncer_bin()) + " -d " + shell_quote(dir_ + "/pgbouncer.ini");
        const std::string full =
            ::getuid() == 0 ? "su postgres -s /bin/sh -c " + shell_quote(command) : "/bin/sh -c " + shell_quote(command);
        if (std::system(full.c_str()) != 0) throw std::runtime_error("test: pgbouncer did not start:\n" + log());
        if (!wait_until([&] { return accepts(); }, std::chrono::seconds(10)))
            throw std::runtime_error("test: pgbouncer does not listen on " + std::to_string(port_) + ":\n" + log());
    }
    ~pgbouncer() {
        std::ifstream pidfile(dir_ + "/pgbouncer.pid");
        long pid = 0;
        if (pidfile >> pid && pid > 0) {
            ::kill(static_cast<pid_t>(pid), SIGINT);
            wait_until([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0; }, std::chrono::seconds(10));
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    pgbouncer(const pgbouncer&) = delete;
    pgbouncer& operator=(const pgbouncer&) = delete;

    /// A connection string to `dbname` through the pooler.
    std::string conninfo(const std::string& dbname) const {
        return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname +
               " sslmode=disable gssencmode=disable connect_timeout=5";
    }

private:
    bool accepts() const {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port_));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        if (fd >= 0) ::close(fd);
        return ok;
    }
    std::string log() const {
        std::ifstream in(dir_ + "/pgbouncer.log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    int port_;
    std::string dir_;
};

}  // namespace sertx::test

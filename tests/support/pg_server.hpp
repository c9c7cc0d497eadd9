// SPDX-License-Identifier: BSL-1.0
#pragma once
// A PostgreSQL server of the test's own, for the tests that restart, crash
// or misconfigure one (the shared server of SERTX_PG must never be touched):
// initdb into a temporary directory, listen on 127.0.0.1 and a free port
// only, stop and delete everything at the end. As scripts/lib/common.sh
// does, initdb and pg_ctl run as the `postgres` user when the test runs as
// root (initdb refuses root).

#include "databases.hpp"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sertx::test {

/// The PostgreSQL server binaries: $SERTX_PG_BIN (scripts/test sets it), or
/// the newest /usr/lib/postgresql/*/bin; empty when there are none.
inline std::string pg_bin() {
    if (const char* v = std::getenv("SERTX_PG_BIN"); v && *v && std::filesystem::exists(std::string(v) + "/initdb"))
        return v;
    std::string best;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
        const auto bin = e.path() / "bin";
        if (std::filesystem::exists(bin / "initdb") && bin.string() > best) best = bin.string();
    }
    return best;
}

/// For a test case that starts its own server: a skip (SERTX_SKIP: counted,
/// never a pass) when the server binaries are missing, a failure when
/// SERTX_REQUIRE_POSTGRES=1, as in CI.
#define SERTX_REQUIRE_PG_SERVER()                                                                        \
    if (::sertx::test::pg_bin().empty()) {                                                               \
        if (::sertx::test::postgres_required()) FAIL("PostgreSQL server binaries not found");            \
        SERTX_SKIP("PostgreSQL server binaries not found: cannot start a server of the test's own");     \
    }

/// A TCP port on 127.0.0.1 that nothing listens on right now.
inline int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("test: no free loopback port");
    ::close(fd);
    return ntohs(a.sin_port);
}

inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

/// How a pg_server is set up.
struct pg_server_options {
    /// pg_hba method: "trust", or "scram-sha-256" with a password.
    std::string auth = "trust";
    std::string password{};             ///< the superuser's (postgres) password
    std::vector<std::string> settings{}; ///< extra postgresql.conf lines
};

class pg_server;

/// Makes a pg_server a streaming standby of `primary` (pg_basebackup -R).
struct standby_of {
    const pg_server& primary;
};

class pg_server {
public:
    using options = pg_server_options;

    /// A hot standby of `s.primary`, copied from it by pg_basebackup and
    /// streaming from it; its own port and directory.
    explicit pg_server(standby_of s) : bin_(pg_bin()), port_(free_loopback_port()) {
        make_directory();
        run_as_owner(shell_quote(bin_ + "/pg_basebackup") + " -h 127.0.0.1 -p " + std::to_string(s.primary.port()) +
                         " -U postgres -R -X stream -D " + shell_quote(data_) + " > " +
                         shell_quote(dir_ + "/initdb.log") + " 2>&1",
                     "pg_basebackup");
        std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
        conf << "port = " << port_ << "\nunix_socket_directories = '" << dir_ << "'\n";
        conf.close();
        start();
    }

    explicit pg_server(options o = {}) : options_(std::move(o)), bin_(pg_bin()), port_(free_loopback_port()) {
        make_directory();
        std::string init = shell_quote(bin_ + "/initdb") + " --no-sync -U postgres -D " + shell_quote(data_);
        if (options_.auth == "trust") {
            init += " -A trust";
        } else {
            const std::string pwfile = dir_ + "/pw";
            std::ofstream(pwfile) << options_.password << "\n";
            if (::getuid() == 0) {
                const passwd* pg = ::getpwnam("postgres");
                if (::chown(pwfile.c_str(), pg->pw_uid, pg->pw_gid) != 0) throw std::runtime_error("test: chown failed");
            }
            init += " -A " + options_.auth + " --pwfile=" + shell_quote(pwfile);
        }
        run_as_owner(init + " > " + shell_quote(dir_ + "/initdb.log") + " 2>&1", "initdb");
        std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
        conf << "listen_addresses = '127.0.0.1'\nport = " << port_ << "\nunix_socket_directories = '" << dir_
             << "'\nshared_buffers = 32MB\nmax_pred_locks_per_transaction = 256\nlog_min_messages = warning\n";
        for (const auto& line : options_.settings) conf << line << "\n";
        conf.close();
        start();
    }

    ~pg_server() {
        try {
            pg_ctl("stop -m immediate", false);
        } catch (...) {
        }
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    pg_server(const pg_server&) = delete;
    pg_server& operator=(const pg_server&) = delete;

    int port() const { return port_; }
    /// Connection string for `dbname` as postgres; with the password when
    /// the server has one and `with_password`.
    std::string conninfo(const std::string& dbname = "postgres", bool with_password = true) const {
        std::string c = "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname +
                        " sslmode=disable gssencmode=disable connect_timeout=5";
        if (with_password && !options_.password.empty()) c += " password=" + options_.password;
        return c;
    }

    void start() { pg_ctl("start -w -t 60 -l " + shell_quote(dir_ + "/server.log"), true); }
    /// A standby becomes a primary (pg_ctl promote, waiting until it is).
    void promote() { pg_ctl("promote -w -t 60", true); }
    /// `mode`: "smart", "fast" or "immediate" (pg_ctl -m).
    void stop(const std::string& mode) { pg_ctl("stop -w -t 60 -m " + mode, true); }
    void restart(const std::string& mode) {
        pg_ctl("restart -w -t 60 -m " + mode + " -l " + shell_quote(dir_ + "/server.log"), true);
    }

    /// The end of the server's log, for a failure message.
    std::string log_tail(std::size_t bytes = 2000) const {
        std::ifstream in(dir_ + "/server.log");
        std::stringstream s;
        s << in.rdbuf();
        const std::string all = s.str();
        return all.size() > bytes ? all.substr(all.size() - bytes) : all;
    }

private:
    void make_directory() {
        if (bin_.empty()) throw std::runtime_error("test: PostgreSQL server binaries not found");
        char tmpl[] = "/tmp/sertx-own-pg.XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("test: mkdtemp failed");
        dir_ = tmpl;
        data_ = dir_ + "/data";
        ::chmod(dir_.c_str(), 0755);
        if (::getuid() == 0) {
            const passwd* pg = ::getpwnam("postgres");
            if (!pg) throw std::runtime_error("test: running as root needs a postgres user for initdb");
            if (::chown(dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0) throw std::runtime_error("test: chown failed");
        }
    }

    void run_as_owner(const std::string& command, const char* what) const {
        const std::string full =
            ::getuid() == 0 ? "su postgres -s /bin/sh -c " + shell_quote(command) : "/bin/sh -c " + shell_quote(command);
        if (std::system(full.c_str()) != 0) {
            std::ifstream in(dir_ + "/initdb.log");
            std::stringstream s;
            s << in.rdbuf();
            throw std::runtime_error(std::string("test: ") + what + " failed: " + command + "\n" + s.str() + log_tail());
        }
    }
    void pg_ctl(const std::string& args, bool must_succeed) const {
        const std::string command = shell_quote(bin_ + "/pg_ctl") + " -D " + shell_quote(data_) + " " + args +
                                    " > /dev/null 2>&1";
        if (must_succeed) run_as_owner(command, "pg_ctl");
        else std::system((::getuid() == 0 ? "su postgres -s /bin/sh -c " + shell_quote(command) : command).c_str());
    }

    options options_;
    std::string bin_;
    int port_;
    std::string dir_, data_;
};

}  // namespace sertx::test

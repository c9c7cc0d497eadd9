// SPDX-License-Identifier: BSL-1.0
#pragma once
// The simulated payment network: the outside system a withdrawal pays out
// through. Like a real one it keeps its own record of every payout it
// received, independent of the ledger's database: an append-only file, each
// line written in one write() and fsynced before the call returns, so that the
// record survives a SIGKILL of the demo and a payout made twice would show as
// two lines. One file can serve several ledgers; each line names its ledger.

#include "cli.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

namespace ledger {

class payment_network {
public:
    payment_network(std::filesystem::path log, std::string ledger_id)
        : path_(std::move(log)), ledger_id_(std::move(ledger_id)) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw usage_error("cannot open the payment network's log '" + path_.string() +
                              "': " + std::strerror(errno) + "; choose another with --network-log");
        sync_directory();  // the file's name must survive a crash too
    }
    ~payment_network() { ::close(fd_); }
    payment_network(const payment_network&) = delete;
    payment_network& operator=(const payment_network&) = delete;

    /// Pays `amount` out of `account`; returns the network's receipt. The
    /// payout is on record (on disk) when this returns.
    std::string pay(std::string_view key, long long account, long long amount) {
        std::lock_guard lock(mutex_);
        const std::string line = "paid " + ledger_id_ + " " + std::string(key) + " " + std::to_string(account) + " " +
                                 std::to_string(amount) + "\n";
        if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0)
            throw std::runtime_error("the payment network could not record payout " + std::string(key) + ": " +
                                     std::strerror(errno));
        return "receipt " + std::to_string(++receipts_) + "@" + std::to_string(::getpid());
    }

    /// How many times the network received each payout key of `ledger_id`,
    /// by the log at `log` (nothing when it does not exist yet).
    static std::map<std::string, unsigned> received(const std::filesystem::path& log, std::string_view ledger_id) {
        std::map<std::string, unsigned> times;
        std::ifstream in(log);
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string word, ledger, key;
            if (fields >> word >> ledger >> key && word == "paid" && ledger == ledger_id) ++times[key];
        }
        return times;
    }
    std::map<std::string, unsigned> received() const { return received(path_, ledger_id_); }

    const std::filesystem::path& path() const noexcept { return path_; }

private:
    void sync_directory() const {
        const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
        const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0) return;
        ::fsync(d);
        ::close(d);
    }

    std::filesystem::path path_;
    std::string ledger_id_;
    int fd_ = -1;
    std::mutex mutex_;
    unsigned long receipts_ = 0;
};

}  // namespace ledger

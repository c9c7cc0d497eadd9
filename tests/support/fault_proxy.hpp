// SPDX-License-Identifier: BSL-1.0
#pragma once

// sertx::test::fault_proxy -- a loopback-only TCP proxy that injects network
// faults between a PostgreSQL client and a PostgreSQL server, for tests.
//
//   sertx::test::fault_proxy proxy("127.0.0.1", 5432);
//   // connect the client to 127.0.0.1:proxy.port() with sslmode=disable
//   proxy.drop_after_commit(1);   // next COMMIT reaches the server, reply is lost
//
// Linux only, header only, POSIX + standard library only.
//
// Design
//  * One acceptor thread (poll on the listening socket and a stop eventfd) and
//    one thread per proxied connection (poll on both sockets, the stop eventfd
//    and a per-connection wake eventfd).  All sockets are non-blocking; all
//    waits (stalls, waiting for the COMMIT reply, upstream connect) are poll
//    timeouts, so the destructor and cut_all() take effect immediately.
//  * The destructor signals stop, joins the acceptor and every connection
//    thread.  No detached threads.
//  * Client->server bytes are parsed into PostgreSQL frontend messages: the
//    untyped first message(s) (StartupMessage, SSLRequest, GSSENCRequest,
//    CancelRequest) and then typed messages (1 byte type + int32 length).
//    A message is forwarded only once it is complete, so every fault decision
//    is taken on a message boundary.  Server->client bytes are forwarded as
//    they arrive, but message boundaries are tracked so that the proxy knows
//    when the ReadyForQuery ('Z') answering a given query has arrived.
//  * If the server accepts SSL/GSS encryption ('S'/'G' answer) or the client
//    starts direct TLS, the connection degrades to a raw byte pipe: no commit
//    detection and no chaos on that connection (cut_all / refuse_new still
//    work).  Use sslmode=disable (and gssencmode=disable) for fault tests.
//  * Only Simple Query ('Q') commits are recognised: a query whose last
//    statement is COMMIT (libpq PQexec("COMMIT"), or sertx's batch "INSERT
//    ...; COMMIT" that writes an idempotency key with it).  A COMMIT sent
//    through the extended protocol (Parse/Bind/Execute, e.g. PQexecParams or
//    a prepared SOCI statement) is not recognised.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <sertx/backoff.hpp>  // jitter_rng: the chaos decisions' generator

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace sertx::test {

namespace fault_proxy_detail {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// FIFO byte buffer with cheap consumption from the front.
class byte_buffer {
public:
    [[nodiscard]] std::size_t size() const noexcept { return data_.size() - off_; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] const char* data() const noexcept { return data_.data() + off_; }
    void append(const char* p, std::size_t n) { data_.insert(data_.end(), p, p + n); }
    void consume(std::size_t n) noexcept {
        off_ += std::min(n, size());
        if (off_ == data_.size()) {
            data_.clear();
            off_ = 0;
        } else if (off_ >= 65536 && off_ * 2 >= data_.size()) {
            data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(off_));
            off_ = 0;
        }
    }
    void clear() noexcept {
        data_.clear();
        off_ = 0;
    }

private:
    std::vector<char> data_;
    std::size_t off_ = 0;
};

struct endpoint {
    sockaddr_storage addr{};
    socklen_t len = 0;
};

[[nodiscard]] inline std::uint32_t load_be32(const char* p) noexcept {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
           std::uint32_t{u[3]};
}

[[nodiscard]] inline bool is_loopback(const sockaddr* sa) noexcept {
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
        // ::ffff:127.x.y.z
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

[[nodiscard]] inline bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto up = [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; };
        if (up(a[i]) != up(b[i])) return false;
    }
    return true;
}

// Resolves host without touching DNS: only numeric addresses and "localhost"
// are accepted, and every resulting address must be loopback.
[[nodiscard]] inline std::vector<endpoint> resolve_loopback(const std::string& host, unsigned short port) {
    if (port == 0) throw std::invalid_argument("fault_proxy: upstream port must not be 0");
    std::string h = host;
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    if (h.empty()) throw std::invalid_argument("fault_proxy: empty upstream host");

    std::vector<endpoint> out;
    if (iequals_ascii(h, "localhost")) {
        endpoint v4;
        auto* in = reinterpret_cast<sockaddr_in*>(&v4.addr);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        v4.len = sizeof(sockaddr_in);
        out.push_back(v4);
        endpoint v6;
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&v6.addr);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
        v6.len = sizeof(sockaddr_in6);
        out.push_back(v6);
        return out;
    }

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port_str = std::to_string(port);
    if (::getaddrinfo(h.c_str(), port_str.c_str(), &hints, &res) != 0 || res == nullptr) {
        throw std::invalid_argument("fault_proxy: upstream host must be a numeric loopback address or "
                                    "'localhost' (no DNS): '" + host + "'");
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
    for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        if (ai->ai_addr == nullptr || !is_loopback(ai->ai_addr) ||
            ai->ai_addrlen > static_cast<socklen_t>(sizeof(sockaddr_storage))) {
            throw std::invalid_argument("fault_proxy: upstream host is not a loopback address "
                                        "(only 127.0.0.0/8 and ::1 are allowed): '" + host + "'");
        }
        endpoint ep;
        std::memcpy(&ep.addr, ai->ai_addr, ai->ai_addrlen);
        ep.len = ai->ai_addrlen;
        out.push_back(ep);
    }
    return out;
}

inline void signal_eventfd(int fd) noexcept {
    const std::uint64_t one = 1;
    if (::write(fd, &one, sizeof one) < 0) {
        // Counter overflow is impossible in practice; EAGAIN means "already signalled".
    }
}

inline void clear_eventfd(int fd) noexcept {
    std::uint64_t value = 0;
    if (::read(fd, &value, sizeof value) < 0) {
        // EAGAIN: nothing to clear.
    }
}

inline void set_nodelay(int fd) noexcept {
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes as much of b as the socket accepts.  false on a fatal error.
[[nodiscard]] inline bool flush(int fd, byte_buffer& b) noexcept {
    while (!b.empty()) {
        const ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
        if (n > 0) {
            b.consume(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        return false;
    }
    return true;
}


// Atomically decrements counter if it is positive; true if it did.
[[nodiscard]] inline bool take_one(std::atomic<int>& counter) noexcept {
    int cur = counter.load();
    while (cur > 0) {
        if (counter.compare_exchange_weak(cur, cur - 1)) return true;
    }
    return false;
}

} // namespace fault_proxy_detail

class fault_proxy {
public:
    struct chaos_settings {
        double cut_probability = 0.0;
        double stall_probability = 0.0;
        std::chrono::milliseconds max_stall{0};
    };

    // How long drop_after_commit waits for the server's ReadyForQuery that
    // answers the forwarded COMMIT before closing anyway.
    static constexpr std::chrono::milliseconds commit_reply_timeout{5000};
    // Bound on connecting to the upstream server.
    static constexpr std::chrono::milliseconds upstream_connect_timeout{5000};
    // After one side closed: how long to keep flushing data to the other side.
    static constexpr std::chrono::milliseconds close_flush_timeout{1000};

    // Throws std::invalid_argument if upstream_host is not a loopback address
    // (127.0.0.0/8, ::1, or "localhost"; no DNS lookup is done) and
    // std::system_error if the listening socket cannot be set up.
    fault_proxy(std::string upstream_host, unsigned short upstream_port, std::uint64_t seed = 1)
        : upstream_host_(std::move(upstream_host)),
          upstream_port_(upstream_port),
          seed_(seed),
          upstream_(fault_proxy_detail::resolve_loopback(upstream_host_, upstream_port_)) {
        using fault_proxy_detail::unique_fd;
        stop_fd_ = unique_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!stop_fd_) throw std::system_error(errno, std::generic_category(), "fault_proxy: eventfd");
        listen_fd_ = unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!listen_fd_) throw std::system_error(errno, std::generic_category(), "fault_proxy: socket");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        if (::bind(listen_fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
            throw std::system_error(errno, std::generic_category(), "fault_proxy: bind");
        if (::listen(listen_fd_.get(), SOMAXCONN) != 0)
            throw std::system_error(errno, std::generic_category(), "fault_proxy: listen");
        socklen_t len = sizeof addr;
        if (::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::system_error(errno, std::generic_category(), "fault_proxy: getsockname");
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;
    fault_proxy(fault_proxy&&) = delete;
    fault_proxy& operator=(fault_proxy&&) = delete;

    // Stops accepting, closes every connection, joins every thread.
    ~fault_proxy() {
        stopping_.store(true);
        fault_proxy_detail::signal_eventfd(stop_fd_.get()); // never cleared: wakes every poll
        if (acceptor_.joinable()) acceptor_.join();
        std::list<std::unique_ptr<connection>> all;
        {
            std::lock_guard lock(conns_mutex_);
            all.swap(conns_);
        }
        for (auto& c : all) {
            if (c->thread.joinable()) c->thread.join();
        }
    }

    // Port the proxy listens on (127.0.0.1).
    [[nodiscard]] unsigned short port() const noexcept { return port_; }
    [[nodiscard]] const std::string& upstream_host() const noexcept { return upstream_host_; }
    [[nodiscard]] unsigned short upstream_port() const noexcept { return upstream_port_; }

    // ---- fault controls (thread-safe, may be called at any time) ----------

    // The next n commits (across all connections) are forwarded to the server;
    // the proxy waits for the server's reply (up to commit_reply_timeout),
    // discards it and closes both sides.  Replaces any previous pending count;
    // n <= 0 disarms.
    void drop_after_commit(int n) noexcept { drop_after_.store(std::max(n, 0)); }
    // The next n commits are not forwarded; both sides are closed instead.
    // Checked before drop_after_commit.
    void drop_before_commit(int n) noexcept { drop_before_.store(std::max(n, 0)); }
    [[nodiscard]] int drop_after_commit_pending() const noexcept { return drop_after_.load(); }
    [[nodiscard]] int drop_before_commit_pending() const noexcept { return drop_before_.load(); }

    // Closes (shutdown + close) both sides of every current connection.  When
    // this returns, both peers have been sent FIN; connections accepted later
    // are unaffected.
    void cut_all() {
        std::lock_guard lock(conns_mutex_);
        for (auto& c : conns_) {
            std::lock_guard fd_lock(c->fd_mutex);
            if (c->client_fd < 0) continue; // already closed
            if (!c->cut_requested.exchange(true)) ++connections_cut_;
            ::shutdown(c->client_fd, SHUT_RDWR);
            if (c->upstream_fd >= 0) ::shutdown(c->upstream_fd, SHUT_RDWR);
            fault_proxy_detail::signal_eventfd(c->wake.get());
        }
    }

    // For every client->server message of an established session (not the
    // startup/SSL/authentication handshake, which ends with the server's first
    // ReadyForQuery; connection failures are what refuse_new is for): with
    // probability cut_probability the connection is cut before forwarding;
    // otherwise with probability stall_probability forwarding (and everything
    // after it on that connection) is delayed by a uniform random 1..max_stall
    // ms.  Connection k (k-th accepted, from 0) uses an RNG derived from
    // (seed, k), so a sequential test run is reproducible.  set_chaos(0, 0, {})
    // turns chaos off.
    void set_chaos(double cut_probability_per_message, double stall_probability_per_message,
                   std::chrono::milliseconds max_stall) {
        auto clamp01 = [](double p) { return (p > 0.0) ? std::min(p, 1.0) : 0.0; }; // also maps NaN to 0
        std::lock_guard lock(chaos_mutex_);
        chaos_.cut_probability = clamp01(cut_probability_per_message);
        chaos_.stall_probability = clamp01(stall_probability_per_message);
        chaos_.max_stall = std::max(max_stall, std::chrono::milliseconds{0});
    }
    [[nodiscard]] chaos_settings chaos() const {
        std::lock_guard lock(chaos_mutex_);
        return chaos_;
    }

    // While true, new client connections are accepted and closed at once.
    void refuse_new(bool refuse) noexcept { refuse_new_.store(refuse); }
    [[nodiscard]] bool refusing_new() const noexcept { return refuse_new_.load(); }

    // ---- counters ---------------------------------------------------------

    // Every accepted client socket, including refused ones.
    [[nodiscard]] std::uint64_t connections_accepted() const noexcept { return connections_accepted_.load(); }
    // Accepted and closed at once because of refuse_new(true).
    [[nodiscard]] std::uint64_t connections_refused() const noexcept { return connections_refused_.load(); }
    // Client connections closed because the upstream server could not be reached.
    [[nodiscard]] std::uint64_t upstream_connect_failures() const noexcept { return upstream_failures_.load(); }
    // Connection threads currently running.
    [[nodiscard]] std::uint64_t active_connections() const noexcept { return active_.load(); }
    // Simple-Query COMMIT/END messages seen (including dropped ones).
    [[nodiscard]] std::uint64_t commits_seen() const noexcept { return commits_seen_.load(); }
    [[nodiscard]] std::uint64_t commits_dropped_after_forward() const noexcept { return dropped_after_.load(); }
    [[nodiscard]] std::uint64_t commits_dropped_before_forward() const noexcept { return dropped_before_.load(); }
    // Connections cut by cut_all() or by a chaos cut (commit drops not included).
    [[nodiscard]] std::uint64_t connections_cut() const noexcept { return connections_cut_.load(); }
    // Messages delayed by chaos.
    [[nodiscard]] std::uint64_t stalls() const noexcept { return stalls_.load(); }

    // The commit classifier applied to the text of a Simple Query ('Q')
    // message: it commits a transaction and leaves none open, i.e. one of its
    // statements, after trimming whitespace, case-insensitively, is "COMMIT"
    // or "END" (alone or followed by ';' or whitespace) and no "BEGIN" or
    // "START" follows it. So "commit;", "COMMIT AND CHAIN", "END
    // TRANSACTION", "COMMIT PREPARED 'x'", "INSERT ...; COMMIT", and sertx's
    // "...; COMMIT; SET LOCAL ...; SELECT pg_notify(...)" count, and sertx's
    // keyed first batch "BEGIN ...; SELECT ...; COMMIT; BEGIN ..." does not.
    // The batches it meets hold no ';' inside literals, so each ';' ends a
    // statement.
    [[nodiscard]] static bool is_commit_query(std::string_view sql) noexcept {
        auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
        auto starts_with = [&](std::string_view statement, std::string_view kw) {
            while (!statement.empty() && ws(statement.front())) statement.remove_prefix(1);
            if (statement.size() < kw.size()) return false;
            if (!fault_proxy_detail::iequals_ascii(statement.substr(0, kw.size()), kw)) return false;
            return statement.size() == kw.size() || ws(statement[kw.size()]);
        };
        bool committed = false;
        for (std::size_t end = sql.find(';');; end = sql.find(';')) {
            const std::string_view statement = sql.substr(0, end);
            if (starts_with(statement, "COMMIT") || starts_with(statement, "END")) committed = true;
            if (starts_with(statement, "BEGIN") || starts_with(statement, "START")) committed = false;
            if (end == std::string_view::npos) break;
            sql.remove_prefix(end + 1);
        }
        return committed;
    }

private:
    using clock = std::chrono::steady_clock;

    struct connection {
        std::uint64_t index = 0;
        // client_fd/upstream_fd are written (and closed) only by the connection
        // thread, always under fd_mutex; cut_all reads them under fd_mutex.
        std::mutex fd_mutex;
        int client_fd = -1;
        int upstream_fd = -1;
        fault_proxy_detail::unique_fd wake;
        std::atomic<bool> cut_requested{false};
        std::atomic<bool> finished{false};
        std::thread thread;

        connection() = default;
        connection(const connection&) = delete;
        connection& operator=(const connection&) = delete;
        ~connection() {
            if (client_fd >= 0) ::close(client_fd);
            if (upstream_fd >= 0) ::close(upstream_fd);
        }
    };

    // ---- acceptor -----------------------------------------------------------

    void accept_loop() noexcept {
        while (!stopping_.load()) {
            pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
            const int r = ::poll(fds, 2, 250);
            if (stopping_.load()) break;
            reap_finished();
            if (r <= 0) continue;
            for (;;) {
                const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED) continue;
                    if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        std::this_thread::sleep_for(std::chrono::milliseconds(10)); // EMFILE etc.
                    }
                    break;
                }
                const std::uint64_t index = connections_accepted_.fetch_add(1);
                if (refuse_new_.load() || stopping_.load()) {
                    ++connections_refused_;
                    ::close(fd);
                    continue;
                }
                start_connection(fd, index);
            }
        }
    }

    void start_connection(int fd, std::uint64_t index) noexcept {
        std::unique_ptr<connection> c;
        try {
            c = std::make_unique<connection>();
        } catch (...) {
            ::close(fd);
            return;
        }
        c->index = index;
        c->client_fd = fd; // owned by c from here on
        c->wake = fault_proxy_detail::unique_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!c->wake) return;
        fault_proxy_detail::set_nodelay(fd);
        connection* raw = c.get();
        std::lock_guard lock(conns_mutex_);
        try {
            conns_.push_back(std::move(c));
        } catch (...) {
            return; // c still owns the connection and closes fd
        }
        ++active_;
        try {
            raw->thread = std::thread([this, raw] { run_connection(*raw); });
        } catch (...) {
            --active_;
            conns_.pop_back(); // closes fd
        }
    }

    void reap_finished() noexcept {
        std::list<std::unique_ptr<connection>> done;
        {
            std::lock_guard lock(conns_mutex_);
            for (auto it = conns_.begin(); it != conns_.end();) {
                auto next = std::next(it);
                if ((*it)->finished.load()) done.splice(done.end(), conns_, it);
                it = next;
            }
        }
        for (auto& c : done) {
            if (c->thread.joinable()) c->thread.join();
        }
    }

    // ---- connection thread --------------------------------------------------

    void run_connection(connection& c) noexcept {
        try {
            if (connect_upstream(c)) {
                session s(*this, c);
                s.run();
            }
        } catch (...) {
            // bad_alloc or similar: just drop the connection.
        }
        {
            std::lock_guard fd_lock(c.fd_mutex);
            if (c.client_fd >= 0) ::close(c.client_fd);
            if (c.upstream_fd >= 0) ::close(c.upstream_fd);
            c.client_fd = -1;
            c.upstream_fd = -1;
        }
        --active_;
        c.finished.store(true);
    }

    [[nodiscard]] bool aborted(const connection& c) const noexcept {
        return stopping_.load() || c.cut_requested.load();
    }

    bool connect_upstream(connection& c) {
        using fault_proxy_detail::unique_fd;
        for (const auto& ep : upstream_) {
            unique_fd s(::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (!s) continue;
            bool ok = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) == 0;
            if (!ok && errno == EINPROGRESS) {
                const auto deadline = clock::now() + upstream_connect_timeout;
                for (;;) {
                    if (aborted(c)) return false;
                    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
                    if (left.count() <= 0) break;
                    pollfd fds[3] = {{s.get(), POLLOUT, 0}, {stop_fd_.get(), POLLIN, 0}, {c.wake.get(), POLLIN, 0}};
                    const int r = ::poll(fds, 3, static_cast<int>(left.count()) + 1);
                    if (r < 0 && errno != EINTR) break;
                    if (r > 0 && fds[0].revents != 0) {
                        int err = 0;
                        socklen_t len = sizeof err;
                        ok = ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
                        break;
                    }
                }
            }
            if (aborted(c)) return false;
            if (!ok) continue;
            fault_proxy_detail::set_nodelay(s.get());
            std::lock_guard fd_lock(c.fd_mutex);
            if (c.cut_requested.load() || c.client_fd < 0) return false;
            c.upstream_fd = s.release();
            return true;
        }
        ++upstream_failures_;
        return false;
    }

    [[nodiscard]] chaos_settings chaos_snapshot() const {
        std::lock_guard lock(chaos_mutex_);
        return chaos_;
    }

    // State of one proxied connection; lives on the connection thread's stack.
    class session {
    public:
        session(fault_proxy& proxy, connection& c)
            : proxy_(proxy),
              conn_(c),
              cfd_(c.client_fd),
              ufd_(c.upstream_fd),
              rng_(sertx::jitter_rng(proxy.seed_ ^ (0xd1b54a32d192ed03ULL * (c.index + 1))).next()) {}

        void run() {
            using namespace std::chrono;
            std::array<char, 65536> buf; // NOLINT: filled by recv before use
            for (;;) {
                if (proxy_.aborted(conn_)) return;
                auto now = clock::now();
                if (held_len_ != 0 && now >= held_until_) {
                    release_held();
                    if (!process_client()) return;
                    if (!fault_proxy_detail::flush(ufd_, to_up_)) return;
                }
                if (draining_ && now >= drain_deadline_) return; // gave up waiting for the COMMIT reply
                if (closing_) {
                    if ((to_up_.empty() && to_client_.empty()) || now >= closing_deadline_) return;
                }

                const bool want_client =
                    !closing_ && !draining_ && held_len_ == 0 && to_up_.size() < max_buffered;
                const bool want_up = !closing_ && to_client_.size() < max_buffered;
                short cev = 0;
                short uev = 0;
                if (want_client) cev |= POLLIN;
                if (!to_client_.empty()) cev |= POLLOUT;
                if (want_up) uev |= POLLIN;
                if (!to_up_.empty()) uev |= POLLOUT;
                pollfd fds[4] = {
                    {(closing_ && cev == 0) ? -1 : cfd_, cev, 0},
                    {(closing_ && uev == 0) ? -1 : ufd_, uev, 0},
                    {proxy_.stop_fd_.get(), POLLIN, 0},
                    {conn_.wake.get(), POLLIN, 0},
                };

                int timeout = 1000;
                auto shorten = [&](clock::time_point t) {
                    const auto ms = duration_cast<milliseconds>(t - now).count() + 1;
                    timeout = static_cast<int>(std::clamp<long long>(ms, 0, timeout));
                };
                if (held_len_ != 0) shorten(held_until_);
                if (draining_) shorten(drain_deadline_);
                if (closing_) shorten(closing_deadline_);

                const int r = ::poll(fds, 4, timeout);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    return;
                }
                if (fds[3].revents != 0) fault_proxy_detail::clear_eventfd(conn_.wake.get());
                if (proxy_.aborted(conn_)) return;
                if (r == 0) continue;

                constexpr short hup = POLLERR | POLLHUP;
                // Writes.
                if ((fds[0].revents & (POLLOUT | hup)) != 0 && !to_client_.empty()) {
                    if (!fault_proxy_detail::flush(cfd_, to_client_)) return;
                }
                if ((fds[1].revents & (POLLOUT | hup)) != 0 && !to_up_.empty()) {
                    if (!fault_proxy_detail::flush(ufd_, to_up_)) return;
                }
                // Reads.
                if (!closing_ && (fds[0].revents & (POLLIN | hup)) != 0) {
                    const ssize_t n = ::recv(cfd_, buf.data(), buf.size(), 0);
                    if (n > 0) {
                        client_in_.append(buf.data(), static_cast<std::size_t>(n));
                        if (!process_client()) return;
                    } else if (n == 0) {
                        on_client_eof();
                    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        return;
                    }
                }
                if (!closing_ && (fds[1].revents & (POLLIN | hup)) != 0) {
                    const ssize_t n = ::recv(ufd_, buf.data(), buf.size(), 0);
                    if (n > 0) {
                        if (!process_server(buf.data(), static_cast<std::size_t>(n))) {
                            (void)fault_proxy_detail::flush(cfd_, to_client_); // earlier replies, best effort
                            return;
                        }
                    } else if (n == 0) {
                        if (draining_) return; // server went away after the COMMIT: drop is complete
                        on_upstream_eof();
                    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        return;
                    }
                }
                // Opportunistic writes of what was just produced.
                if (!to_up_.empty() && !fault_proxy_detail::flush(ufd_, to_up_)) return;
                if (!to_client_.empty() && !fault_proxy_detail::flush(cfd_, to_client_)) return;
            }
        }

    private:
        static constexpr std::size_t max_buffered = 4u << 20;
        static constexpr std::uint32_t ssl_request_code = 80877103;
        static constexpr std::uint32_t gssenc_request_code = 80877104;
        static constexpr std::uint32_t cancel_request_code = 80877102;
        static constexpr std::uint32_t max_startup_length = 10000; // as in the server

        static bool produces_ready_for_query(char type) noexcept {
            return type == 'Q' || type == 'S' || type == 'F'; // Query, Sync, FunctionCall
        }

        void on_client_eof() {
            closing_ = true;
            closing_deadline_ = clock::now() + close_flush_timeout;
            client_in_.clear(); // incomplete or stalled messages of a departed client are dropped
            held_len_ = 0;
            to_client_.clear();
        }

        void on_upstream_eof() {
            closing_ = true;
            closing_deadline_ = clock::now() + close_flush_timeout;
            to_up_.clear(); // deliver what the server said last (e.g. a FATAL error)
        }

        void forward_client(std::size_t n) {
            to_up_.append(client_in_.data(), n);
            client_in_.consume(n);
        }

        void release_held() {
            const char type = client_in_.data()[0];
            forward_client(held_len_);
            held_len_ = 0;
            if (produces_ready_for_query(type)) ++z_expected_;
        }

        // Consumes complete client messages.  false: close the connection now.
        bool process_client() {
            using fault_proxy_detail::load_be32;
            while (held_len_ == 0 && !draining_ && !closing_) {
                if (raw_) {
                    forward_client(client_in_.size());
                    return true;
                }
                if (untyped_) {
                    if (client_in_.empty()) return true;
                    if (static_cast<unsigned char>(client_in_.data()[0]) == 0x16) { // direct TLS ClientHello
                        raw_ = true;
                        continue;
                    }
                    if (client_in_.size() < 8) return true;
                    const std::uint32_t len = load_be32(client_in_.data());
                    if (len < 8 || len > max_startup_length) { // not PostgreSQL; let the server judge
                        raw_ = true;
                        continue;
                    }
                    if (client_in_.size() < len) return true;
                    const std::uint32_t code = load_be32(client_in_.data() + 4);
                    forward_client(len);
                    if (code == ssl_request_code || code == gssenc_request_code) {
                        ++single_byte_replies_expected_; // server answers one byte; another untyped message follows
                    } else if (code == cancel_request_code) {
                        raw_ = true; // nothing else is sent on a cancel connection
                    } else {
                        untyped_ = false; // StartupMessage; the server ends startup with ReadyForQuery
                        ++z_expected_;
                    }
                    continue;
                }

                if (client_in_.size() < 5) return true;
                const char type = client_in_.data()[0];
                const std::uint32_t len = load_be32(client_in_.data() + 1);
                if (len < 4 || len > 0x7fffffffu - 1) {
                    raw_ = true;
                    continue;
                }
                const std::size_t total = std::size_t{len} + 1;
                if (client_in_.size() < total) return true;

                if (type == 'Q') {
                    const char* text = client_in_.data() + 5;
                    const std::size_t text_len = ::strnlen(text, total - 5);
                    if (is_commit_query(std::string_view(text, text_len))) {
                        ++proxy_.commits_seen_;
                        if (fault_proxy_detail::take_one(proxy_.drop_before_)) {
                            ++proxy_.dropped_before_;
                            return false;
                        }
                        if (fault_proxy_detail::take_one(proxy_.drop_after_)) {
                            ++proxy_.dropped_after_;
                            forward_client(total);
                            ++z_expected_;
                            draining_ = true;
                            drain_target_ = z_expected_;
                            drain_deadline_ = clock::now() + commit_reply_timeout;
                            if (z_received_ >= drain_target_) return false; // cannot happen; be safe
                            return true;
                        }
                    }
                }

                // Chaos applies once the session is established (the server's first
                // ReadyForQuery has arrived), so authentication messages are exempt.
                const chaos_settings chaos = z_received_ > 0 ? proxy_.chaos_snapshot() : chaos_settings{};
                if (chaos.cut_probability > 0.0 || chaos.stall_probability > 0.0) {
                    const double u_cut = rng_.unit();
                    const double u_stall = rng_.unit();
                    const std::uint64_t u_len = rng_.next();
                    if (u_cut < chaos.cut_probability) {
                        if (!conn_.cut_requested.exchange(true)) ++proxy_.connections_cut_;
                        return false;
                    }
                    if (u_stall < chaos.stall_probability && chaos.max_stall.count() > 0) {
                        ++proxy_.stalls_;
                        const auto max_ms = static_cast<std::uint64_t>(chaos.max_stall.count());
                        held_len_ = total;
                        held_until_ = clock::now() + std::chrono::milliseconds(1 + u_len % max_ms);
                        return true;
                    }
                }

                forward_client(total);
                if (produces_ready_for_query(type)) ++z_expected_;
            }
            return true;
        }

        // Forwards server bytes, tracking message boundaries.  While draining
        // after a forwarded COMMIT, replies to earlier queries are still
        // forwarded; the COMMIT's own reply is discarded.  false: close now.
        bool process_server(const char* p, std::size_t n) {
            using fault_proxy_detail::load_be32;
            std::size_t i = 0;
            while (i < n) {
                if (raw_) {
                    to_client_.append(p + i, n - i);
                    return true;
                }
                if (single_byte_replies_expected_ > 0 && hdr_len_ == 0 && body_left_ == 0) {
                    const char b = p[i];
                    if (b == 'N') { // encryption refused; plain startup follows
                        --single_byte_replies_expected_;
                        to_client_.append(p + i, 1);
                        ++i;
                        continue;
                    }
                    if (b == 'S' || b == 'G') { // TLS / GSS from here on: opaque
                        raw_ = true;
                        continue;
                    }
                    single_byte_replies_expected_ = 0; // e.g. an ErrorResponse from an old server
                }
                if (body_left_ > 0) {
                    const std::size_t take = std::min<std::size_t>(body_left_, n - i);
                    if (cur_forward_) to_client_.append(p + i, take);
                    i += take;
                    body_left_ -= static_cast<std::uint32_t>(take);
                    if (body_left_ == 0 && !end_server_message()) return false;
                    continue;
                }
                hdr_[hdr_len_++] = p[i++];
                if (hdr_len_ < 5) continue;
                hdr_len_ = 0;
                const std::uint32_t len = load_be32(hdr_.data() + 1);
                cur_type_ = hdr_[0];
                cur_forward_ = !(draining_ && z_received_ + 1 >= drain_target_);
                if (len < 4) { // garbage: stop parsing
                    raw_ = true;
                    to_client_.append(hdr_.data(), hdr_.size());
                    continue;
                }
                if (cur_forward_) to_client_.append(hdr_.data(), hdr_.size());
                body_left_ = len - 4;
                if (body_left_ == 0 && !end_server_message()) return false;
            }
            return true;
        }

        bool end_server_message() noexcept {
            if (cur_type_ == 'Z') {
                ++z_received_;
                if (draining_ && z_received_ >= drain_target_) return false; // COMMIT answered: drop done
            }
            return true;
        }

        fault_proxy& proxy_;
        connection& conn_;
        int cfd_;
        int ufd_;
        sertx::jitter_rng rng_;  // splitmix64: fully specified, identical on every platform

        fault_proxy_detail::byte_buffer client_in_; // unparsed client bytes
        fault_proxy_detail::byte_buffer to_up_;
        fault_proxy_detail::byte_buffer to_client_;

        // client->server parsing
        bool untyped_ = true;
        bool raw_ = false;
        std::size_t held_len_ = 0; // > 0: first held_len_ bytes of client_in_ are a stalled message
        clock::time_point held_until_{};

        // server->client parsing
        int single_byte_replies_expected_ = 0;
        std::array<char, 5> hdr_{};
        std::size_t hdr_len_ = 0;
        std::uint32_t body_left_ = 0;
        char cur_type_ = 0;
        bool cur_forward_ = true;
        std::uint64_t z_expected_ = 0; // ReadyForQuery messages the server owes us
        std::uint64_t z_received_ = 0;

        // drop_after_commit
        bool draining_ = false;
        std::uint64_t drain_target_ = 0;
        clock::time_point drain_deadline_{};

        // one side closed
        bool closing_ = false;
        clock::time_point closing_deadline_{};
    };

    const std::string upstream_host_;
    const unsigned short upstream_port_;
    const std::uint64_t seed_;
    const std::vector<fault_proxy_detail::endpoint> upstream_;

    fault_proxy_detail::unique_fd stop_fd_;
    fault_proxy_detail::unique_fd listen_fd_;
    unsigned short port_ = 0;
    std::atomic<bool> stopping_{false};

    std::atomic<int> drop_after_{0};
    std::atomic<int> drop_before_{0};
    std::atomic<bool> refuse_new_{false};
    mutable std::mutex chaos_mutex_;
    chaos_settings chaos_{};

    std::atomic<std::uint64_t> connections_accepted_{0};
    std::atomic<std::uint64_t> connections_refused_{0};
    std::atomic<std::uint64_t> upstream_failures_{0};
    std::atomic<std::uint64_t> active_{0};
    std::atomic<std::uint64_t> commits_seen_{0};
    std::atomic<std::uint64_t> dropped_after_{0};
    std::atomic<std::uint64_t> dropped_before_{0};
    std::atomic<std::uint64_t> connections_cut_{0};
    std::atomic<std::uint64_t> stalls_{0};

    std::mutex conns_mutex_;
    std::list<std::unique_ptr<connection>> conns_;
    std::thread acceptor_; // last: started after everything else is initialised
};

} // namespace sertx::test

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// PostgreSQL's cross-process wake-up of the effect journal
/// (`sertx::effect_wakeups`, adapter.hpp): a session of its own that
/// `LISTEN`s on the channel the scheduling transactions `NOTIFY` (right after
/// their COMMIT, in its batch: the connection's `notify_after_commit` in
/// soci/postgresql.hpp), so that a dispatcher in another process is woken
/// when an intent commits, and only if it commits.
///
/// Its own libpq connection, outside the pool: a `run` holds it for its whole
/// life, and a pool of one must still serve the run's transactions. The wait
/// is poll(2) on the connection's socket and on a pipe that a
/// `std::stop_callback` writes, so a stop is seen at once.

#include <sertx/failure.hpp>

#include <libpq-fe.h>

#include <poll.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <stop_token>
#include <string>

namespace sertx::postgresql::detail {

/// The channel of the journal's notifications.
inline constexpr const char* effect_channel = "sertx_effect";

struct pgconn_closer {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};

/// A pipe whose write end a stop callback writes, so that poll(2) returns.
class stop_pipe {
public:
    stop_pipe() {
        if (::pipe(fds_) != 0) throw error("sertx: cannot make a pipe for the journal's wake-ups.");
    }
    ~stop_pipe() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    stop_pipe(const stop_pipe&) = delete;
    stop_pipe& operator=(const stop_pipe&) = delete;
    int read_end() const noexcept { return fds_[0]; }
    void ring() const noexcept {
        const char byte = 1;
        [[maybe_unused]] const auto n = ::write(fds_[1], &byte, 1);
    }

private:
    int fds_[2] = {-1, -1};
};

/// Listens until `stop`, calling `woken` once LISTEN is in place (anything
/// committed before it is then looked for) and after each batch of
/// notifications. Throws `connection_error` when the server cannot be
/// reached or the connection is lost; the caller retries. `hide` is the
/// password, kept out of messages.
inline void listen_for_effects(const std::string& conninfo, const std::string& hide, std::stop_token stop,
                               const std::function<void()>& woken) {
    auto scrub = [&](std::string text) {
        if (!hide.empty())
            for (std::size_t at = text.find(hide); at != std::string::npos; at = text.find(hide, at + 3))
                text.replace(at, hide.size(), "***");
        return text;
    };
    std::unique_ptr<PGconn, pgconn_closer> c(PQconnectdb(conninfo.c_str()));
    if (!c || PQstatus(c.get()) != CONNECTION_OK)
        throw connection_error("sertx: the journal's listener cannot connect to PostgreSQL: " +
                               scrub(c ? PQerrorMessage(c.get()) : "out of memory"));
    // The server's notices to this session (its own termination, on a
    // restart) are not the application's: libpq would print them to stderr.
    PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
    {
        PGresult* r = PQexec(c.get(), (std::string("LISTEN ") + effect_channel).c_str());
        const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        const std::string why = ok ? "" : scrub(PQerrorMessage(c.get()));
        PQclear(r);
        if (!ok) throw connection_error("sertx: the journal's listener could not LISTEN: " + why);
    }
    woken();
    stop_pipe pipe;
    std::stop_callback ring(stop, [&] { pipe.ring(); });
    while (!stop.stop_requested()) {
        pollfd fds[2] = {{PQsocket(c.get()), POLLIN, 0}, {pipe.read_end(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;  // EINTR
        if (fds[1].revents != 0) break;
        if (fds[0].revents == 0) continue;
        if (!PQconsumeInput(c.get()) || PQstatus(c.get()) != CONNECTION_OK)
            throw connection_error("sertx: the journal's listener lost its connection: " +
                                   scrub(PQerrorMessage(c.get())));
        bool any = false;
        while (PGnotify* n = PQnotifies(c.get())) {
            PQfreemem(n);
            any = true;
        }
        if (any) woken();
    }
    // PQfinish ends the session, and with it the LISTEN.
}

}  // namespace sertx::postgresql::detail

// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The journal's listener (effect_listener.hpp): inline when header-only,
/// compiled once with SERTX_SEPARATE_COMPILATION (impl/postgresql.ipp
/// includes it).

#include <sertx/soci/detail/postgresql/effect_listener.hpp>

#include <sertx/failure.hpp>

#include <libpq-fe.h>

#include <poll.h>
#include <unistd.h>

#include <memory>

namespace sertx::postgresql::detail {

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

SERTX_DECL void listen_for_effects(const std::string& conninfo, const std::string& hide, std::stop_token stop,
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

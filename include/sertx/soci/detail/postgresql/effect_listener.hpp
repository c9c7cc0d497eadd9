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

#include <sertx/detail/config.hpp>

#include <functional>
#include <stop_token>
#include <string>

namespace sertx::postgresql::detail {

/// The channel of the journal's notifications.
inline constexpr const char* effect_channel = "sertx_effect";

/// Listens until `stop`, calling `woken` once LISTEN is in place (anything
/// committed before it is then looked for) and after each batch of
/// notifications. Throws `connection_error` when the server cannot be
/// reached or the connection is lost; the caller retries. `hide` is the
/// password, kept out of messages.
void listen_for_effects(const std::string& conninfo, const std::string& hide, std::stop_token stop,
                        const std::function<void()>& woken);

}  // namespace sertx::postgresql::detail

#if defined(SERTX_HEADER_ONLY)
#include <sertx/soci/detail/postgresql/impl/effect_listener.ipp>
#endif

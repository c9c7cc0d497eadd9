// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// What went wrong, classified (`sertx::failure`), and the exceptions sertx
/// throws. Every exception derives from `sertx::error`, itself a
/// `std::runtime_error`, so a caller can catch all of sertx in one place.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace sertx {

/// The classification of a failed attempt (DESIGN §5). Adapters map their
/// database's codes onto it in one function each; the retry loop only ever
/// looks at this value.
enum class failure : std::uint8_t {
    serialization,    ///< PG 40001, SQLITE_BUSY_SNAPSHOT: re-run the body
    deadlock,         ///< PG 40P01: re-run the body
    busy,             ///< PG 55P03, SQLITE_BUSY/LOCKED: re-run the body
    connection_lost,  ///< before COMMIT was sent: re-run on a fresh session
    commit_unknown,   ///< lost while COMMIT was in flight: never re-run blindly
    permanent,        ///< anything else: propagate
};

inline constexpr std::size_t failure_kinds = 6;

constexpr std::string_view to_string(failure f) noexcept {
    switch (f) {
        case failure::serialization: return "serialization";
        case failure::deadlock: return "deadlock";
        case failure::busy: return "busy";
        case failure::connection_lost: return "connection_lost";
        case failure::commit_unknown: return "commit_unknown";
        case failure::permanent: return "permanent";
    }
    return "unknown";
}

/// Whether a body that failed this way may simply be run again.
constexpr bool is_retryable(failure f) noexcept {
    return f == failure::serialization || f == failure::deadlock || f == failure::busy ||
           f == failure::connection_lost;
}

/// The base of every exception sertx throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A statement sertx itself issued (BEGIN, COMMIT, a check, a migration's
/// statement) failed, or the adapter refused to go on; carries the
/// classification, the database's own code (SQLSTATE or SQLite result code),
/// the statement and the database's message as fields, so that callers (and
/// `migrate`) never parse `what()`.
class database_error : public error {
public:
    /// `statement` failed with the database's `message`; `what()` reads
    /// "sertx: <statement> failed: <message>".
    database_error(failure kind, std::string code, std::string statement, std::string message)
        : error("sertx: " + statement + " failed: " + message),
          kind_(kind),
          code_(std::move(code)),
          statement_(std::move(statement)),
          message_(std::move(message)) {}
    /// The adapter refused to go on; `what()` is `explanation`, and so is `message()`.
    database_error(failure kind, std::string code, const std::string& explanation)
        : error(explanation), kind_(kind), code_(std::move(code)), message_(explanation) {}

    failure kind() const noexcept { return kind_; }
    const std::string& code() const noexcept { return code_; }
    /// The statement that failed; empty when the adapter refused by itself.
    const std::string& statement() const noexcept { return statement_; }
    /// The database's message (or the refusal's explanation).
    const std::string& message() const noexcept { return message_; }

private:
    failure kind_;
    std::string code_;
    std::string statement_;
    std::string message_;
};

/// The policy's attempts or deadline ran out; the last cause is nested
/// (`std::rethrow_if_nested`).
class retries_exhausted : public error {
public:
    retries_exhausted(unsigned attempts, failure last, const std::string& what)
        : error(what), attempts_(attempts), last_(last) {}
    unsigned attempts() const noexcept { return attempts_; }
    failure last_failure() const noexcept { return last_; }

private:
    unsigned attempts_;
    failure last_;
};

/// The connection failed while COMMIT was in flight and nothing could tell
/// whether it applied (no idempotency key, no `resolve_unknown`). The body was
/// not run again.
class commit_unknown : public error {
public:
    using error::error;
};

/// The session would not run SERIALIZABLE transactions.
class isolation_error : public error {
public:
    using error::error;
};

/// The database's durability settings would lose acknowledged commits.
class durability_error : public error {
public:
    using error::error;
};

/// A migration was refused or failed; nothing of it was applied.
class migration_error : public error {
public:
    using error::error;
};

/// An at-most-once effect whose outcome is unknown; only an operator settles it.
class effect_in_doubt : public error {
public:
    using error::error;
};

/// An idempotency key was committed before for a different request (its
/// `.request` fingerprint differs): a reused key is a client bug to report,
/// not a duplicate to swallow. The body was not run.
class idempotency_mismatch : public error {
public:
    using error::error;
};

/// The database could not be reached or opened (bad connection string, server
/// down, unreadable file). Never contains a password.
class connection_error : public error {
public:
    using error::error;
};

/// Every pooled session stayed busy for the whole acquire timeout.
class pool_exhausted : public error {
public:
    using error::error;
};

}  // namespace sertx

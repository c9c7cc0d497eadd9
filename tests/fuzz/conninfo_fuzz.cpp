// SPDX-License-Identifier: BSL-1.0
// libFuzzer target for the PostgreSQL connection-string handling
// (parse_conninfo, which calls libpq's PQconninfoParse, and redact_quoted,
// which keeps the user's words out of libpq's parse errors). The invariant:
// a password given never shows, in whole or in part, in an error's text or in
// the description sertx puts in its messages.
//
// Each input is split at its first '\n' into a password and the rest of a
// connection string. The password is written into a key=value string (quoted
// and escaped) or a URI (percent-encoded where it must be) followed by the
// rest, so that libpq reads it back as the password whenever the whole
// string parses. The password is written with letters of its own alphabet
// (X, Y, Z, J, K, W, V), which the rest never holds and no message of libpq
// or sertx contains: any of them in a message comes from the password.
#include <sertx/soci/postgresql.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view secret_letters = "XYZJKWV";

bool is_secret_letter(char c) { return secret_letters.find(c) != std::string_view::npos; }

void require(bool condition) {
    if (!condition) std::abort();
}

bool shows_secret(std::string_view text) {
    for (char c : text)
        if (is_secret_letter(c)) return true;
    return false;
}

/// The password: secret letters for letters and digits, punctuation as given
/// (quotes, backslashes, '@', ':' and spaces are what break parsers); never
/// empty, so that there is something to leak.
std::string password_of(std::string_view bytes) {
    std::string p;
    for (unsigned char c : bytes) {
        if (c == 0) continue;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            p.push_back(secret_letters[c % secret_letters.size()]);
        else
            p.push_back(static_cast<char>(c));
    }
    if (p.empty()) p = "XY";
    if (!shows_secret(p)) p += "Z";
    return p;
}

/// The rest: as given, without the secret letters (lower-cased) or NUL
/// bytes, and without percent signs (a percent-encoded secret letter in
/// the rest would be decoded into a message by libpq).
std::string rest_of(std::string_view bytes) {
    std::string r;
    for (char c : bytes) {
        if (c == 0 || c == '%') continue;
        r.push_back(is_secret_letter(c) ? static_cast<char>(c - 'A' + 'a') : c);
    }
    return r;
}

std::string quoted(const std::string& value) {
    std::string q = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') q.push_back('\\');
        q.push_back(c);
    }
    return q + "'";
}

std::string percent_encoded(const std::string& value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string e;
    for (unsigned char c : value) {
        if (is_secret_letter(static_cast<char>(c))) {
            e.push_back(static_cast<char>(c));
        } else {
            e.push_back('%');
            e.push_back(hex[c >> 4]);
            e.push_back(hex[c & 0xf]);
        }
    }
    return e;
}

void check(const std::string& conninfo, const std::string& password) {
    try {
        const auto config = sertx::postgresql::detail::parse_conninfo(conninfo, {});
        require(!shows_secret(config.description));
        // Parsed: libpq read the password back as written, unless the rest
        // named another one (later keywords win), which has no secret letter.
        require(config.password == password || !shows_secret(config.password));
    } catch (const sertx::connection_error& e) {
        const std::string_view text = e.what();
        require(text.rfind("sertx:", 0) == 0);
        require(!shows_secret(text));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t split = input.find('\n');
    const std::string password = password_of(input.substr(0, split));
    const std::string rest = split == std::string_view::npos ? std::string() : rest_of(input.substr(split + 1));

    check("password=" + quoted(password) + " " + rest, password);
    check("host=127.0.0.1 password=" + quoted(password) + rest, password);
    check("postgresql://user:" + percent_encoded(password) + "@" + rest, password);
    check("postgresql://user:" + percent_encoded(password) + "@127.0.0.1/" + rest, password);
    return 0;
}

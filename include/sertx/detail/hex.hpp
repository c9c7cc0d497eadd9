// SPDX-License-Identifier: BSL-1.0
#pragma once
// Lower-case hex: how sertx stores keys, payloads and results (any bytes,
// NUL included, valid text on every backend and readable in every tool),
// names an attempt, and prints a key that is not printable.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sertx::detail {

/// Writes the 2 × bytes.size() hex digits of `bytes` at `out`: in place,
/// for the callers on a transaction's path that keep their own buffers.
inline char* write_hex(char* out, std::string_view bytes) noexcept {
    static constexpr char digits[] = "0123456789abcdef";
    for (const unsigned char c : bytes) {
        *out++ = digits[c >> 4];
        *out++ = digits[c & 0xf];
    }
    return out;
}

/// Appends the hex of `bytes` to `out`, reusing its capacity.
inline void append_hex(std::string& out, std::string_view bytes) {
    const std::size_t at = out.size();
    out.resize(at + bytes.size() * 2);
    write_hex(out.data() + at, bytes);
}

/// Appends the decimal digits of `n` to `out`, reusing its capacity: the
/// numbers sertx writes into its own SQL text beside hex literals.
inline void append_number(std::string& out, std::int64_t n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out.append(digits, static_cast<std::size_t>(end - digits));
}

inline std::string to_hex(std::string_view bytes) {
    std::string out;
    append_hex(out, bytes);
    return out;
}

/// The value of one hex digit; -1 when `c` is none.
constexpr int hex_nibble(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Whether `text` is hex digits of whole bytes, as `from_hex` accepts.
constexpr bool is_hex(std::string_view text) noexcept {
    if (text.size() % 2 != 0) return false;
    for (const char c : text)
        if (hex_nibble(c) < 0) return false;
    return true;
}

/// The bytes `to_hex` encoded; empty when `hex` is not hex.
inline std::optional<std::string> from_hex(std::string_view hex) {
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hex_nibble(hex[i]), lo = hex_nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return out;
}

/// A key for a message: as is when printable, else as 0x and its hex.
inline std::string printable(std::string_view key) {
    for (const unsigned char ch : key)
        if (ch < 0x20 || ch >= 0x7f) return "0x" + to_hex(key);
    return std::string(key);
}

}  // namespace sertx::detail

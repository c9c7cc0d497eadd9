// SPDX-License-Identifier: BSL-1.0
#pragma once
// Lower-case hex: how sertx stores keys, payloads and results (any bytes,
// NUL included, valid text on every backend and readable in every tool),
// names an attempt, and prints a key that is not printable.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sertx::detail {

inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

/// The bytes `to_hex` encoded; empty when `hex` is not hex.
inline std::optional<std::string> from_hex(std::string_view hex) {
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
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

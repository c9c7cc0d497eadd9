// SPDX-License-Identifier: BSL-1.0
// The INSERT of the effect journal's intents that PostgreSQL's COMMIT batch
// carries (soci/detail/effect_statements.hpp, append_effect_row) is built as
// text, either as an INSERT of its own or, in a session that prepared it, as
// an EXECUTE of one array literal (postgresql/backend.hpp,
// append_scheduled_effect). Whatever the key, payload and operation name
// hold, the statement splits as exactly one statement (none can end it and
// start another), every quoted literal in it is hex digits or one of the
// statement's own words (the EXECUTE: one literal whose array elements are
// hex digits or a number), and key, name and payload read back from their
// literals in order.
#include <sertx/postgresql/backend.hpp>
#include <sertx/soci/detail/effect_statements.hpp>
#include <sertx/sql/split.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

/// What effect_statements reads of a connection to build the text.
struct postgresql_text {
    using dialect = sertx::postgresql::dialect;
};
using statements = sertx::detail::effect_statements<postgresql_text>;

bool is_hex(std::string_view s) {
    for (const char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

/// The quoted literals of `sql` that are not the statement's own words.
std::vector<std::string_view> values(std::string_view sql) {
    std::vector<std::string_view> out;
    for (std::size_t at = sql.find('\''); at != std::string_view::npos; at = sql.find('\'', at + 1)) {
        const std::size_t end = sql.find('\'', at + 1);
        require(end != std::string_view::npos);
        const std::string_view literal = sql.substr(at + 1, end - at - 1);
        at = end;
        if (literal == "hex" || literal == "UTF8" || literal == "pending" || literal == "sertx_effect") continue;
        require(is_hex(literal));
        out.push_back(literal);
    }
    return out;
}

/// The double-quoted elements of the EXECUTE's one literal, an array of
/// rows: nothing else but braces and commas between them.
std::vector<std::string_view> elements(std::string_view sql) {
    const std::string_view head = "execute sertx_schedule_effects('", tail = "')";
    require(sql.substr(0, head.size()) == head && sql.size() >= head.size() + tail.size() &&
            sql.substr(sql.size() - tail.size()) == tail);
    const std::string_view array = sql.substr(head.size(), sql.size() - head.size() - tail.size());
    std::vector<std::string_view> out;
    for (std::size_t at = 0; at < array.size(); ++at) {
        if (array[at] == '{' || array[at] == '}' || array[at] == ',') continue;
        require(array[at] == '"');
        const std::size_t end = array.find('"', at + 1);
        require(end != std::string_view::npos);
        const std::string_view element = array.substr(at + 1, end - at - 1);
        require(is_hex(element));  // the numbers are decimal digits, which is_hex accepts too
        out.push_back(element);
        at = end;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view key = input.substr(0, size / 3), name = input.substr(size / 3, size / 3),
                           payload = input.substr(2 * (size / 3));
    std::string sql;
    statements::append_effect_row(sql, key, name, "idempotent", payload, 0);
    statements::append_effect_row(sql, payload, name, "at_most_once", key, 1);
    statements::close_effect_rows(sql);
    require(sertx::detail::split_statements(sql, sertx::postgresql::dialect::split_as).size() == 1);
    const auto v = values(sql);
    require(v.size() == 8);
    require(sertx::detail::from_hex(v[0]) == std::string(key) && sertx::detail::from_hex(v[1]) == std::string(name) &&
            sertx::detail::from_hex(v[2]) == "idempotent" && sertx::detail::from_hex(v[3]) == std::string(payload));
    require(sertx::detail::from_hex(v[4]) == std::string(payload) && sertx::detail::from_hex(v[7]) == std::string(key));
    return 0;
}

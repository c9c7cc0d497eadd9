// SPDX-License-Identifier: BSL-1.0
// libFuzzer target for split_statements. Besides not crashing, it checks that
// every statement is a non-empty, trimmed view into the input, in order, and
// that splitting a statement again gives back exactly that statement: the
// splitter starts and ends each statement in the same state it starts a
// script in, so anything else means a ';' was misjudged.
#include <sertx/sql/split.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {

using sertx::detail::split_statements;
using sertx::detail::sql_dialect;
using sertx::detail::sql_split_error;

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void check(std::string_view script, sql_dialect dialect) {
    std::vector<std::string_view> statements;
    try {
        statements = split_statements(script, dialect);
    } catch (const sql_split_error&) {
        return;
    }
    const char* previous_end = script.data();
    for (const std::string_view statement : statements) {
        require(!statement.empty());
        require(statement.data() >= previous_end);
        require(statement.data() + statement.size() <= script.data() + script.size());
        require(!is_space(statement.front()) && !is_space(statement.back()));
        // The ';' that ended the previous statement lies between the two.
        require(statement.data() == script.data() || statement.data() > previous_end);
        previous_end = statement.data() + statement.size();

        const auto again = split_statements(statement, dialect);  // must not throw
        require(again.size() == 1 && again[0].data() == statement.data() &&
                again[0].size() == statement.size());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view script(reinterpret_cast<const char*>(data), size);
    check(script, sql_dialect::postgresql);
    check(script, sql_dialect::sqlite);
    return 0;
}

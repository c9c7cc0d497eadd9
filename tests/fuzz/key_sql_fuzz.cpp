// SPDX-License-Identifier: BSL-1.0
// The statements an idempotency key adds to BEGIN's and COMMIT's batches on
// PostgreSQL (sertx/postgresql/backend.hpp) are built as text. Whatever the
// key and the request fingerprint hold, each statement splits as exactly one
// statement (so none can end it and start another), every quoted literal in
// it is hex digits only, and the key reads back from its literal. An attempt
// id that is not hex is refused before any SQL is built.
#include <sertx/postgresql/backend.hpp>
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

/// The quoted literals of `sql`, which must be hex digits only.
std::vector<std::string_view> literals(std::string_view sql) {
    std::vector<std::string_view> out;
    for (std::size_t at = sql.find('\''); at != std::string_view::npos; at = sql.find('\'', at + 1)) {
        const std::size_t end = sql.find('\'', at + 1);
        require(end != std::string_view::npos);
        const std::string_view literal = sql.substr(at + 1, end - at - 1);
        for (const char c : literal) require((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        out.push_back(literal);
        at = end;
    }
    return out;
}

void check_one_statement(const std::string& sql) {
    const auto statements = sertx::detail::split_statements(sql, sertx::postgresql::dialect::split_as);
    require(statements.size() == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view key = input.substr(0, size / 2), request = input.substr(size / 2);

    for (const bool prepared : {false, true}) {
        const std::string find = sertx::postgresql::dialect::find_key(key, prepared);
        check_one_statement(find);
        const auto found = literals(find);
        require(found.size() == 1 && sertx::detail::from_hex(found[0]) == std::string(key));
        const std::string record = sertx::postgresql::dialect::record_key(key, "ab", request, 1, prepared);
        check_one_statement(record);
        const auto written = literals(record);
        require(written.size() == 3 && sertx::detail::from_hex(written[0]) == std::string(key) &&
                written[1] == "ab" && sertx::detail::from_hex(written[2]) == std::string(request));
    }
    const std::string find = sertx::postgresql::dialect::find_key(key, true);

    // BEGIN's batch as the adapter sends it: the lookup in its own
    // transaction, then the transaction's BEGIN; four statements whatever the key.
    using dialect = sertx::postgresql::dialect;
    const std::string batch = dialect::key_lookup_begin + find + dialect::key_lookup_end + dialect::begin[0];
    require(sertx::detail::split_statements(batch, dialect::split_as).size() == 4);

    const std::string attempt = sertx::detail::to_hex(request.substr(0, 16));
    const std::string record = sertx::postgresql::dialect::record_key(key, attempt, request, 1);
    check_one_statement(record);
    const auto written = literals(record);
    require(written.size() == 3 && sertx::detail::from_hex(written[0]) == std::string(key) &&
            written[1] == attempt && sertx::detail::from_hex(written[2]) == std::string(request));

    // The attempt id is the one argument not hex-encoded by the builder.
    bool refused = false;
    try {
        (void)sertx::postgresql::dialect::record_key(key, std::string(key) + "'", request, 1);
    } catch (const sertx::error&) {
        refused = true;
    }
    require(refused);
    return 0;
}

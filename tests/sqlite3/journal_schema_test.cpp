// SPDX-License-Identifier: BSL-1.0
// The effect states' and tags' names exist once (effect_record.hpp): the
// journal table's CHECK constraints are made from the same lists as
// to_string and the parsing of rows, so every name is accepted and nothing
// else is.
#include "support/catch.hpp"
#include "support/databases.hpp"

#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <string>
#include <string_view>

namespace {

bool insert_effect(sertx::sqlite3::database& db, const std::string& key, std::string_view effect,
                   std::string_view state) {
    try {
        sertx::transact(db, [&](auto& tx) {
            tx.sql() << "insert into sertx_effect (key, operation, effect, payload, state, scheduled_at) "
                        "values ('" + key + "', 'op', '" + std::string(effect) + "', '', '" + std::string(state) +
                            "', 1)";
        });
        return true;
    } catch (const soci::soci_error&) {
        return false;
    }
}

}  // namespace

TEST_CASE("the journal's CHECK constraints accept exactly the names of effect_record.hpp", "[sqlite3]") {
    sertx::test::temp_dir dir;
    auto db = sertx::sqlite3::open(dir.file("journal.db"));
    sertx::install(db);
    int n = 0;
    for (const std::string_view state : sertx::effect_state_names) {
        CHECK(insert_effect(db, "state-" + std::to_string(n++), "idempotent", state));
        CHECK(sertx::parse_effect_state(state).has_value());
        CHECK(sertx::to_string(*sertx::parse_effect_state(state)) == state);
    }
    for (const std::string_view tag : sertx::effect_tag_names)
        CHECK(insert_effect(db, "tag-" + std::to_string(n++), tag, "pending"));
    CHECK_FALSE(insert_effect(db, "bad-state", "idempotent", "lost"));
    CHECK_FALSE(insert_effect(db, "bad-tag", "twice", "pending"));
    CHECK_FALSE(sertx::parse_effect_state("lost").has_value());
}

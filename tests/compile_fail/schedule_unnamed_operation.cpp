// SPDX-License-Identifier: BSL-1.0
// An operation scheduled in the effect journal needs a stable name, stored
// with each intent, so that a dispatcher started later can find it.
// expect: sertx: an operation run through the effect journal needs a stable name
#include <sertx/sertx.hpp>
#include <sertx/soci/sqlite3.hpp>

#include <string>
#include <string_view>

#ifdef SERTX_COMPILE_FAIL_CONTROL
struct broadcast {
    using effect = sertx::at_most_once;
    static constexpr std::string_view name = "broadcast";
    void operator()(const std::string&) const {}
};

void correct_use(sertx::sqlite3::database& db) {
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<broadcast>(tx, "k", "payload"); });
}
#else
struct broadcast {
    using effect = sertx::at_most_once;
    void operator()(const std::string&) const {}
};

void misuse(sertx::sqlite3::database& db) {
    sertx::effects journal(db);
    sertx::transact(db, [&](auto& tx) { journal.template schedule<broadcast>(tx, "k", "payload"); });
}
#endif

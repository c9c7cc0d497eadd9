// SPDX-License-Identifier: BSL-1.0
// The journal on a SQLite file under real process churn: dispatchers
// SIGKILLed, replaced and SIGSTOPped past their lease
// (support/journal_churn.hpp).
#include "support/catch.hpp"
#include "support/sqlite3_children.hpp"
#include "support/journal_churn.hpp"

#include <sertx/sertx.hpp>

namespace {

/// Catch names the fixture in each test's name.
using SQLite = sertx::test::sqlite3_for_children;

}  // namespace

SERTX_JOURNAL_CHURN_CASES(SQLite, "[sqlite3]")

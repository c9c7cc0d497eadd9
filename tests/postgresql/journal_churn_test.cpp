// SPDX-License-Identifier: BSL-1.0
// The journal on PostgreSQL under real process churn: dispatchers SIGKILLed,
// replaced and SIGSTOPped past their lease (support/journal_churn.hpp).
#include "support/catch.hpp"
#include "support/postgresql_children.hpp"
#include "support/journal_churn.hpp"

#include <sertx/sertx.hpp>

namespace {

/// Catch names the fixture in each test's name.
using PostgreSQL = sertx::test::postgresql_for_children;

}  // namespace

SERTX_JOURNAL_CHURN_CASES(PostgreSQL, "[postgresql]")

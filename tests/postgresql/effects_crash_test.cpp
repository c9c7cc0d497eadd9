// SPDX-License-Identifier: BSL-1.0
// The effect journal on PostgreSQL survives SIGKILL of its dispatcher
// processes at every step (support/effects_crash.hpp).
#include "support/catch.hpp"
#include "support/postgresql_children.hpp"
#include "support/effects_crash.hpp"

#include <sertx/sertx.hpp>

namespace {

/// Catch names the fixture in each test's name.
using PostgreSQL = sertx::test::postgresql_for_children;

}  // namespace

SERTX_EFFECTS_CRASH_CASES(PostgreSQL, "[postgresql]")

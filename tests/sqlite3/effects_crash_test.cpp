// SPDX-License-Identifier: BSL-1.0
// The effect journal on a SQLite file survives SIGKILL of its dispatcher
// processes at every step (support/effects_crash.hpp).
#include "support/catch.hpp"
#include "support/sqlite3_children.hpp"
#include "support/effects_crash.hpp"

#include <sertx/sertx.hpp>

namespace {

/// Catch names the fixture in each test's name.
using SQLite = sertx::test::sqlite3_for_children;

}  // namespace

SERTX_EFFECTS_CRASH_CASES(SQLite, "[sqlite3]")

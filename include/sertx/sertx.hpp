// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Everything backend-agnostic. Add an adapter: <sertx/soci/postgresql.hpp>
/// or <sertx/soci/sqlite3.hpp>.

#include <sertx/adapter.hpp>
#include <sertx/backend.hpp>
#include <sertx/backoff.hpp>
#include <sertx/effect_record.hpp>
#include <sertx/effects.hpp>
#include <sertx/failure.hpp>
#include <sertx/install.hpp>
#include <sertx/isolation.hpp>
#include <sertx/migrate.hpp>
#include <sertx/observe.hpp>
#include <sertx/operation.hpp>
#include <sertx/policy.hpp>
#include <sertx/transact.hpp>
#include <sertx/transaction.hpp>
#include <sertx/version.hpp>

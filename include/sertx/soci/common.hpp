// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// What the SOCI adapters share and their users may name:
/// `sertx::prepared<T>(tx)`. The pool, the database handle and the
/// statements on sertx's own tables are in soci/detail/.

#include <sertx/transaction.hpp>
#include <sertx/soci/detail/pool.hpp>

namespace sertx {

/// The `T` kept with the session of `tx`, made the first time it is asked
/// for as `T(tx.sql())`: prepared statements and the variables bound to them,
/// so that a body does not have its SQL parsed and planned again in every
/// transaction. It lives as long as the session (a discarded session takes
/// it along) and is used by one transaction at a time.
/// \code
/// struct debit_statement {
///     explicit debit_statement(soci::session& sql)
///         : run((sql.prepare << "update account set balance = balance - :a where id = :id",
///                soci::use(amount), soci::use(id))) {}
///     long long amount = 0, id = 0;
///     soci::statement run;
/// };
/// auto& debit = sertx::prepared<debit_statement>(tx);
/// debit.amount = 5;
/// debit.id = 1;
/// debit.run.execute(true);
/// \endcode
template <class T, class Tx>
    requires serializable_transaction<Tx>
T& prepared(Tx& tx) {
    auto& c = tx.connection(detail::internal_access{});
    return c.objects().template get<T>(c.session());
}

}  // namespace sertx

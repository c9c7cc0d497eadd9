// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// Backend traits and the concepts built on them.
///
/// **What it is.** `sertx::backend_traits<B>` describes a database backend `B`
/// (a tag type) by a name and a Boost.Hana map of capabilities. sertx decides
/// at compile time, from this description alone, whether `transact` or
/// `migrate` may be called on a database of that backend.
///
/// **Minimal complete definition.** A specialization with
/// - `static constexpr std::string_view name`;
/// - `static constexpr auto capabilities`, a `boost::hana::map` holding at
///   least these keys (`hana::type_c<sertx::cap::...>`):
///   | key                        | value                                        |
///   |----------------------------|----------------------------------------------|
///   | `cap::isolation`           | `sertx::isolation_c<level>`: the strongest level it guarantees |
///   | `cap::transactional_ddl`   | `hana::bool_c<...>`: DDL commits and rolls back with the transaction |
///   | `cap::read_only_deferrable`| `hana::bool_c<...>`: read-only transactions can wait for a safe snapshot |
///   | `cap::savepoints`          | `hana::bool_c<...>`: SAVEPOINT / ROLLBACK TO |
///   Optional: `cap::commit_status` (`hana::bool_c`): the outcome of a lost
///   COMMIT can be asked by transaction id (PostgreSQL `txid_status`).
///
/// **Laws.** A backend must not claim a level it cannot keep under every
/// server setting: the adapter verifies it when a session is opened.
///
/// **Example** (the PostgreSQL adapter's own traits):
/// \code
/// template <> struct sertx::backend_traits<sertx::postgresql::backend> {
///     static constexpr std::string_view name = "postgresql";
///     static constexpr auto capabilities = boost::hana::make_map(
///         boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
///         boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
///         boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::true_c),
///         boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::true_c));
/// };
/// \endcode
///
/// **Models.** `sertx::postgresql::backend`, `sertx::sqlite3::backend`.
/// docs/backends.md shows how to describe MySQL, and why it is refused.

#include <sertx/isolation.hpp>

#include <boost/hana/at_key.hpp>
#include <boost/hana/bool.hpp>
#include <boost/hana/contains.hpp>
#include <boost/hana/map.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/type.hpp>

#include <concepts>
#include <string_view>
#include <type_traits>

namespace sertx {

/// Capability keys of `backend_traits<B>::capabilities`.
namespace cap {
struct isolation {};
struct transactional_ddl {};
struct read_only_deferrable {};
struct savepoints {};
struct commit_status {};
}  // namespace cap

/// Describe backend `B` by specializing this template. The primary template
/// describes nothing, so an undescribed type is not a `backend`.
template <class B>
struct backend_traits {};

namespace detail {

template <class B>
concept described_backend = requires {
    { backend_traits<B>::name } -> std::convertible_to<std::string_view>;
    backend_traits<B>::capabilities;
};

template <class B, class Key>
constexpr bool has_capability_key() {
    if constexpr (described_backend<B>)
        return decltype(boost::hana::contains(backend_traits<B>::capabilities,
                                              boost::hana::type_c<Key>))::value;
    else
        return false;
}

/// The value of a capability, as a type (an integral constant).
template <class B, class Key>
using capability_t = std::remove_cvref_t<decltype(boost::hana::at_key(
    backend_traits<B>::capabilities, boost::hana::type_c<Key>))>;

template <class B, class Key>
constexpr bool capability_is_true() {
    if constexpr (has_capability_key<B, Key>())
        return capability_t<B, Key>::value;
    else
        return false;
}

}  // namespace detail

/// A type described by `backend_traits` with every required capability.
template <class B>
concept backend = detail::described_backend<B> && detail::has_capability_key<B, cap::isolation>() &&
                  detail::has_capability_key<B, cap::transactional_ddl>() &&
                  detail::has_capability_key<B, cap::read_only_deferrable>() &&
                  detail::has_capability_key<B, cap::savepoints>();

/// The strongest isolation level backend `B` guarantees.
template <backend B>
inline constexpr isolation guaranteed_isolation = detail::capability_t<B, cap::isolation>::value;

/// A backend that guarantees SERIALIZABLE: `transact` requires it.
template <class B>
concept serializable_backend = backend<B> && guaranteed_isolation<B> == isolation::serializable;

/// A serializable backend whose DDL is transactional: `migrate` requires it.
template <class B>
concept migratable_backend =
    serializable_backend<B> && detail::capability_is_true<B, cap::transactional_ddl>();

/// Whether backend `B` has capability `Key` set to true (false when absent).
template <class B, class Key>
inline constexpr bool has_capability = detail::capability_is_true<B, Key>();

namespace detail {
template <class Db>
struct backend_of_impl {
    using type = Db;
};
template <class Db>
    requires requires { typename Db::backend; }
struct backend_of_impl<Db> {
    using type = typename Db::backend;
};
}  // namespace detail

/// The backend tag of a database type (`Db::backend`), or `Db` itself.
template <class Db>
using backend_of = typename detail::backend_of_impl<std::remove_cvref_t<Db>>::type;

}  // namespace sertx

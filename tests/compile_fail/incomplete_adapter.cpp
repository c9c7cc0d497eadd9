// SPDX-License-Identifier: BSL-1.0
// An adapter missing one member of the contract (sertx/adapter.hpp), here its
// connection's classify(), fails at the call with the sentence that names
// the member and what it is for, not deep inside the retry loop. The control
// is the same adapter with classify(): a complete adapter compiles.
// expect: sertx: the adapter's connection has no classify(std::exception_ptr) returning sertx::failure; transact() decides from it whether to retry (see sertx/adapter.hpp).
#include <sertx/sertx.hpp>

#include <chrono>
#include <exception>

struct toy_backend {};
template <>
struct sertx::backend_traits<toy_backend> {
    static constexpr std::string_view name = "toy";
    static constexpr auto capabilities = boost::hana::make_map(
        boost::hana::make_pair(boost::hana::type_c<cap::isolation>, isolation_c<isolation::serializable>),
        boost::hana::make_pair(boost::hana::type_c<cap::transactional_ddl>, boost::hana::true_c),
        boost::hana::make_pair(boost::hana::type_c<cap::read_only_deferrable>, boost::hana::false_c),
        boost::hana::make_pair(boost::hana::type_c<cap::savepoints>, boost::hana::false_c));
};

struct toy_connection {
    using session_type = int;
    session_type& session();
    void begin(const sertx::transaction_start&);
    void commit();
    void rollback();
    void abandon(sertx::failure) noexcept;
#ifdef SERTX_COMPILE_FAIL_CONTROL
    sertx::failure classify(const std::exception_ptr&) const noexcept;
#endif
    template <class F>
    void take_notices(F&&) {}
};

struct toy_database {
    using backend = toy_backend;
    using connection_type = toy_connection;
    struct lease {
        toy_connection& connection();
    };
    lease acquire(std::chrono::steady_clock::time_point);
    sertx::counters& counters();
    const void* identity() const;
    sertx::stats stats() const;
};

void use(toy_database& db) {
    sertx::transact(db, [](auto& tx) { (void)tx.sql(); });
}

// tether/dns.hpp - an asynchronous DNS resolver (libevent's evdns) for client connections.
/// @file
/// tether::dns_resolver, an owned evdns_base for client_options::dns.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/libevent_use.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>

#include <event2/dns.h>

#include <new>
#include <utility>

TETHER_BEGIN_NAMESPACE

/// Where a dns_resolver learns its nameservers and hosts.
enum class dns_setup {
  /// /etc/resolv.conf's nameservers and /etc/hosts (EVDNS_BASE_INITIALIZE_NAMESERVERS).
  system,
  /// Nothing: add nameservers and hosts files yourself.
  empty,
};

/// Owns an evdns_base. Hand native() to client_options::dns so that client connections
/// resolve host names without blocking the loop.
///
/// It never keeps the loop running on its own (EVDNS_BASE_DISABLE_WHEN_INACTIVE).
/// Destroy it after every client that uses it: a lookup in flight when it dies is never
/// answered, and its connection would wait for it forever.
class dns_resolver {
 public:
  /// Throws std::bad_alloc if libevent cannot create it.
  explicit dns_resolver(event_loop& loop, dns_setup setup = dns_setup::system) : dns_resolver(loop.native(), setup) {}
  /// As above, on a libevent event_base.
  dns_resolver(event_base* base, dns_setup setup = dns_setup::system)
      : dns_((detail::note_libevent_use(),
              evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE |
                                       (setup == dns_setup::system ? EVDNS_BASE_INITIALIZE_NAMESERVERS : 0)))) {
    if (!dns_) throw std::bad_alloc{};
  }
  dns_resolver(const dns_resolver&) = delete;
  dns_resolver& operator=(const dns_resolver&) = delete;
  /// Takes over `o`'s evdns_base.
  dns_resolver(dns_resolver&& o) noexcept : dns_(std::exchange(o.dns_, nullptr)) {}
  /// Frees this resolver's evdns_base and takes over `o`'s.
  dns_resolver& operator=(dns_resolver&& o) noexcept {
    if (this != &o) {
      if (dns_) evdns_base_free(dns_, 0);
      dns_ = std::exchange(o.dns_, nullptr);
    }
    return *this;
  }
  ~dns_resolver() {
    if (dns_) evdns_base_free(dns_, 0);
  }

  /// Adds a nameserver: "192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53".
  /// Errors: errc::invalid_address.
  [[nodiscard]] std::error_code add_nameserver(cstring_view address) noexcept {
    return evdns_base_nameserver_ip_add(dns_, address.c_str()) == 0 ? std::error_code{}
                                                                     : make_error_code(errc::invalid_address);
  }
  /// Reads a hosts file ("/etc/hosts" format). Errors: errc::file_error.
  [[nodiscard]] std::error_code load_hosts(cstring_view path) noexcept {
    return evdns_base_load_hosts(dns_, path.c_str()) == 0 ? std::error_code{} : make_error_code(errc::file_error);
  }

  /// Sets a resolv.conf option (evdns_base_set_option): ("timeout:", "0.5"),
  /// ("attempts:", "2"), ("ndots:", "1")... Errors: errc::invalid_argument.
  [[nodiscard]] std::error_code set_option(cstring_view name, cstring_view value) noexcept {
    return evdns_base_set_option(dns_, name.c_str(), value.c_str()) == 0 ? std::error_code{}
                                                                         : make_error_code(errc::invalid_argument);
  }

  /// The evdns_base (for client_options::dns and calls tether does not wrap).
  evdns_base* native() const noexcept { return dns_; }

 private:
  evdns_base* dns_;
};

TETHER_END_NAMESPACE

// tether/handle.hpp - owning RAII handles over libevent objects.
//
// An owned libevent object is a std::unique_ptr whose deleter is the libevent free
// function, given as a template argument: the handle is one pointer wide and its
// destructor is a direct call (no function-pointer member, no type erasure).
/// @file
/// Owning RAII handles over libevent objects (tether::unique_event, ...): a std::unique_ptr
/// whose deleter is the libevent free function.
#pragma once

#include <tether/config.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <memory>

TETHER_BEGIN_NAMESPACE

/// A stateless deleter that calls `FreeFn`. unique_ptr never calls it with null.
template <auto FreeFn>
struct c_deleter {
  /// Frees `p` with `FreeFn`.
  template <class T>
  void operator()(T* p) const noexcept {
    FreeFn(p);
  }
};

/// `std::unique_ptr<T>` that frees with `FreeFn`; sizeof == sizeof(T*).
template <class T, auto FreeFn>
using unique_c_ptr = std::unique_ptr<T, c_deleter<FreeFn>>;

/// Owns an event_base (event_base_free); event_loop is the friendlier owner.
using unique_event_base = unique_c_ptr<event_base, &event_base_free>;
/// Owns an event_config (event_config_free).
using unique_event_config = unique_c_ptr<event_config, &event_config_free>;
/// Owns an event (event_free, which also removes it from its loop).
using unique_event = unique_c_ptr<event, &event_free>;
/// Owns an evhttp (evhttp_free, which closes its connections); basic_server owns one.
using unique_evhttp = unique_c_ptr<evhttp, &evhttp_free>;
/// Owns an evbuffer (evbuffer_free); tether::buffer is the friendlier owner.
using unique_evbuffer = unique_c_ptr<evbuffer, &evbuffer_free>;
/// Owns a parsed evhttp_uri (evhttp_uri_free); tether::uri is the friendlier owner.
using unique_evhttp_uri = unique_c_ptr<evhttp_uri, &evhttp_uri_free>;

TETHER_END_NAMESPACE

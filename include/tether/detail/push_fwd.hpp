// tether/detail/push_fwd.hpp - the push helper families, declared only.
//
// basic_server names its helpers (server_t::sse_stream, server_t::long_poll, ...) from
// these declarations, so a hello server that includes only <tether/server.hpp> does not
// compile the push headers; a program that uses one includes its header (or
// <tether/tether.hpp>), which defines it.
#pragma once

#include <tether/config.hpp>

TETHER_BEGIN_NAMESPACE

template <class Config>
class basic_stream;
template <class Config>
class basic_sse_stream;
template <class Config>
class basic_multipart_stream;
template <class Config>
class basic_long_poll;
template <class Config>
class basic_broker_endpoint;
template <class Stream>
class basic_hub;

TETHER_END_NAMESPACE

// tether/tether.hpp - everything tether offers, in one include.
/// @file
/// Every public header of tether in one include, but tether/tls.hpp and
/// tether/redis_hub.hpp: those link more libraries (OpenSSL, hiredis), so a program
/// includes them itself (docs/tls.md, docs/redis.md).
///
/// The public headers include only what their own code needs (a hello server's
/// tether/event_loop.hpp and tether/server.hpp stay clear of `<memory>`, `<chrono>`,
/// `<functional>`...: docs/install.md, "Include what you use"). This umbrella also includes
/// the standard headers that tether's headers used to bring, so that a program written
/// against it keeps compiling unchanged.
#pragma once

#include <tether/broker.hpp>
#include <tether/broker_endpoint.hpp>
#include <tether/buffer.hpp>
#include <tether/buffer_policy.hpp>
#include <tether/bufferevent.hpp>
#include <tether/bytes.hpp>
#include <tether/client.hpp>
#include <tether/client_address.hpp>
#include <tether/client_message.hpp>
#include <tether/client_options.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/cors.hpp>
#include <tether/cstring_view.hpp>
#include <tether/dns.hpp>
#include <tether/drain.hpp>
#include <tether/duration.hpp>
#include <tether/drain_on_signals.hpp>
#include <tether/engine.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/file.hpp>
#include <tether/fixed_string.hpp>
#include <tether/handle.hpp>
#include <tether/headers.hpp>
#include <tether/hub.hpp>
#include <tether/inplace_function.hpp>
#include <tether/lean_server.hpp>
#include <tether/limits.hpp>
#include <tether/long_poll.hpp>
#include <tether/memory_policy.hpp>
#include <tether/method.hpp>
#include <tether/multipart.hpp>
#include <tether/producer.hpp>
#include <tether/reply_hook.hpp>
#include <tether/request.hpp>
#include <tether/request_handler.hpp>
#include <tether/route.hpp>
#include <tether/router.hpp>
#include <tether/server.hpp>
#include <tether/server_event.hpp>
#include <tether/server_group.hpp>
#include <tether/sse.hpp>
#include <tether/stream.hpp>
#include <tether/timer.hpp>
#include <tether/uri.hpp>
#include <tether/virtual_host.hpp>
#include <tether/wakeup.hpp>

// What the headers above brought before they were split (see the comment at the top).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>

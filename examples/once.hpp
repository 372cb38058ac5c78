// examples/once.hpp - the examples' --once mode: ask the server one question, then exit.
//
// The request goes through libevent's own HTTP client on the server's loop, so the
// program never blocks and needs no second thread. Used by `meson test --suite examples`
// to prove that the examples still run, not only compile.
#pragma once

#include <tether/tether.hpp>

#include <event2/buffer.h>
#include <event2/http.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace example {

/// Sends `method target` (with `body`) to 127.0.0.1:`port`, runs `loop` until the reply
/// arrives (at most 5 s), prints it, and returns an exit status: 0 for a 2xx reply.
inline int ask_once(tether::event_loop& loop, std::uint16_t port, evhttp_cmd_type method, const char* target,
                    std::string_view body = {}) {
  struct outcome {
    tether::event_loop* loop;
    int status = 0;
    std::string body;
  } out{&loop, 0, {}};
  tether::unique_c_ptr<evhttp_connection, &evhttp_connection_free> conn(
      evhttp_connection_base_new(loop.native(), nullptr, "127.0.0.1", port));
  if (!conn) return 1;
  evhttp_request* req = evhttp_request_new(
      [](evhttp_request* r, void* arg) {
        auto* o = static_cast<outcome*>(arg);
        if (r) {  // null when the connection failed
          o->status = evhttp_request_get_response_code(r);
          evbuffer* in = evhttp_request_get_input_buffer(r);
          o->body.resize(evbuffer_get_length(in));
          evbuffer_copyout(in, o->body.data(), o->body.size());
        }
        o->loop->stop();
      },
      &out);
  if (!req) return 1;
  evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
  if (!body.empty()) evbuffer_add(evhttp_request_get_output_buffer(req), body.data(), body.size());
  if (evhttp_make_request(conn.get(), req, method, target) != 0) return 1;  // libevent freed req
  loop.run_for(std::chrono::seconds(5));
  std::printf("--once: %s -> %d %s\n", target, out.status, out.body.c_str());
  return out.status >= 200 && out.status < 300 ? 0 : 1;
}

}  // namespace example

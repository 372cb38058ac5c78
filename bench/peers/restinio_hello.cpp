// Peer: examples/hello.cpp written with RESTinio 0.6 (Debian's librestinio-dev, on
// Boost.Asio since Debian ships no standalone asio), one thread: every request gets 200
// "hello" with Content-Type: text/plain and a Date formatted once per second, like tether's
// hello. RESTinio adds Content-Length and "Connection: keep-alive" itself (it always writes
// a Connection header); nothing else differs. The traits are RESTinio's defaults for one
// thread (asio timers, null logger). SIGTERM or SIGINT closes the server and returns.
// Measured by bench/engine/run (meson option `peers`).
//
// Usage: restinio_hello PORT
#include "cached_date.hpp"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without <utility> (g++ 12, C++20).
#include <utility>

#include <restinio/all.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  if (port <= 0 || port > 65535) {
    std::puts("usage: restinio_hello PORT");
    return 1;
  }
  using traits = restinio::default_single_thread_traits_t;
  restinio::asio_ns::io_context ioc;
  restinio::http_server_t<traits> server{
      restinio::external_io_context(ioc),
      restinio::server_settings_t<traits>{}
          .port(static_cast<std::uint16_t>(port))
          .address("127.0.0.1")
          .request_handler([](const restinio::request_handle_t& req) {
            return req->create_response()
                .append_header(restinio::http_field::content_type, "text/plain")
                .append_header(restinio::http_field::date, std::string{peers::cached_date()})
                .set_body("hello")
                .done();
          })};
  restinio::asio_ns::signal_set stop{ioc, SIGINT, SIGTERM};
  stop.async_wait([&](const restinio::asio_ns::error_code& ec, int) {
    if (!ec) server.close_async([&] { ioc.stop(); }, [&](std::exception_ptr) { ioc.stop(); });
  });
  int status = 0;
  server.open_async([] {}, [&](std::exception_ptr) { status = 1; ioc.stop(); });
  ioc.run();
  if (status != 0) std::fprintf(stderr, "restinio_hello: cannot listen on 127.0.0.1:%d\n", port);
  return status;
}

// Peer: the hello server of examples/hello.cpp written with Boost.Beast (asynchronous,
// one thread): every request on a keep-alive connection gets 200 "hello" with
// Content-Type: text/plain and a Date formatted once per second, like tether's hello; Beast
// adds Content-Length (prepare_payload). SIGTERM or SIGINT stops the loop, as tether's
// hello drains on them.
// bench/compile_time compiles it as the yardstick for tether's compile time (issue 12);
// bench/engine/run measures it beside tether's engines (meson option `peers`).
//
// Usage: beast_hello [PORT]       (default 8080)
#include "cached_date.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) : stream_(std::move(socket)) {}

  void read() {
    request_ = {};
    http::async_read(stream_, buffer_, request_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (!ec) self->write();
        });
  }

 private:
  void write() {
    response_ = http::response<http::string_body>{http::status::ok, request_.version()};
    response_.set(http::field::content_type, "text/plain");
    const auto date = peers::cached_date();
    response_.set(http::field::date, beast::string_view{date.data(), date.size()});
    response_.keep_alive(request_.keep_alive());
    response_.body() = "hello";
    response_.prepare_payload();
    http::async_write(stream_, response_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return;
          if (self->response_.need_eof()) {
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
            return;
          }
          self->read();
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

static void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<session>(std::move(socket))->read();
    accept(acceptor);
  });
}

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8080;
  if (port <= 0 || port > 65535) {
    std::puts("Invalid port");
    return 1;
  }
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}};
  accept(acceptor);
  asio::signal_set stop{ioc, SIGINT, SIGTERM};
  stop.async_wait([&ioc](beast::error_code, int) { ioc.stop(); });
  ioc.run();
}

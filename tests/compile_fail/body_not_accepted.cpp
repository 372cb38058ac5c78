// A file range cannot be sent by a server whose buffer policy copies bytes.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>
#include <tether/file.hpp>

int main() {
  tether::event_loop loop;
  tether::server srv{loop};  // copy_buffer
  auto f = tether::file::open("/etc/hostname");
  srv.fallback([&](tether::request& req) { (void)req.reply(200, f->all()); });
}

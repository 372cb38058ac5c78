// Parses one request over and over, with tether's HTTP/1.1 parser or with llhttp 8.1
// (Debian's node-llhttp, built with the same compiler flags), for bench/parser/run to
// count instructions per parse with callgrind.
//
//   parser_bench tether|llhttp hello|browser N
//
// Both parsers do the same work: the request line, every field as a (pointer, length)
// pair kept for the caller, the end of the message; both are reused for the next
// request as on a keep-alive connection.
#include "../../tests/support/http1_corpus.hpp"

#include <tether/http1/request_parser.hpp>

#include <llhttp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

struct span_sink {
  const char* at[2 * 128];
  std::size_t len[2 * 128];
  std::size_t n = 0;
  std::size_t messages = 0;
};

int on_span(llhttp_t* p, const char* at, std::size_t len) {
  auto* s = static_cast<span_sink*>(p->data);
  if (s->n < 2 * 128) {
    s->at[s->n] = at;
    s->len[s->n++] = len;
  }
  return 0;
}
int on_complete(llhttp_t* p) {
  auto* s = static_cast<span_sink*>(p->data);
  ++s->messages;
  s->n = 0;
  return 0;
}

std::size_t run_llhttp(const std::string& req, long n) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = on_span;
  settings.on_header_field = on_span;
  settings.on_header_value = on_span;
  settings.on_message_complete = on_complete;
  span_sink sink;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &sink;
  for (long i = 0; i < n; ++i)
    if (llhttp_execute(&parser, req.data(), req.size()) != HPE_OK) return 0;
  return sink.messages;
}

std::size_t run_tether(const std::string& req, long n) {
  tether::http1::request_parser parser;
  std::size_t messages = 0, fields = 0;
  for (long i = 0; i < n; ++i) {
    const auto head = parser.parse(req.data(), req.size());
    if (head.event != tether::http1::parse_event::head) return 0;
    fields += parser.fields().size();
    if (parser.parse(req.data() + head.consumed, req.size() - head.consumed).event != tether::http1::parse_event::end)
      return 0;
    ++messages;
  }
  return fields != 0 ? messages : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: parser_bench tether|llhttp hello|browser N\n");
    return 2;
  }
  const std::string_view which = argv[1], request = argv[2];
  const long n = std::strtol(argv[3], nullptr, 10);
  const std::string& req = request == "browser" ? corpus::browser : corpus::hello;
  const std::size_t parsed = which == "llhttp" ? run_llhttp(req, n) : run_tether(req, n);
  if (parsed != static_cast<std::size_t>(n)) {
    std::fprintf(stderr, "parser_bench: %s parsed %zu of %ld requests\n", argv[1], parsed, n);
    return 1;
  }
  std::printf("%s %s: %ld requests of %zu bytes\n", argv[1], argv[2], n, req.size());
  return 0;
}

// Writes the differential corpus (tests/support/http1_corpus.hpp) with tether's reading
// of each entry, one JSON object per line, for tests/differential/http1_h11.py:
//   {"in": hex, "cuts": [..], <reading>, "ended": {<reading>}}
// where <reading> is
//   "error": "name" | null, "error_at": n, "closed": bool,
//   "messages": [{"method", "target" (hex), "minor", "begin", "fields": [[n, v] (hex)..],
//                 "body" (hex), "keep_alive", "complete"}]
// and "ended" is tether's reading of the input followed by CRLF CRLF, for entries where
// one parser has not finished judging a head.
//
//   http1_corpus_dump --seeds DIR   writes fuzz/parser_fuzz's seed corpus instead: each
//                                   base request and smuggling shape, after a control byte.
#include "../support/http1_corpus.hpp"
#include "../support/http1_oracle.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

std::string hex(std::string_view s) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (const unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// parse_error's values in order, as the python side names them.
const char* const error_names[] = {
    "none", "bad_request_line", "bad_method", "bad_target", "bad_version", "unsupported_version",
    "request_line_too_long", "bare_cr", "bare_lf", "control_character", "bad_field_name",
    "whitespace_before_colon", "obs_fold", "head_too_large", "too_many_fields", "missing_host", "duplicate_host",
    "bad_host", "bad_content_length", "duplicate_content_length", "content_length_with_transfer_encoding",
    "duplicate_transfer_encoding", "transfer_encoding_in_http10", "chunked_not_final",
    "unsupported_transfer_coding", "body_too_large", "bad_chunk_size", "chunk_size_overflow",
    "bad_chunk_extension", "chunk_extension_too_long", "bad_chunk_end", "bad_trailer", "trailer_too_large",
};
static_assert(std::size(error_names) == static_cast<std::size_t>(tether::http1::parse_error::trailer_too_large) + 1);

std::string reading(const oracle::outcome& o) {
  std::string line = "\"error\":";
  line += o.error ? "\"" + std::string(error_names[static_cast<int>(o.tether_error)]) + "\"" : "null";
  line += ",\"error_at\":" + std::to_string(o.error_at);
  line += ",\"closed\":";
  line += o.closed ? "true" : "false";
  line += ",\"messages\":[";
  for (std::size_t i = 0; i < o.messages.size(); ++i) {
    const auto& m = o.messages[i];
    line += i ? ",{" : "{";
    line += "\"method\":\"" + hex(m.method) + "\",\"target\":\"" + hex(m.target) +
            "\",\"minor\":" + std::to_string(m.minor) + ",\"begin\":" + std::to_string(m.begin) + ",\"fields\":[";
    for (std::size_t f = 0; f < m.fields.size(); ++f)
      line += (f ? ",[\"" : "[\"") + hex(m.fields[f].first) + "\",\"" + hex(m.fields[f].second) + "\"]";
    line += "],\"body\":\"" + hex(m.body) + "\",\"keep_alive\":" + (m.keep_alive ? "true" : "false") +
            ",\"complete\":" + (m.complete ? "true" : "false") + "}";
  }
  line += "]";
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--seeds") {
    auto bases = corpus::valid_requests();
    for (auto& b : corpus::smuggling_shapes()) bases.push_back(std::move(b));
    int n = 0;
    for (const auto& b : bases) {
      char name[32];
      std::snprintf(name, sizeof name, "/seed-%03d", n);
      std::FILE* f = std::fopen((std::string(argv[2]) + name).c_str(), "wb");
      if (!f) return 1;
      const unsigned char control = static_cast<unsigned char>(n * 37);  // varied splits
      std::fputc(control, f);
      std::fwrite(b.data(), 1, b.size(), f);
      std::fclose(f);
      ++n;
    }
    return 0;
  }
  const std::size_t mutants = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  for (const auto& e : corpus::generate(mutants)) {
    std::string line = "{\"in\":\"" + hex(e.input) + "\",\"cuts\":[";
    for (std::size_t i = 0; i < e.cuts.size(); ++i) line += (i ? "," : "") + std::to_string(e.cuts[i]);
    line += "]," + reading(oracle::run_tether(e.input, e.cuts));
    line += ",\"ended\":{" + reading(oracle::run_tether(e.input + "\r\n\r\n")) + "}}\n";
    std::fputs(line.c_str(), stdout);
  }
}

// libFuzzer target for tether's HTTP/1.1 request parser (include/tether/http1/).
//
// Each input is one control byte and the bytes of a connection. The target checks:
//   1. the same reading whatever the reads: whole, split where the control byte says,
//      and (for short inputs) one byte per read; with tight limits too;
//   2. agreement with llhttp 8.1 (compiled in from Debian's node-llhttp), except for
//      the deviations docs/http1-parser.md lists (tests/support/http1_differential.hpp);
//   3. under ASan/UBSan: no read outside the input, no undefined behaviour.
// Any failure aborts with both readings printed.
//
//   CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false
//   ninja -C build-fuzz fuzz/parser_fuzz
//   build-fuzz/fuzz/parser_fuzz -max_total_time=600 fuzz/seeds/parser
#include "../tests/support/http1_differential.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {

bool same(const oracle::outcome& a, const oracle::outcome& b) {
  return a.messages == b.messages && a.error == b.error && a.tether_error == b.tether_error && a.closed == b.closed;
}

[[noreturn]] void fail(const char* what, std::string_view in, const oracle::outcome& a, const oracle::outcome& b) {
  std::fprintf(stderr, "%s\n  input: %s\n  first:  %s\n  second: %s\n", what, oracle::printable(in).c_str(),
               oracle::describe(a).c_str(), oracle::describe(b).c_str());
  std::abort();
}

void check_splits(std::string_view in, unsigned control, const tether::http1::parser_limits& limits) {
  const auto whole = oracle::run_tether(in, {}, limits);
  // Cuts every `step` bytes, starting at `first`: the control byte picks both.
  const std::size_t step = 1 + (control & 0x0F);
  std::vector<std::size_t> cuts;
  for (std::size_t at = 1 + (control >> 4); at < in.size(); at += step) cuts.push_back(at);
  const auto split = oracle::run_tether(in, cuts, limits);
  if (!same(whole, split)) fail("split changes the reading", in, whole, split);
  if (in.size() <= 256) {
    std::vector<std::size_t> bytes;
    for (std::size_t at = 1; at < in.size(); ++at) bytes.push_back(at);
    const auto one = oracle::run_tether(in, bytes, limits);
    if (!same(whole, one)) fail("byte-by-byte changes the reading", in, whole, one);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 1 << 16) return 0;
  const unsigned control = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  check_splits(in, control, {});
  tether::http1::parser_limits tight;
  tight.max_head_bytes = 96;
  tight.max_fields = 4;
  tight.max_body_bytes = 32;
  tight.max_chunk_ext_bytes = 16;
  check_splits(in, control, tight);

  std::vector<std::size_t> cuts;
  for (std::size_t at = 1 + (control & 0x1F); at < in.size(); at += 1 + (control >> 3)) cuts.push_back(at);
  const auto v = differential::compare(in, control & 0x80 ? cuts : std::vector<std::size_t>{});
  if (!v.agree) {
    std::fprintf(stderr, "tether and llhttp disagree: %s\n", v.detail.c_str());
    std::abort();
  }
  return 0;
}

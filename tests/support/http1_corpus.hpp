// tests/support/http1_corpus.hpp - a generated corpus of valid and invalid HTTP/1.1
// requests for the differential tests (llhttp, h11) and the fuzzer's seeds: base
// requests, the smuggling shapes, and deterministic mutations of both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corpus {

using namespace std::string_literals;

/// The bench's small request: request line and three fields, 69 bytes.
inline const std::string hello = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk/4.1\r\nAccept: */*\r\n\r\n";

/// A browser's navigation request: ten fields, about 560 bytes.
inline const std::string browser =
    "GET /wiki/Hypertext_Transfer_Protocol HTTP/1.1\r\n"
    "Host: en.wikipedia.org\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n"
    "Referer: https://www.google.com/\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: WMF-Last-Access=01-Dec-2026; GeoIP=DE:BE:Berlin:v4; sessionId=8a1f2c3d\r\n"
    "\r\n";

/// Valid requests of every shape the parser serves.
inline std::vector<std::string> valid_requests() {
  return {
      hello,
      browser,
      "GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
      "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n",
      "HEAD /index.html HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\nUser-Agent: old\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      "POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
      "a=1&b=hello",
      "PUT /file HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
      "POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1a;x=\"q\\\"s\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: b\r\nX-Empty:\r\n\r\n",
      "\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n",
      "DELETE /r/1 HTTP/1.1\r\nHost: [::1]:8080\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: \tv\t\r\n\r\n",
      "PATCH /p HTTP/1.1\r\nhost: A.example\r\ncontent-length: 2\r\n\r\n{}",
  };
}

/// The request-smuggling and malformed shapes (docs/http1-parser.md's table, issue 8).
inline std::vector<std::string> smuggling_shapes() {
  const std::string post = "POST / HTTP/1.1\r\nHost: a\r\n";
  const std::string chunked = post + "Transfer-Encoding: chunked\r\n\r\n";
  return {
      post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
      post + "Content-Length: 5, 5\r\n\r\nhello",
      post + "Content-Length: +5\r\n\r\nhello",
      post + "Content-Length: 18446744073709551616\r\n\r\n",
      post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding: gzip\r\n\r\n",
      post + "Transfer-Encoding: chunked, gzip\r\n\r\n",
      post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
      post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
      post + " Content-Length: 5\r\n\r\nhello",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.99999999999999999999\r\nHost: a\r\n\r\n",
      "GET / HTTP/0.0\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s,
      "GET / HTTP/1.1\nHost: a\n\n",
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET /\r\n\r\n",
      chunked + "00000000000000005\r\nhello\r\n0\r\n\r\n",
      chunked + "ffffffffffffffffff\r\n",
      chunked + "5 ;a=b\r\nhello\r\n0\r\n\r\n",
      chunked + "5;a\x01\r\nhello\r\n0\r\n\r\n",
      chunked + "5\r\nhelloXX0\r\n\r\n",
      chunked + "5\r\nhello\n0\r\n\r\n",
      chunked + "5\nhello\r\n0\r\n\r\n",
      chunked + "0\r\nContent-Length: 5\r\n\r\nhello",
      chunked + "0\r\nA: b\r\n c\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
  };
}

/// A small deterministic generator (splitmix64): the corpus is the same on every run
/// and every platform.
class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t s_;
};

/// One mutation of `in`: a byte replaced, inserted or deleted from an alphabet that
/// matters to HTTP framing, a line duplicated, dropped or inserted, a line ending
/// changed, a version digit changed, a letter's case flipped, or the input truncated.
inline std::string mutate(std::string in, rng& r) {
  static const std::string alphabet = "\r\n \t:;,=\"\\\0\x01\x7f\x80\xff"
                                      "0123456789aAfFgzZ-/*?#@[]xX"s;
  static const char* const lines[] = {
      "Content-Length: 5\r\n",        "Content-Length: 0\r\n",         "Transfer-Encoding: chunked\r\n",
      "Transfer-Encoding: gzip, chunked\r\n", "Host: x\r\n",           "Connection: close\r\n",
      "Connection: keep-alive\r\n",   "Expect: 100-continue\r\n",      " folded\r\n",
      "X : y\r\n",                    "X-Empty:\r\n",                  "\r\n",
      "0\r\n\r\n",                    "5;e=\"v\"\r\nhello\r\n",        "Content-Length: 005\r\n",
  };
  if (in.empty()) return "GET / HTTP/1.1\r\n";
  const std::size_t at = r.below(in.size());
  auto line_start = [&](std::size_t p) {
    const auto nl = in.rfind('\n', p);
    return nl == std::string::npos ? 0 : nl + 1;
  };
  auto line_end = [&](std::size_t p) {
    const auto nl = in.find('\n', p);
    return nl == std::string::npos ? in.size() : nl + 1;
  };
  switch (r.below(11)) {
    case 0: in[at] = alphabet[r.below(alphabet.size())]; break;
    case 1: in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), alphabet[r.below(alphabet.size())]); break;
    case 2: in.erase(at, 1); break;
    case 3: {
      const auto s = line_start(at), e = line_end(at);
      in.insert(e, in.substr(s, e - s));
      break;
    }
    case 4: {
      const auto s = line_start(at), e = line_end(at);
      in.erase(s, e - s);
      break;
    }
    case 5: in.insert(line_start(at), lines[r.below(std::size(lines))]); break;
    case 6: {
      const auto crlf = in.find("\r\n", at);
      if (crlf != std::string::npos) in.replace(crlf, 2, r.below(2) ? "\n" : "\r");
      break;
    }
    case 7: {
      const auto v = in.find("HTTP/1.");
      if (v != std::string::npos) in[v + 5 + 2 * r.below(2)] = static_cast<char>('0' + r.below(10));
      break;
    }
    case 8:
      if ((in[at] | 0x20) >= 'a' && (in[at] | 0x20) <= 'z') in[at] = static_cast<char>(in[at] ^ 0x20);
      break;
    case 9: in.resize(at); break;
    default: {
      const auto cl = in.find("Content-Length: ");
      if (cl != std::string::npos) in.insert(cl + 16, r.below(2) ? "1" : "0");
      break;
    }
  }
  return in;
}

struct entry {
  std::string input;
  std::vector<std::size_t> cuts;  // read boundaries to feed it with
};

/// The whole corpus: every base request and shape whole and at random splits, and
/// `mutants` mutations (one to three edits each) of them.
inline std::vector<entry> generate(std::size_t mutants, std::uint64_t seed = 9112) {
  rng r(seed);
  std::vector<std::string> bases = valid_requests();
  for (auto& s : smuggling_shapes()) bases.push_back(std::move(s));
  auto random_cuts = [&r](std::size_t n) {
    std::vector<std::size_t> cuts;
    if (n < 2) return cuts;
    const std::size_t k = 1 + r.below(4);
    std::size_t at = 0;
    for (std::size_t i = 0; i < k; ++i) {
      at += 1 + r.below(n / k + 1);
      if (at >= n) break;
      cuts.push_back(at);
    }
    return cuts;
  };
  std::vector<entry> out;
  for (const auto& b : bases) {
    out.push_back({b, {}});
    out.push_back({b, random_cuts(b.size())});
  }
  for (std::size_t i = 0; i < mutants; ++i) {
    std::string s = bases[r.below(bases.size())];
    const std::size_t edits = 1 + r.below(3);
    for (std::size_t e = 0; e < edits; ++e) s = mutate(std::move(s), r);
    auto cuts = random_cuts(s.size());
    out.push_back({std::move(s), std::move(cuts)});
  }
  return out;
}

}  // namespace corpus

#!/usr/bin/env python3
"""Writes fuzz/corpus/: the seed inputs of fuzz/fuzz_server, valid and nasty requests.

Each seed is the bytes the client sends followed by a tail that fuzz_server's
FuzzedDataProvider reads from the end (see fuzz_server.cpp): how many writes, how the
client leaves, whether it reads the replies, what the handlers do, where the writes are cut.

Usage: fuzz/make_corpus.py [DIR]     (default: fuzz/corpus next to this script)
"""
import hashlib
import os
import struct
import sys

BEHAVIOURS = ["reply", "hold", "stream", "hold_late_reply", "stream_late_end", "throw"]
LEAVING = ["fin", "rst", "half_close", "polite"]


def tail(plan=("reply",), leave="fin", read=True, cuts=()):
    """The configuration bytes, in the order fuzz_server consumes them from the end."""
    consumed = [len(cuts), LEAVING.index(leave), 1 if read else 0, len(plan) - 1]
    consumed += [BEHAVIOURS.index(b) for b in plan]
    out = bytes(consumed)
    for c in cuts:  # ConsumeIntegral<uint16_t>: the last byte is the most significant
        out += bytes([(c >> 8) & 0xFF, c & 0xFF])
    return out[::-1]


CRLF = "\r\n"
GET = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

seeds = {
    # valid
    "get": (GET, {}),
    "get_keepalive_three": (GET * 3, {"plan": ("reply",)}),
    "get_http10": ("GET / HTTP/1.0\r\n\r\n", {}),
    "get_http10_keepalive": ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {"plan": ("stream",)}),
    "post_content_length": ("POST /static HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", {}),
    "post_chunked": ("POST /static HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {}),
    "chunked_extensions_trailers": (
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3;ext=1\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n", {}),
    "runtime_route_put": ("PUT /runtime?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok", {}),
    "runtime_route_405": ("DELETE /runtime HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "static_405": ("PATCH /static HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "head": ("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "options_star": ("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "absolute_uri": ("GET http://example.com/static?q=1#frag HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "percent_path": ("GET /st%61tic%2F..%2f%00%zz?%%% HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "connection_close": ("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {"leave": "polite"}),
    "expect_continue": ("POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", {}),
    "upgrade": ("GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", {}),
    # phases and hang-ups
    "held_then_fin": (GET, {"plan": ("hold",), "leave": "fin"}),
    "held_then_rst": (GET, {"plan": ("hold",), "leave": "rst"}),
    "held_half_close": (GET, {"plan": ("hold",), "leave": "half_close"}),
    "held_late_reply": (GET + GET, {"plan": ("hold_late_reply", "reply"), "leave": "polite"}),
    "pipelined_behind_held": (GET + "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", {"plan": ("hold", "reply"), "leave": "rst"}),
    "stream_rst": (GET, {"plan": ("stream",), "leave": "rst"}),
    "stream_unread_fin": (GET, {"plan": ("stream",), "leave": "fin", "read": False}),
    "stream_late_end": (GET + GET, {"plan": ("stream_late_end", "reply"), "leave": "polite"}),
    "throwing_handler": (GET + GET, {"plan": ("throw", "reply")}),
    "split_in_bytes": (GET, {"cuts": (1, 1, 1, 1, 1, 1, 1)}),
    "head_in_flight": ("GET / HTTP/1.1\r\nHost: t\r\nX-Partial: ", {"leave": "rst"}),
    "body_in_flight": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-some", {"leave": "fin"}),
    # nasty
    "content_length_huge": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775807\r\n\r\nxyz", {}),
    "content_length_overflow": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", {}),
    "content_length_negative": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", {}),
    "chunk_size_huge": ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc", {}),
    "chunk_size_overflow": ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", {}),
    "two_content_lengths": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc" + GET, {}),
    "cl_and_te": ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + GET, {}),
    "te_chunked_identity": ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", {}),
    "te_obs_fold": ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", {}),
    "version_huge": ("GET / HTTP/1.99999999999999999999\r\nHost: t\r\n\r\n", {}),
    "version_0_0": ("GET / HTTP/0.0\r\n\r\n", {}),
    "version_2": ("GET / HTTP/2.0\r\n\r\n", {}),
    "version_truncated": ("GET / HTTP/1.\r\n\r\n", {}),
    "http09": ("GET /\r\n\r\n", {}),
    "nul_in_header": ("GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", {}),
    "nul_in_path": ("GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "bare_lf": ("GET / HTTP/1.1\nHost: t\n\n", {}),
    "bare_cr": ("GET / HTTP/1.1\rHost: t\r\r", {}),
    "leading_crlf": ("\r\n\r\n" + GET, {}),
    "space_before_colon": ("GET / HTTP/1.1\r\nHost : t\r\n\r\n", {}),
    "no_colon": ("GET / HTTP/1.1\r\nHost t\r\n\r\n", {}),
    "long_header_line": ("GET / HTTP/1.1\r\nHost: t\r\nX-Long: " + "a" * 6000 + "\r\n\r\n", {}),
    "many_headers": ("GET / HTTP/1.1\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(300)) + "\r\n", {}),
    "long_uri": ("GET /" + "b" * 6000 + " HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "unknown_method": ("BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "lowercase_method": ("get / HTTP/1.1\r\nHost: t\r\n\r\n", {}),
    "tabs_and_spaces": ("GET\t/\tHTTP/1.1\r\nHost:\tt \r\n\r\n", {}),
    "binary": ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\xff" * 40, {}),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, (wire, config) in seeds.items():
        data = wire.encode("latin-1") + tail(**config)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()

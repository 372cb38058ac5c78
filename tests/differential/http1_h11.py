#!/usr/bin/env python3
"""tether's HTTP/1.1 request parser against python3-h11, a lenient second opinion.

Runs the corpus dump program (tests/differential/http1_corpus_dump.cpp), which prints
each generated input with tether's reading of it, feeds every input to h11 in the same
pieces, and compares accept/reject and every parsed field. A difference must be one of
the deviations below (docs/http1-parser.md, "Deviations from h11"); anything else fails.

    http1_h11.py CORPUS_DUMP_PROGRAM [MUTANTS]
Exit status: 0 agreement, 1 unexplained differences, 77 (skip) without h11.
"""
import collections
import json
import re
import subprocess
import sys

try:
    import h11
except ImportError:
    print("python3-h11 is not installed: skipped")
    sys.exit(77)

# tether rejects, h11 accepts: tether's error names, with the reason.
STRICTER = {
    "bare_lf": "bare LF rejected (RFC 9112 2.2 allows either); h11 accepts LF line ends",
    "bare_cr": "CR must be followed by LF (RFC 9112 2.2); h11 accepts a bare CR in some places",
    "obs_fold": "obs-fold rejected (RFC 9112 5.2); h11 joins folded lines",
    "content_length_with_transfer_encoding": "CL with TE rejected (RFC 9112 6.3); h11 lets chunked win",
    "control_character": "CTLs other than HTAB rejected in the head (RFC 9110 5.5); h11 accepts some",
    "chunk_size_overflow": "chunk-size of at most 16 hex digits; h11 accepts longer ones",
    "bad_chunk_extension": "chunk-ext grammar enforced (RFC 9112 7.1.1); h11 skips extensions to the line end",
    "bad_trailer": "trailer lines parsed like fields; h11 is laxer in trailers",
    "unsupported_version": "HTTP/0.x and 2+ get 505; h11 accepts any HTTP/d.d",
    "bad_request_line": "exactly one SP and a version in the request line; h11 is laxer",
    "bad_target": "request-target forms enforced (RFC 9112 3.2); h11 accepts any visible target",
    "bad_host": "Host value syntax checked (RFC 9112 3.2); h11 checks presence and count only",
    "duplicate_host": "two Host lines rejected even when equal; h11 accepts equal ones",
    "duplicate_content_length": "two Content-Length lines rejected even when equal (RFC 9112 6.3 allows merging); h11 merges equal ones",
    "bad_content_length": "Content-Length lists rejected; h11 accepts a list of equal values",
    "missing_host": "HTTP/1.2 to 1.9 are processed as 1.1, so Host is required; h11 requires it for 1.1 only",
    "transfer_encoding_in_http10": "Transfer-Encoding in HTTP/1.0 rejected (RFC 9112 6.1); h11 accepts it",
    "chunked_not_final": "only a single chunked is served; h11 accepts some lists",
    "bad_chunk_end": "CRLF required after chunk data (RFC 9112 7.1); h11 0.14 is laxer here",
    "whitespace_before_colon": "no whitespace in or after a field name (RFC 9112 5.1)",
    "head_too_large": "limits differ: tether's default head limit is 8 KiB, h11's is 16 KiB",
    "request_line_too_long": "limits differ: tether's default head limit is 8 KiB, h11's is 16 KiB",
    "too_many_fields": "limits: h11 has no field count limit",
    "body_too_large": "limits: h11 has no body limit",
    "chunk_extension_too_long": "limits: h11 has no extension limit",
    "trailer_too_large": "limits: h11 has no trailer limit",
}
# Both accept, but read the connection's persistence differently.
KEEP_ALIVE_10 = "HTTP/1.0 keep-alive honoured (RFC 9112 9.3); h11 closes every HTTP/1.0 connection"


def unhex(s):
    return bytes.fromhex(s)


def pieces(data, cuts):
    start = 0
    for c in list(cuts) + [len(data)]:
        if c < start:
            continue
        yield data[start:c]
        start = c


def run_h11(data, cuts):
    """Returns (messages, error, closed) in the dump's terms."""
    conn = h11.Connection(h11.SERVER)
    messages = []
    current = None
    try:
        for piece in pieces(data, cuts):
            if not piece:
                continue  # receive_data(b"") would mean end of stream
            conn.receive_data(piece)
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    break
                if ev is h11.PAUSED:
                    # The request is complete: answer it, then parse the next one.
                    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                    conn.send(h11.EndOfMessage())
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        return messages, None, True
                    conn.start_next_cycle()
                    continue
                if isinstance(ev, h11.Request):
                    current = {
                        "method": ev.method,
                        "target": ev.target,
                        "minor": int(ev.http_version.split(b".")[1]),
                        "fields": [(bytes(n), bytes(v)) for (n, v) in ev.headers.raw_items()],
                        "body": b"",
                        "keep_alive": True,
                        "complete": False,
                    }
                elif isinstance(ev, h11.Data):
                    current["body"] += bytes(ev.data)
                elif isinstance(ev, h11.EndOfMessage):
                    current["complete"] = True
                    current["keep_alive"] = conn.their_state is not h11.MUST_CLOSE
                    messages.append(current)
                    current = None
                else:
                    raise AssertionError(f"unexpected h11 event {ev!r}")
    except h11.RemoteProtocolError as e:
        if current is not None:
            messages.append(current)
        return messages, str(e), False
    if current is not None:
        messages.append(current)
    return messages, None, False


def tether_messages(reading):
    out = []
    for m in reading["messages"]:
        out.append({
            "method": unhex(m["method"]),
            "target": unhex(m["target"]),
            "minor": m["minor"],
            "begin": m["begin"],
            "fields": [(unhex(n), unhex(v)) for n, v in m["fields"]],
            "body": unhex(m["body"]),
            "keep_alive": m["keep_alive"],
            "complete": m["complete"],
        })
    return out


def comparable_fields(fields):
    # h11 lower-cases Transfer-Encoding's value; compare that one without case.
    return [(n, v.lower() if n.lower() == b"transfer-encoding" else v) for n, v in fields]


def same_message(t, h):
    return (t["method"] == h["method"] and t["target"] == h["target"] and t["minor"] == h["minor"]
            and comparable_fields(t["fields"]) == comparable_fields(h["fields"]) and t["body"] == h["body"])


LENIENT_CHUNK_BWS = "BWS around ';' in chunk extensions (RFC 9112 7.1.1); h11 rejects it"
LENIENT_TRAILERS = ("trailer fields are parsed and never applied (RFC 9110 6.5.1); "
                    "h11 validates Content-Length and Transfer-Encoding there")
LENIENT_LEADING_CRLF = ("an empty line before the request line is skipped (RFC 9112 2.2); "
                        "h11 0.14 rejects it when it arrives alone")


def lenient(herr, data, message):
    """tether accepted `message`, h11 failed with `herr`: a documented deviation?"""
    if herr is None:
        return None
    if herr.startswith("illegal chunk header") and re.search(rb"[0-9A-Fa-f][ \t]+;|;[ \t]", data):
        return LENIENT_CHUNK_BWS
    if herr in ("bad Content-Length", "conflicting Content-Length headers",
                "Only Transfer-Encoding: chunked is supported") and message is not None and any(
            n.lower() == b"transfer-encoding" for n, _ in message["fields"]):
        return LENIENT_TRAILERS
    if herr in ("no request line received", "illegal request line") and message is not None and data.startswith(
            b"\r\n", message["begin"]):
        return LENIENT_LEADING_CRLF
    return None


def compare_readings(data, cuts, reading, ended):
    """Returns (deviation or None, problem or None)."""
    tm = tether_messages(reading)
    hm, herr, hclosed = run_h11(data, cuts)
    terr = reading["error"]
    tc = [m for m in tm if m["complete"]]
    hc = [m for m in hm if m["complete"]]
    for i in range(min(len(tc), len(hc))):
        if not same_message(tc[i], hc[i]):
            return None, "a complete message differs"
        if tc[i]["keep_alive"] != hc[i]["keep_alive"]:
            if tc[i]["minor"] == 0 and tc[i]["keep_alive"] and not hc[i]["keep_alive"]:
                return KEEP_ALIVE_10, None  # h11 stops after it; compare no further
            return None, "keep-alive differs"
    if reading["closed"] and len(hc) >= len(tc):
        return None, None  # both stop after the message that closes (h11 may complain of more data)

    def settle(problem):
        # One side is still waiting for the end of a head the other already judged:
        # end the head and compare again.
        if ended is None:
            return None, problem
        dev, later = compare_readings(data + b"\r\n\r\n", [], ended, None)
        return (dev, None) if later is None else (None, problem + "; after ending the input: " + later)

    if len(tc) < len(hc):
        if terr in STRICTER:
            return STRICTER[terr], None
        if terr is None:
            return settle("tether waits where h11 accepted")
        return None, "tether stops before h11"
    if len(tc) > len(hc):
        dev = lenient(herr, data, tc[len(hc)])
        if dev:
            return dev, None
        if herr is None and not hclosed:
            return settle("h11 waits where tether accepted")
        return None, "h11 stops before tether: " + str(herr)
    if terr and herr:
        return None, None
    if terr:
        if terr in STRICTER:
            return STRICTER[terr], None
        return settle("tether rejects what h11 accepts")
    if herr:
        dev = lenient(herr, data, tm[len(tc)] if len(tm) > len(tc) else None)
        if dev:
            return dev, None
        return settle("h11 rejects what tether accepts: " + herr)
    tp = [m for m in tm if not m["complete"]]
    hp = [m for m in hm if not m["complete"]]
    if len(tp) != len(hp) or any(not same_message(a, b) for a, b in zip(tp, hp)):
        return None, "partial messages differ"
    return None, None


def compare(entry):
    return compare_readings(unhex(entry["in"]), entry["cuts"], entry, entry["ended"])


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    args = [sys.argv[1]] + sys.argv[2:3]
    dump = subprocess.run(args, check=True, capture_output=True).stdout.decode()
    counts = collections.Counter()
    agreed = 0
    failures = []
    total = 0
    for line in dump.splitlines():
        entry = json.loads(line)
        total += 1
        deviation, problem = compare(entry)
        if problem:
            failures.append((problem, entry))
        elif deviation:
            counts[deviation] += 1
        else:
            agreed += 1
    print(f"http1 vs h11 {h11.__version__}: {total} inputs: {agreed} identical outcomes; documented deviations:")
    for d, n in sorted(counts.items()):
        print(f"  {n:6d}  {d}")
    for problem, entry in failures[:30]:
        print(f"DIFFERENCE: {problem}\n  input: {unhex(entry['in'])!r}\n  cuts: {entry['cuts']}\n"
              f"  tether: error={entry['error']} closed={entry['closed']} messages={tether_messages(entry)}")
    print(f"{len(failures)} unexplained differences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

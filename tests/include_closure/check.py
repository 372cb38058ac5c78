#!/usr/bin/env python3
"""tests/include_closure/check.py - what a hello server's headers pull in stays small.

  check.py SOURCE_ROOT COMPILER [FLAGS...]

Compiles (-fsyntax-only -H) a translation unit that includes only <tether/server.hpp>
(with <tether/event_loop.hpp>: all a hello server needs) and fails if its transitive
include closure holds one of the standard headers below. Each of them costs a hello
server as much compile time as the rest of its standard headers together, or is not
needed by it (docs/performance.md, "Compile time"); tether's headers use
tether/detail/owner.hpp, sync.hpp, chrono.hpp and iterator_tags.hpp instead, and the
headers that need more (push helpers, server_group, TLS, tether.hpp) include them.
The failure names the chain of headers through which the banned one came in.

A second translation unit holds what examples/four_endpoints.cpp includes (the server, a
router, the push helpers and timers) and is held to the same list: the helpers write
their numbers without <charconv> and own their state without <memory>.
"""
import os
import re
import subprocess
import sys

BANNED = {
    "memory", "functional", "algorithm", "mutex", "atomic", "iterator", "chrono",
    "thread", "condition_variable", "shared_mutex", "future", "stop_token",
    "sstream", "ostream", "istream", "iostream", "fstream", "iomanip", "locale",
    "map", "unordered_map", "set", "unordered_set", "deque", "list", "forward_list",
    "regex", "variant", "any", "bitset", "random", "numeric", "ranges", "format",
    "filesystem", "charconv", "vector",
}
HEADERS = ["tether/event_loop.hpp", "tether/server.hpp"]
PUSH_HEADERS = HEADERS + ["tether/duration.hpp", "tether/router.hpp", "tether/hub.hpp", "tether/long_poll.hpp", "tether/multipart.hpp",
                          "tether/sse.hpp", "tether/stream.hpp", "tether/timer.hpp"]


def check(root, compiler, headers):
    """0 if the closure of `headers` holds none of BANNED; prints what it finds."""
    libevent = subprocess.run(["pkg-config", "--cflags", "libevent_core"], stdout=subprocess.PIPE,
                              text=True, check=True).stdout.split()
    source = "".join(f"#include <{h}>\n" for h in headers)
    done = subprocess.run(compiler + ["-std=c++20", "-I", os.path.join(root, "include")] + libevent +
                          ["-H", "-fsyntax-only", "-x", "c++", "-"],
                          input=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"include_closure: the translation unit does not compile:\n{done.stderr}")
    stack, found = [], {}
    for line in done.stderr.splitlines():
        m = re.match(r"^(\.+) (\S+)$", line)
        if not m:
            continue
        depth, path = len(m.group(1)), m.group(2)
        del stack[depth - 1:]
        stack.append(path)
        name = re.search(r"/c\+\+/(?:v1/|[0-9.]+/)([a-z_]+)$", path)
        if name and name.group(1) in BANNED and name.group(1) not in found:
            found[name.group(1)] = [p.split("include/")[-1] for p in stack]
    print(f"include_closure: {' + '.join(headers)}: "
          f"{sum(1 for l in done.stderr.splitlines() if l.startswith('.'))} header inclusions")
    if found:
        for name, chain in sorted(found.items()):
            print(f"FAIL <{name}> is in the closure: " + " -> ".join(chain))
        return 1
    print("ok: none of " + ", ".join(f"<{b}>" for b in sorted(BANNED)))
    return 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root, compiler = sys.argv[1], sys.argv[2:]
    return max(check(root, compiler, HEADERS), check(root, compiler, PUSH_HEADERS))


if __name__ == "__main__":
    sys.exit(main())

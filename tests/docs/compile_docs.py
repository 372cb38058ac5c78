#!/usr/bin/env python3
"""Compiles every ```cpp block of README.md and docs/**/*.md, links them, and runs every
complete program among them, so that no program or fragment the documentation shows can rot.

Usage: compile_docs.py SOURCE_ROOT WORK_DIR COMPILER [ARGS...]

All blocks go into ONE translation unit (one compiler run, one link): each block in a
namespace of its own, preceded by #line so that a diagnostic names the Markdown file and
line. What surrounds a block is said in the Markdown itself, in an HTML comment right
above the block (invisible on a rendered page):

  (no comment)          the block is placed at namespace scope (types, aliases, templates).
  <!-- doc-test         C++ with a line "@@" where the block goes: the names a fragment
  ...@@...              uses come from here (parameters of a function that is compiled but
  -->                   never called, declarations of the helpers it calls; helpers need no
                        definition, the linker drops what no program reaches).

A block with `int main(` is a complete program. Its #include lines go to the top of the
unit, its main is renamed and called from the unit's main when the binary is run with the
block's number, and the port 8080 it binds is replaced with a free port. A program that
binds is started, asked the requests of its comment, and stopped:

  <!-- doc-run
  GET /hello -> hello            request line -> text the response must contain
  stdout: client left            text the program must print once the requests are done
  -->

A program that binds and has no doc-run comment is asked `GET /` and must answer with an
HTTP status line. A program that does not bind must exit with 0 within 10 s.

Each exemplar of the tests (the lines between `//[name` and `//]`, code a document says a
test compiles and runs) must appear, line for line, in a block of the documentation.
"""
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN_RE = re.compile(r"^int main\(\s*\)", re.M)
BINDS_RE = re.compile(r"\b8080\b")


class Block:
    def __init__(self, path, line, code, wrap, wrap_line, run):
        self.path, self.line, self.code = path, line, code
        self.wrap, self.wrap_line, self.run = wrap, wrap_line, run
        self.is_program = bool(MAIN_RE.search("\n".join(code)))
        self.binds = self.is_program and bool(BINDS_RE.search("\n".join(code)))

    def where(self):
        return f"{self.path}:{self.line}"


def parse(root, path):
    """Yields the ```cpp blocks of a Markdown file with the doc-test comments above them."""
    lines = (root / path).read_text().splitlines()
    wrap = wrap_line = run = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!-- doc-test") or line.startswith("<!-- doc-run"):
            start = i
            body = []
            first = line[len("<!-- doc-test"):] if line.startswith("<!-- doc-test") else line[len("<!-- doc-run"):]
            if first.strip().endswith("-->"):
                body.append(first.strip()[:-3])
            else:
                if first.strip():
                    body.append(first)
                i += 1
                while i < len(lines) and not lines[i].strip().endswith("-->"):
                    body.append(lines[i])
                    i += 1
                if i < len(lines) and lines[i].strip() != "-->":
                    body.append(lines[i].strip()[:-3])
            if line.startswith("<!-- doc-test"):
                wrap, wrap_line = body, start + 2  # the line after "<!-- doc-test"
            else:
                run = [b.strip() for b in body if b.strip()]
            i += 1
            continue
        if line.startswith("```cpp"):
            code = []
            fence = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            yield Block(path, fence + 1, code, wrap, wrap_line, run)
            wrap = wrap_line = run = None
        elif line.strip():
            wrap = wrap_line = run = None  # a comment applies to the block right below it
        i += 1


def docs(root):
    paths = [Path("README.md")] + sorted(p.relative_to(root) for p in (root / "docs").rglob("*.md"))
    return [b for p in paths for b in parse(root, p)]


def unit(blocks):
    includes, body = [], []
    for k, b in enumerate(blocks):
        code = list(b.code)
        if b.is_program:
            for n, c in enumerate(code):
                if c.startswith("#include"):
                    includes.append(c)
                    code[n] = ""
            code = [MAIN_RE.sub("int program_main()", BINDS_RE.sub("::doc_port()", c)) for c in code]
            # Only ::main returns 0 by falling off its end: say it where main's body ends.
            start = next(n for n, c in enumerate(code) if c.startswith("int program_main()"))
            end = next((n for n in range(start, len(code)) if code[n] == "}"), None)
            if end is None:
                sys.exit(f"{b.where()}: main's body must end with a '}}' alone on a line")
            code[end] = "return 0; }"
        body.append(f"namespace doc_block_{k} {{  // {b.where()}")
        body.append("using namespace std::chrono_literals;")
        block = [f'#line {b.line} "{b.path}"'] + code
        if b.wrap is None or b.is_program:
            body += block
        else:
            if sum(1 for w in b.wrap if w.strip() == "@@") != 1:
                sys.exit(f"{b.where()}: its doc-test comment needs exactly one line '@@'")
            body.append(f'#line {b.wrap_line} "{b.path}"')
            for n, w in enumerate(b.wrap):
                if w.strip() == "@@":
                    body += block
                    body.append(f'#line {b.wrap_line + n + 1} "{b.path}"')
                else:
                    body.append(w)
        body.append("}")
    programs = [k for k, b in enumerate(blocks) if b.is_program]
    dispatch = "\n".join(f"  if (which == {k}) return doc_block_{k}::program_main();" for k in programs)
    return "\n".join([
        "// Generated by tests/docs/compile_docs.py from README.md and docs/**/*.md.",
        "#include <tether/tether.hpp>",
        # docs/tls.md's fragments use tether/tls.hpp, which the umbrella leaves out (it
        # needs OpenSSL); main() drops those blocks when OpenSSL is missing.
        *(["#include <tether/tls.hpp>"] if any(str(b.path) == "docs/tls.md" for b in blocks) else []),
        *sorted(set(includes)),
        "#include <atomic>", "#include <cctype>", "#include <chrono>", "#include <cstdint>", "#include <cstdio>",
        "#include <cstdlib>", "#include <iostream>", "#include <optional>", "#include <string>",
        "#include <string_view>", "#include <vector>",
        "// Fragments declare what they show and do not always use it.",
        '#pragma GCC diagnostic ignored "-Wunused-variable"',
        '#pragma GCC diagnostic ignored "-Wunused-parameter"',
        '#pragma GCC diagnostic ignored "-Wunused-local-typedefs"',
        '#pragma GCC diagnostic ignored "-Wunused-but-set-variable"',
        "static std::uint16_t doc_port() {",
        '  const char* p = std::getenv("TETHER_DOC_PORT");',
        "  return static_cast<std::uint16_t>(p ? std::atoi(p) : 0);",
        "}",
        *body,
        "int main(int argc, char** argv) {",
        "  const int which = argc > 1 ? std::atoi(argv[1]) : -1;",
        dispatch,
        '  std::fprintf(stderr, "usage: docs_programs BLOCK\\n");',
        "  return 2;",
        "}",
        "",
    ])


def exemplars(root):
    """Yields (file:line, name, lines) for each //[name ... //] region of the tests: code a
    document shows and says is compiled and run by a test."""
    for path in sorted((root / "tests").rglob("*.cpp")):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if line.startswith("//[") and line[3:].strip():
                end = next(m for m in range(n + 1, len(lines)) if lines[m].startswith("//]"))
                yield f"{path.relative_to(root)}:{n + 1}", line[3:].strip(), lines[n + 1:end]


def contains(block, lines):
    return any(block[i:i + len(lines)] == lines for i in range(len(block) - len(lines) + 1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port, request_line, expect, deadline):
    """Sends one request; returns what came back once it holds `expect`, the server
    closed, or `deadline` passed."""
    method, _, target = request_line.partition(" ")
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got = b""
        s.setblocking(False)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], 0.05)
            if ready:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:  # what came before the reset is the answer
                    break
                if not data:
                    break
                got += data
            if expect.encode() in got:
                break
        return got.decode(errors="replace")


def run_program(binary, k, b):
    port = free_port()
    env = dict(os.environ, TETHER_DOC_PORT=str(port))
    # Line-buffered stdout, as on a terminal, so that what it prints can be awaited.
    proc = subprocess.Popen(["stdbuf", "-oL", binary, str(k)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if not b.binds:
            out, _ = proc.communicate(timeout=10)
            if proc.returncode != 0:
                return f"exited with {proc.returncode}: {out.decode(errors='replace')}"
            return None
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    return f"never listened on its port (exit code {proc.poll()})"
                time.sleep(0.02)
        requests = [r for r in (b.run or ["GET / -> HTTP/1.1 "]) if not r.startswith("stdout:")]
        for r in requests:
            line, _, expect = r.partition("->")
            expect = expect.strip()
            got = ask(port, line.strip(), expect, time.monotonic() + 5)
            if expect not in got:
                return f"'{line.strip()}': expected '{expect}' in the response, got {got[:300]!r}"
        printed = b""
        for want in [r[len("stdout:"):].strip() for r in (b.run or []) if r.startswith("stdout:")]:
            deadline = time.monotonic() + 5
            while want.encode() not in printed and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.05)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    printed += chunk
            if want.encode() not in printed:
                return f"expected it to print '{want}', it printed {printed[:300]!r}"
        if proc.poll() is not None:
            return f"exited early with {proc.returncode}"
        return None
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    root, work, compiler = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    blocks = docs(root)
    if subprocess.run(["pkg-config", "--exists", "libevent_openssl", "openssl"]).returncode != 0:
        blocks = [b for b in blocks if str(b.path) != "docs/tls.md"]
    work.mkdir(parents=True, exist_ok=True)
    source = work / "docs_programs.cpp"
    binary = work / "docs_programs"
    source.write_text(unit(blocks))
    packages = ["libevent_core", "libevent_extra"]
    # docs/tls.md includes tether/tls.hpp, which needs libevent_openssl and OpenSSL; without
    # them (a build with -Dtls=disabled on a machine that lacks them) its blocks are skipped.
    if subprocess.run(["pkg-config", "--exists", "libevent_openssl", "openssl"]).returncode == 0:
        packages += ["libevent_openssl", "openssl"]
    libs = subprocess.run(["pkg-config", "--cflags", "--libs"] + packages,
                          check=True, capture_output=True, text=True).stdout.split()
    # tether/redis_hub.hpp needs hiredis (docs/redis.md): without it, blocks that use the
    # hub are left out, and said to be.
    hiredis = subprocess.run(["pkg-config", "--cflags", "--libs", "hiredis"], capture_output=True, text=True)
    if hiredis.returncode == 0:
        libs += hiredis.stdout.split()
    else:
        left_out = [b for b in blocks if any("redis_hub" in c for c in b.code)]
        blocks = [b for b in blocks if b not in left_out]
        source.write_text(unit(blocks))
        print(f"hiredis not found: {len(left_out)} blocks that use tether::redis_hub left out")
    # Fragments call helpers that are declared, never defined, from functions nobody calls:
    # each function in a section of its own, and the linker drops the unreachable ones.
    gc = ["-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]
    build = compiler + gc + [f"-I{root / 'include'}", str(source), "-o", str(binary)] + libs
    if subprocess.run(build, cwd=root).returncode != 0:
        print(f"FAILED to compile the C++ blocks of the documentation ({source})")
        return 1
    print(f"compiled {len(blocks)} C++ blocks from "
          f"{len({b.path for b in blocks})} documents in one translation unit")
    failed = 0
    checked = list(exemplars(root))
    print(f"{len(checked)} exemplars of the tests are shown by the documentation, line for line")
    for where, name, lines in checked:
        shown = [b.where() for b in blocks if contains(b.code, lines)]
        if not shown:
            print(f"FAILED: the exemplar {name} ({where}) is shown by no document, or differs from it")
            failed += 1
    for k, b in enumerate(blocks):
        if not b.is_program:
            continue
        error = run_program(str(binary), k, b)
        print(f"{'FAILED' if error else 'ran'}: the program at {b.where()}" + (f": {error}" if error else ""))
        failed += bool(error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

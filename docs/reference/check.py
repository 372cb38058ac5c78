#!/usr/bin/env python3
"""Builds tether's API reference with Doxygen and lists every undocumented public name.

  check.py --doxyfile F --source-root S --workdir W [--allowlist A] [--build-only | --update]

Runs Doxygen on the configured Doxyfile F (docs/reference/Doxyfile.in), writing the HTML
and the warning log under W. Every warning becomes one key: an undocumented member
("tether::basic_server::native() const noexcept (function)"), type ("tether::timer
(type)"), file ("tether/server.hpp (file)", a public header without a \\file comment) or
namespace ("tether::sse (namespace)"), or any other warning, such as a \\param naming no
parameter ("tether/sse.hpp: <text>"). Line numbers are left out so that keys survive
unrelated edits.

  (default)     the test 'reference_docs': fails on any key not in the allow-list A, and
                names allow-listed keys that are documented now (those do not fail)
  --build-only  `ninja docs`: builds, reports the count, never fails on undocumented names
  --update      rewrites A with the current keys (keeps A's leading comment)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

WARNING = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+): warning: (?P<text>.*)$")
GLOBAL_WARNING = re.compile(r"^(?:warning|error): (?P<text>.*)$")
MEMBER = re.compile(
    r"^Member (?P<sig>.*) \((?P<kind>[^()]*)\) of "
    r"(?P<scopekind>class|struct|union|namespace|file|group|interface|concept) "
    r"(?P<scope>.*) is not documented\.$")
COMPOUND = re.compile(r"^Compound (?P<name>.*) is not documented\.$")
# A class template argument deduction guide: names the class, not a new entity.
DEDUCTION_GUIDE = re.compile(r"^(?P<name>\w+)\(.*\)\s*->\s*(?P=name)\b")


def mangle(name):
    """Doxygen's file-name escaping of a compound name (tether::sse -> tether_1_1sse)."""
    out = []
    for c in name:
        if c == "_":
            out.append("__")
        elif c == ":":
            out.append("_1")
        elif c == ".":
            out.append("_8")
        elif c == "/":
            out.append("_2")
        elif c.isupper():
            out.append("_" + c.lower())
        else:
            out.append(c)
    return "".join(out)


def public_headers(source_root):
    """Public headers as 'tether/x.hpp': everything under include/tether but detail/."""
    base = os.path.join(source_root, "include")
    found = []
    for root, dirs, files in os.walk(os.path.join(base, "tether")):
        dirs[:] = sorted(d for d in dirs if d != "detail")
        found += [os.path.relpath(os.path.join(root, f), base) for f in files if f.endswith(".hpp")]
    return sorted(found)


def strip_code(text):
    """The header without comments, literals and preprocessor lines, tether's namespace
    macros spelt out: what is left is braces, namespaces and declarations."""
    text = re.sub(r"^\s*#define\s+TETHER_(BEGIN|END)_NAMESPACE(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)
    text = text.replace("TETHER_BEGIN_NAMESPACE", "namespace tether { inline namespace v0 {")
    text = text.replace("TETHER_END_NAMESPACE", "} }")
    token = re.compile(r'//[^\n]*|/\*.*?\*/|R"(?P<d>[^(\s]*)\(.*?\)(?P=d)"|"(?:\\.|[^"\\\n])*"'
                       r"|'(?:\\.|[^'\\\n])*'|^\s*#(?:[^\n]*\\\n)*[^\n]*", re.S | re.M)
    return token.sub(lambda m: " " if m.group(0)[:1] != "\n" else "\n", text)


SCOPE_TOKEN = re.compile(
    r"\b(?P<inline>inline\s+)?namespace\s+(?P<ns>[A-Za-z_]\w*(?:::\w+)*)\s*\{"
    r"|\bconcept\s+(?P<concept>[A-Za-z_]\w*)\s*="
    r"|(?P<open>\{)|(?P<close>\})")


def public_scopes(source_root, headers):
    """(namespaces, concepts) that the public headers declare outside any detail
    namespace, as qualified names (tether::sse, tether::close_policy). Doxygen 1.9.4
    neither warns about an undocumented namespace or concept nor lists it."""
    namespaces, concepts = {"tether"}, set()
    for h in headers:
        text = strip_code(open(os.path.join(source_root, "include", h), encoding="utf-8").read())
        stack = []  # per open brace: the namespace names it opens ([] if inline), or None
        for m in SCOPE_TOKEN.finditer(text):
            names = [part for entry in stack if entry for part in entry]
            if m.group("ns"):
                parts = [] if m.group("inline") else m.group("ns").split("::")
                for i in range(len(parts)):
                    if "detail" not in names + parts[:i + 1]:
                        namespaces.add("::".join(names + parts[:i + 1]))
                stack.append(parts)
            elif m.group("concept"):
                if "detail" not in names and None not in stack:
                    concepts.add("::".join(names + [m.group("concept")]))
            elif m.group("open"):
                stack.append(None)
            elif stack:
                stack.pop()
    return sorted(n for n in namespaces if n.split("::")[0] == "tether"), sorted(concepts)


def relative(path, source_root):
    for prefix in ("include", os.path.join("docs", "reference"), ""):
        base = os.path.join(source_root, prefix)
        if path.startswith(base + os.sep):
            return os.path.relpath(path, base)
    return path


def read_warnings(log, source_root):
    """Joins Doxygen's multi-line warnings; returns (relative file, text) pairs."""
    entries = []
    for raw in open(log, encoding="utf-8", errors="replace"):
        line = raw.rstrip("\n")
        m = WARNING.match(line)
        g = GLOBAL_WARNING.match(line)
        if m:
            entries.append([relative(m.group("file"), source_root), m.group("text")])
        elif g:
            entries.append(["Doxyfile", g.group("text")])
        elif line.strip() and entries:
            entries[-1][1] += " " + line.strip()
        elif line.strip():
            entries.append(["Doxyfile", line.strip()])
    return entries


def key_of(path, text):
    """The allow-list key of one warning, or None for a warning about nothing public."""
    text = " ".join(text.split())
    m = MEMBER.match(text)
    if m:
        sig, kind, scopekind, scope = m.group("sig", "kind", "scopekind", "scope")
        if kind == "function" and DEDUCTION_GUIDE.match(sig):
            return None
        if scopekind == "file":
            return f"{path}: {sig} ({kind})"
        return f"{scope}::{sig} ({kind})"
    m = COMPOUND.match(text)
    if m:
        return f"{m.group('name')} (type)"
    return f"{path}: {text}"


def run_doxygen(doxyfile, workdir):
    # Doxygen never deletes a page: one left from an earlier run would pass for documented.
    shutil.rmtree(os.path.join(workdir, "html"), ignore_errors=True)
    os.makedirs(workdir, exist_ok=True)
    log = os.path.join(workdir, "warnings.log")
    config = open(doxyfile, encoding="utf-8").read()
    # Later assignments win: the test and `ninja docs` never write into each other.
    config += f'\nOUTPUT_DIRECTORY = "{workdir}"\nWARN_LOGFILE = "{log}"\n'
    done = subprocess.run(["doxygen", "-"], input=config, text=True, cwd=workdir,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"doxygen failed ({done.returncode}):\n{done.stdout}")
    return log


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doxyfile", required=True)
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--allowlist")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--build-only", action="store_true")
    mode.add_argument("--update", action="store_true")
    args = ap.parse_args()
    src = os.path.realpath(args.source_root)
    workdir = os.path.realpath(args.workdir)

    log = run_doxygen(args.doxyfile, workdir)
    html = os.path.join(workdir, "html")
    headers = public_headers(src)

    # The check must be able to fail: every public header was read (Doxygen writes a
    # source page for each input file), so an empty log means "documented", not "unread".
    unread = [h for h in headers
              if not os.path.exists(os.path.join(html, mangle(os.path.basename(h)) + "_source.html"))]
    if unread or not os.path.exists(os.path.join(html, "index.html")):
        sys.exit("Doxygen did not read these public headers: " + ", ".join(unread or ["(no index.html)"]))

    keys = set()
    for path, text in read_warnings(log, src):
        k = key_of(path, text)
        if k:
            keys.add(k)
    # Doxygen says nothing about an undocumented file, namespace or concept: it leaves it
    # out, and skips the members of the file or namespace. So a public header needs a
    # \\file comment, a namespace a \\namespace one (namespaces.dox), a concept its own.
    for h in headers:
        if not os.path.exists(os.path.join(html, mangle(os.path.basename(h)) + ".html")):
            keys.add(f"{h} (file)")
    namespaces, concepts = public_scopes(src, headers)
    for n in namespaces:
        if not os.path.exists(os.path.join(html, "namespace" + mangle(n) + ".html")):
            keys.add(f"{n} (namespace)")
    for c in concepts:
        if not os.path.exists(os.path.join(html, "concept" + mangle(c) + ".html")):
            keys.add(f"{c} (concept)")

    index = os.path.join(html, "index.html")
    if args.build_only:
        print(f"API reference: {index}")
        print(f"{len(keys)} undocumented public names or documentation warnings "
              f"(Doxygen's log: {log})")
        return 0

    head, allowed = [], set()
    if args.allowlist and os.path.exists(args.allowlist):
        for line in open(args.allowlist, encoding="utf-8"):
            s = line.strip()
            if s.startswith("#") or not s:
                if not allowed:
                    head.append(line.rstrip("\n"))
            else:
                allowed.add(" ".join(s.split()))

    if args.update:
        if not args.allowlist:
            sys.exit("--update needs --allowlist")
        with open(args.allowlist, "w", encoding="utf-8") as out:
            out.write("\n".join(head).rstrip("\n") + "\n" if head else "")
            out.writelines(k + "\n" for k in sorted(keys))
        print(f"wrote {len(keys)} names to {args.allowlist}")
        return 0

    new = sorted(keys - allowed)
    fixed = sorted(allowed - keys)
    print(f"{len(keys)} undocumented public names or documentation warnings; "
          f"{len(keys & allowed)} allow-listed, {len(new)} new")
    if fixed:
        print(f"\nDocumented now; remove from {args.allowlist} (or run check.py --update):")
        print("".join(f"  {k}\n" for k in fixed), end="")
    if new:
        print("\nNot documented (write a /// comment on each; the reference is docs/reference/):")
        print("".join(f"  {k}\n" for k in new), end="")
        print(f"\nDoxygen's log: {log}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Every function of a public header that returns a std::error_code is [[nodiscard]].

  check.py SOURCE_ROOT

docs/errors.md promises that an ignored error is a warning. result<T> and route_error are
[[nodiscard]] as classes; std::error_code cannot be, so each function returning one must
say it. This reads every header under include/tether/ outside detail/ (a detail namespace
inside a public header is skipped too) and lists each declaration returning
std::error_code without [[nodiscard]] before the return type on its line (or alone on the
line above). It follows braces, so a `namespace detail { ... }` is skipped to its own
closing brace, and it knows `auto f() -> std::error_code` and a return type on a line of
its own. Fails on any.
"""
import pathlib
import re
import sys

DECL = re.compile(
    r"^\s*(?:template\s*<.*>\s*)?"  # a template head on the same line
    r"(?:(?:static|inline|constexpr|friend|virtual|explicit)\s+)*"
    r"(?P<nodiscard>\[\[nodiscard\]\]\s+)?"
    r"(?:(?:static|inline|constexpr|friend|virtual)\s+)*"
    r"(?:std::error_code\s+(?:operator\S+|[A-Za-z_]\w*)\s*\("  # std::error_code f(
    r"|auto\s+[A-Za-z_]\w*\s*\(.*\)\s*(?:const\s*)?(?:noexcept\s*)?->\s*std::error_code\b)")  # auto f() -> std::error_code
RETURN_TYPE_ALONE = re.compile(r"^\s*(?:\[\[nodiscard\]\]\s+)?(?:(?:static|inline|constexpr)\s+)*std::error_code\s*$")
DETAIL_OPEN = re.compile(r"^\s*namespace detail \{")
ATTRIBUTE_ALONE = re.compile(r"^\s*(?:template\s*<.*>\s*)?\[\[nodiscard\]\]\s*$")


def depth_change(line):
    """Braces opened minus closed on a line, outside string and character literals and
    // comments (enough for tether's headers)."""
    code = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', "", line.split("//")[0])
    return code.count("{") - code.count("}")


def unmarked(path):
    lines = path.read_text().split("\n")
    detail_depth = None  # brace depth at which the innermost detail namespace opened
    depth = 0
    for i, line in enumerate(lines):
        if detail_depth is None and DETAIL_OPEN.match(line):
            detail_depth = depth
        elif detail_depth is None:
            m = DECL.match(line)
            # A return type on a line of its own ("std::error_code\nname(...)") counts too.
            alone = RETURN_TYPE_ALONE.match(line) and i + 1 < len(lines) and re.match(r"^\s*[A-Za-z_]\w*\s*\(", lines[i + 1])
            if m or alone:
                marked = "[[nodiscard]]" in line.split("std::error_code")[0] or (i > 0 and ATTRIBUTE_ALONE.match(lines[i - 1]))
                if not marked:
                    yield i + 1, line.strip()
        depth += depth_change(line)
        if detail_depth is not None and depth <= detail_depth:
            detail_depth = None


def main():
    root = pathlib.Path(sys.argv[1]) / "include" / "tether"
    headers = [p for p in sorted(root.rglob("*.hpp")) if "detail" not in p.relative_to(root).parts]
    declarations = 0
    bad = []
    for p in headers:
        declarations += sum(1 for line in p.read_text().split("\n") if DECL.match(line) or RETURN_TYPE_ALONE.match(line))
        bad += [f"{p.relative_to(root.parent.parent)}:{n}: {text}" for n, text in unmarked(p)]
    if not headers or declarations == 0:
        print(f"no header or no std::error_code declaration found under {root}: the scan is broken")
        return 1
    for b in bad:
        print(f"{b}\n  returns a std::error_code without [[nodiscard]] (docs/errors.md)")
    print(f"{len(headers)} public headers, {declarations} functions returning std::error_code, "
          f"{len(bad)} without [[nodiscard]]")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

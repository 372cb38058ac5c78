#!/usr/bin/env python3
"""Every function of a public header that returns a std::error_code is [[nodiscard]].

  check.py SOURCE_ROOT

docs/errors.md promises that an ignored error is a warning. result<T> and route_error are
[[nodiscard]] as classes; std::error_code cannot be, so each function returning one must
say it. This reads every header under include/tether/ outside detail/ (a detail namespace
inside a public header is skipped too) and lists each declaration returning
std::error_code without [[nodiscard]] on its line or the line above. Fails on any.
"""
import pathlib
import re
import sys

DECL = re.compile(
    r"^\s*(?:(?:static|inline|constexpr|friend|virtual|explicit)\s+)*"
    r"(?P<nodiscard>\[\[nodiscard\]\]\s+)?"
    r"(?:(?:static|inline|constexpr|friend|virtual)\s+)*"
    r"std::error_code\s+(?:operator\S+|[A-Za-z_]\w*)\s*\(")
DETAIL_OPEN = re.compile(r"^namespace detail \{")
DETAIL_CLOSE = re.compile(r"^\}\s*//\s*namespace detail")


def unmarked(path):
    lines = path.read_text().split("\n")
    in_detail = False
    for i, line in enumerate(lines):
        if DETAIL_OPEN.match(line):
            in_detail = True
        elif in_detail and DETAIL_CLOSE.match(line):
            in_detail = False
        elif not in_detail:
            m = DECL.match(line)
            if m and not m.group("nodiscard") and (i == 0 or "[[nodiscard]]" not in lines[i - 1]):
                yield i + 1, line.strip()


def main():
    root = pathlib.Path(sys.argv[1]) / "include" / "tether"
    headers = [p for p in sorted(root.rglob("*.hpp")) if "detail" not in p.relative_to(root).parts]
    declarations = 0
    bad = []
    for p in headers:
        declarations += sum(1 for line in p.read_text().split("\n") if DECL.match(line))
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

#!/usr/bin/env python3
"""Checks docs/pecl-event-mapping.md against the tests it cites, so the table cannot rot.

Usage: check_pecl_mapping.py SOURCE_ROOT

Every row of every table in the page is `| PECL method | tether counterpart | test |`.
The test cell is either `—` or one or more citations `` `tests/...cpp`: "TEST_CASE name" ``
(several separated by <br>). The check fails when:
  * a cited file does not exist, or has no TEST_CASE / TEMPLATE_TEST_CASE /
    TT_ENGINES_TEST_CASE (tests/support/engines.hpp) with exactly that name (string
    literals split across lines are joined, as the compiler does);
  * a test cell is neither `—` nor citations only;
  * a row without a test neither says "No counterpart" nor is a TLS placeholder
    ("tls.hpp (branch tls)"), so every method either has a tested counterpart or says why
    not;
  * the page cites fewer than MIN_CITATIONS tests (a parser that silently matched
    nothing would otherwise pass).
"""
import re
import sys
from pathlib import Path

PAGE = "docs/pecl-event-mapping.md"
MIN_CITATIONS = 50
CITATION = re.compile(r'`(tests/[^`]+\.cpp)`: "((?:[^"\\]|\\.)*)"')
TEST_CASE = re.compile(r'\b(?:TEMPLATE_|TT_ENGINES_)?TEST_CASE\s*\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)')
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
NO_TEST = "—"


def test_names(path, cache={}):
    if path not in cache:
        text = path.read_text()
        cache[path] = {"".join(LITERAL.findall(m.group(1))) for m in TEST_CASE.finditer(text)}
    return cache[path]


def cells(row):
    """Splits a Markdown table row on the | that are not escaped."""
    parts = re.split(r"(?<!\\)\|", row.strip())
    return [p.strip() for p in parts[1:-1]]


def main():
    root = Path(sys.argv[1])
    page = root / PAGE
    errors = []
    citations = rows = 0
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if not line.startswith("|") or re.match(r"^\|\s*-", line):
            continue
        row = cells(line)
        if row[:3] in (["PECL event", "tether", "test"], ["libevent C", "tether", "test"]):
            continue
        where = f"{PAGE}:{number}"
        if len(row) != 3:
            errors.append(f"{where}: expected 3 cells, found {len(row)}")
            continue
        rows += 1
        method, counterpart, test = row
        if test == NO_TEST:
            if not (counterpart.startswith("No counterpart") or counterpart == "tls.hpp (branch tls)"
                    or counterpart.startswith("see the TLS block")):
                errors.append(f"{where}: {method}: no test, and the row does not say why (No counterpart ...)")
            continue
        found = CITATION.findall(test)
        rest = CITATION.sub("", test).replace("<br>", "").strip()
        if not found or rest:
            errors.append(f"{where}: test cell is neither '{NO_TEST}' nor citations: {test!r}")
            continue
        for file, name in found:
            citations += 1
            path = root / file
            if not path.is_file():
                errors.append(f"{where}: {file} does not exist")
            elif name not in test_names(path):
                errors.append(f'{where}: {file} has no TEST_CASE "{name}"')
    if citations < MIN_CITATIONS:
        errors.append(f"only {citations} citations found in {rows} rows (expected at least {MIN_CITATIONS}): "
                      "did the table format change?")
    for e in errors:
        print(e)
    print(f"{PAGE}: {rows} rows, {citations} test citations, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""tests/install_list/check.py - every header under include/tether is installed.

  check.py SOURCE_ROOT

include/meson.build lists the headers it installs (public, TLS, optional and detail
lists); a header missing from those lists compiles in this tree and in a subproject, but
not for a program built against the installed tether (suite consumer finds that out only
when a consumer test includes it). Fails naming each header that is in include/tether but
in no list, and each listed name that is not a file.
"""
import os
import re
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    include = os.path.join(sys.argv[1], "include")
    listed = set(re.findall(r"'(tether/[^']+\.hpp)'", open(os.path.join(include, "meson.build")).read()))
    present = set()
    for folder, _, files in os.walk(os.path.join(include, "tether")):
        for f in files:
            if f.endswith(".hpp"):
                present.add(os.path.relpath(os.path.join(folder, f), include))
    status = 0
    for h in sorted(present - listed):
        print(f"FAIL {h} is not in any list of include/meson.build: it would not be installed")
        status = 1
    for h in sorted(listed - present):
        print(f"FAIL include/meson.build lists {h}, which does not exist")
        status = 1
    if status == 0:
        print(f"ok: the {len(present)} headers under include/tether are all installed")
    return status


if __name__ == "__main__":
    sys.exit(main())

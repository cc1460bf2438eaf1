#!/usr/bin/env python3
"""Writes a git fast-import stream for a benchmark repository on stdout: FILES source files in
nested directories plus a package.json declaring lodash ^4.17.20, in COMMITS commits (the first
adds everything, each later one edits one file). The final tree depends only on FILES and
COMMITS, never on randomness, so two runs produce the same repository.

Usage: make_repo.py FILES COMMITS | git -C BARE.git fast-import --quiet
"""

import hashlib
import sys

FILES, COMMITS = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer

PACKAGE_JSON = """{
  "name": "bench-app",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "express": "^4.18.2",
    "lodash": "^4.17.20",
    "react": "^18.2.0"
  },
  "devDependencies": {
    "jest": "^29.7.0"
  }
}
"""


def path_of(i):
    # 10 top-level packages x 10 modules x ~30 files: a plausible monorepo layout.
    return f"packages/pkg{i % 10}/src/mod{(i // 10) % 10}/file{i}.js"


def content_of(i, revision=0):
    lines = [f"// module {i}, revision {revision}"]
    if i % 50 == 0:
        lines.append("const _ = require('lodash');")
    # Hashes keep the text from compressing far better than real source does.
    for n in range(40 + i % 40):
        digest = hashlib.sha1(f"{i}.{n}.{revision}".encode()).hexdigest()
        lines.append(f"export const k{i}_{n} = (x) => x + '{digest}'; // {n}")
    return "\n".join(lines) + "\n"


def data(payload):
    raw = payload.encode()
    out.write(b"data %d\n" % len(raw))
    out.write(raw)
    out.write(b"\n")


revisions = {}
for c in range(COMMITS):
    out.write(b"commit refs/heads/main\n")
    out.write(b"mark :%d\n" % (c + 1))
    out.write(b"committer Bench <bench@example.com> %d +0000\n" % (1_600_000_000 + c * 60))
    data(f"commit {c}")
    if c:
        out.write(b"from :%d\n" % c)
        i = (c * 7919) % FILES
        revisions[i] = c
        out.write(f"M 100644 inline {path_of(i)}\n".encode())
        data(content_of(i, c))
    else:
        out.write(b"M 100644 inline package.json\n")
        data(PACKAGE_JSON)
        out.write(b"M 100644 inline README.md\n")
        data("# bench-app\n\nA generated repository for the Remediator benchmarks.\n")
        for i in range(FILES):
            out.write(f"M 100644 inline {path_of(i)}\n".encode())
            data(content_of(i))
out.write(b"done\n")

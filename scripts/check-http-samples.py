#!/usr/bin/env python3
"""The HTTP API samples in README.md and docs/http.md are what the server answers.

Both documents say their `$ curl ...` samples were captured from
`cargo run --example http_server --features http -- 8799 admin-key-5b8e17c4a9f3 acme-key-0f6c2e91b7d4` (a simulated workload on a manual
clock, so every figure is fixed). This script builds that example, starts it on a free port, runs every
`$ curl` command of every fenced block (its output piped through python3 as the sample shows), and compares
what it prints with the block, byte for byte but for the `date:` header's value. Exits 1 listing every
difference, 0 when all match. Needs curl and python3; builds into $CARGO_TARGET_DIR when set.

Usage: scripts/check-http-samples.py [--write] [FILE...]   (default: README.md docs/http.md)

--write replaces each sample that differs with what the server printed (review the diff before committing).
"""

import difflib
import json
import os
import re
import selectors
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_BASE = "http://127.0.0.1:8799"


def samples(path):
    """(line, command, expected output) of every `$ curl` command in the file's fenced blocks."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, block, start = [], None, 0
    for n, line in enumerate(lines, 1):
        if block is None:
            if line.startswith("```"):
                block, start = [], n + 1
            continue
        if line == "```":
            i = 0
            while i < len(block):
                if not block[i].startswith("$ "):
                    i += 1
                    continue
                command, at, i = block[i][2:], start + i, i + 1
                printed = []
                while i < len(block) and not block[i].startswith("$ "):
                    printed.append(block[i])
                    i += 1
                if command.startswith("curl "):
                    out.append((at, command, "\n".join(printed)))
            block = None
            continue
        block.append(line)
    return out


def normalize(text):
    text = text.replace("\r\n", "\n").rstrip("\n")
    return re.sub(r"(?mi)^date: .*$", "date: (any)", text)


def write_back(path, line, expected, got):
    """Replaces the printed lines of the sample whose command is at `line` (1-based) with `got`."""
    full = os.path.join(ROOT, path)
    lines = open(full, encoding="utf-8").read().split("\n")
    n = len(expected.split("\n")) if expected else 0
    lines[line:line + n] = got.split("\n") if got else []
    open(full, "w", encoding="utf-8").write("\n".join(lines))


def selectors_ready(stream, seconds):
    """Whether `stream` has something to read (or its end) within `seconds`."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        return bool(sel.select(timeout=seconds))


def main():
    args = sys.argv[1:]
    write = "--write" in args
    files = [a for a in args if a != "--write"] or ["README.md", "docs/http.md"]
    found = [(f, *s) for f in files for s in samples(os.path.join(ROOT, f))]
    if len(found) < 10:
        sys.exit(f"found only {len(found)} curl samples in {', '.join(files)}")

    subprocess.run(
        ["cargo", "build", "--quiet", "--features", "http", "--example", "http_server"], cwd=ROOT, check=True
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    server_bin = os.path.join(json.loads(meta.stdout)["target_directory"], "debug", "examples", "http_server")
    server = subprocess.Popen(
        [server_bin, "0", "admin-key-5b8e17c4a9f3", "acme-key-0f6c2e91b7d4"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        # Its first line is its address; a server that never prints it fails the check instead of hanging it.
        if not selectors_ready(server.stdout, 60):
            sys.exit("the example server printed no address within 60 s")
        base = server.stdout.readline().strip()
        if not base.startswith("http://127.0.0.1:"):
            sys.exit(f"the example server printed {base!r} instead of its address")
        failures = []
        rewrites = []
        for path, line, command, expected in found:
            try:
                run = subprocess.run(
                    command.replace(SAMPLE_BASE, base) + " 2>&1",
                    shell=True,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            except subprocess.TimeoutExpired:
                failures.append(f"{path}:{line}: `{command}` had no answer within 60 s")
                continue
            got, want = normalize(run.stdout.replace(base, SAMPLE_BASE)), normalize(expected)
            if got != want:
                diff = "\n".join(list(difflib.unified_diff(want.split("\n"), got.split("\n"), lineterm=""))[2:40])
                failures.append(f"{path}:{line}: `{command}` answered something else:\n{diff}")
                printed = run.stdout.replace(base, SAMPLE_BASE).replace("\r\n", "\n").rstrip("\n")
                rewrites.append((path, line, expected, printed))
        if write:
            # Bottom up, so that earlier samples' line numbers stay where they were.
            for path, line, expected, printed in sorted(rewrites, key=lambda r: (r[0], r[1]), reverse=True):
                write_back(path, line, expected, printed)
            print(f"rewrote {len(rewrites)} samples")
        for f in failures:
            print(f, end="\n\n")
        print(f"{len(found) - len(failures)} of {len(found)} HTTP samples match what the server answers")
        return 1 if failures else 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

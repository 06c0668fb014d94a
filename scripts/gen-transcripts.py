#!/usr/bin/env python3
"""Generates Claude Code transcripts in the on-disk format, for benchmarks and agreement checks.

    scripts/gen-transcripts.py OUT_DIR [--lines 100000] [--seed 7] [--long-context 0]

writes OUT_DIR/projects/<project>/<session>.jsonl (and <session>/subagents/agent-<id>.jsonl) with, like real
transcripts: user lines carrying tool results (most of the bytes), assistant lines written once per content
block with the same message.id and requestId (streamed copies with growing output), sidechain sub-agent
files whose first line replays a parent message (same usage and timestamp) under a new requestId, `<synthetic>` API-error lines, 5m and 1h
cache writes, summary lines and a few torn lines. All prompts stay under 200k tokens, except
`--long-context N` calls on claude-sonnet-4-5 over 200k, all in project `long-context` on 2025-09-30 (where
tokenmeter bills the whole call at the long-context rates and ccusage prices per token type).

Output is deterministic for a given seed. About 1.7 KB per line: 100,000 lines make about 170 MB.
"""

import argparse
import json
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

MODELS = [
    ("claude-sonnet-4-5-20250929", 55),
    ("claude-haiku-4-5-20251001", 15),
    ("claude-opus-4-1-20250805", 8),
    ("claude-opus-4-5-20251101", 12),
    ("claude-sonnet-4-20250514", 5),
    ("claude-3-5-haiku-20241022", 5),
]
WORDS = (
    "the a function returns value error result file path test build cargo crate module trait impl struct "
    "enum match async await token cache prompt session request response model cost budget ledger span "
    "layer tracing metric export journal replay window bucket histogram é ü 日本 emoji 🚀 tab\t quote\" "
    "backslash\\ newline\n brace{ bracket] usage colon: comma,"
).split(" ")


def text(rng, n_bytes):
    out, size = [], 0
    while size < n_bytes:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Session:
    def __init__(self, rng, project, cwd, start):
        self.rng = rng
        self.project = project
        self.cwd = cwd
        self.id = str(uuid.UUID(int=rng.getrandbits(128)))
        self.t = start
        self.parent = None
        self.context = rng.randint(8_000, 20_000)
        self.lines = []
        self.main_messages = []

    def base(self, kind, sidechain=False, session_id=None):
        self.t += timedelta(milliseconds=self.rng.randint(400, 40_000))
        u = str(uuid.UUID(int=self.rng.getrandbits(128)))
        d = {
            "parentUuid": self.parent,
            "isSidechain": sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": session_id or self.id,
            "version": "2.0.14",
            "gitBranch": "main",
            "type": kind,
            "uuid": u,
            "timestamp": self.t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (self.t.microsecond // 1000),
        }
        self.parent = u
        return d

    def user(self, sidechain=False, session_id=None):
        rng = self.rng
        d = self.base("user", sidechain, session_id)
        if rng.random() < 0.25:
            d["message"] = {"role": "user", "content": text(rng, rng.randint(40, 600))}
        else:
            body = text(rng, int(rng.lognormvariate(7.12, 0.9)))
            tid = "toolu_%024x" % rng.getrandbits(96)
            d["message"] = {
                "role": "user",
                "content": [{"tool_use_id": tid, "type": "tool_result", "content": body}],
            }
            d["toolUseResult"] = {"stdout": body[: len(body) // 3], "stderr": "", "interrupted": False}
        return d

    def usage(self, model, long_context=False):
        rng = self.rng
        if long_context:
            read, write5, write1h, inp = rng.randint(190_000, 400_000), rng.randint(5_000, 30_000), 0, rng.randint(1, 50)
        else:
            grow = rng.randint(200, 6_000)
            self.context = min(self.context + grow, 170_000)
            r = rng.random()
            if r < 0.08:  # cache miss: everything written again
                read, write = 0, self.context
            else:
                read, write = self.context - grow, grow
            inp = rng.randint(1, 30) if rng.random() < 0.9 else rng.randint(100, 12_000)
            if rng.random() < 0.2:
                write1h, write5 = write, 0
            elif rng.random() < 0.1:
                write1h, write5 = write // 3, write - write // 3
            else:
                write1h, write5 = 0, write
        u = {
            "input_tokens": inp,
            "cache_creation_input_tokens": write5 + write1h,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": write5, "ephemeral_1h_input_tokens": write1h},
            "output_tokens": 0,
            "service_tier": "standard",
        }
        if rng.random() < 0.15:  # older transcripts: no TTL split
            del u["cache_creation"]
        return u

    def assistant(self, model, blocks, sidechain=False, session_id=None, long_context=False, replay_of=None):
        """One response written as `blocks` lines with the same ids and growing output."""
        rng = self.rng
        usage = self.usage(model, long_context) if replay_of is None else dict(replay_of["usage"])
        msg_id = replay_of["id"] if replay_of else "msg_01%022x" % rng.getrandbits(88)
        req_id = "req_011C%020x" % rng.getrandbits(80)
        final_output = rng.randint(20, 2_500)
        out = []
        for b in range(blocks):
            d = self.base("assistant", sidechain, session_id)
            u = dict(usage)
            # Earlier copies have less output than the last (streamed output grows): a tie would make which copy
            # ccusage keeps (the first) differ from the largest for no reason of the data's.
            u["output_tokens"] = final_output if b == blocks - 1 else rng.randint(1, final_output - 1)
            if replay_of is not None:
                # A replay copies the parent's line: same usage, same timestamp, new request id.
                u["output_tokens"] = replay_of["usage"]["output_tokens"]
                d["timestamp"] = replay_of["timestamp"]
            kind = rng.random()
            if kind < 0.45:
                content = [{"type": "text", "text": text(rng, rng.randint(80, 1_500))}]
            elif kind < 0.9:
                content = [{
                    "type": "tool_use",
                    "id": "toolu_%024x" % rng.getrandbits(96),
                    "name": rng.choice(["Read", "Edit", "Bash", "Grep", "Write"]),
                    "input": {"file_path": self.cwd + "/src/lib.rs", "command": text(rng, rng.randint(20, 400))},
                }]
            else:
                content = [{"type": "thinking", "thinking": text(rng, rng.randint(100, 2_000)), "signature": "Eq" + "x" * 200}]
            d["message"] = {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": None if b < blocks - 1 else "end_turn",
                "stop_sequence": None,
                "usage": u,
            }
            d["requestId"] = req_id
            out.append(d)
        final = out[-1]
        return out, {"id": msg_id, "usage": final["message"]["usage"], "timestamp": final["timestamp"]}

    def synthetic(self):
        d = self.base("assistant")
        d["isApiErrorMessage"] = True
        d["message"] = {
            "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "model": "<synthetic>",
            "role": "assistant",
            "type": "message",
            "content": [{"type": "text", "text": "API Error: Request was aborted."}],
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        return d


def pick_model(rng):
    r = rng.uniform(0, sum(w for _, w in MODELS))
    for m, w in MODELS:
        r -= w
        if r <= 0:
            return m
    return MODELS[0][0]


# Changed whenever the generator's output for the same arguments changes.
GENERATOR_VERSION = 2


def stamp(args):
    return "gen-transcripts v%d --lines %d --seed %d --long-context %d" % (
        GENERATOR_VERSION, args.lines, args.seed, args.long_context)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--long-context", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = os.path.join(args.out, "projects")
    os.makedirs(root, exist_ok=True)

    projects = ["-home-dev-%s" % n for n in ["api", "web", "infra", "tokenmeter", "docs", "mobile", "ml", "cli"]]
    base = datetime(2025, 10, 1, tzinfo=timezone.utc)
    written = 0
    files = 0
    while written < args.lines:
        project = rng.choice(projects)
        start = base + timedelta(days=rng.randint(0, 29), hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
        s = Session(rng, project, "/home/dev/" + project.split("-")[-1], start)
        model = pick_model(rng)
        lines = [{"type": "summary", "summary": text(rng, 40), "leafUuid": str(uuid.UUID(int=rng.getrandbits(128)))}]
        turns = rng.randint(20, 160)
        sub_lines = []
        for _ in range(turns):
            lines.append(s.user())
            blocks = rng.choice([1, 1, 2, 2, 3])
            out, final = s.assistant(model if rng.random() < 0.9 else pick_model(rng), blocks)
            lines.extend(out)
            s.main_messages.append(final)
            if rng.random() < 0.01:
                lines.append(s.synthetic())
            if rng.random() < 0.04 and not sub_lines:
                # A sub-agent: its own file, sidechain lines under the parent's sessionId, the first replaying
                # the parent's last message under a new request id.
                replay, _ = s.assistant(model, 1, sidechain=True, replay_of=s.main_messages[-1])
                sub_lines.extend(replay)
                for _ in range(rng.randint(3, 12)):
                    sub_lines.append(s.user(sidechain=True))
                    out, _ = s.assistant(rng.choice(["claude-haiku-4-5-20251001", model]), rng.choice([1, 2]), sidechain=True)
                    sub_lines.extend(out)
        if rng.random() < 0.05:
            torn = dumps(lines[-1])
            lines.append(torn[: len(torn) // 2])
        pdir = os.path.join(root, project)
        os.makedirs(pdir, exist_ok=True)
        with open(os.path.join(pdir, s.id + ".jsonl"), "w", encoding="utf-8") as f:
            for d in lines:
                f.write((d if isinstance(d, str) else dumps(d)) + "\n")
        files += 1
        written += len(lines)
        if sub_lines:
            sdir = os.path.join(pdir, s.id, "subagents")
            os.makedirs(sdir, exist_ok=True)
            with open(os.path.join(sdir, "agent-%08x.jsonl" % rng.getrandbits(32)), "w", encoding="utf-8") as f:
                for d in sub_lines:
                    f.write(dumps(d) + "\n")
            files += 1
            written += len(sub_lines)

    if args.long_context:
        project = "long-context"
        s = Session(rng, project, "/home/dev/long", datetime(2025, 9, 30, 9, tzinfo=timezone.utc))
        lines = []
        for _ in range(args.long_context):
            lines.append(s.user())
            out, _ = s.assistant("claude-sonnet-4-5-20250929", 1, long_context=True)
            lines.extend(out)
        pdir = os.path.join(root, project)
        os.makedirs(pdir, exist_ok=True)
        with open(os.path.join(pdir, s.id + ".jsonl"), "w", encoding="utf-8") as f:
            for d in lines:
                f.write(dumps(d) + "\n")
        files += 1
        written += len(lines)

    # What made this data: scripts/ccusage-compare.sh makes it again when the generator or its arguments changed.
    with open(os.path.join(args.out, ".generator"), "w", encoding="utf-8") as f:
        f.write(stamp(args) + "\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    print("wrote %d lines in %d files, %.1f MB, under %s" % (written, files, total / 1e6, root))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Claude Code transcripts priced by `tokenmeter::transcripts` (the driver's `--transcripts`) against the oracle.

Random assistant lines (model ids in every documented spelling, usage with a write total and/or its 5m/1h split,
web searches, `service_tier` / `speed` / `inference_geo` in any case, compaction `iterations`, and earlier streamed
copies of a line) are written as one session's transcript; each call the loader reads is compared with oracle.py's
figures (token kinds and total cost). The rules:

  - README "Money: the price book": prices, long context, batch, fast, regional inference (transcripts carry
    `inference_geo`, or a Bedrock profile as the model; "Claude Code's transcripts name no host"), modifiers read
    without regard to case or surrounding spaces, web searches, model ids, unknown models unpriced (see oracle.py);
    "Server-side compaction": "Claude Code transcripts add the compaction entries to the call's counts";
  - README "The capture contract, in brief": a write total larger than its split counts the rest as 5-minute writes,
    a total alone is a 5-minute write;
  - README "Claude Code transcripts": a message written more than once (streamed copies) is one call, the copy with
    the larger counts kept; `<synthetic>` lines (Claude Code's own messages) cost nothing.

  python3 transcripts_test.py DRIVER SEEDS N     SEEDS like 1-3: N assistant lines per seed; one summary line,
                                                 exit 1 on any disagreement
"""
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import oracle


def assistant_line(rng, seed, i):
    """One assistant line and the call the oracle expects of it."""
    base = rng.choice(sorted(oracle.PRICES))
    model_id, canon, geo, tag = oracle.model_variant(rng, base)
    if rng.random() < 0.02:
        model_id, canon, geo, tag = "<synthetic>", "<synthetic>", None, "synthetic"
    uncached, read, w5, w1, out, _, web = oracle.gen_usage(rng, base)
    uncached, read, w5, w1, out = [min(x, 10**9) for x in (uncached, read, w5, w1, out)]
    usage = {"input_tokens": uncached, "output_tokens": out, "cache_read_input_tokens": read}
    top = dict(uncached=uncached, read=read, out=out)
    k = rng.random()
    if k < 0.4:  # a total alone
        usage["cache_creation_input_tokens"] = top["wtotal"] = w5 + w1
    elif k < 0.8:  # a total and its split, the total sometimes larger
        usage["cache_creation_input_tokens"] = top["wtotal"] = w5 + w1 + rng.choice([0, 0, rng.randint(1, 999)])
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
        top.update(w5=w5, w1=w1)
    else:  # the split alone
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
        top.update(w5=w5, w1=w1)
    if web:
        usage["server_tool_use"] = {"web_search_requests": web}
    mods = oracle.tier_speed_geo(rng)
    usage.update(mods)
    parts = [top]
    if rng.random() < 0.25:
        iterations = []
        for _ in range(rng.randint(1, 2)):
            entry = dict(type="compaction", input_tokens=rng.randint(0, 250000), output_tokens=rng.randint(0, 8000),
                         cache_read_input_tokens=rng.randint(0, 9000))
            iterations.append(entry)
            parts.append(dict(uncached=entry["input_tokens"], out=entry["output_tokens"],
                              read=entry["cache_read_input_tokens"]))
        iterations.append(dict(type="message", input_tokens=uncached, output_tokens=out))
        usage["iterations"] = iterations
    line = {"type": "assistant", "timestamp": "2026-08-%02dT%02d:%02d:00Z" % (1 + i % 28, i % 24, i % 60),
            "sessionId": "s1", "requestId": f"req_{seed}_{i}",
            "message": {"id": f"msg_{seed}_{i}", "model": model_id, "usage": usage}}
    lines = []
    if rng.random() < 0.1:  # a streamed copy written earlier, with less output and no iterations
        early = json.loads(json.dumps(line))
        early["message"]["usage"]["output_tokens"] = rng.randint(0, out)
        early["message"]["usage"].pop("iterations", None)
        if early["message"]["usage"]["output_tokens"] < out or "iterations" in usage:
            lines.append(json.dumps(early))
    lines.append(json.dumps(line))
    expected = oracle.call(canon, None, web, mods.get("service_tier"), mods.get("speed"),
                           oracle.expected_regional(mods.get("inference_geo"), geo, None), tag, parts=parts)
    expected["model_id"] = model_id
    return lines, expected


def main(argv):
    driver, seeds, n = argv[1], oracle.seed_range(argv[2]), int(argv[3])
    calls, disagreements = 0, []
    for seed in seeds:
        rng = random.Random(seed)
        expected, lines = {}, []
        for i in range(n):
            call_lines, expected[f"msg_{seed}_{i}"] = assistant_line(rng, seed, i)
            lines += call_lines
        with tempfile.TemporaryDirectory() as tmp:
            session = Path(tmp, "projects", "p1", "s1.jsonl")
            session.parent.mkdir(parents=True)
            session.write_text("\n".join(lines) + "\n")
            result = subprocess.run([driver, "--transcripts", tmp], capture_output=True, text=True, check=True)
        records = [json.loads(line) for line in result.stdout.splitlines()]
        by_message = {r["request_id"]: r for r in records}  # a record's `request_id` is the message's id
        if len(records) != len(expected):
            disagreements.append(dict(seed=seed, problem="call count", want=len(expected), got=len(records)))
        for message_id, e in expected.items():
            calls += 1
            r = by_message.get(message_id)
            if r is None:
                disagreements.append(dict(problem="missing", message_id=message_id, expected=e))
            elif e["canon"] == "<synthetic>":
                if r["cost"] is None or int(r["cost"]["total"]) != 0:
                    disagreements.append(dict(problem="synthetic", expected=e, got=r))
            else:
                want, tokens, _ = oracle.expect_call(e)
                got = r["cost"]
                priced_right = (want is None) == (got is None) and (want is None or int(got["total"]) == want["total"])
                if not priced_right or r["tokens"][:5] != tokens[:5]:
                    disagreements.append(dict(problem="cost", model_id=e["model_id"], tag=e["tag"],
                                              got_tokens=r["tokens"], want_tokens=tokens, got=got and got["total"],
                                              want=want and want["total"],
                                              modifiers={k: e[k] for k in ("tier", "speed", "regional")}))
    print(f"transcripts: {calls} calls compared (seeds {seeds.start}-{seeds.stop - 1}, {n} lines each), "
          f"{len(disagreements)} disagreements{': FAIL' if disagreements else ''}")
    for d in disagreements[:oracle.SHOWN]:
        print("  " + json.dumps(d, default=str)[:1000])
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

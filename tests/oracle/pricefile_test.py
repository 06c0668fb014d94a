#!/usr/bin/env python3
"""Price-file overrides (`TokenMeter::builder().with_prices_file`) against the written rules.

Random calls on the models of one price file (`PRICE_FILE` below) go through the driver with `--prices`; each
CallRecord's cost per kind, web-search fee, total and flags are compared with figures computed here with exact
fractions. The rules, from README.md "Money: the price book" (and tokenmeter::pricing's module docs, which show the
same file format):

  - rates are USD per million tokens; "cache rates default to 1.25x / 2x / 0.1x of input", and "A price file's cache
    rate left to be derived from its input rate is rounded half up to a whole pico-USD a token" (the long-context
    table has "same rate keys and defaults");
  - "the batch, fast and regional multipliers are not applied to a rate but to each kind's amount, tokens times
    rate, rounded once, half up: 3 input tokens at 3 pico-USD through the batch API cost 5 pico-USD";
  - a model table "replaces that model's whole price, long-context rates and fast multiplier included": a file entry
    without them has none (`claude-opus-4-6` loses its 6x fast mode, `claude-sonnet-4-5` its long-context band);
  - the long-context `threshold`: "the prompt tokens above which these rates apply (default: the model's own, else
    200,000)", so 100,000 on Haiku 5.5 (the "Long context" rule), 200,000 on a model with none of its own;
    "Exactly the threshold is standard";
  - "Regional inference ... multiplies every token rate by 1.1 on Claude Sonnet 4.5 and later models ... and so does
    any model whose id is not a `claude-...` one" keep its prices (here: `claude-zz-1` is read as a later Claude model);
  - `web_search_per_1k` sets the fee per search, flat: no multiplier applies to it ("Web search").

  python3 pricefile_test.py DRIVER SEEDS N     SEEDS like 1-3: N random calls per seed, plus the fixed ones;
                                               one summary line, exit 1 on any disagreement
"""
import json
import random
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import oracle
from oracle import round_half_up

PRICE_FILE = """web_search_per_1k = 7.5
[models."odd-model"]
input = 0.000003
output = 0.000001
[models."odd-lc"]
input = 0.000005
output = 0.000009
[models."odd-lc".long_context]
input = 0.000011
output = 0.000021
[models."claude-zz-1"]
input = 0.000007
output = 0.000013
cache_read = 0.000001
fast_multiplier = 3
[models."claude-zz-1".long_context]
input = 0.000011
output = 0.000015
threshold = 1000
[models."claude-haiku-5-5"]
input = 0.1
output = 0.5
cache_write_5m = 0.125
cache_write_1h = 0.2
cache_read = 0.01
[models."claude-haiku-5-5".long_context]
input = 0.5
output = 2.5
[models."claude-sonnet-4-6"]
input = 0.000003
output = 0.000015
[models."claude-sonnet-4-6".long_context]
input = 0.000007
output = 0.000019
[models."claude-opus-4-6"]
input = 5
output = 25
[models."claude-sonnet-4-5"]
input = 3
output = 15
[models."gpt-odd"]
input = 0.333333
output = 1.000001
fast_multiplier = 5
"""


def pico(usd_per_million):
    """USD per million tokens (the file's text) -> pico-USD per token, exact."""
    return Fraction(usd_per_million) * 10**6


def rates(input, output, write_5m=None, write_1h=None, read=None):
    """A model's (or long-context band's) rates in pico-USD per token; cache rates left out are derived from input
    and rounded half up to a whole pico-USD a token."""
    i = pico(input)
    return dict(input=i, output=pico(output),
                w5=pico(write_5m) if write_5m else round_half_up(i * Fraction(5, 4)),
                w1=pico(write_1h) if write_1h else round_half_up(i * 2),
                read=pico(read) if read else round_half_up(i / 10))


# The file's models as the rules read them: thr is the long-context threshold, fast the fast multiplier,
# regional whether the 1.1 premium applies.
BOOK = {
    "odd-model": dict(std=rates("0.000003", "0.000001"), lc=None, thr=None, fast=None, regional=False),
    "odd-lc": dict(std=rates("0.000005", "0.000009"), lc=rates("0.000011", "0.000021"), thr=200_000, fast=None,
                   regional=False),
    "claude-zz-1": dict(std=rates("0.000007", "0.000013", read="0.000001"), lc=rates("0.000011", "0.000015"),
                        thr=1000, fast=3, regional=True),
    "claude-haiku-5-5": dict(std=rates("0.1", "0.5", "0.125", "0.2", "0.01"), lc=rates("0.5", "2.5"), thr=100_000,
                             fast=None, regional=True),
    "claude-sonnet-4-6": dict(std=rates("0.000003", "0.000015"), lc=rates("0.000007", "0.000019"), thr=200_000,
                              fast=None, regional=True),
    "claude-opus-4-6": dict(std=rates("5", "25"), lc=None, thr=None, fast=None, regional=True),
    "claude-sonnet-4-5": dict(std=rates("3", "15"), lc=None, thr=None, fast=None, regional=True),
    "gpt-odd": dict(std=rates("0.333333", "1.000001"), lc=None, thr=None, fast=5, regional=False),
}
SEARCH_FEE = Fraction("7.5") / 1000 * 10**12  # pico-USD per search


def expect(model, tokens, searches, tier, speed, geo):
    """(total, long_context) for one call: each kind's amount times the multipliers, rounded once, half up."""
    book = BOOK[model]
    prompt = sum(tokens[:4])  # input, cache read, cache writes
    long_context = book["lc"] is not None and prompt > book["thr"]
    r = book["lc"] if long_context else book["std"]
    multiplier = Fraction(1)
    if oracle.modifier(speed) == "fast" and book["fast"]:
        multiplier *= book["fast"]
    if book["regional"] and oracle.expected_regional(geo, None, None)[0]:
        multiplier *= oracle.REGIONAL_MULTIPLIER
    if oracle.modifier(tier) == "batch":
        multiplier /= 2
    amounts = zip(tokens, (r["input"], r["read"], r["w5"], r["w1"], r["output"]))
    total = sum(round_half_up(count * rate * multiplier) for count, rate in amounts) + searches * SEARCH_FEE
    return int(total), long_context


def random_call(rng):
    model = rng.choice(sorted(BOOK))
    threshold = BOOK[model]["thr"] or 200_000
    if rng.random() < 0.4:
        prompt = oracle.near_threshold_prompt(rng, rng.choice([threshold, 200_000, 100_000]))
        tokens = prompt + [rng.randint(0, 100_000)]
    else:
        tokens = [rng.randint(0, 10**6) if rng.random() < 0.7 else rng.randint(0, 9) for _ in range(5)]
    tier = rng.choice([None, oracle.spelled(rng, "batch")])
    speed = rng.choice([None, oracle.spelled(rng, "fast")])
    geo = rng.choice([None, oracle.spelled(rng, "us"), "ca", "europe-west1"])
    return model, tokens, rng.choice([0, 0, 1, 3]), tier, speed, geo


FIXED = [
    # README's example: 3 input tokens at 3 pico-USD through the batch API cost 5 pico-USD (4.5, half up)
    ("odd-model", [3, 0, 0, 0, 0], 0, "batch", None, None),
    # cache rates derived from 3 pico-USD, each rounded half up a token: 3.75 -> 4 (5m), 6 (1h), 0.3 -> 0 (read)
    ("odd-model", [0, 7, 7, 7, 0], 0, None, None, None),
    # exactly the threshold is standard, one more is long context (the model's own 100,000; 200,000 else; 1,000 set)
    ("claude-haiku-5-5", [100_000, 0, 0, 0, 1], 0, None, None, None),
    ("claude-haiku-5-5", [100_001, 0, 0, 0, 1], 0, None, None, None),
    ("claude-sonnet-4-6", [200_000, 0, 0, 0, 1], 0, None, None, None),
    ("claude-sonnet-4-6", [199_999, 1, 0, 1, 1], 0, None, None, None),
    ("odd-lc", [200_001, 0, 0, 0, 1], 0, None, None, None),
    ("claude-zz-1", [1000, 0, 0, 0, 1], 0, None, None, None),
    ("claude-zz-1", [1001, 0, 0, 0, 1], 0, " Batch", "FAST", "US"),
    # a file entry without a fast multiplier or long-context rates has none
    ("claude-opus-4-6", [1001, 0, 0, 0, 1], 0, None, "fast", None),
    ("claude-sonnet-4-5", [300_000, 0, 0, 0, 1], 2, "batch", None, "us"),
]


def main(argv):
    driver, seeds, n = argv[1], oracle.seed_range(argv[2]), int(argv[3])
    calls = list(FIXED)
    for seed in seeds:
        rng = random.Random(seed)
        calls += [random_call(rng) for _ in range(n)]
    cases = []
    for i, (model, tokens, searches, tier, speed, geo) in enumerate(calls):
        fields = {"model": model, "input_tokens": tokens[0], "cache_read_input_tokens": tokens[1],
                  "cache_creation.ephemeral_5m_input_tokens": tokens[2],
                  "cache_creation.ephemeral_1h_input_tokens": tokens[3], "output_tokens": tokens[4]}
        for name, value in (("server_tool_use.web_search_requests", searches), ("service_tier", tier),
                            ("speed", speed), ("inference_geo", geo)):
            if value:
                fields[name] = value
        cases.append(json.dumps(dict(id=i, shape="raw", create=fields)) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "prices.toml")
        path.write_text(PRICE_FILE)
        result = subprocess.run([driver, "--prices", str(path)], input="".join(cases), capture_output=True, text=True,
                                check=True)
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    disagreements = []
    covered = set()
    for call, output in zip(calls, outputs):
        model, tokens, searches, tier, speed, geo = call
        total, long_context = expect(*call)
        got = output["records"][0]["cost"] if len(output["records"]) == 1 else None
        if got is None or int(got["total"]) != total or got["long_context"] != long_context:
            disagreements.append(dict(call=call, want=dict(total=total, long_context=long_context), got=got))
        covered.add((model, long_context))
    gaps = [f"{m} long context" for m, b in BOOK.items() if b["lc"] and (m, True) not in covered]
    failed = disagreements or gaps or len(outputs) != len(calls)
    print(f"price file: {len(outputs)} calls compared (seeds {seeds.start}-{seeds.stop - 1}, {n} calls each, "
          f"{len(FIXED)} fixed), {len(disagreements)} disagreements{': FAIL' if failed else ''}")
    for d in disagreements[:oracle.SHOWN]:
        print("  " + json.dumps(d, default=str))
    if gaps:
        print("  never exercised: " + ", ".join(gaps))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

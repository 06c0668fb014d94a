#!/usr/bin/env python3
"""Money-path oracle for tokenmeter: LLM calls captured from tracing spans, `instrument` responses and SSE streams.

Random call cases (and a fixed list of edge cases, `probes`) are generated here with their exact expected figures,
computed with Python Fractions from the written rules only, never from src/pricing. The driver (src/main.rs) emits
each case into a meter and prints every CallRecord its sink receives; this file compares, per call, the six token
kinds, the cost of each kind, the web-search fee, the total, the flags (`long_context`, `batch`, `fast`,
`regional`) and `priced_as`, then the meter's own totals against the sum of its records.

The rules, and where they are written (README.md's sections; the project's design document, shared/DESIGN.md,
says the same in short under "Capture contract" and "Money"):

"Money: the price book"
  - the built-in price table (`PRICES`), in integer pico-USD; "Long context": when input + cache writes + cache
    reads > 200,000 tokens (100,000 on Haiku 5.5) on a model with long-context rates, all of the call's tokens are
    billed at those rates; exactly the threshold is standard;
  - "Cache writes": the 1-hour rate for 1h writes, the 5-minute rate for the rest;
  - "Batch" halves, "Fast mode" multiplies by the model's fast multiplier (standard rates on a model without one),
    "Regional inference" multiplies by 1.1 on Claude Sonnet 4.5 and later (Sonnet 4, Opus 4, Opus 4.1 and the
    Claude 3 models keep their prices); the rules stack, "each kind rounded once, half up, to the pico-USD";
  - `service_tier`, `speed` and `inference_geo` "are read without regard to case or surrounding spaces";
  - the geography: a recorded `inference_geo` wins unless empty or `not_available`, then a Bedrock inference
    profile in the model id (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.`, `ca.`, ...; `global.` is standard),
    then a Vertex AI host in `server.address`; "a geography is `us`, a Bedrock profile's prefix, or a region's
    name: words joined by `-` and a number at the end";
  - "Server-side compaction": `usage.iterations` compaction entries are added to the call (instrument), and the
    long-context rule reads the summed prompt;
  - "Model ids": dated, `-latest`, `-0`, Bedrock and ARNs, Vertex `@date` and resource names, gateway prefixes and
    same-price suffixes, `provider:model`, `[1m]`/`[200k]`, old/new name orders (Fable and Mythos too), case and
    dots resolve; other suffixes (`:fast`, `[fast]`, `@fast`, `:online`, `:free`) stay unknown;
  - "Unknown models" are unpriced (`cost = None`), their tokens kept;
  - "Web search": $10 per 1,000 searches, flat (no batch, fast, regional or long-context change); a count over
    100,000 is rejected.

"The capture contract, in brief"
  - the field-name table, each Anthropic name also under `usage.`; "the last value recorded wins" within a row;
    uncached input beats inclusive input; inclusive input less its cache parts; a write total larger than its
    5m/1h split counts the difference as 5-minute writes;
  - "Normalization": an inclusive input smaller than its cache parts is uncached; reasoning over output is added
    to output (at most 10^12); a write total without a split is a 5-minute write;
  - "Odd shapes": streamed usage is cumulative; a long-lived span splits calls on a new `gen_ai.response.id`; a
    modifier declared at creation holds for every call, one recorded later for that call only; impossible values
    (negative, over 10^12, ...) are rejected;
  - "Emitters whose fields mean something else": `CaptureRule` `input_is_uncached()` and `cache_writes_are_1h()`
    (a total with any part of its split keeps the split; an uncached field is still read).

"Instrumenting your client" (2. the `instrument` module): `record_response` and `StreamAccumulator` read the
Messages API's usage object and its SSE stream (usage from `message_start`, replaced by each cumulative
`message_delta`; "a `0` restating an input" count is ignored).

Usage:
  oracle.py check DRIVER SEEDS N    SEEDS like 1-8: N random cases per seed plus the probes; one summary line,
                                    exit 1 on any disagreement, a wrong meter total or a coverage gap
  oracle.py journal DRIVER SEED N   the same cases through a journal: records read back == records handed out
  oracle.py gen N SEED EXPECTED.jsonl > cases.jsonl; DRIVER < cases.jsonl > out.jsonl 2> err.txt;
  oracle.py cmp cases.jsonl EXPECTED.jsonl out.jsonl err.txt      (by hand: every disagreement in full)
"""
import json
import random
import re
import subprocess
import sys
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

MAX_TOKENS = 10**12  # "over 10^12 tokens" is an impossible value
MAX_SEARCHES = 100_000  # "A count over 100,000 in one call is rejected"
WEB_SEARCH_FEE = 10**10  # $10 per 1,000 searches = $0.01 = 10^10 pico-USD each
REGIONAL_MULTIPLIER = Fraction(11, 10)


def pico_per_token(*usd_per_million):
    """USD per million tokens -> pico-USD per token (x USD/M == x * 10^6 pico/token), exact."""
    return tuple(int(Fraction(str(x)) * 10**6) for x in usd_per_million)


# README "Money: the price book", built-in prices: input, output, write 5m, write 1h, read.
PRICES = {}


def _put(names, rates, long_context=None, threshold=200_000, fast=None):
    for name in names:
        PRICES[name] = dict(
            std=pico_per_token(*rates),
            lc=pico_per_token(*long_context) if long_context else None,
            thr=threshold,
            fast=fast,
        )


_put(["claude-3-haiku"], (0.25, 1.25, 0.30, 0.50, 0.03))
_put(["claude-3-opus", "claude-opus-4", "claude-opus-4-1"], (15, 75, 18.75, 30, 1.5))
_put(["claude-3-5-haiku"], (0.8, 4, 1, 1.6, 0.08))
_put(["claude-3-5-sonnet", "claude-3-7-sonnet"], (3, 15, 3.75, 6, 0.3))
_put(["claude-sonnet-4", "claude-sonnet-4-5"], (3, 15, 3.75, 6, 0.3), long_context=(6, 22.5, 7.5, 12, 0.6))
_put(["claude-sonnet-4-6"], (3, 15, 3.75, 6, 0.3))
_put(["claude-haiku-4-5"], (1, 5, 1.25, 2, 0.1))
_put(["claude-opus-4-5"], (5, 25, 6.25, 10, 0.5))
_put(["claude-opus-4-6", "claude-opus-4-7"], (5, 25, 6.25, 10, 0.5), fast=6)
_put(["claude-opus-4-8", "claude-opus-5"], (5, 25, 6.25, 10, 0.5), fast=2)
_put(["claude-sonnet-5"], (2, 10, 2.5, 4, 0.2))
_put(["claude-opus-5-5"], (4, 20, 5, 8, 0.2), fast=2)
_put(["claude-sonnet-5-5"], (2, 10, 2.5, 4, 0.1))
_put(["claude-haiku-5-5"], (0.1, 0.5, 0.125, 0.2, 0.01), long_context=(0.5, 2.5, 0.625, 1, 0.05), threshold=100_000)
_put(["claude-fable-5", "claude-mythos-5"], (10, 50, 12.5, 20, 1))
_put(["claude-fable-5-1", "claude-mythos-5-1"], (10, 50, 12.5, 20, 0.25))

# "Sonnet 4, Opus 4, Opus 4.1 and the Claude 3 models keep their prices" under regional inference.
NOT_REGIONAL = {
    "claude-3-haiku", "claude-3-opus", "claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet",
    "claude-sonnet-4", "claude-opus-4", "claude-opus-4-1",
}
# Bedrock inference-profile geographies: README's list (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.` ...) and `ca.`
BEDROCK_GEOS = ["us", "eu", "apac", "jp", "au", "us-gov", "ca"]
FAMILIES = ("sonnet", "opus", "haiku", "fable", "mythos")


def round_half_up(x: Fraction) -> int:
    return (x.numerator * 2 + x.denominator) // (x.denominator * 2)


def modifier(value):
    """`service_tier`, `speed` and `inference_geo` are read without regard to case or surrounding spaces."""
    return None if value is None else value.strip().lower()


def is_geography(value):
    """'a geography is `us`, a Bedrock profile's prefix, or a region's name: words joined by `-` and a number at the
    end, `europe-west1`, `us-east-1`; `gpt-4` is none'."""
    value = modifier(value)
    return value in BEDROCK_GEOS or re.fullmatch(r"[a-z]+(-[a-z]+)+-?[0-9]+", value) is not None


def vertex_region(host):
    """`us-east5-aiplatform.googleapis.com` is `us-east5`, `aiplatform.googleapis.com` is `global`; a port is
    ignored."""
    host = host.split(":")[0]
    if host == "aiplatform.googleapis.com":
        return "global"
    if host.endswith("-aiplatform.googleapis.com"):
        return host[: -len("-aiplatform.googleapis.com")]
    return None


def bedrock_geo(model_id):
    """`us.anthropic.claude-...` (an inference profile's ARN too): the profile's geography; `global.` is standard."""
    if model_id is None:
        return None
    tail = model_id.split("/")[-1] if model_id.startswith("arn:") else model_id
    for geo in BEDROCK_GEOS + ["global"]:
        if tail.lower().startswith(geo + ".anthropic."):
            return geo
    return None


def expected_regional(inference_geo, model_geo, host):
    """The call's geography: `inference_geo` unless it says nothing (empty, `not_available`), else the model id's
    Bedrock profile, else the Vertex host. Returns (regional, where it came from)."""
    inference_geo = modifier(inference_geo)
    if inference_geo not in (None, "", "not_available"):
        return inference_geo != "global" and is_geography(inference_geo), "geo"
    if model_geo is not None:
        return model_geo != "global", "model"
    if host is not None:
        region = vertex_region(host)
        if region is not None:
            return region != "global", "host"
    return False, "none"


def normalize_tokens(slots):
    """The capture contract's normalization. `slots` holds the final value of each row the call recorded
    (uncached, inclusive, read, w5, w1, wtotal, out, reasoning). Returns the six kinds
    [input, cache read, write 5m, write 1h, output, reasoning] and the number of corrections made."""
    # Impossible values (over 10^12 tokens) are rejected, never coerced: the slot stays empty.
    slots = {k: v for k, v in slots.items() if v is None or v <= MAX_TOKENS}
    read = slots.get("read", 0)
    split_5m, split_1h, total = slots.get("w5"), slots.get("w1"), slots.get("wtotal")
    if split_5m is not None or split_1h is not None:
        w5, w1 = split_5m or 0, split_1h or 0
        if total is not None and total > w5 + w1:
            w5 += total - (w5 + w1)  # "A cache-write total larger than its 5m/1h split counts the difference as 5m"
    else:
        w5, w1 = total or 0, 0  # "A cache-write total without a TTL split is a 5-minute write"
    corrections = 0
    if slots.get("uncached") is not None:
        uncached = slots["uncached"]  # "given both, the uncached count is the call's input"
    elif slots.get("inclusive") is not None:
        inclusive = slots["inclusive"]
        if inclusive < read + w5 + w1:
            uncached, corrections = inclusive, 1  # "smaller than its own cache parts ... taken as such"
        else:
            uncached = inclusive - read - w5 - w1
    else:
        uncached = 0
    out, reasoning = slots.get("out", 0), slots.get("reasoning", 0)
    if reasoning > out:  # "its output left reasoning out: the two are added (at most 10^12)"
        out, corrections = min(out + reasoning, MAX_TOKENS), corrections + 1
    return [uncached, read, w5, w1, out, reasoning], corrections


def price(canon, tokens, searches, tier, speed, regional):
    """The call's cost in pico-USD, each kind tokens x rate x multipliers rounded once, half up."""
    p = PRICES[canon]
    uncached, read, w5, w1, out = tokens[:5]
    long_context = p["lc"] is not None and uncached + read + w5 + w1 > p["thr"]
    rates = p["lc"] if long_context else p["std"]
    multiplier = Fraction(1)
    fast = modifier(speed) == "fast" and p["fast"] is not None
    if fast:
        multiplier *= p["fast"]
    regional = regional and canon not in NOT_REGIONAL
    if regional:
        multiplier *= REGIONAL_MULTIPLIER
    batch = modifier(tier) == "batch"
    if batch:
        multiplier /= 2
    kinds = [round_half_up(t * rate * multiplier) for t, rate in zip((uncached, out, w5, w1, read), rates)]
    web = searches * WEB_SEARCH_FEE
    return dict(total=sum(kinds) + web, input=kinds[0], output=kinds[1], cache_write_5m=kinds[2],
                cache_write_1h=kinds[3], cache_read=kinds[4], web_search=web, long_context=long_context, batch=batch,
                fast=fast, regional=regional, priced_as=canon)


# ----------------------------------------------------------------------------------------------------- model ids
def dotted(canon):
    """`claude-3-7-sonnet` -> `claude-3.7-sonnet`, as gateways write it."""
    return re.sub(r"(?<=\d)-(?=\d)", ".", canon)


def swapped(canon):
    """The other name order: `claude-sonnet-4-5` <-> `claude-4-5-sonnet`."""
    parts = canon.split("-")
    if parts[1] in FAMILIES:
        return "-".join(["claude"] + parts[2:] + [parts[1]])
    return "-".join(["claude", parts[-1]] + parts[1:-1])


def model_variant(rng, canon, allow_geo=True):
    """A spelling of `canon` as some client writes it: (id, canonical id or None if unknown, Bedrock geography, tag)."""
    date = "%04d%02d%02d" % (rng.randint(2024, 2026), rng.randint(1, 12), rng.randint(1, 28))
    parts = canon.split("-")
    k = rng.randrange(22)
    if k == 1:
        return f"{canon}-{date}", canon, None, "dated"
    if k == 2:
        return f"{canon}-latest", canon, None, "latest"
    if k == 3:
        if len(parts) == 3 and parts[1] in FAMILIES and parts[2].isdigit():
            return f"{canon}-0", canon, None, "-0"
        return f"{canon}-{date}", canon, None, "dated"
    if k in (4, 5):
        geo = rng.choice(BEDROCK_GEOS + ["global", None, None]) if allow_geo else None
        prefix = f"{geo}." if geo else ""
        version = rng.choice(["-v1:0", "-v2:0", "-v1"])
        dated = rng.choice([f"-{date}", ""])
        return f"{prefix}anthropic.{canon}{dated}{version}", canon, geo, "bedrock"
    if k in (6, 7):
        if k == 6 and allow_geo:
            geo = rng.choice(BEDROCK_GEOS + ["global"])
            arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{geo}.anthropic.{canon}-{date}-v1:0"
            return arn, canon, geo, "arn-profile"
        region = "us-east-1" if k == 6 else "eu-west-1"
        arn = f"arn:aws:bedrock:{region}::foundation-model/anthropic.{canon}-{date}-v1:0"
        return arn, canon, None, "arn-foundation"
    if k == 8:
        return f"{canon}@{date}", canon, None, "vertex@"
    if k == 9:
        resource = f"projects/my-proj/locations/us-east5/publishers/anthropic/models/{canon}@{date}"
        return resource, canon, None, "vertex-resource"
    if k == 10:
        return f"anthropic/{dotted(canon)}", canon, None, "gateway-dotted"
    if k == 11:
        suffix = rng.choice([":beta", ":thinking", ":nitro", ":floor", ":exacto"])
        return f"anthropic/{rng.choice([canon, dotted(canon)])}{suffix}", canon, None, "gateway" + suffix
    if k == 12:
        return f"anthropic:{canon}", canon, None, "provider:model"
    if k == 13:
        return f"{rng.choice([canon, canon + '-' + date])}{rng.choice(['[1m]', '[200k]'])}", canon, None, "[ctx]"
    if k == 14:
        return swapped(canon), canon, None, "swapped-order"
    if k == 15:
        return dotted(canon), canon, None, "dotted"
    if k == 16:
        return canon.upper() if rng.random() < 0.5 else canon.title(), canon, None, "case"
    if k == 17:  # "Any other suffix keeps the id unknown"
        suffix = rng.choice([":fast", "[fast]", "@fast", ":online", ":free"])
        return f"{rng.choice([canon, 'anthropic/' + canon])}{suffix}", None, None, "unknown-suffix" + suffix
    if k == 18:
        other = rng.choice(["gpt-4o", "gemini-2.5-pro", "claude-unknown-9", "amazon.titan-text-v1"])
        return other, None, None, "unknown"
    return canon, canon, None, "canonical"


# ---------------------------------------------------------------------------------------------------- generation
# The capture contract's field names, by row (README "The capture contract, in brief", the table).
SEMCONV_ROWS = {
    "inclusive": ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "prompt_tokens"],
    "out": ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "completion_tokens"],
    "read": ["gen_ai.usage.cache_read.input_tokens", "prompt_tokens_details.cached_tokens",
             "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.input_tokens.cached", "gen_ai.usage.cached_tokens"],
    "wtotal": ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
               "gen_ai.usage.input_tokens.cache_write"],
    "reasoning": ["gen_ai.usage.reasoning.output_tokens", "completion_tokens_details.reasoning_tokens",
                  "gen_ai.usage.reasoning_tokens"],
    "web": ["server_tool_use.web_search_requests"],
}
RAW_ROWS = {
    "uncached": ["input_tokens", "usage.input_tokens"],
    "inclusive": ["gen_ai.usage.input_tokens"],
    "out": ["output_tokens", "usage.output_tokens"],
    "read": ["cache_read_input_tokens", "usage.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"],
    "wtotal": ["cache_creation_input_tokens", "usage.cache_creation_input_tokens",
               "gen_ai.usage.cache_creation.input_tokens"],
    "w5": ["cache_creation.ephemeral_5m_input_tokens", "usage.cache_creation.ephemeral_5m_input_tokens"],
    "w1": ["cache_creation.ephemeral_1h_input_tokens", "usage.cache_creation.ephemeral_1h_input_tokens"],
    "reasoning": ["output_tokens_details.thinking_tokens"],
    "web": ["server_tool_use.web_search_requests", "usage.server_tool_use.web_search_requests"],
}


def tok(rng):
    """A token count: often small, sometimes past the long-context thresholds, rarely huge."""
    k = rng.random()
    if k < 0.15:
        return 0
    if k < 0.55:
        return rng.randint(1, 5000)
    if k < 0.85:
        return rng.randint(5000, 120_000)
    if k < 0.97:
        return rng.randint(120_000, 400_000)
    return rng.randint(400_000, MAX_TOKENS)


def near_threshold_prompt(rng, threshold):
    """A prompt (uncached, read, w5, w1) whose sum is at or near `threshold`."""
    total = max(0, threshold + rng.choice([-2, -1, 0, 0, 1, 1, 2, rng.randint(-5000, 5000)]))
    cuts = sorted(rng.randint(0, total) for _ in range(3))
    parts = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], total - cuts[2]]
    rng.shuffle(parts)
    if rng.random() < 0.5:  # often only some kinds
        for i in range(1, 4):
            if rng.random() < 0.4:
                parts[0] += parts[i]
                parts[i] = 0
    return parts


def gen_usage(rng, canon):
    """A call's logical usage: [uncached, read, w5, w1, out, reasoning, web searches]."""
    p = PRICES.get(canon)
    if p and p["lc"] and rng.random() < 0.3:
        uncached, read, w5, w1 = near_threshold_prompt(rng, p["thr"])
    elif rng.random() < 0.12:
        uncached, read, w5, w1 = near_threshold_prompt(rng, rng.choice([100_000, 200_000]))
    else:
        uncached = tok(rng)
        read = tok(rng) if rng.random() < 0.6 else 0
        w5 = tok(rng) if rng.random() < 0.4 else 0
        w1 = tok(rng) if rng.random() < 0.3 else 0
    out = tok(rng)
    reasoning = 0
    if rng.random() < 0.3:
        if rng.random() < 0.7 or out == 0:
            reasoning = rng.randint(0, out)
        else:
            reasoning = rng.randint(out, out + 10000)  # more reasoning than output: added to it
    web = rng.choice([0, 0, 0, 0, 1, 3, 17, MAX_SEARCHES]) if rng.random() < 0.3 else 0
    return [min(v, MAX_TOKENS) for v in (uncached, read, w5, w1, out, reasoning)] + [web]


def spelled(rng, value):
    """A modifier value as some client may write it: case and surrounding spaces do not matter."""
    k = rng.random()
    if k < 0.7 or value == "":
        return value
    if k < 0.8:
        return value.upper()
    if k < 0.9:
        return value.title()
    return rng.choice([" ", ""]) + value + rng.choice([" ", "  ", ""])


def tier_speed_geo(rng, tiers=("batch", "standard"), geos=("us", "global", "", "not_available", "ca")):
    """Random `service_tier`, `speed` and `inference_geo` values (some absent), in random spellings."""
    mods = {}
    if rng.random() < 0.4:
        mods["service_tier"] = spelled(rng, rng.choice(tiers))
    if rng.random() < 0.4:
        mods["speed"] = spelled(rng, rng.choice(["fast", "standard"]))
    if rng.random() < 0.3:
        mods["inference_geo"] = spelled(rng, rng.choice(geos))
    return mods


def span_modifiers(rng, bedrock):
    """Modifiers of a call span: tier, speed, geography and, unless the model id names a Bedrock profile, a host."""
    mods = tier_speed_geo(rng, tiers=("batch", "batch", "batch", "standard", "priority"),
                          geos=("us", "us", "global", "", "not_available", "eu", "ca", "europe-west1", "us-east5",
                                "us-east-1", "apac"))
    if not bedrock and rng.random() < 0.25:
        mods["server.address"] = rng.choice(["us-east5-aiplatform.googleapis.com", "aiplatform.googleapis.com",
                                             "europe-west1-aiplatform.googleapis.com:443",
                                             "aiplatform.googleapis.com:443", "api.anthropic.com",
                                             "bedrock-runtime.us-east-1.amazonaws.com"])
    return mods


def gen_models(rng):
    """Model fields of a span: one of the three names, or a response model beside a request model."""
    base = rng.choice(sorted(PRICES))
    model_id, canon, geo, tag = model_variant(rng, base)
    where = rng.choice(["gen_ai.response.model", "gen_ai.request.model", "model", "both"])
    fields = {}
    if where == "both":
        # the request model in another spelling of the same model, without a geography of its own
        request_id, request_canon, _, _ = model_variant(rng, base, allow_geo=False)
        fields["gen_ai.response.model"] = model_id
        fields["gen_ai.request.model"] = request_id if request_canon is not None else base
    else:
        fields[where] = model_id
    return fields, canon, geo, tag, base


def call(canon, slots, web=0, tier=None, speed=None, regional=(False, "none"), tag="probe", parts=None):
    """One expected call."""
    expected = dict(canon=canon, web=web, tier=tier, speed=speed, regional=regional, tag=tag)
    if parts is not None:
        expected["parts"] = parts
    else:
        expected["slots"] = slots
    return expected


def assign(rng, rows, logical, shape):
    """Spread logical values over field names of `rows`. Returns {name: value} and the slots the oracle reads."""
    uncached, read, w5, w1, out, reasoning, web = logical
    names, slots = {}, {}

    def put(row, value):
        names[rng.choice(rows[row])] = value
        slots[row] = value

    if shape == "raw" and rng.random() < 0.75:
        put("uncached", uncached)
        if rng.random() < 0.15:  # an inclusive count beside it is not read
            names["gen_ai.usage.input_tokens"] = rng.randint(0, 10**6)
    else:
        if rng.random() < 0.1 and read + w5 + w1 > 0:
            inclusive = rng.randint(0, read + w5 + w1 - 1)  # smaller than its cache parts: taken as uncached
        else:
            inclusive = uncached + read + w5 + w1
        put("inclusive", inclusive)
    if read or rng.random() < 0.3:
        put("read", read)
    if shape == "raw" and rng.random() < 0.6:
        if w5 or rng.random() < 0.5:
            put("w5", w5)
        if w1 or rng.random() < 0.5:
            put("w1", w1)
        if rng.random() < 0.5:
            put("wtotal", w5 + w1 + rng.choice([0, 0, rng.randint(1, 5000)]))
    elif w5 + w1 or rng.random() < 0.3:
        put("wtotal", w5 + w1)
    put("out", out)
    if reasoning or rng.random() < 0.2:
        put("reasoning", reasoning)
    if web:
        put("web", web)
    return names, slots


def split_create_record(rng, fields, value_kinds=True):
    """Give each field at creation or record it later (in random order, integers as u64 or i64)."""
    create, record = {}, []
    for name, value in fields.items():
        if rng.random() < 0.5:
            create[name] = value
        else:
            kind = [rng.choice(["u", "i"])] if value_kinds and isinstance(value, int) else []
            record.append([name, value] + kind)
    rng.shuffle(record)
    return create, record


def gen_span(rng, shape):
    """A call span with semconv or Anthropic raw names, values given at creation or recorded later."""
    model_fields, canon, geo, tag, base = gen_models(rng)
    mods = span_modifiers(rng, geo is not None)
    names, slots = assign(rng, SEMCONV_ROWS if shape == "semconv" else RAW_ROWS, gen_usage(rng, base), shape)
    fields = {**model_fields, **mods, **names}
    if shape == "raw":
        for key in ("service_tier", "speed", "inference_geo"):
            if key in fields and rng.random() < 0.3:
                fields["usage." + key] = fields.pop(key)
    if shape == "semconv" and rng.random() < 0.3:
        fields["gen_ai.provider.name"] = "anthropic"
    create, record = split_create_record(rng, fields)
    regional = expected_regional(mods.get("inference_geo"), geo, mods.get("server.address"))
    expected = call(canon, slots, slots.get("web", 0), mods.get("service_tier"), mods.get("speed"), regional, tag)
    return dict(shape=shape, create=create, record=record), [expected]


def gen_stream(rng):
    """Streamed usage: cumulative events inside the call span, the last value of each field wins."""
    model_fields, canon, geo, tag, base = gen_models(rng)
    mods = span_modifiers(rng, geo is not None)
    uncached, read, w5, w1, out, _, web = gen_usage(rng, base)
    first = {"input_tokens": uncached, "cache_read_input_tokens": read, "output_tokens": rng.randint(0, 5)}
    slots = dict(uncached=uncached, read=read, out=out)
    if rng.random() < 0.5:
        first["cache_creation.ephemeral_5m_input_tokens"] = w5
        first["cache_creation.ephemeral_1h_input_tokens"] = w1
        slots.update(w5=w5, w1=w1)
    else:
        first["cache_creation_input_tokens"] = w5 + w1
        slots["wtotal"] = w5 + w1
    events = [first] + [{"output_tokens": rng.randint(0, out)} for _ in range(rng.randint(0, 3))]
    last = {"output_tokens": out}
    if web:
        last["server_tool_use.web_search_requests"] = web
    events.append(last)
    regional = expected_regional(mods.get("inference_geo"), geo, mods.get("server.address"))
    expected = call(canon, slots, web, mods.get("service_tier"), mods.get("speed"), regional, tag + "/stream")
    return dict(shape="raw", create={**model_fields, **mods}, events=events), [expected]


def gen_shared(rng, i):
    """A long-lived span carrying 2-4 calls, each begun by its own `gen_ai.response.id`."""
    base = rng.choice(sorted(PRICES))
    request_id, canon, geo, tag = model_variant(rng, base)
    if canon is None:
        request_id, canon, geo, tag = base, base, None, "canonical"
    span_mods = span_modifiers(rng, geo is not None)
    if rng.random() < 0.5:
        span_mods.pop("inference_geo", None)
    # the request model and the host describe the span: recorded later (in the first call) they hold for later calls
    late_request = rng.random() < 0.3
    late_host = "server.address" in span_mods and rng.random() < 0.5
    host = span_mods.pop("server.address", None) if late_host else None
    create = {**({} if late_request else {"gen_ai.request.model": request_id}), **span_mods}
    calls, expected = [], []
    for k in range(rng.randint(2, 4)):
        uncached, read, w5, w1, out, _, web = gen_usage(rng, canon)
        record = [["gen_ai.response.id", f"msg_{i}_{k}"]]
        if k == 0 and late_request:
            record.append(["gen_ai.request.model", request_id])
        if k == 0 and late_host:
            record.append(["server.address", host])
        # a response model recorded later belongs to its call only
        response_model = None
        if rng.random() < 0.2:
            response_model = rng.choice(sorted(PRICES))
            record.append(["gen_ai.response.model", response_model])
        call_mods = {}
        for key, values in (("service_tier", ["batch", "standard"]), ("speed", ["fast", "standard"]),
                            ("inference_geo", ["us", "global", "eu", "ca"])):
            if rng.random() < 0.25:
                call_mods[key] = spelled(rng, rng.choice(values))
        record += [[key, value] for key, value in call_mods.items()]
        record += [["input_tokens", uncached], ["cache_read_input_tokens", read],
                   ["cache_creation.ephemeral_5m_input_tokens", w5],
                   ["cache_creation.ephemeral_1h_input_tokens", w1], ["output_tokens", out]]
        if web:
            record.append(["server_tool_use.web_search_requests", web])
        calls.append(record)
        # "one declared at creation holds for every call"; one recorded later belongs to its call
        effective = {**span_mods, **call_mods}
        if host:
            effective["server.address"] = host
        call_tag = (tag + "/shared" + ("-late-req" if late_request else "") + ("-late-host" if late_host else "")
                    + ("-respmodel" if response_model else ""))
        expected.append(call(response_model or canon, dict(uncached=uncached, read=read, w5=w5, w1=w1, out=out), web,
                             effective.get("service_tier"), effective.get("speed"),
                             expected_regional(effective.get("inference_geo"), geo, effective.get("server.address")),
                             call_tag))
    return dict(shape="raw", create=create, calls=calls), expected


def compaction_iterations(rng, message_usage):
    """`usage.iterations`: 1-2 compaction entries and the message's own, shuffled; returns them and their slots."""
    iterations, parts = [], []
    for _ in range(rng.randint(1, 2)):
        entry = dict(type="compaction", input_tokens=tok(rng) % 300_000, output_tokens=tok(rng) % 10_000)
        part = dict(uncached=entry["input_tokens"], out=entry["output_tokens"])
        if rng.random() < 0.5:
            entry["cache_read_input_tokens"] = part["read"] = rng.randint(0, 20000)
        k = rng.random()
        if k < 0.35:
            w5, w1 = rng.randint(0, 5000), rng.randint(0, 5000)
            entry["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
            part.update(w5=w5, w1=w1)
        elif k < 0.6:
            entry["cache_creation_input_tokens"] = part["wtotal"] = rng.randint(0, 5000)
        elif k < 0.8:
            w5, w1 = rng.randint(0, 5000), rng.randint(0, 5000)
            total = w5 + w1 + rng.choice([0, rng.randint(1, 99)])
            entry["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
            entry["cache_creation_input_tokens"] = total
            part.update(w5=w5, w1=w1, wtotal=total)
        iterations.append(entry)
        parts.append(part)
    iterations.append(dict(type="message", **message_usage))
    rng.shuffle(iterations)
    return iterations, parts


def gen_response(rng, i):
    """`instrument::record_response` with a Messages API response, compaction iterations added to the call."""
    base = rng.choice(sorted(PRICES))
    request_id, canon, geo, tag = model_variant(rng, base)
    if canon is None:
        request_id, canon, geo, tag = base, base, None, "canonical"
    uncached, read, w5, w1, out, _, web = gen_usage(rng, canon)
    usage = {"input_tokens": uncached, "output_tokens": out, "cache_read_input_tokens": read}
    top = dict(uncached=uncached, read=read, out=out)
    if rng.random() < 0.5:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
        top.update(w5=w5, w1=w1)
        if rng.random() < 0.5:
            usage["cache_creation_input_tokens"] = top["wtotal"] = w5 + w1
    else:
        usage["cache_creation_input_tokens"] = top["wtotal"] = w5 + w1
    if web:
        usage["server_tool_use"] = {"web_search_requests": web}
    mods = tier_speed_geo(rng, tiers=("batch", "standard", "priority"))
    usage.update(mods)
    parts = [top]
    if rng.random() < 0.5:
        message = dict(input_tokens=uncached, output_tokens=out, cache_read_input_tokens=read)
        usage["iterations"], compactions = compaction_iterations(rng, message)
        parts += compactions
    response = {"id": f"msg_{i}", "type": "message", "usage": usage}
    response_model = rng.choice([request_id, base, None])
    if response_model:
        response["model"] = response_model
    expected = call(canon, None, web, mods.get("service_tier"), mods.get("speed"),
                    expected_regional(mods.get("inference_geo"), geo, None),
                    tag + ("/compaction" if len(parts) > 1 else "/response"), parts=parts)
    return dict(shape="response", request_model=request_id, response=response), [expected]


RIG_TARGETS = ["rig", "rig::providers::anthropic", "rigging::x", "genai::chat", "genaix", "app::llm"]


def gen_rig(rng):
    """The driver's capture rules: target("rig").provider("anthropic").input_is_uncached() and
    target("genai").cache_writes_are_1h(). A rule names a target "and those under it", and a provider with ASCII
    case ignored."""
    target = rng.choice(RIG_TARGETS)
    base = rng.choice(sorted(PRICES))
    uncached, read, w5, w1, out, _, _ = gen_usage(rng, base)
    fields = {rng.choice(["gen_ai.request.model", "gen_ai.response.model"]): base}
    provider = rng.choice([None, "anthropic", "Anthropic", "ANTHROPIC", "openai"])
    if provider:
        fields[rng.choice(["gen_ai.provider.name", "gen_ai.system"])] = provider
    uncached_rule = (target == "rig" or target.startswith("rig::")) and (provider or "").lower() == "anthropic"
    one_hour_rule = target == "genai" or target.startswith("genai::")
    slots = {}
    if rng.random() < 0.15:  # "A call with an uncached field (`input_tokens`) keeps reading it"
        fields["input_tokens"] = slots["uncached"] = uncached
        fields["gen_ai.usage.input_tokens"] = uncached + read + w5 + w1
    else:  # rig >= 0.34's Anthropic provider records the uncached count under the inclusive name
        inclusive = uncached + (0 if uncached_rule else read + w5 + w1)
        fields["gen_ai.usage.input_tokens"] = inclusive
        slots["uncached" if uncached_rule else "inclusive"] = inclusive
    if read or rng.random() < 0.5:
        fields[rng.choice(["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cached_tokens"])] = read
        slots["read"] = read
    k = rng.random()
    if k < 0.5:  # one write total, no split: one-hour writes under the genai rule
        fields["gen_ai.usage.cache_creation.input_tokens"] = w5 + w1
        slots["w1" if one_hour_rule else "wtotal"] = w5 + w1
    elif k < 0.8:  # "a total with any part of its split keeps the split"
        fields["gen_ai.usage.cache_creation.input_tokens"] = w5 + w1
        fields["cache_creation.ephemeral_1h_input_tokens"] = w1
        slots.update(wtotal=w5 + w1, w1=w1)
    else:
        fields["cache_creation.ephemeral_5m_input_tokens"] = w5
        fields["cache_creation.ephemeral_1h_input_tokens"] = w1
        slots.update(w5=w5, w1=w1)
    fields["gen_ai.usage.output_tokens"] = slots["out"] = out
    tier = rng.choice([None, spelled(rng, "batch")])
    if tier:
        fields["service_tier"] = tier
    create, record = split_create_record(rng, fields, value_kinds=False)
    tag = f"rig:{target}:{'A' if uncached_rule else ''}{'B' if one_hour_rule else ''}"
    return dict(shape="rig", target=target, create=create, record=record), [call(base, slots, 0, tier, tag=tag)]


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def gen_sse(rng, i):
    """A Messages API stream through `instrument::StreamAccumulator`, fed in chunks of random size."""
    base = rng.choice(sorted(PRICES))
    request_id, canon, geo, tag = model_variant(rng, base)
    if canon is None:
        request_id, canon, geo, tag = base, base, None, "canonical"
    uncached, read, w5, w1, out, _, web = gen_usage(rng, canon)
    start_usage = {"input_tokens": uncached, "cache_read_input_tokens": read, "output_tokens": rng.randint(0, 3),
                   "cache_creation_input_tokens": w5 + w1}
    top = dict(uncached=uncached, read=read, wtotal=w5 + w1)
    if rng.random() < 0.5:
        start_usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
        top.update(w5=w5, w1=w1)
    gateway_zero_input = rng.random() < 0.15
    if gateway_zero_input:  # a gateway whose message_start says 0 and whose final delta carries the input
        start_usage["input_tokens"] = 0
    mods = tier_speed_geo(rng)
    start_usage.update(mods)
    message = {"id": f"msg_{i}", "type": "message", "role": "assistant", "model": rng.choice([request_id, base]),
               "usage": start_usage}
    body = sse("message_start", {"type": "message_start", "message": message})
    body += sse("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
    body += sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "hi"}})
    for _ in range(rng.randint(0, 2)):
        body += sse("message_delta", {"type": "message_delta", "delta": {},
                                      "usage": {"output_tokens": rng.randint(0, out)}})
    final = {"output_tokens": out}
    top["out"] = out
    k = rng.random()
    if gateway_zero_input:
        final["input_tokens"] = uncached
    elif k < 0.3:
        final.update(input_tokens=0, cache_read_input_tokens=0)  # a 0 restating a count is ignored
    elif k < 0.5:
        final.update(input_tokens=uncached, cache_read_input_tokens=read)
    elif k < 0.6:
        final["input_tokens"] = top["uncached"] = rng.randint(1, 300000)  # cumulative: a later value replaces
    if web:
        final["server_tool_use"] = {"web_search_requests": web}
    parts = [top]
    if rng.random() < 0.4:
        iterations = []
        for _ in range(rng.randint(1, 2)):
            entry = dict(type="compaction", input_tokens=rng.randint(0, 250000), output_tokens=rng.randint(0, 8000))
            iterations.append(entry)
            parts.append(dict(uncached=entry["input_tokens"], out=entry["output_tokens"]))
        iterations.append(dict(type="message", input_tokens=uncached, output_tokens=out))
        final["iterations"] = iterations
    body += sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final})
    body += sse("message_stop", {"type": "message_stop"})
    chunk = rng.choice([1 << 20, 7, 64, 1000])
    expected = call(canon, None, web, mods.get("service_tier"), mods.get("speed"),
                    expected_regional(mods.get("inference_geo"), geo, None),
                    tag + "/sse" + ("-compaction" if len(parts) > 1 else ""), parts=parts)
    return dict(shape="sse", request_model=request_id, body=body, chunk=chunk), [expected]


SHAPES = {"semconv": 26, "raw": 28, "stream": 8, "shared": 8, "response": 14, "rig": 8, "sse": 8}


def gen_case(rng, i):
    """One random case: (the driver's input, the expected calls, the shape's name)."""
    shape = rng.choices(list(SHAPES), list(SHAPES.values()))[0]
    if shape in ("semconv", "raw"):
        case, expected = gen_span(rng, shape)
    elif shape == "stream":
        case, expected = gen_stream(rng)
    elif shape == "shared":
        case, expected = gen_shared(rng, i)
    elif shape == "response":
        case, expected = gen_response(rng, i)
    elif shape == "rig":
        case, expected = gen_rig(rng)
    else:
        case, expected = gen_sse(rng, i)
    return case, expected, shape


# --------------------------------------------------------------------------------------------------- fixed probes
def probes():
    """Edge cases, each with the figures the written rules give: (case, expected calls)."""
    out = []

    def span(fields, canon, slots, record=None, **kw):
        case = dict(shape="raw", create=fields)
        if record:
            case["record"] = record
        out.append((case, [call(canon, slots, **kw)]))

    # README "Long context": the worked examples, then exactly the threshold and one either side
    span({"model": "claude-sonnet-4-5", "input_tokens": 100000, "cache_read_input_tokens": 150000,
          "output_tokens": 1000}, "claude-sonnet-4-5", dict(uncached=100000, read=150000, out=1000), tag="readme-lc-1")
    span({"model": "claude-sonnet-4-5", "input_tokens": 300000, "output_tokens": 1000},
         "claude-sonnet-4-5", dict(uncached=300000, out=1000), tag="readme-lc-2")
    for model, threshold in (("claude-sonnet-4", 200000), ("claude-sonnet-4-5", 200000), ("claude-haiku-5-5", 100000)):
        for d in (-1, 0, 1):
            span({"model": model, "input_tokens": threshold + d - 10, "cache_creation.ephemeral_1h_input_tokens": 10,
                  "output_tokens": 7}, model, dict(uncached=threshold + d - 10, w1=10, out=7), tag=f"thr{d:+d}")
    # "an Opus 4.6 call in fast mode, in the US only, through the batch API is billed 6 x 1.1 / 2"
    span({"model": "claude-opus-4-6", "input_tokens": 1234567, "output_tokens": 7654321, "speed": "fast",
          "inference_geo": "us", "service_tier": "batch"}, "claude-opus-4-6", dict(uncached=1234567, out=7654321),
         tier="batch", speed="fast", regional=(True, "geo"), tag="readme-stack")
    # a recorded inference_geo over a `us.` profile: its own word, in any case, unless it says nothing
    for geo in ["US", " us ", "Eu", "ca", "CA", "us-gov", "me-central1", "asia-northeast1", "Europe-West1 ",
                "global", "GLOBAL", "gpt-4", "mars", "eu-1", "", "  ", "not_available", " Not_Available"]:
        span({"model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "input_tokens": 1000, "output_tokens": 10,
              "inference_geo": geo}, "claude-sonnet-4-5", dict(uncached=1000, out=10),
             regional=expected_regional(geo, "us", None), tag=f"geo-override:{geo!r}")
    for geo in ("ca", "jp", "au", "us-gov", "global"):  # Bedrock profiles, one geography each; `global.` standard
        span({"model": f"{geo}.anthropic.claude-sonnet-4-6", "input_tokens": 1000, "output_tokens": 10},
             "claude-sonnet-4-6", dict(uncached=1000, out=10), regional=(geo != "global", "model"),
             tag=f"profile:{geo}")
    for host in ["us-east5-aiplatform.googleapis.com", "aiplatform.googleapis.com:443",
                 "bedrock-runtime.us-east-1.amazonaws.com", "aiplatform.us.rep.googleapis.com",
                 "europe-west4-aiplatform.googleapis.com:8443"]:
        span({"model": "claude-sonnet-4-5@20250929", "input_tokens": 1000, "output_tokens": 10,
              "server.address": host}, "claude-sonnet-4-5", dict(uncached=1000, out=10),
             regional=expected_regional(None, None, host), tag=f"host:{host}")
    # inference_geo = us on models before Sonnet 4.5 keeps their prices
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4", "claude-opus-4-1"):
        span({"model": model, "input_tokens": 1000, "output_tokens": 10, "inference_geo": "us"}, model,
             dict(uncached=1000, out=10), regional=(True, "geo"), tag="us-geo")
    # fast mode on a model without a multiplier: standard rates
    span({"model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 10, "speed": "fast"},
         "claude-sonnet-4-5", dict(uncached=1000, out=10), speed="fast", tag="fast-no-mult")
    # service tier and speed, in any case and with surrounding spaces
    for tier in ("Batch", "BATCH", "batch ", " batch", "  Batch  "):
        span({"model": "claude-haiku-4-5", "input_tokens": 1000, "output_tokens": 10, "service_tier": tier},
             "claude-haiku-4-5", dict(uncached=1000, out=10), tier=tier, tag=f"tier:{tier!r}")
    for speed in ("Fast", "FAST", " fast "):
        span({"model": "claude-opus-4-6", "input_tokens": 1000, "output_tokens": 10, "speed": speed},
             "claude-opus-4-6", dict(uncached=1000, out=10), speed=speed, tag=f"speed:{speed!r}")
    # the response model is preferred; the request model prices a call whose response model is not given
    out.append((dict(shape="raw", create={"gen_ai.response.model": "claude-sonnet-4-5-20250929",
                                          "gen_ai.request.model": "gpt-4o", "input_tokens": 1000, "output_tokens": 1}),
                [call("claude-sonnet-4-5", dict(uncached=1000, out=1), tag="resp-known-req-unknown")]))
    out.append((dict(shape="raw", create={"gen_ai.response.model": "gpt-4o", "gen_ai.request.model": "claude-haiku-4-5",
                                          "input_tokens": 1000, "output_tokens": 1}),
                [call(None, dict(uncached=1000, out=1), tag="resp-unknown-req-known")]))
    # a Bedrock profile in the request model with a plain response model: the request's geography counts
    out.append((dict(shape="raw", create={"gen_ai.response.model": "claude-sonnet-4-5-20250929",
                                          "gen_ai.request.model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                          "input_tokens": 1000, "output_tokens": 1}),
                [call("claude-sonnet-4-5", dict(uncached=1000, out=1), regional=(True, "model"),
                      tag="req-profile-resp-plain")]))
    # README "Model ids": documented spellings, Fable and Mythos in the old order and with `-0`, and unknown suffixes
    for model_id, canon in [
        ("claude-sonnet-4-0", "claude-sonnet-4"), ("claude-opus-4-0", "claude-opus-4"),
        ("claude-5-fable", "claude-fable-5"), ("claude-5-1-mythos", "claude-mythos-5-1"),
        ("claude-fable-5-0", "claude-fable-5"), ("claude-mythos-5-0", "claude-mythos-5"),
        ("claude-5-1-fable-20260901", "claude-fable-5-1"), ("us.anthropic.claude-5-mythos-v1:0", "claude-mythos-5"),
        ("claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"), ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"), ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-opus-4-6:fast", None), ("claude-opus-4-6[fast]", None), ("claude-opus-4-6@fast", None),
        ("anthropic/claude-sonnet-4.5:online", None), ("anthropic/claude-sonnet-4.5:free", None),
        ("claude-opus-4-1@2025080", None),
    ]:
        regional = (bedrock_geo(model_id) is not None, "model")
        span({"model": model_id, "input_tokens": 1000, "output_tokens": 10}, canon, dict(uncached=1000, out=10),
             regional=regional, tag=f"id:{model_id}")
    # a cache-write total smaller than its split: the split is read
    span({"model": "claude-haiku-4-5", "input_tokens": 10, "cache_creation_input_tokens": 100,
          "cache_creation.ephemeral_5m_input_tokens": 80, "cache_creation.ephemeral_1h_input_tokens": 70,
          "output_tokens": 1}, "claude-haiku-4-5", dict(uncached=10, wtotal=100, w5=80, w1=70, out=1),
         tag="wtotal<split")
    # an inclusive input equal to its cache parts: uncached 0, no correction
    span({"model": "claude-haiku-4-5", "gen_ai.usage.input_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 200,
          "gen_ai.usage.cache_creation.input_tokens": 100, "output_tokens": 1}, "claude-haiku-4-5",
         dict(inclusive=300, read=200, wtotal=100, out=1), tag="inclusive==parts")
    # the largest counts accepted, every multiplier
    span({"model": "claude-opus-4-6", "input_tokens": MAX_TOKENS, "cache_read_input_tokens": MAX_TOKENS,
          "cache_creation.ephemeral_1h_input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS,
          "output_tokens_details.thinking_tokens": MAX_TOKENS - 1, "speed": "fast", "inference_geo": "us",
          "server_tool_use.web_search_requests": MAX_SEARCHES},
         "claude-opus-4-6", dict(uncached=MAX_TOKENS, read=MAX_TOKENS, w1=MAX_TOKENS, out=MAX_TOKENS,
                                 reasoning=MAX_TOKENS - 1),
         speed="fast", regional=(True, "geo"), web=MAX_SEARCHES, tag="huge")
    # reasoning over output at the cap: added, at most 10^12
    span({"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": MAX_TOKENS - 5,
          "output_tokens_details.thinking_tokens": MAX_TOKENS}, "claude-haiku-4-5",
         dict(uncached=1, out=MAX_TOKENS - 5, reasoning=MAX_TOKENS), tag="reasoning-cap")
    # web searches: 100,000 is the cap; one more is rejected (no fee)
    span({"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 1,
          "server_tool_use.web_search_requests": MAX_SEARCHES + 1},
         "claude-haiku-4-5", dict(uncached=1, out=1), web=0, tag="web:over-cap")
    # values recorded later: text digits, a whole float; a negative is rejected
    haiku = {"model": "claude-haiku-4-5"}
    span(haiku, "claude-haiku-4-5", dict(uncached=1234, out=10),
         record=[["input_tokens", 1234, "s"], ["output_tokens", 10]], tag="value:str-digits")
    span(haiku, "claude-haiku-4-5", dict(uncached=1234, out=10),
         record=[["input_tokens", 1234, "f"], ["output_tokens", 10]], tag="value:whole-float")
    span(haiku, "claude-haiku-4-5", dict(out=10),
         record=[["input_tokens", 1234, "neg"], ["output_tokens", 10]], tag="value:negative")
    # one row, two names: "the last value recorded wins"; a value recorded later replaces the one at creation
    span(haiku, "claude-haiku-4-5", dict(uncached=3, out=9),
         record=[["output_tokens", 5], ["usage.output_tokens", 9], ["input_tokens", 3]], tag="row:last-wins")
    span(haiku, "claude-haiku-4-5", dict(uncached=3, out=5),
         record=[["usage.output_tokens", 9], ["output_tokens", 5], ["input_tokens", 3]], tag="row:last-wins-2")
    span(haiku, "claude-haiku-4-5", dict(uncached=3, wtotal=40, out=1),
         record=[["cache_creation_input_tokens", 100], ["gen_ai.usage.cache_creation.input_tokens", 40],
                 ["input_tokens", 3], ["output_tokens", 1]], tag="row:last-wins-3")
    span({"model": "claude-haiku-4-5", "input_tokens": 50, "output_tokens": 1}, "claude-haiku-4-5",
         dict(uncached=70, out=1), record=[["input_tokens", 70]], tag="row:create-then-record")
    # compaction: "The long-context rule then reads the call's summed prompt" (Haiku 5.5's 100,000)
    for extra in (0, 1):
        usage = {"input_tokens": 60000, "output_tokens": 10, "cache_read_input_tokens": 0,
                 "iterations": [{"type": "compaction", "input_tokens": 39000 + extra, "output_tokens": 5,
                                 "cache_creation_input_tokens": 1000},
                                {"type": "message", "input_tokens": 60000, "output_tokens": 10}]}
        parts = [dict(uncached=60000, out=10, read=0), dict(uncached=39000 + extra, out=5, wtotal=1000)]
        out.append((dict(shape="response", request_model="claude-haiku-5-5",
                         response={"id": "m", "type": "message", "model": "claude-haiku-5-5", "usage": usage}),
                    [call("claude-haiku-5-5", None, tag=f"compaction-threshold+{extra}", parts=parts)]))
    # the Messages API's own usage object, modifiers in another case
    usage = {"input_tokens": 1000, "output_tokens": 10, "service_tier": "BATCH", "speed": "Fast", "inference_geo": "US"}
    out.append((dict(shape="response", request_model="claude-opus-4-6",
                     response={"id": "m2", "type": "message", "model": "claude-opus-4-6", "usage": usage}),
                [call("claude-opus-4-6", None, tier="batch", speed="fast", regional=(True, "geo"),
                      tag="response-modifier-case", parts=[dict(uncached=1000, out=10)])]))
    return out


# -------------------------------------------------------------------------------------------------- expectation
def expect_call(expected):
    """(the expected cost or None when unpriced, the expected token kinds, corrections) of one expected call."""
    if "parts" in expected:  # compaction: the entries add up
        tokens, corrections = [0] * 6, 0
        for part in expected["parts"]:
            part_tokens, part_corrections = normalize_tokens(part)
            tokens = [a + b for a, b in zip(tokens, part_tokens)]
            corrections += part_corrections
    else:
        tokens, corrections = normalize_tokens(expected["slots"])
    if expected["canon"] is None:
        return None, tokens, corrections
    regional, _source = expected["regional"]
    cost = price(expected["canon"], tokens, expected["web"], expected["tier"], expected["speed"], regional)
    return cost, tokens, corrections


SHOWN = 5  # disagreements printed in full per part (the count says how many)
COST_KINDS = ("total", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "web_search")
FLAGS = ("long_context", "batch", "fast", "regional")


def call_problems(expected, record):
    """What differs between one expected call and the CallRecord the driver printed (empty: they agree)."""
    want, tokens, _ = expect_call(expected)
    got = record["cost"]
    problems = []
    if record["tokens"] != tokens:
        problems.append("tokens")
    if (want is None) != (got is None):
        problems.append("priced" if got else "unpriced")
    elif want is not None:
        problems += [k for k in COST_KINDS if int(got[k]) != want[k]]
        problems += [k for k in FLAGS + ("priced_as",) if got[k] != want[k]]
    return problems


class Comparison:
    """Calls compared, disagreements, and what the calls covered (to tell a run that tested nothing)."""

    def __init__(self):
        self.calls = 0
        self.disagreements = []
        self.covered = Counter()

    def add(self, case, expected_calls, output, shape):
        records = output["records"]
        if len(records) != len(expected_calls):
            self.disagreements.append(dict(problem=["call count"], case=case, expected=expected_calls, got=records))
            return
        self.covered["shape:" + shape] += len(records)
        for expected, record in zip(expected_calls, records):
            self.calls += 1
            want, tokens, corrections = expect_call(expected)
            self.cover(expected, want, tokens, corrections)
            problems = call_problems(expected, record)
            if problems:
                self.disagreements.append(dict(problem=problems, case=case, expected=expected, want=want,
                                               tokens=tokens, got=record))

    def cover(self, expected, want, tokens, corrections):
        tag = expected["tag"]
        if tag.startswith("rig:"):
            self.covered["rule:" + (tag.split(":")[-1] or "none")] += 1
        if "compaction" in tag:
            self.covered["compaction"] += 1
        if corrections:
            self.covered["normalization correction"] += 1
        if want is None:
            self.covered["unpriced"] += 1
            return
        model = want["priced_as"]
        self.covered[model] += 1
        for flag in FLAGS:
            if want[flag]:
                self.covered[f"{model} {flag}"] += 1
        if want["web_search"]:
            self.covered["web search"] += 1
        if tokens[3]:
            self.covered["1h writes"] += 1

    def gaps(self):
        """Rules no call exercised: every model priced, with batch, and with each multiplier it has."""
        needed = ["shape:" + s for s in SHAPES] + ["rule:A", "rule:B", "compaction", "normalization correction",
                                                  "unpriced", "web search", "1h writes"]
        for model, p in PRICES.items():
            needed += [model, f"{model} batch"]
            if p["lc"]:
                needed.append(f"{model} long_context")
            if p["fast"]:
                needed.append(f"{model} fast")
            if model not in NOT_REGIONAL:
                needed.append(f"{model} regional")
        return [k for k in needed if not self.covered[k]]


def meter_totals_problem(stderr, outputs):
    """The meter's totals (the driver's first stderr line) against the sum of the records it handed out."""
    totals = next(json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    records = [r for o in outputs for r in o["records"]]
    priced = [r["cost"] for r in records if r["cost"]]
    want = dict(total_cost=sum(int(c["total"]) for c in priced),
                web_search_cost=sum(int(c["web_search"]) for c in priced),
                unpriced=sum(1 for r in records if r["cost"] is None), calls=len(records),
                web_search_requests=sum(r["web_search_requests"] for r in records),
                tokens=[sum(r["tokens"][i] for r in records) for i in range(5)])
    got = dict(total_cost=int(totals["total_cost"]), web_search_cost=int(totals["web_search_cost"]),
               unpriced=totals["unpriced"], calls=totals["calls"], web_search_requests=totals["web_search_requests"],
               tokens=totals["tokens"])
    return None if got == want else dict(meter=got, records=want)


def generate(n, seed):
    """The probes, then n random cases: [(case, expected calls, shape)], each case with its id."""
    rng = random.Random(seed)
    items = [(case, expected, "probe") for case, expected in probes()]
    items += [gen_case(rng, i) for i in range(n)]
    for i, (case, _, _) in enumerate(items, 1):
        case["id"] = i
    return items


def run_driver(driver, items, *args):
    cases = "".join(json.dumps(case) + "\n" for case, _, _ in items)
    result = subprocess.run([driver, *args], input=cases, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def seed_range(text):
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def check(driver, seeds, n):
    comparison, totals_problems = Comparison(), []
    for seed in seeds:
        items = generate(n, seed)
        outputs, stderr = run_driver(driver, items)
        by_id = {o["id"]: o for o in outputs}
        for case, expected, shape in items:
            comparison.add(case, expected, by_id.get(case["id"], {"records": []}), shape)
        problem = meter_totals_problem(stderr, outputs)
        if problem:
            totals_problems.append(dict(seed=seed, **problem))
    gaps = comparison.gaps()
    failed = comparison.disagreements or totals_problems or gaps
    print(f"spans/instrument/SSE: {comparison.calls} calls compared (seeds {seeds.start}-{seeds.stop - 1}, "
          f"{n} cases each), {len(comparison.disagreements)} disagreements, meter totals "
          f"{'DISAGREE' if totals_problems else 'agree'}, coverage {'GAPS' if gaps else 'complete'}"
          f"{': FAIL' if failed else ''}")
    for d in comparison.disagreements[:SHOWN]:
        print("  " + json.dumps(d, default=str)[:1500])
    for t in totals_problems:
        print("  meter totals: " + json.dumps(t))
    if gaps:
        print("  never exercised: " + ", ".join(gaps))
    return 1 if failed else 0


def journal_round_trip(driver, seed, n):
    """The records handed to the sink, journaled and read back (`tokenmeter::journal::read`), are the same."""
    items = generate(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        journal, readback = Path(tmp, "journal"), Path(tmp, "readback.jsonl")
        outputs, _ = run_driver(driver, items, "--journal", str(journal), "--readback", str(readback))

        live = Counter(json.dumps(r, sort_keys=True) for o in outputs for r in o["records"])
        back = Counter(json.dumps(json.loads(line), sort_keys=True) for line in readback.read_text().splitlines())
    differ = (live - back) + (back - live)
    print(f"journal round trip: {sum(live.values())} records handed out, {sum(back.values())} read back, "
          f"{sum(differ.values())} disagreements{': FAIL' if differ else ''}")
    for k in list(differ)[:SHOWN]:
        print("  " + ("only handed out: " if live[k] > back[k] else "only read back: ") + k[:1000])
    return 1 if differ else 0


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "check":
        return check(argv[2], seed_range(argv[3]), int(argv[4]))
    if command == "journal":
        return journal_round_trip(argv[2], int(argv[3]), int(argv[4]))
    if command == "gen":
        n, seed, expected_path = int(argv[2]), int(argv[3]), argv[4]
        with open(expected_path, "w") as expected_file:
            for case, expected, shape in generate(n, seed):
                print(json.dumps(case))
                expected_file.write(json.dumps(dict(id=case["id"], shape=shape, calls=expected)) + "\n")
        return 0
    if command == "cmp":
        cases = {c["id"]: c for c in map(json.loads, open(argv[2]))}
        expected = {e["id"]: e for e in map(json.loads, open(argv[3]))}
        outputs = [json.loads(line) for line in open(argv[4])]
        comparison = Comparison()
        for o in outputs:
            comparison.add(cases[o["id"]], expected[o["id"]]["calls"], o, expected[o["id"]]["shape"])
        totals = meter_totals_problem(open(argv[5]).read(), outputs) if len(argv) > 5 else None
        print(f"{comparison.calls} calls, {len(comparison.disagreements)} disagreements, meter totals "
              f"{'DISAGREE ' + json.dumps(totals) if totals else 'agree'}, never exercised: {comparison.gaps()}")
        for d in comparison.disagreements:
            print(json.dumps(d, default=str))
        return 1 if comparison.disagreements or totals else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

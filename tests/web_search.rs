//! Web searches (Anthropic's server-side `web_search` tool): counted per call from
//! `server_tool_use.web_search_requests` and billed at the price book's per-search fee, on top of the tokens,
//! through every path a call takes (capture, the `instrument` helpers, the journal, Claude Code transcripts).

use crate::common;

use common::Harness;
use tokenmeter::instrument::{MessageResponse, claude_span, record_response};
use tokenmeter::journal::{FsyncPolicy, JournalConfig};
use tokenmeter::pricing::DEFAULT_WEB_SEARCH_FEE;
use tokenmeter::{ManualClock, Money, PriceBook, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// One cent, the default fee of one search, in pico-USD.
const CENT: u128 = 10_000_000_000;

/// 1,000 uncached input and 100 output tokens on claude-sonnet-4-5 ($3 / $15 per Mtok): $0.0045.
const TOKENS_COST: u128 = 1_000 * 3_000_000 + 100 * 15_000_000;

fn search_call(model: &str, searches: u64, tier: &str) {
    let _s = info_span!(
        "messages",
        gen_ai.response.model = model,
        service_tier = tier,
        input_tokens = 1_000u64,
        output_tokens = 100u64,
        server_tool_use.web_search_requests = searches,
    );
}

#[test]
fn searches_are_billed_per_search_on_top_of_the_tokens() {
    assert_eq!(DEFAULT_WEB_SEARCH_FEE, Money::from_picos(CENT));
    let h = Harness::new();
    h.run(|| {
        search_call("claude-sonnet-4-5", 3, "standard");
        // Batch halves the token rates, not the search fee.
        search_call("claude-sonnet-4-5", 2, "batch");
        // A model the book does not know: its searches are counted, its cost is not guessed.
        search_call("gpt-4o", 5, "standard");
    });
    let calls = h.seen.calls();
    let [standard, batch, unknown] = &calls[..] else { panic!("{calls:#?}") };

    assert_eq!(standard.web_search_requests, 3);
    let cost = standard.cost.as_ref().unwrap();
    assert_eq!(cost.web_search.picos(), 3 * CENT);
    assert_eq!(cost.total.picos(), TOKENS_COST + 3 * CENT);
    assert_eq!(cost.tokens_total().picos(), TOKENS_COST);

    let cost = batch.cost.as_ref().unwrap();
    assert!(cost.batch);
    assert_eq!(cost.web_search.picos(), 2 * CENT);
    assert_eq!(cost.total.picos(), TOKENS_COST / 2 + 2 * CENT);

    assert_eq!(unknown.web_search_requests, 5);
    assert!(unknown.is_unpriced());

    let totals = h.meter.total_usage();
    assert_eq!(totals.web_search_requests, 10);
    assert_eq!(totals.web_search_cost.picos(), 5 * CENT);
    assert_eq!(totals.cost.picos(), TOKENS_COST + TOKENS_COST / 2 + 5 * CENT);
    assert_eq!(totals.unpriced_calls, 1);
}

#[test]
fn a_call_without_searches_is_priced_and_serialized_as_before() {
    let h = Harness::new();
    h.run(|| search_call("claude-sonnet-4-5", 0, "standard"));
    let call = h.seen.only_call();
    assert_eq!(call.cost.as_ref().unwrap().total.picos(), TOKENS_COST);
    let json = serde_json::to_string(&call).unwrap();
    assert!(!json.contains("web_search"), "{json}");
}

#[test]
fn the_usage_prefixed_name_and_a_later_record_count_too() {
    let h = Harness::new();
    h.run(|| {
        let s = info_span!(
            "messages",
            model = "claude-haiku-4-5",
            usage.input_tokens = tracing::field::Empty,
            usage.output_tokens = tracing::field::Empty,
            usage.server_tool_use.web_search_requests = tracing::field::Empty,
        );
        s.record("usage.input_tokens", 10u64);
        s.record("usage.output_tokens", 10u64);
        s.record("usage.server_tool_use.web_search_requests", 4u64);
    });
    let call = h.seen.only_call();
    assert_eq!(call.web_search_requests, 4);
    assert_eq!(call.cost.unwrap().web_search.picos(), 4 * CENT);
}

#[test]
fn the_book_sets_the_fee_in_code_and_from_a_price_file() {
    let fee = Money::from_picos(25 * CENT / 10); // $25 per 1,000
    let h = Harness::with(|b| b.with_price_book(PriceBook::builtin().with_web_search_fee(fee)));
    h.run(|| search_call("claude-sonnet-4-5", 4, "standard"));
    assert_eq!(h.seen.only_call().cost.unwrap().web_search.picos(), 10 * CENT);

    let mut book = PriceBook::builtin();
    book.merge_toml_str("web_search_per_1k = 25\n", "prices.toml").unwrap();
    assert_eq!(book.web_search_fee(), fee);
    book.merge_toml_str("web_search_per_1k = 12.5\n[models.\"my-model\"]\ninput = 1\noutput = 2\n", "p.toml").unwrap();
    assert_eq!(book.web_search_fee(), Money::from_picos(125 * CENT / 100));
    assert!(book.resolve("my-model").is_some());
    // A file without the key leaves the fee alone.
    book.merge_toml_str("[models.\"other\"]\ninput = 1\noutput = 2\n", "p.toml").unwrap();
    assert_eq!(book.web_search_fee(), Money::from_picos(125 * CENT / 100));

    for (text, message) in [
        (
            "web_search_per_1k = -1\n",
            "p.toml:1: field `web_search_per_1k`: expected a non-negative number of USD per 1,000 web searches \
             (e.g. 10), found -1",
        ),
        (
            "web_search_per_1k = \"ten\"\n",
            "p.toml:1: field `web_search_per_1k`: expected a non-negative number of USD per 1,000 web searches \
             (e.g. 10), found string \"ten\"",
        ),
        (
            "web_search_per_1k = 0.0000001\n",
            "p.toml:1: field `web_search_per_1k`: 0.0000001 is more precise than 0.000001 USD per 1,000 web \
             searches",
        ),
    ] {
        let mut book = PriceBook::builtin();
        let err = book.merge_toml_str(text, "p.toml").unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(book.web_search_fee(), DEFAULT_WEB_SEARCH_FEE, "a bad file changes nothing");
    }
}

#[test]
fn implausible_search_counts_are_refused_as_token_counts_are() {
    use tokenmeter::capture::MAX_WEB_SEARCHES_PER_CALL;
    let h = Harness::new();
    h.run(|| search_call("claude-sonnet-4-5", MAX_WEB_SEARCHES_PER_CALL + 1, "standard"));
    let call = h.seen.only_call();
    assert_eq!(call.web_search_requests, 0);
    assert_eq!(call.cost.unwrap().total.picos(), TOKENS_COST);
    assert_eq!(h.meter.capture_stats().rejected_values, 1);

    // Read back from a journal or records line, as a token count over its limit is.
    let line = |n: u64| {
        format!(
            r#"{{"timestamp":"2026-12-01T10:00:00Z","duration_us":1,"model":"claude-sonnet-4-5","tokens":{{"input":1}},"web_search_requests":{n},"metered":true,"outcome":{{"status":"ok"}}}}"#
        )
    };
    let ok: tokenmeter::CallRecord = serde_json::from_str(&line(MAX_WEB_SEARCHES_PER_CALL)).unwrap();
    assert_eq!(ok.web_search_requests, MAX_WEB_SEARCHES_PER_CALL);
    let err = serde_json::from_str::<tokenmeter::CallRecord>(&line(u64::MAX)).unwrap_err().to_string();
    assert!(err.contains("web_search_requests = 18446744073709551615 is over the 100000 searches"), "{err}");
}

#[test]
fn a_usage_with_only_searches_is_not_empty() {
    let usage: tokenmeter::instrument::Usage =
        serde_json::from_str(r#"{"server_tool_use": {"web_search_requests": 1}}"#).unwrap();
    assert!(!usage.is_empty());
    let usage: tokenmeter::instrument::Usage =
        serde_json::from_str(r#"{"server_tool_use": {"web_fetch_requests": 1}}"#).unwrap();
    assert!(usage.is_empty(), "fetches cost only their tokens");
}

#[test]
fn instrumented_responses_record_their_searches() {
    let h = Harness::new();
    h.run(|| {
        let span = claude_span("chat", "claude-sonnet-4-5", false);
        let response: MessageResponse = serde_json::from_str(
            r#"{"type": "message", "id": "msg_1", "model": "claude-sonnet-4-5-20250929", "usage": {
                "input_tokens": 1000, "output_tokens": 100,
                "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1}}}"#,
        )
        .unwrap();
        record_response(&span, &response);
    });
    let call = h.seen.only_call();
    assert_eq!(call.web_search_requests, 2);
    assert_eq!(call.cost.unwrap().total.picos(), TOKENS_COST + 2 * CENT);
}

#[test]
fn the_journal_keeps_searches_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(common::t0());
    let meter = |clock: &ManualClock| {
        TokenMeter::builder()
            .with_clock(clock.clone())
            .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord))
            .try_build()
            .unwrap()
    };
    let first = meter(&clock);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(first.layer()), || {
        search_call("claude-sonnet-4-5", 3, "standard")
    });
    let before = first.total_usage();
    first.shutdown().unwrap();
    drop(first);

    let second = meter(&clock);
    let after = second.total_usage();
    assert_eq!(after.web_search_requests, 3);
    assert_eq!(after.web_search_cost.picos(), 3 * CENT);
    assert_eq!(after, before);
}

#[test]
fn claude_code_transcripts_bill_their_searches() {
    use tokenmeter::transcripts::{TranscriptLoader, discover};
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects/-home-dev-web");
    std::fs::create_dir_all(&project).unwrap();
    // Two streamed copies of one response: the searches are on the final, larger one.
    let line = |output: u64, searches: u64| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-12-01T10:00:00.000Z","sessionId":"s1","requestId":"req_1","message":{{"id":"msg_1","model":"claude-sonnet-4-5-20250929","usage":{{"input_tokens":1000,"output_tokens":{output},"server_tool_use":{{"web_search_requests":{searches},"web_fetch_requests":0}}}}}}}}"#
        )
    };
    // Copies with equal tokens: the one with the searches is kept, whichever came first.
    for (text, what) in [
        (format!("{}\n{}\n", line(1, 0), line(100, 2)), "growing output"),
        (format!("{}\n{}\n", line(100, 2), line(100, 0)), "searches first"),
        (format!("{}\n{}\n", line(100, 0), line(100, 2)), "searches last"),
    ] {
        std::fs::write(project.join("s1.jsonl"), text).unwrap();
        let files = discover(dir.path()).unwrap();
        let load = TranscriptLoader::new(PriceBook::builtin()).load(&files);
        let [call] = &load.calls[..] else { panic!("{what}: {:#?}", load.calls) };
        assert_eq!(call.web_search_requests, 2, "{what}");
        let cost = call.cost.as_ref().unwrap();
        assert_eq!(cost.web_search.picos(), 2 * CENT, "{what}");
        assert_eq!(cost.total.picos(), TOKENS_COST + 2 * CENT, "{what}");
    }
}

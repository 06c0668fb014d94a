//! `analysis::usage_blocks`: calls in 5-hour blocks, each opening at the whole UTC hour of the first call after
//! the last one closed, and the open block's rate and projection.

use crate::ledger_common;

use ledger_common::*;
use tokenmeter::analysis::{DEFAULT_BLOCK_HOURS, usage_blocks};
use tokenmeter::ledger::QueryError;
use tokenmeter::{CallRecord, PriceBook};

/// A priced call (haiku-4-5: $1 / Mtok input, $5 / Mtok output).
fn call(t: chrono::DateTime<chrono::Utc>, model: &str, input: u64, output: u64) -> CallRecord {
    let mut c = Call::new(t, model).io(input, output).0;
    c.cost = PriceBook::builtin().price(model, &c.tokens, None, None);
    c
}

#[test]
fn blocks_open_at_the_hour_of_the_first_call_after_the_last_one_closed() {
    // Given out of order: 09:12, 11:40 and 13:59 are one block (09:00-14:00); 14:05 opens the next at 14:00
    // (not at 14:12, five hours after 09:12); 20:30 opens one at 20:00 (no empty blocks for the idle hours).
    let haiku = "claude-haiku-4-5";
    let records = vec![
        call(at(2026, 3, 14, 20, 30, 0), haiku, 0, 200_000),
        call(at(2026, 3, 14, 9, 12, 0), haiku, 1_000_000, 0),
        call(at(2026, 3, 14, 14, 5, 0), "claude-sonnet-4-5", 1_000_000, 0),
        call(at(2026, 3, 14, 11, 40, 0), "gpt-4o", 100, 10),
        call(at(2026, 3, 14, 13, 59, 59), haiku, 0, 100_000),
        call(at(2026, 3, 14, 20, 45, 0), haiku, 0, 100_000),
    ];
    let r = usage_blocks(&records, at(2026, 3, 14, 21, 0, 0), DEFAULT_BLOCK_HOURS).unwrap();
    let starts: Vec<_> = r.blocks.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(
        starts,
        [
            (at(2026, 3, 14, 9, 0, 0), at(2026, 3, 14, 14, 0, 0)),
            (at(2026, 3, 14, 14, 0, 0), at(2026, 3, 14, 19, 0, 0)),
            (at(2026, 3, 14, 20, 0, 0), at(2026, 3, 15, 1, 0, 0)),
        ]
    );
    let first = &r.blocks[0];
    assert_eq!((first.first_call, first.last_call), (at(2026, 3, 14, 9, 12, 0), at(2026, 3, 14, 13, 59, 59)));
    // Three calls, one of them on a model without a price: its tokens counted, its cost not guessed.
    assert_eq!((first.calls, first.unpriced_calls, first.total_tokens), (3, 1, 1_100_110));
    assert_eq!((first.tokens.input, first.tokens.output), (1_000_100, 100_010));
    // $1 of input + $0.50 of output.
    assert_eq!(first.cost_picos.picos(), 1_500_000_000_000);
    assert_eq!(first.cost_usd, 1.5);
    assert_eq!(first.models, ["claude-haiku-4-5", "gpt-4o"]);
    assert_eq!(r.blocks[1].models, ["claude-sonnet-4-5"]);
    assert_eq!((r.blocks[2].calls, r.blocks[2].total_tokens), (2, 300_000));
    assert_eq!(r.blocks.iter().map(|b| b.active).collect::<Vec<_>>(), [false, false, true]);
    // The closed blocks' largest: 1,100,110 tokens (the open one's 300,000 is not a finished block).
    assert_eq!(r.largest_closed_block_tokens(), Some(1_100_110));

    // The open block: its first call (200,000 tokens, $1) opened it at 20:30; the one after it, 100,000 tokens
    // ($0.50), came in the 30 minutes since: 3,333 tokens a minute, $1 an hour, 240 minutes left. (Counting the
    // first call too read 10,000 tokens a minute, three times the pace of what followed it.)
    let p = r.active.as_ref().unwrap();
    assert_eq!((p.minutes_since_first_call, p.minutes_left), (30.0, 240.0));
    assert!((p.tokens_per_minute - 100_000.0 / 30.0).abs() < 1e-9);
    assert!((p.usd_per_hour - 1.0).abs() < 1e-12);
    assert_eq!(p.projected_tokens, 300_000 + 800_000);
    assert!((p.projected_cost_usd - 5.5).abs() < 1e-9, "{p:?}");
}

#[test]
fn a_block_closes_on_the_hour_and_calls_after_now_are_left_out() {
    let haiku = "claude-haiku-4-5";
    let records = vec![
        call(at(2026, 3, 14, 9, 0, 0), haiku, 1_000, 0),
        // Exactly at the close: the next block.
        call(at(2026, 3, 14, 14, 0, 0), haiku, 1_000, 0),
        // After now.
        call(at(2026, 3, 14, 22, 0, 0), haiku, 1_000, 0),
    ];
    let now = at(2026, 3, 14, 19, 0, 0);
    let r = usage_blocks(&records, now, 5).unwrap();
    assert_eq!(r.blocks.len(), 2);
    assert_eq!(r.calls_after_now, 1);
    // The second block closed at 19:00, which is now: nothing is open, no projection.
    assert!(r.blocks.iter().all(|b| !b.active) && r.active.is_none(), "{r:?}");
    // One-hour blocks close an hour after they open (the count alone, 2, was the same with 5 hours).
    let ends: Vec<_> = usage_blocks(&records, now, 1).unwrap().blocks.iter().map(|b| b.end).collect();
    assert_eq!(ends, [at(2026, 3, 14, 10, 0, 0), at(2026, 3, 14, 15, 0, 0)]);
    // Two calls 90 minutes apart: one 5-hour block, two 1-hour ones.
    let close = [call(at(2026, 3, 14, 9, 0, 0), haiku, 1_000, 0), call(at(2026, 3, 14, 10, 30, 0), haiku, 1_000, 0)];
    assert_eq!(
        (usage_blocks(&close, now, 5).unwrap().blocks.len(), usage_blocks(&close, now, 1).unwrap().blocks.len()),
        (1, 2)
    );

    // An unmetered call (no usage) is a call, with no tokens and nothing unpriced.
    let mut failed = call(at(2026, 3, 14, 18, 30, 0), haiku, 0, 0);
    failed.metered = false;
    failed.cost = None;
    let r = usage_blocks(&[failed], now, 5).unwrap();
    assert_eq!((r.blocks[0].calls, r.blocks[0].unpriced_calls, r.blocks[0].total_tokens), (1, 0, 0));
    // A block opened a minute ago: no rates yet (its call read as 60,000 tokens a minute, projected across the
    // block: 18M tokens, "past" any limit). From 10 minutes on, a lone call projects nothing more.
    let opened = |ago| vec![call(now - chrono::Duration::minutes(ago), haiku, 0, 60_000)];
    let r = usage_blocks(&opened(1), now, 5).unwrap();
    assert!(r.blocks[0].active && r.active.is_none(), "{r:?}");
    let p = usage_blocks(&opened(10), now, 5).unwrap().active.unwrap();
    assert_eq!((p.tokens_per_minute, p.projected_tokens, p.unpriced_calls), (0.0, 60_000, 0));
    // A call on a model without a price after the first: in the token rate, not the dollar one, and counted.
    let mut calls = opened(20);
    calls.push(call(now - chrono::Duration::minutes(10), "claude-fable-9", 0, 20_000));
    let p = usage_blocks(&calls, now, 5).unwrap().active.unwrap();
    assert_eq!((p.tokens_per_minute, p.usd_per_hour, p.unpriced_calls), (1_000.0, 0.0, 1));

    assert!(usage_blocks(&[], now, 5).unwrap().blocks.is_empty());
    for hours in [0, 25] {
        assert!(matches!(
            usage_blocks(&records, now, hours),
            Err(QueryError::InvalidArgument { name: "block_hours", .. })
        ));
    }
}

#[test]
fn retain_since_keeps_blocks_with_a_call_from_then_on_and_the_open_one() {
    let haiku = "claude-haiku-4-5";
    // Blocks 08:00-13:00 (calls 08:50, 09:30) and 14:00-19:00 (14:10, 15:00), open at 18:30.
    let records: Vec<_> = [(8, 50), (9, 30), (14, 10), (15, 0)]
        .into_iter()
        .map(|(h, m)| call(at(2026, 3, 14, h, m, 0), haiku, 1_000, 0))
        .collect();
    let mut r = usage_blocks(&records, at(2026, 3, 14, 18, 30, 0), 5).unwrap();
    assert_eq!(r.blocks.len(), 2);
    // From 09:00: the 08:00 block's 09:30 call is after it, so it stays (it opened before 09:00).
    assert_eq!(r.retain_since(at(2026, 3, 14, 9, 0, 0)), 0);
    assert_eq!(r.retain_since(at(2026, 3, 14, 9, 31, 0)), 1);
    // After every call: the open block still.
    assert_eq!(r.retain_since(at(2026, 3, 14, 18, 0, 0)), 0);
    assert_eq!(r.blocks.len(), 1);
    assert!(r.blocks[0].active);
}

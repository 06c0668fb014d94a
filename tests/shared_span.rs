//! Clients that record every call's usage onto one long-lived span: a new response id finalizes the earlier call.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::info_span;

/// A long-lived span on which each call records its response id and usage.
fn agent_loop() -> tracing::Span {
    info_span!(
        "agent loop",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.response.id = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
    )
}

/// A client's span with both kinds of id, an error type and usage, all recorded later.
fn both_ids_span() -> tracing::Span {
    info_span!(
        "chat",
        model = "claude-haiku-4-5",
        gen_ai.response.id = Empty,
        request_id = Empty,
        error.type = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
    )
}

#[test]
fn a_new_response_id_finalizes_the_previous_call() {
    let h = Harness::new();
    h.run(|| {
        let agent = info_span!(
            "agent loop",
            session.id = "s1",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("input_tokens", 100u64);
        agent.record("output_tokens", 10u64);
        h.clock.advance(chrono::Duration::seconds(2));
        // Second call: its id is recorded first, then its usage.
        agent.record("gen_ai.response.id", "msg_b");
        agent.record("input_tokens", 200u64);
        agent.record("output_tokens", 20u64);
        h.clock.advance(chrono::Duration::seconds(1));
        // Third call: usage and id in one set of values (an event), tokens before the id.
        tracing::info!(parent: &agent, input_tokens = 300u64, output_tokens = 30u64, gen_ai.response.id = "msg_c");
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[2].request_id.as_deref(), Some("msg_c"));
    assert_eq!((calls[2].tokens.input, calls[2].tokens.output), (300, 30));
    assert_eq!(calls[1].duration_us, 1_000_000);
    assert_eq!(calls[0].request_id.as_deref(), Some("msg_a"));
    assert_eq!((calls[0].tokens.input, calls[0].tokens.output), (100, 10));
    assert_eq!(calls[0].duration_us, 2_000_000);
    assert_eq!(calls[1].request_id.as_deref(), Some("msg_b"));
    assert_eq!((calls[1].tokens.input, calls[1].tokens.output), (200, 20));
    assert!(calls.iter().all(|c| c.dimensions.session.as_deref() == Some("s1")));
    assert_eq!(h.meter.capture_stats().shared_span_splits, 2);
}

#[test]
fn same_response_id_is_the_same_call() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-haiku-4-5", gen_ai.response.id = "msg_a", output_tokens = Empty);
        span.record("output_tokens", 1u64);
        span.record("gen_ai.response.id", "msg_a");
        span.record("output_tokens", 9u64);
    });
    assert_eq!(h.seen.only_call().tokens.output, 9);
}

#[test]
fn a_response_id_and_a_request_id_of_one_call_are_one_call() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            gen_ai.response.id = Empty,
            request_id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        span.record("gen_ai.response.id", "msg_a");
        span.record("input_tokens", 100u64);
        span.record("output_tokens", 10u64);
        // The provider's request id of the same call, recorded after its usage.
        span.record("request_id", "req_a");
    });
    let call = h.seen.only_call();
    assert_eq!(call.request_id.as_deref(), Some("msg_a"));
    assert_eq!((call.tokens.input, call.tokens.output), (100, 10));
    assert_eq!(h.meter.capture_stats().shared_span_splits, 0);
}

#[test]
fn a_long_lived_span_with_both_ids_splits_once_per_call() {
    let h = Harness::new();
    h.run(|| {
        let agent = info_span!(
            "agent loop",
            model = "claude-haiku-4-5",
            gen_ai.response.id = Empty,
            request_id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        for (msg, req, input) in [("msg_a", "req_a", 100u64), ("msg_b", "req_b", 200)] {
            agent.record("request_id", req);
            agent.record("input_tokens", input);
            agent.record("output_tokens", 10u64);
            agent.record("gen_ai.response.id", msg);
        }
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!((calls[0].request_id.as_deref(), calls[0].tokens.input), (Some("msg_a"), 100));
    assert_eq!((calls[1].request_id.as_deref(), calls[1].tokens.input), (Some("msg_b"), 200));
    assert_eq!(h.meter.capture_stats().shared_span_splits, 1);
}

#[test]
fn a_later_call_does_not_inherit_the_earlier_calls_tier_speed_or_response_model() {
    let h = Harness::new();
    h.run(|| {
        let agent = info_span!(
            "agent loop",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = Empty,
            gen_ai.response.id = Empty,
            service_tier = Empty,
            speed = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        // The first call went through the batch API and names its dated model.
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("gen_ai.response.model", "claude-sonnet-4-5-20250929");
        agent.record("service_tier", "batch");
        agent.record("input_tokens", 100_000u64);
        agent.record("output_tokens", 0u64);
        // The second is a plain call that restates none of them.
        agent.record("gen_ai.response.id", "msg_b");
        agent.record("input_tokens", 100_000u64);
        agent.record("output_tokens", 0u64);
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].service_tier.as_deref(), Some("batch"));
    assert_eq!(calls[0].model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(calls[1].service_tier, None);
    assert_eq!(calls[1].model.as_deref(), Some("claude-sonnet-4-5"));
    // Sonnet 4.5 input: $3 per million tokens (under 200k a request), half of it in batch.
    let usd = |i: usize| calls[i].cost.as_ref().map(|c| c.total.as_usd());
    assert_eq!((usd(0), usd(1)), (Some(0.15), Some(0.3)));
}

#[test]
fn what_a_long_lived_span_declares_at_creation_holds_for_each_of_its_calls() {
    let h = Harness::new();
    h.run(|| {
        let agent = info_span!(
            "agent loop",
            gen_ai.request.model = "claude-sonnet-4-5",
            service_tier = "batch",
            gen_ai.request.stream = true,
            gen_ai.response.id = Empty,
            input_tokens = Empty,
        );
        for msg in ["msg_a", "msg_b", "msg_c"] {
            agent.record("gen_ai.response.id", msg);
            agent.record("input_tokens", 100_000u64);
        }
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(calls.iter().all(|c| c.service_tier.as_deref() == Some("batch") && c.streaming == Some(true)));
    assert!(calls.iter().all(|c| c.cost.as_ref().map(|c| c.total.as_usd()) == Some(0.15)));
}

/// A callback that logs each call's usage with the contract's field names (a natural thing to write) must not
/// feed that usage back into capture: not into the next call of a long-lived span, nor as stray usage events.
#[test]
fn usage_logged_by_a_callback_is_not_read_back() {
    let h = Harness::with(|b| {
        b.on_call(|r| tracing::info!(input_tokens = r.tokens.input, output_tokens = r.tokens.output, "llm call"))
    });
    h.run(|| {
        let agent = agent_loop();
        let _e = agent.enter();
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("input_tokens", 100u64);
        agent.record("output_tokens", 10u64);
        // The second call records no output (cut off): the first call's 10 must not turn up in it.
        agent.record("gen_ai.response.id", "msg_b");
        agent.record("input_tokens", 200u64);
        drop(_e);
        // A span per call, closed outside any other call span.
        let _one = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 5u64);
    });
    let calls = h.seen.calls();
    let tokens: Vec<(u64, u64)> = calls.iter().map(|c| (c.tokens.input, c.tokens.output)).collect();
    assert_eq!(tokens, [(100, 10), (5, 0), (200, 0)], "{calls:#?}");
    assert_eq!(h.meter.capture_stats().orphan_usage_events, 0);
}

/// A callback that makes a call of its own (an LLM judge, say) is still metered: its span was opened inside the
/// callback.
#[test]
fn a_call_made_inside_a_callback_is_metered() {
    let h = Harness::with(|b| {
        b.on_call(|r| {
            if r.model.as_deref() == Some("claude-sonnet-4-5") {
                let judge = info_span!("judge", gen_ai.request.model = "claude-haiku-4-5", input_tokens = Empty);
                let _e = judge.enter();
                tracing::info!(input_tokens = 7u64);
            }
        })
    });
    h.run(|| {
        let _s = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 1u64);
    });
    let tokens: Vec<(Option<String>, u64)> =
        h.seen.calls().iter().map(|c| (c.model.as_deref().map(str::to_owned), c.tokens.input)).collect();
    assert_eq!(tokens, [(Some("claude-sonnet-4-5".into()), 1), (Some("claude-haiku-4-5".into()), 7)]);
}

/// A span opened inside a callback that runs in a span's close is never removed by tracing-subscriber's
/// registry (a close inside another close), and holds its parents open: it cannot be undone from a layer, so
/// it is counted, and warned about once.
#[test]
fn spans_opened_by_a_callback_during_a_close_are_counted_and_warned_about() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::prelude::*;
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if event.metadata().target() == "tokenmeter::capture" && *event.metadata().level() == tracing::Level::WARN {
                self.0.lock().unwrap().push(event.metadata().name().to_owned());
            }
        }
    }
    let h = Harness::with(|b| {
        b.on_call(|r| {
            if r.model.as_deref() == Some("claude-sonnet-4-5") {
                let _judge = info_span!("judge", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 7u64);
            }
        })
    });
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let _s = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 1u64);
        }
        // Spans opened anywhere else are not counted.
        let _plain = info_span!("plain");
    });
    assert_eq!(h.meter.capture_stats().spans_opened_while_closing, 3);
    assert_eq!(warnings.0.lock().unwrap().len(), 1, "warned once");
    // The judge calls are metered all the same.
    assert_eq!(h.meter.total_usage().calls, 6);
}

/// What leaks is a span *closed* inside a close: a span a sink opens and hands elsewhere (closed later) does not,
/// and one it held from before and drops there does.
#[test]
fn only_spans_closed_inside_a_close_are_counted() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::prelude::*;
    let handed: Arc<Mutex<Vec<tracing::Span>>> = Arc::default();
    let held: Arc<Mutex<Option<tracing::Span>>> = Arc::default();
    let (to_hand, to_drop) = (handed.clone(), held.clone());
    let h = Harness::with(move |b| {
        b.on_call(move |_| {
            to_hand.lock().unwrap().push(info_span!("handed_on"));
            to_drop.lock().unwrap().take();
        })
    });
    let subscriber = tracing_subscriber::registry().with(h.meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _s = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 1u64);
        drop(_s);
        assert_eq!(h.meter.capture_stats().spans_opened_while_closing, 0, "opened there, still open");
        handed.lock().unwrap().clear();
        assert_eq!(h.meter.capture_stats().spans_opened_while_closing, 0, "closed later, out of the close");

        *held.lock().unwrap() = Some(info_span!("held_from_before"));
        let _s = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 1u64);
        drop(_s);
        assert_eq!(h.meter.capture_stats().spans_opened_while_closing, 1, "dropped inside the close");
    });
}

#[test]
fn a_call_span_made_inside_one_of_its_calls_does_not_make_the_rest_roll_ups() {
    // During msg_b a helper makes a call through its own span. The shared span's later calls were skipped as
    // "roll-ups" of the calls inside it (msg_b, msg_c, msg_d: 9,000 input tokens lost).
    let h = Harness::new();
    h.run(|| {
        let agent = agent_loop();
        let _in = agent.enter();
        for (i, id) in ["msg_a", "msg_b", "msg_c", "msg_d"].iter().enumerate() {
            agent.record("gen_ai.response.id", *id);
            if *id == "msg_b" {
                let _c = tokenmeter::instrument::claude_span("chat", "claude-haiku-4-5", false);
                _c.record("input_tokens", 50u64);
                _c.record("output_tokens", 5u64);
            }
            agent.record("input_tokens", 1_000 * (i as u64 + 1));
            agent.record("output_tokens", 10u64);
        }
    });
    let calls = h.seen.calls();
    let mut ids: Vec<&str> = calls.iter().filter_map(|c| c.request_id.as_deref()).collect();
    ids.sort();
    assert_eq!(ids, ["msg_a", "msg_b", "msg_c", "msg_d"], "{calls:#?}");
    assert_eq!(calls.len(), 5, "the helper's call too");
    assert_eq!(calls.iter().map(|c| c.tokens.input).sum::<u64>(), 10_050);
    assert_eq!(h.meter.capture_stats().rollup_spans, 0);
}

#[test]
fn a_failed_call_without_usage_on_a_shared_span_is_its_own_call() {
    // req_2 was a 529 with no usage: it was never counted, and its error was pinned on req_3.
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "client",
            gen_ai.request.model = "claude-sonnet-4-5",
            request_id = Empty,
            error.type = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        span.record("request_id", "req_1");
        span.record("input_tokens", 100u64);
        span.record("output_tokens", 10u64);
        span.record("request_id", "req_2");
        span.record("error.type", "overloaded_error");
        span.record("request_id", "req_3");
        span.record("input_tokens", 300u64);
        span.record("output_tokens", 30u64);
    });
    let calls = h.seen.calls();
    let view: Vec<(&str, bool, bool)> =
        calls.iter().map(|c| (c.request_id.as_deref().unwrap_or("-"), c.metered, c.outcome.is_error())).collect();
    assert_eq!(view, [("req_1", true, false), ("req_2", false, true), ("req_3", true, false)]);
}

#[test]
fn a_span_that_is_not_a_call_is_never_split_into_calls() {
    // A conversation span keeping its latest response id (for correlation), around one real call.
    let h = Harness::new();
    h.run(|| {
        let conversation = info_span!("conversation", gen_ai.conversation.id = "c1", gen_ai.response.id = Empty);
        let _c = conversation.enter();
        conversation.record("gen_ai.response.id", "msg_1");
        let _call =
            info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, output_tokens = 1u64).entered();
        conversation.record("gen_ai.response.id", "msg_2");
        conversation.record("gen_ai.response.id", "msg_3");
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.session.as_deref(), Some("c1"));
    assert_eq!(h.meter.capture_stats().shared_span_splits, 0);
    assert_eq!(h.meter.total_usage().calls, 1);
}

#[test]
fn a_response_id_after_a_failed_call_starts_the_next_call() {
    // Each call records its response id before its usage and its request id last; req_2 was a 529 (no response
    // id, no usage). msg_3 used to join req_2's failed call, which req_3 then split off with call 3's tokens.
    let h = Harness::new();
    h.run(|| {
        let span = both_ids_span();
        span.record("gen_ai.response.id", "msg_1");
        span.record("input_tokens", 100u64);
        span.record("output_tokens", 10u64);
        span.record("request_id", "req_1");
        span.record("request_id", "req_2");
        span.record("error.type", "overloaded_error");
        span.record("gen_ai.response.id", "msg_3");
        span.record("input_tokens", 300u64);
        span.record("output_tokens", 30u64);
        span.record("request_id", "req_3");
    });
    let calls = h.seen.calls();
    let view: Vec<(u64, bool, bool)> =
        calls.iter().map(|c| (c.tokens.input, c.metered, c.outcome.is_error())).collect();
    assert_eq!(view, [(100, true, false), (0, false, true), (300, true, false)], "{calls:#?}");
    assert_eq!(calls[2].request_id.as_deref(), Some("msg_3"));
}

#[test]
fn a_stream_that_fails_after_its_response_id_keeps_its_request_id() {
    // message_start gave the id, the stream then failed; the error response's request id comes last.
    let h = Harness::new();
    h.run(|| {
        let span = both_ids_span();
        span.record("gen_ai.response.id", "msg_1");
        span.record("input_tokens", 100u64);
        span.record("error.type", "overloaded_error");
        span.record("request_id", "req_1");
    });
    let call = h.seen.only_call();
    assert!(call.outcome.is_error());
    assert_eq!(call.tokens.input, 100);
}

#[test]
fn a_late_response_id_with_the_failed_calls_own_request_id_is_that_call() {
    // The request id from the headers first, the stream's error as it came, then the finalizer's event with the
    // response id, the same request id and the usage so far: one failed call.
    let h = Harness::new();
    h.run(|| {
        let span = both_ids_span();
        span.record("request_id", "req_1");
        span.record("error.type", "overloaded_error");
        tracing::info!(parent: &span, gen_ai.response.id = "msg_1", request_id = "req_1", input_tokens = 100u64, output_tokens = 3u64);
    });
    let call = h.seen.only_call();
    assert!(call.outcome.is_error());
    assert_eq!((call.tokens.input, call.request_id.as_deref()), (100, Some("msg_1")));
    assert_eq!(h.meter.capture_stats().shared_span_splits, 0);
}

#[test]
fn a_loop_span_recording_what_its_client_span_recorded_counts_each_call_once() {
    // Each call: the client's own span records the response id and usage and closes; then the loop span records
    // the same response. From the second call on, the loop span carried several calls and none was taken as a
    // roll-up: every call was counted twice (6 calls, 12,600 input tokens for 6,300).
    let h = Harness::new();
    h.run(|| {
        let agent = agent_loop();
        let _in = agent.enter();
        for (i, id) in ["msg_a", "msg_b", "msg_c"].iter().enumerate() {
            let input = 1_000 * (i as u64 + 1) + 100;
            {
                let client = info_span!(
                    "chat",
                    gen_ai.operation.name = "chat",
                    gen_ai.request.model = "claude-sonnet-4-5",
                    gen_ai.response.id = Empty,
                    input_tokens = Empty,
                    output_tokens = Empty,
                );
                client.record("gen_ai.response.id", *id);
                client.record("input_tokens", input);
                client.record("output_tokens", 10u64);
            }
            agent.record("gen_ai.response.id", *id);
            agent.record("input_tokens", input);
            agent.record("output_tokens", 10u64);
        }
    });
    let calls = h.seen.calls();
    let ids: Vec<&str> = calls.iter().filter_map(|c| c.request_id.as_deref()).collect();
    assert_eq!(ids, ["msg_a", "msg_b", "msg_c"], "{calls:#?}");
    assert_eq!(calls.iter().map(|c| c.tokens.input).sum::<u64>(), 6_300);
    assert_eq!(h.meter.capture_stats().rollup_spans, 3, "the loop span's three records of them");

    // One call on an inference span (`chat`, never a roll-up by its operation) around the client's own span of
    // the same response: one call, not two.
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!(
            "chat",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
        );
        let _in = outer.enter();
        {
            let inner = info_span!(
                "http",
                gen_ai.request.model = "claude-sonnet-4-5",
                gen_ai.response.id = "msg_x",
                input_tokens = 500u64
            );
            drop(inner);
        }
        outer.record("gen_ai.response.id", "msg_x");
        outer.record("input_tokens", 500u64);
    });
    assert_eq!(h.seen.calls().len(), 1, "{:#?}", h.seen.calls());
}

#[test]
fn dimensions_recorded_with_the_next_calls_id_are_that_calls() {
    // A long-lived span whose caller records the next call's user with its response id, in one `record_all`: the
    // user was applied before the split, so the call it finished was filed under the next call's user.
    use tracing::field::Value;
    let h = Harness::new();
    h.run(|| {
        let agent = info_span!(
            "agent loop",
            user.id = "alice",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
        );
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("input_tokens", 100u64);
        let fields = agent.metadata().expect("enabled").fields();
        let (user, id) = (fields.field("user.id").unwrap(), fields.field("gen_ai.response.id").unwrap());
        agent
            .record_all(&fields.value_set(&[(&user, Some(&"bob" as &dyn Value)), (&id, Some(&"msg_b" as &dyn Value))]));
        agent.record("input_tokens", 200u64);
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let users: Vec<_> = calls.iter().map(|c| (c.tokens.input, c.dimensions.user.as_deref())).collect();
    assert_eq!(users, [(100, Some("alice")), (200, Some("bob"))]);
}

#[test]
fn an_alert_fired_inside_a_usage_event_is_logged_after_it() {
    // A usage event carrying the next call's id finishes the earlier call inside the event's dispatch, where its
    // budget alert fired. Under a scoped dispatcher an event logged inside another event's dispatch goes nowhere:
    // the alert's log line was lost (its callbacks ran). It is now logged at the next span exit, record or close.
    use std::sync::{Arc, Mutex};
    use tokenmeter::budget::{Budget, BudgetLimit};
    use tracing_subscriber::prelude::*;
    #[derive(Clone, Default)]
    struct BudgetEvents(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BudgetEvents {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if event.metadata().target() == "tokenmeter::budget" {
                self.0.lock().unwrap().push(event.metadata().level().to_string());
            }
        }
    }
    let fired = Arc::new(Mutex::new(0));
    let count = fired.clone();
    let h = Harness::with(move |b| {
        b.with_budget(Budget::new("tokens", BudgetLimit::tokens(150)).with_thresholds([50]))
            .with_budget_alert_callback(move |_| *count.lock().unwrap() += 1)
    });
    let events = BudgetEvents::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let agent = agent_loop();
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("input_tokens", 100u64);
        tracing::info!(parent: &agent, gen_ai.response.id = "msg_b", input_tokens = 10u64);
        // The 50% threshold and the projected overrun.
        let alerts = *fired.lock().unwrap();
        assert!(alerts >= 1, "the callbacks ran inside the event");
        assert!(events.0.lock().unwrap().is_empty(), "not logged inside the event's dispatch");
        drop(agent);
        assert_eq!(events.0.lock().unwrap().len(), alerts, "each logged at the span's close");
    });
    assert_eq!(h.meter.total_usage().calls, 2);
    // Inside an entered span: logged when it is exited, before it closes.
    let h = Harness::with(|b| b.with_budget(Budget::new("tokens", BudgetLimit::tokens(150)).with_thresholds([50])));
    let events = BudgetEvents::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let agent = agent_loop();
        let entered = agent.enter();
        agent.record("gen_ai.response.id", "msg_a");
        agent.record("input_tokens", 100u64);
        tracing::info!(gen_ai.response.id = "msg_b", input_tokens = 10u64);
        assert!(events.0.lock().unwrap().is_empty());
        drop(entered);
        assert!(!events.0.lock().unwrap().is_empty(), "logged at the exit");
    });
}

/// A client's span of one response: its id and usage recorded, then closed.
fn client_call(model: &str, id: &str, input: u64, output: u64) {
    let client = info_span!(
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.request.model = model,
        gen_ai.response.id = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
    );
    client.record("gen_ai.response.id", id);
    client.record("input_tokens", input);
    client.record("output_tokens", output);
}

#[test]
fn a_loop_turn_that_fans_out_to_many_calls_is_still_counted_once() {
    // The loop span kept the ids of the last 8 calls inside it: a turn with 8 tool or sub-agent calls before the
    // loop recorded the turn pushed the turn's own id out, and the turn was counted twice (11 calls for 10).
    for fan_out in [8u64, 40] {
        let h = Harness::new();
        h.run(|| {
            let agent = agent_loop();
            let _in = agent.enter();
            for turn in ["msg_a", "msg_b"] {
                client_call("claude-sonnet-4-5", turn, 10_000, 500);
                if turn == "msg_a" {
                    for i in 0..fan_out {
                        client_call("claude-haiku-4-5", &format!("msg_tool_{i}"), 100, 10);
                    }
                }
                agent.record("gen_ai.response.id", turn);
                agent.record("input_tokens", 10_000u64);
                agent.record("output_tokens", 500u64);
            }
        });
        let total = h.meter.total_usage();
        assert_eq!(total.calls, 2 + fan_out, "fan-out {fan_out}");
        assert_eq!(total.tokens.input, 20_000 + 100 * fan_out, "fan-out {fan_out}");
        assert_eq!(h.meter.capture_stats().rollup_spans, 2, "the loop's two records of its turns");
    }
}

#[test]
fn a_retry_wrapper_recording_the_attempt_that_worked_without_an_id_is_counted_once() {
    // A `chat` span around its attempts (one overloaded, one that worked) records the usage of the one that
    // worked, and no id of its own: the same call, once (it was counted twice: 3 calls, $0.09 for $0.045).
    let h = Harness::new();
    h.run(|| {
        let wrapper = info_span!(
            "llm.request",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
        );
        wrapper.in_scope(|| {
            let failed = info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "claude-sonnet-4-5",
                error.type = "overloaded_error",
                input_tokens = Empty,
            );
            drop(failed);
            client_call("claude-sonnet-4-5", "msg_ok", 10_000, 1_000);
        });
        wrapper.record("gen_ai.usage.input_tokens", 10_000u64);
        wrapper.record("gen_ai.usage.output_tokens", 1_000u64);
    });
    let total = h.meter.total_usage();
    assert_eq!((total.calls, total.tokens.input, total.tokens.output), (2, 10_000, 1_000));
    // Sonnet 4.5: 10,000 x $3 + 1,000 x $15 per million.
    assert_eq!(total.cost.to_string(), "$0.045");
    assert_eq!(h.meter.capture_stats().rollup_spans, 1);

    // A `chat` span whose own usage differs from the call inside it (a tool's call while it streams) is still
    // a call of its own, as before.
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!(
            "chat",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
        );
        outer.in_scope(|| client_call("claude-haiku-4-5", "msg_tool", 10_000, 1_000));
        outer.record("gen_ai.usage.input_tokens", 20_000u64);
        outer.record("gen_ai.usage.output_tokens", 2_000u64);
    });
    assert_eq!(h.meter.total_usage().calls, 2);
    assert_eq!(h.meter.total_usage().tokens.input, 30_000);
}

#[test]
fn a_span_without_an_operation_whose_own_id_no_call_inside_had_is_a_call() {
    // The application's call span (no `gen_ai.operation.name`) records its response's id and usage; a sub-agent
    // spawned while it streamed made its own call inside it. The span was taken for a roll-up of that call and
    // dropped: one call, $0.0105 for $0.1005.
    let h = Harness::new();
    h.run(|| {
        let call = info_span!(
            "llm_call",
            model = "claude-sonnet-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        call.in_scope(|| client_call("claude-sonnet-4-5", "msg_sub", 1_000, 500));
        call.record("gen_ai.response.id", "msg_main");
        call.record("input_tokens", 20_000u64);
        call.record("output_tokens", 2_000u64);
    });
    let total = h.meter.total_usage();
    assert_eq!((total.calls, total.tokens.input, total.tokens.output), (2, 21_000, 2_500));
    assert_eq!(total.cost.to_string(), "$0.1005");
    assert_eq!(h.meter.capture_stats().rollup_spans, 0);

    // Without an id of its own it is still taken for a roll-up (README "Roll-up spans"): nothing tells it apart
    // from an agent's totals. Nor is an `invoke_agent` span with an id its calls did not have a call.
    for (operation, id) in [(None, None), (Some("invoke_agent"), Some("run_1"))] {
        let h = Harness::new();
        h.run(|| {
            let span = info_span!(
                "agent",
                gen_ai.operation.name = Empty,
                model = "claude-sonnet-4-5",
                gen_ai.response.id = Empty,
                input_tokens = Empty,
            );
            if let Some(op) = operation {
                span.record("gen_ai.operation.name", op);
            }
            span.in_scope(|| client_call("claude-sonnet-4-5", "msg_sub", 1_000, 500));
            if let Some(id) = id {
                span.record("gen_ai.response.id", id);
            }
            span.record("input_tokens", 1_000u64);
        });
        assert_eq!(h.meter.total_usage().calls, 1, "{operation:?}");
        assert_eq!(h.meter.capture_stats().rollup_spans, 1, "{operation:?}");
    }
}

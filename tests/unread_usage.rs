//! A field named as a usage count that capture does not read (a misspelling, a token kind the contract does not
//! have, another provider's name) is counted in `capture_stats().unread_usage_declarations` and logged at WARN once per
//! name: its tokens would otherwise be missing from every figure without a word.

use crate::common;

use std::sync::Arc;

use common::Harness;
use parking_lot::Mutex;
use tokenmeter::TokenMeter;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

/// The `field` of each WARN event of target `tokenmeter::capture`.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct FieldOf<'a>(&'a mut Option<String>);

impl tracing::field::Visit for FieldOf<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "field" {
            *self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "tokenmeter::capture" && *m.level() == tracing::Level::WARN {
            let mut field = None;
            event.record(&mut FieldOf(&mut field));
            self.0.lock().push(field.unwrap_or_default());
        }
    }
}

/// Runs `f` with the harness's meter and a [`Warnings`] layer; returns the warned fields.
fn run_warned(h: &Harness, f: impl FnOnce()) -> Vec<String> {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(warnings.clone());
    tracing::subscriber::with_default(subscriber, f);
    warnings.0.lock().clone()
}

#[test]
fn a_token_kind_the_contract_does_not_have_is_counted_and_warned_about_once() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        for _ in 0..3 {
            let _call = info_span!(
                "chat",
                gen_ai.request.model = "claude-sonnet-4-5",
                gen_ai.usage.input_tokens = 1_000u64,
                gen_ai.usage.output_tokens = 100u64,
                gen_ai.usage.audio_input_tokens = 400u64,
            )
            .entered();
        }
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 3, "the calls themselves are counted");
    assert_eq!(calls[0].tokens.input, 1_000, "with the tokens capture reads");
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 3, "once per span");
    assert_eq!(warned, ["gen_ai.usage.audio_input_tokens"], "one warning per name");
}

#[test]
fn a_misspelled_usage_field_is_not_a_call_and_is_counted() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        let _call =
            info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", gen_ai.usage.input_token = 100u64).entered();
        // A declared field counts even when no value is recorded into it.
        let _later = info_span!("chat", llm.usage.prompt_tokens = tracing::field::Empty).entered();
    });
    assert!(h.seen.calls().is_empty(), "no field capture reads: no call");
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 2);
    assert_eq!(warned, ["gen_ai.usage.input_token", "llm.usage.prompt_tokens"]);
}

#[test]
fn other_providers_names_count_on_a_span_that_looks_like_an_llm_calls() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        // Gemini's names, beside a model: an LLM call whose tokens tokenmeter cannot read.
        let _gemini =
            info_span!("generate", gen_ai.request.model = "gemini-2.5-pro", prompt_token_count = 900u64).entered();
        // OpenInference's names, which no contract field sits beside.
        let _phoenix = info_span!("llm", llm.model_name = "claude-haiku-4-5", llm.token_count.prompt = 40u64).entered();
        drop(_phoenix);
        // A usage event inside a call span: its cache breakdown is not read (the input it is a part of is).
        let _call = info_span!("chat", model = "claude-sonnet-4-5", input_tokens = tracing::field::Empty).entered();
        info!(input_tokens = 10u64, usage_metadata.input_token_details.cache_read = 2u64, "usage");
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 3);
    assert_eq!(
        warned,
        ["prompt_token_count", "llm.token_count.prompt", "usage_metadata.input_token_details.cache_read"]
    );
    assert_eq!(h.seen.only_call().tokens.input, 10, "the event's known field is still read");
}

#[test]
fn the_same_counts_under_other_names_beside_fields_read_are_not_flagged() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        // The Vercel AI SDK's names beside semconv's, and Sentry's reasoning part of output.
        let _call = info_span!(
            "ai.generateText",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 1_000u64,
            gen_ai.usage.output_tokens = 100u64,
            ai.usage.promptTokens = 1_000u64,
            ai.usage.completionTokens = 100u64,
            gen_ai.usage.output_tokens.reasoning = 40u64,
        )
        .entered();
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 0);
    assert!(warned.is_empty(), "{warned:?}");
    assert_eq!(h.seen.only_call().tokens.output, 100);
}

#[test]
fn a_field_named_as_not_usage_is_neither_counted_nor_warned_about() {
    let h = Harness::with(|b| b.with_non_usage_field("gen_ai.usage.prompt_cache_key_tokens"));
    let warned = run_warned(&h, || {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            input_tokens = 10u64,
            gen_ai.usage.prompt_cache_key_tokens = 5u64,
        )
        .entered();
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 0);
    assert!(warned.is_empty(), "{warned:?}");
}

#[test]
fn a_warning_held_by_a_thread_that_ends_is_given_by_another() {
    let h = Harness::new();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(warnings.clone());
    let dispatch = tracing::Dispatch::new(subscriber);
    // A thread that raises a usage event and ends without a span exit or close: its warning is never logged.
    let worker = dispatch.clone();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&worker, || info!(model = "gemini-2.5-pro", candidates_token_count = 9u64));
    })
    .join()
    .unwrap();
    assert!(warnings.0.lock().is_empty());
    // This thread warns for it, at its next span exit.
    tracing::dispatcher::with_default(&dispatch, || {
        info!(model = "gemini-2.5-pro", candidates_token_count = 9u64);
        let _span = info_span!("work").entered();
    });
    assert_eq!(*warnings.0.lock(), ["candidates_token_count"]);
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 2);
}

#[test]
fn limits_totals_and_other_kinds_of_tokens_are_not_usage() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.request.max_tokens = 4_096u64,
            thinking.budget_tokens = 2_048u64,
            gen_ai.usage.total_tokens = 1_100u64,
            llm.usage.total_tokens = 1_100u64,
            gen_ai.usage.cost = 0.01,
            input_tokens = 1_000u64,
            output_tokens = 100u64,
        )
        .entered();
        // No model, provider, token field or `gen_ai.` field: a rate limiter's tokens, a tokenizer's count, a
        // process's usage figures.
        let _limiter =
            info_span!("acquire", available_tokens = 3u64, tokens = 12u64, usage.cpu_seconds = 2u64).entered();
        info!(tokens = 57u64, "tokenized");
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 0);
    assert!(warned.is_empty(), "{warned:?}");
    assert_eq!(h.seen.only_call().tokens.output, 100);
}

#[test]
fn a_field_kept_as_an_extra_dimension_is_read_and_not_counted() {
    let h = Harness::with(|b| b.with_dimension("usage.plan_tokens"));
    let warned = run_warned(&h, || {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            input_tokens = 10u64,
            usage.plan_tokens = "pro",
            usage.audio_tokens = 5u64,
        )
        .entered();
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 1, "usage.audio_tokens only");
    assert_eq!(warned, ["usage.audio_tokens"]);
}

#[test]
fn warnings_stop_at_32_names_and_the_count_goes_on() {
    let h = Harness::new();
    let warned = run_warned(&h, || {
        let _a = info_span!(
            "chat",
            gen_ai.usage.kind01_tokens = 1u64,
            gen_ai.usage.kind02_tokens = 1u64,
            gen_ai.usage.kind03_tokens = 1u64,
            gen_ai.usage.kind04_tokens = 1u64,
            gen_ai.usage.kind05_tokens = 1u64,
            gen_ai.usage.kind06_tokens = 1u64,
            gen_ai.usage.kind07_tokens = 1u64,
            gen_ai.usage.kind08_tokens = 1u64,
            gen_ai.usage.kind09_tokens = 1u64,
            gen_ai.usage.kind10_tokens = 1u64,
            gen_ai.usage.kind11_tokens = 1u64,
            gen_ai.usage.kind12_tokens = 1u64,
            gen_ai.usage.kind13_tokens = 1u64,
            gen_ai.usage.kind14_tokens = 1u64,
            gen_ai.usage.kind15_tokens = 1u64,
            gen_ai.usage.kind16_tokens = 1u64,
            gen_ai.usage.kind17_tokens = 1u64,
            gen_ai.usage.kind18_tokens = 1u64,
            gen_ai.usage.kind19_tokens = 1u64,
            gen_ai.usage.kind20_tokens = 1u64
        )
        .entered();
        let _b = info_span!(
            "chat",
            gen_ai.usage.kind21_tokens = 1u64,
            gen_ai.usage.kind22_tokens = 1u64,
            gen_ai.usage.kind23_tokens = 1u64,
            gen_ai.usage.kind24_tokens = 1u64,
            gen_ai.usage.kind25_tokens = 1u64,
            gen_ai.usage.kind26_tokens = 1u64,
            gen_ai.usage.kind27_tokens = 1u64,
            gen_ai.usage.kind28_tokens = 1u64,
            gen_ai.usage.kind29_tokens = 1u64,
            gen_ai.usage.kind30_tokens = 1u64,
            gen_ai.usage.kind31_tokens = 1u64,
            gen_ai.usage.kind32_tokens = 1u64,
            gen_ai.usage.kind33_tokens = 1u64,
            gen_ai.usage.kind34_tokens = 1u64
        )
        .entered();
    });
    assert_eq!(warned.len(), 32, "{warned:?}");
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 2);
}

#[test]
fn each_meter_warns_for_itself() {
    let (one, two) = (TokenMeter::builder().build(), TokenMeter::builder().build());
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(one.layer()).with(two.layer()).with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        let _call = info_span!("chat", gen_ai.usage.image_tokens = 3u64).entered();
    });
    assert_eq!(*warnings.0.lock(), ["gen_ai.usage.image_tokens", "gen_ai.usage.image_tokens"]);
    assert_eq!((one.capture_stats().unread_usage_declarations, two.capture_stats().unread_usage_declarations), (1, 1));
}

#[test]
fn behind_its_filter_the_layer_still_sees_unread_usage() {
    // `filtered_layer` lets through only what capture reads: a span or event whose only usage fields are misspelt
    // would not reach it.
    let h = Harness::new();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.filtered_layer()).with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        info!(gen_ai.usage.input_token = 10u64, gen_ai.usage.output_token = 5u64, "usage");
        let _plain = info_span!("plain", gen_ai.usage.prompt_token = 10u64).entered();
    });
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 2);
    let mut warned = warnings.0.lock().clone();
    warned.sort();
    assert_eq!(warned, ["gen_ai.usage.input_token", "gen_ai.usage.output_token", "gen_ai.usage.prompt_token"]);
}

#[test]
fn threads_that_end_holding_warnings_do_not_use_up_the_meters_room_for_them() {
    let h = Harness::new();
    let warnings = Warnings::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(h.meter.layer()).with(warnings.clone()));
    // More threads than the meter holds back warnings for (256), each ending with its warning unlogged.
    for _ in 0..300 {
        let worker = dispatch.clone();
        std::thread::spawn(move || tracing::dispatcher::with_default(&worker, || info!(gen_ai.usage.a_tokens = 1u64)))
            .join()
            .unwrap();
    }
    assert!(warnings.0.lock().is_empty());
    tracing::dispatcher::with_default(&dispatch, || {
        info!(gen_ai.usage.b_tokens = 1u64);
        let _span = info_span!("work").entered();
    });
    assert_eq!(*warnings.0.lock(), ["gen_ai.usage.b_tokens"]);
    assert_eq!(h.meter.capture_stats().unread_usage_declarations, 301);
}

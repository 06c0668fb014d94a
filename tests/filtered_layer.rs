//! `TokenMeter::filtered_layer`: the capture layer behind its own per-layer filter. Beside a `fmt` layer with a
//! per-layer filter, a callsite that filter turns off stays off for the whole process (an unfiltered layer turns
//! every callsite on), and capture reads what it reads through `layer()`.

use tokenmeter::{CallRecord, Dimension, Query, TokenMeter, Window};
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

fn fmt_info<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(LevelFilter::INFO)
}

/// A session, a plain request span between it and the call, a call with usage recorded later and a usage event,
/// an error in a helper span inside the call (retried: not the call's), then a failed call.
fn workload() {
    let _session = tracing::info_span!("conversation", session.id = "s1", user.id = "u1", team = "search").entered();
    let _request = tracing::info_span!("handle_request", http.route = "/chat").entered();
    {
        let call = tracing::info_span!(
            "chat claude-sonnet-4-5",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        let _e = call.enter();
        tracing::info_span!("http attempt").in_scope(|| tracing::error!(error.type = "overloaded_error"));
        tracing::info!(gen_ai.usage.output_tokens = 7u64, "usage event");
        call.record("gen_ai.usage.input_tokens", 1_000u64);
        tracing::trace_span!("poll").in_scope(|| tracing::trace!("polled"));
    }
    let failed = tracing::info_span!("chat claude-haiku-4-5", gen_ai.request.model = "claude-haiku-4-5",
        input_tokens = 10u64, error.type = Empty);
    failed.in_scope(|| tracing::error!(error.type = "overloaded_error"));
}

type Seen = std::sync::Arc<parking_lot::Mutex<Vec<CallRecord>>>;

fn calls(meter: &(TokenMeter, Seen)) -> Vec<CallRecord> {
    meter.1.lock().clone()
}

fn run(filtered: bool) -> (TokenMeter, Seen) {
    let seen = Seen::default();
    let sink = seen.clone();
    let meter = TokenMeter::builder().with_dimension("team").on_call(move |c| sink.lock().push(c.clone())).build();
    let dispatch = if filtered {
        tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.filtered_layer()))
    } else {
        tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.layer()))
    };
    tracing::dispatcher::with_default(&dispatch, workload);
    (meter, seen)
}

#[test]
fn reads_the_same_calls_dimensions_and_outcomes_as_the_unfiltered_layer() {
    for filtered in [false, true] {
        let run = run(filtered);
        let meter = &run.0;
        let total = meter.total_usage();
        assert_eq!((total.calls, total.failed_calls), (2, 1), "filtered: {filtered}");
        assert_eq!((total.tokens.input, total.tokens.output), (1_010, 7), "filtered: {filtered}");
        // Inherited through the plain request span; the extra dimension too.
        for (dimension, value) in [(Dimension::Session, "s1"), (Dimension::User, "u1")] {
            let q = Query::new(Window::All).filter(dimension, value);
            assert_eq!(meter.ledger().query(&q).unwrap().totals.calls, 2, "{dimension:?}, filtered: {filtered}");
        }
        let team: Vec<_> = calls(&run).iter().map(|c| c.dimensions.extra.clone()).collect();
        assert_eq!(team.len(), 2, "both calls reached the sink: {team:?}");
        assert!(team.iter().all(|e| e.len() == 1 && &*e[0].0 == "team" && &*e[0].1 == "search"), "{team:?}");
    }
}

/// The one difference in what capture reads: a usage event whose explicit `parent:` is a span capture does not
/// read (no token fields) is not found through `filtered_layer()`'s filter, which hides that span from the
/// layer: the usage counts as orphaned. Through `layer()` it reaches the call around that span. (An event in the
/// current span is found either way: the filter looks past the spans it hides.)
#[test]
fn a_usage_event_with_an_explicit_parent_capture_does_not_read_is_orphaned_when_filtered() {
    for filtered in [false, true] {
        let meter = TokenMeter::builder().build();
        let dispatch = if filtered {
            tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.filtered_layer()))
        } else {
            tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.layer()))
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let call = tracing::info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64);
            let attempt = tracing::info_span!(parent: &call, "http attempt");
            tracing::info!(parent: &attempt, output_tokens = 7u64, "usage");
        });
        let (output, orphans) = (meter.total_usage().tokens.output, meter.capture_stats().orphan_usage_events);
        assert_eq!((output, orphans), if filtered { (0, 1) } else { (7, 0) }, "filtered: {filtered}");
    }
}

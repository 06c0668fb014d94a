//! `TokenMeter::filtered_layer` beside a `fmt` layer with a per-layer filter: a callsite that filter turns off
//! stays off for the whole process; an unfiltered layer turns every callsite on. One test in its own binary: a
//! callsite's interest is asked of every dispatcher alive when it is first hit, so no other test may run beside
//! it.

use tokenmeter::TokenMeter;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

fn fmt_info<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(LevelFilter::INFO)
}

#[test]
fn callsites_the_other_layers_filter_turns_off_stay_off() {
    let meter = TokenMeter::builder().build();
    let filtered = tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.filtered_layer()));
    tracing::dispatcher::with_default(&filtered, || {
        let span = tracing::trace_span!("poll", stream = 2u64);
        assert!(span.is_disabled(), "no layer wants it");
        // What capture reads is on, at any level, though fmt's filter turns it off.
        let call = tracing::trace_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 3u64);
        assert!(!call.is_disabled());
        let context = tracing::debug_span!("conversation", session.id = "s2");
        assert!(!context.is_disabled());
        // The filter gives no level hint (capture reads call spans at any level), so the process's max level reads
        // TRACE though the callsites stay off (README says so).
        assert_eq!(LevelFilter::current(), LevelFilter::TRACE);
    });
    assert_eq!(meter.total_usage().calls, 1);
    drop(filtered);

    // The same with the unfiltered layer (a callsite of its own, first hit now).
    let unfiltered = tracing::Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.layer()));
    tracing::dispatcher::with_default(&unfiltered, || {
        let span = tracing::trace_span!("poll", stream = 1u64);
        assert!(!span.is_disabled(), "an unfiltered layer turns every callsite on");
    });
}

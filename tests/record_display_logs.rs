//! A value recorded on a call span (`Span::record`) whose `Display` logs, under the global default (where a nested
//! event is dispatched): the layer held the span's extensions write lock while it rendered the value, and another
//! layer reading the current span's extensions for the nested event (as tracing-opentelemetry's `on_event` does)
//! waited on it for good. One test in this binary: it sets the process's global default.

mod common;

use std::fmt;
use std::time::Duration;

use common::Collected;
use tokenmeter::TokenMeter;
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

struct Loud;

impl fmt::Display for Loud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!("formatting the error");
        f.write_str("overloaded_error")
    }
}

/// Reads the current span's extensions for every event.
struct ReadsCurrentSpan;

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for ReadsCurrentSpan {
    fn on_event(&self, _: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.lookup_current() {
            let _ = span.extensions().get::<u8>();
        }
    }
}

#[test]
fn a_recorded_value_whose_display_logs_does_not_hang_the_call() {
    let seen = Collected::default();
    let meter = TokenMeter::builder().with_sink(seen.clone()).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer()).with(ReadsCurrentSpan);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let call = tracing::info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = 10u64,
            project = tracing::field::Empty,
            error.type = tracing::field::Empty
        );
        call.in_scope(|| {
            tracing::Span::current().record("error.type", tracing::field::display(&Loud));
            tracing::Span::current().record("project", tracing::field::display("acme"));
        });
        drop(call);
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(20)).expect("the call's thread hung on the span's extensions lock");
    let call = seen.only_call();
    assert_eq!(call.outcome.label(), "overloaded_error", "{call:?}");
    assert_eq!(call.dimensions.project.as_deref(), Some("acme"));
}

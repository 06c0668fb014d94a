//! A usage event that splits a shared span's calls finishes the earlier call inside the event's own dispatch:
//! the sinks and budget alerts that run then may log, and under a global dispatcher an event logged there
//! overwrites tracing-subscriber's per-layer filter state for the outer event (tokio-rs/tracing#2704), for the
//! layers that have not seen the outer event yet. With the meter's layer added last (as README advises), a
//! filtered layer has seen it already and judges it by its own filter. One test in this file: it sets the global
//! subscriber.

use std::sync::{Arc, Mutex};

use tokenmeter::TokenMeter;
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing::{Level, info, info_span};
use tracing_subscriber::prelude::*;

/// Notes the level and message of every event it is handed.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Level, String)>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push((*event.metadata().level(), message.0));
    }
}

#[test]
fn a_filtered_layer_before_the_meter_sees_only_what_its_filter_lets_through() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let noted = calls.clone();
    // A sink that logs each call, as the README's sinks do.
    let meter = TokenMeter::builder()
        .on_call(move |call| {
            noted.lock().unwrap().push(call.request_id.as_deref().unwrap_or_default().to_owned());
            tracing::warn!(target: "app::costs", "call recorded");
        })
        .build();
    let warnings = Seen::default();
    // The meter's layer last. Added first (`.with(meter.layer()).with(warnings...)`), the INFO event passed.
    tracing_subscriber::registry().with(warnings.clone().with_filter(LevelFilter::WARN)).with(meter.layer()).init();

    let conversation = info_span!(
        "conversation",
        gen_ai.request.model = "claude-haiku-4-5",
        gen_ai.response.id = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
    );
    {
        let _in = conversation.enter();
        info!(gen_ai.response.id = "msg_1", input_tokens = 10u64, output_tokens = 5u64, "usage");
        // Splits off msg_1: its sink logs.
        info!(gen_ai.response.id = "msg_2", input_tokens = 20u64, output_tokens = 5u64, "usage");
    }
    assert_eq!(*calls.lock().unwrap(), ["msg_1"]);
    drop(conversation);
    assert_eq!(*calls.lock().unwrap(), ["msg_1", "msg_2"]);

    let seen = warnings.0.lock().unwrap().clone();
    assert!(seen.iter().all(|(level, _)| *level <= Level::WARN), "an INFO event passed a WARN filter: {seen:?}");
    assert_eq!(seen.len(), 2, "both calls' warnings, nothing else: {seen:?}");
}

//! An `error.type` whose `Display` logs, under the global default (where a nested event is dispatched): the
//! layer held the call span's extensions write lock while it visited the event's fields, and another layer
//! reading that span for the nested event (fmt's span fields) waited on it for good. One test in this binary: it
//! sets the process's global default.

mod common;

use std::fmt;
use std::time::Duration;

use common::Collected;
use tokenmeter::TokenMeter;
use tracing_subscriber::prelude::*;

struct Loud;

impl fmt::Display for Loud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!("formatting the error");
        f.write_str("overloaded_error")
    }
}

#[test]
fn an_error_type_whose_display_logs_does_not_hang_the_call() {
    let seen = Collected::default();
    let meter = TokenMeter::builder().with_sink(seen.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(meter.layer())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_ansi(false));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let call = tracing::info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64);
        call.in_scope(|| tracing::error!(error.type = %Loud, "the call failed"));
        drop(call);
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(20)).expect("the call's thread hung on the span's extensions lock");
    let call = seen.only_call();
    assert_eq!(call.outcome.label(), "overloaded_error", "{call:?}");
}

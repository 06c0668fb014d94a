//! Other layers see exactly what they saw without tokenmeter: a `fmt` layer's output is byte-identical.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use tokenmeter::TokenMeter;
use tracing::field::Empty;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

fn workload() {
    let _req = tracing::info_span!("http request", http.route = "/chat", tenant.id = "acme").entered();
    tracing::info!(answer = 42, "plain event");
    let conv = tracing::info_span!("conversation", session.id = "s1", user.id = Empty);
    let _c = conv.enter();
    conv.record("user.id", "u1");
    let call = tracing::info_span!(
        "chat claude-sonnet-4-5",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    );
    let _e = call.enter();
    tracing::info!(output_tokens = 5u64, "usage event");
    call.record("gen_ai.usage.input_tokens", 1_000u64);
    call.record("gen_ai.usage.output_tokens", 10u64);
    tracing::debug!("filtered out by the env filter");
    let _tool = tracing::info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep")
        .entered();
    tracing::warn!(error.type = "x", "warning inside");
}

fn fmt_layer<S>(buf: Buf) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(buf)
        .with_ansi(false)
        .without_time()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_thread_ids(false)
}

fn run_without() -> Vec<u8> {
    let buf = Buf::default();
    let sub = tracing_subscriber::registry().with(EnvFilter::new("info")).with(fmt_layer(buf.clone()));
    tracing::subscriber::with_default(sub, workload);
    buf.0.lock().clone()
}

#[test]
fn fmt_output_is_byte_identical_with_meter_before_or_after() {
    let baseline = run_without();
    assert!(baseline.len() > 200, "the workload produced output");
    let text = String::from_utf8_lossy(&baseline);
    assert!(text.contains("usage event") && text.contains("plain event") && !text.contains("filtered out"));

    // Meter layer after fmt.
    let meter = TokenMeter::builder().build();
    let buf = Buf::default();
    let sub =
        tracing_subscriber::registry().with(EnvFilter::new("info")).with(fmt_layer(buf.clone())).with(meter.layer());
    tracing::subscriber::with_default(sub, workload);
    assert_eq!(String::from_utf8_lossy(&buf.0.lock()), text);
    assert_eq!(meter.total_usage().calls, 1);

    // Meter layer before fmt.
    let meter = TokenMeter::builder().build();
    let buf = Buf::default();
    let sub =
        tracing_subscriber::registry().with(meter.layer()).with(EnvFilter::new("info")).with(fmt_layer(buf.clone()));
    tracing::subscriber::with_default(sub, workload);
    assert_eq!(String::from_utf8_lossy(&buf.0.lock()), text);
    assert_eq!(meter.total_usage().calls, 1);
    assert_eq!(meter.total_usage().tokens.input, 1_000);
    assert_eq!(meter.tool_usage().len(), 1);
}

#[test]
fn per_layer_env_filter_on_fmt_does_not_hide_llm_spans_from_the_meter() {
    let meter = TokenMeter::builder().build();
    let buf = Buf::default();
    let sub = tracing_subscriber::registry()
        .with(fmt_layer(buf.clone()).with_filter(EnvFilter::new("error")))
        .with(meter.layer());
    tracing::subscriber::with_default(sub, workload);
    assert!(buf.0.lock().is_empty(), "fmt saw nothing at error level");
    assert_eq!(meter.total_usage().calls, 1);
}

#[test]
fn two_meters_on_one_registry_each_see_every_call() {
    // One meter per tenant or per purpose: both layers read the same spans (whose extensions hold one value per
    // type), and neither may panic, lose a call or take the other's.
    let text = String::from_utf8_lossy(&run_without()).into_owned();
    let (a, b) = (TokenMeter::builder().build(), TokenMeter::builder().build());
    let buf = Buf::default();
    let sub = tracing_subscriber::registry()
        .with(a.layer())
        .with(EnvFilter::new("info"))
        .with(fmt_layer(buf.clone()))
        .with(b.layer());
    tracing::subscriber::with_default(sub, workload);
    assert_eq!(String::from_utf8_lossy(&buf.0.lock()), text);
    for meter in [&a, &b] {
        let total = meter.total_usage();
        assert_eq!((total.calls, total.tokens.input, total.tokens.output), (1, 1_000, 10));
        assert_eq!(meter.tool_usage().len(), 1);
        let summary = meter.usage_summary(tokenmeter::Window::All).unwrap();
        assert_eq!(summary.calls, 1);
    }
    // Dimensions came from each meter's own view of the ancestors (recorded later on one, inherited by the call).
    for meter in [&a, &b] {
        for (dimension, value) in [(tokenmeter::Dimension::User, "u1"), (tokenmeter::Dimension::Session, "s1")] {
            let q = tokenmeter::Query::new(tokenmeter::Window::All).filter(dimension, value);
            assert_eq!(meter.ledger().query(&q).unwrap().totals.calls, 1, "{dimension:?}");
        }
    }
}

#[test]
fn a_meter_layered_twice_records_each_call_once() {
    let meter = TokenMeter::builder().build();
    let sub = tracing_subscriber::registry().with(meter.layer()).with(EnvFilter::new("info")).with(meter.layer());
    tracing::subscriber::with_default(sub, workload);
    let total = meter.total_usage();
    assert_eq!((total.calls, total.tokens.input, total.tokens.output), (1, 1_000, 10));
    assert_eq!(meter.tool_usage().iter().map(|t| t.invocations).sum::<u64>(), 1);
    assert_eq!(meter.usage_summary(tokenmeter::Window::All).unwrap().calls, 1);
}

#[test]
fn a_value_whose_display_panics_does_not_make_the_span_close_panic() {
    // A field's `Display` panicked while a layer held the span's extensions lock (fmt formats every field under
    // it): the registry's std lock was poisoned, and tokenmeter's `on_close` (which takes that lock) panicked in
    // turn when the span closed: into the application, or, with the span dropped while unwinding, an abort.
    // tokenmeter builds the registry with parking_lot's locks, which do not poison.
    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("a Display that panics")
        }
    }
    let meter = TokenMeter::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(Buf::default()))
        .with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, project = Empty);
        let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            span.record("project", tracing::field::display(Boom));
        }));
        assert!(recorded.is_err(), "the Display panicked");
        let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(span)));
        assert!(closed.is_ok(), "closing the span panicked");
    });
    assert_eq!(meter.total_usage().calls, 1);
}

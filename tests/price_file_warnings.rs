//! A price file entry replaces the model's whole price: the long-context rates or fast-mode multiplier it leaves
//! out are gone without a word, and those calls are priced at its standard rates (the CLI's `--prices` said so;
//! the builder did not).

use std::sync::Arc;

use parking_lot::Mutex;
use tokenmeter::TokenMeter;
use tracing_subscriber::prelude::*;

/// The messages of WARN events of target `tokenmeter`.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "tokenmeter" && *m.level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().push(text);
        }
    }
}

#[test]
fn an_entry_that_drops_long_context_or_fast_mode_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.toml");
    std::fs::write(
        &file,
        "[models.\"claude-sonnet-4-5\"]\ninput = 3\noutput = 15\n\n\
         [models.\"claude-opus-4-6\"]\ninput = 5\noutput = 25\nfast_multiplier = 6\n\n\
         [models.\"claude-haiku-4-5\"]\ninput = 1\noutput = 5\n",
    )
    .unwrap();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        TokenMeter::builder().with_prices_file(&file).unwrap().build();
    });
    let seen = warnings.0.lock().clone();
    let sonnet: Vec<&String> = seen.iter().filter(|w| w.contains("`claude-sonnet-4-5`")).collect();
    assert_eq!(sonnet.len(), 1, "{seen:?}");
    assert!(sonnet[0].contains("had `long_context` and gives none"), "{seen:?}");
    assert!(sonnet[0].contains("prices.toml"), "names the file: {seen:?}");
    // Opus 4.6 keeps its multiplier (and has no long-context rates to lose); Haiku 4.5 had neither.
    assert!(!seen.iter().any(|w| w.contains("claude-opus-4-6") || w.contains("claude-haiku-4-5")), "{seen:?}");

    std::fs::write(&file, "[models.\"claude-opus-4-6\"]\ninput = 5\noutput = 25\n").unwrap();
    warnings.0.lock().clear();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        TokenMeter::builder().with_prices_file(&file).unwrap().build();
    });
    let seen = warnings.0.lock().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("`claude-opus-4-6` replaces a price that had `fast_multiplier`"), "{seen:?}");
}

//! Several threads recording at once give exact totals, tokens and money.

use std::sync::Arc;

use tokenmeter::{Money, TokenMeter};
use tracing_subscriber::prelude::*;

#[test]
fn eight_threads_exact_totals() {
    let meter = TokenMeter::builder().build();
    let subscriber = Arc::new(tracing_subscriber::registry().with(meter.layer()));
    const THREADS: u64 = 8;
    const CALLS: u64 = 2_000;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let sub = subscriber.clone();
            std::thread::spawn(move || {
                tracing::subscriber::with_default(sub, || {
                    let _s = tracing::info_span!("conv", session.id = t).entered();
                    for i in 0..CALLS {
                        let model = if i % 2 == 0 { "claude-sonnet-4-5" } else { "claude-haiku-4-5" };
                        let _c = tracing::info_span!(
                            "chat",
                            gen_ai.request.model = model,
                            input_tokens = 1_000u64,
                            cache_read_input_tokens = 2_000u64,
                            output_tokens = 100u64,
                        )
                        .entered();
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = meter.total_usage();
    let n = THREADS * CALLS;
    assert_eq!(total.calls, n);
    assert_eq!((total.tokens.input, total.tokens.cache_read, total.tokens.output), (n * 1_000, n * 2_000, n * 100));
    // Sonnet 4.5: 1000×$3 + 2000×$0.30 + 100×$15 per M = $0.0051; Haiku 4.5: 1000×$1 + 2000×$0.10 + 100×$5 = $0.0017.
    let per_pair = Money::from_picos(5_100_000_000 + 1_700_000_000);
    assert_eq!(total.cost, Money::from_picos(per_pair.picos() * u128::from(n / 2)));
    let by_model = meter.model_usage();
    assert_eq!(by_model.len(), 2);
    assert!(by_model.iter().all(|m| m.totals.calls == n / 2));
}

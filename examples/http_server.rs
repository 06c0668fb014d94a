//! A tiny HTTP API server over a simulated workload (feature `http`): prints its address, serves until
//! killed. `cargo run --example http_server --features http -- [PORT] [API_KEY]`.

use chrono::{Duration, TimeZone, Utc};
use tokenmeter::http::{HttpConfig, SessionTenants, serve};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let key = args.next();

    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let tenants = SessionTenants::default();
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_sink(tenants.clone()).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for (i, (tenant, model)) in
            [("acme", "claude-sonnet-4-5"), ("acme", "claude-haiku-4-5"), ("globex", "claude-opus-4-5")]
                .iter()
                .enumerate()
        {
            let session = format!("s-{}", i + 1);
            let _s = tracing::info_span!(
                "conversation",
                session.id = session.as_str(),
                tenant.id = *tenant,
                project = "helpdesk"
            )
            .entered();
            for turn in 0..3u64 {
                let _c = tracing::info_span!(
                    "chat",
                    gen_ai.provider.name = "anthropic",
                    gen_ai.request.model = *model,
                    input_tokens = 200 + 100 * turn,
                    cache_read_input_tokens = 4_000 * turn,
                    cache_creation_input_tokens = if turn == 0 { 4_000u64 } else { 0 },
                    output_tokens = 300u64,
                )
                .entered();
                clock.advance(Duration::minutes(7));
            }
        }
    });

    let mut config = HttpConfig::new().with_port(port).with_session_tenants(tenants);
    if let Some(k) = key {
        config = config.with_api_key(k);
    }
    let server = serve(meter, config).expect("start the server");
    println!("http://{}", server.local_addr());
    loop {
        std::thread::park();
    }
}

//! A tiny HTTP API server over a simulated workload (feature `http`): prints its address, serves until
//! killed. `cargo run --example http_server --features http -- [PORT] [API_KEY] [ACME_KEY]`: `API_KEY` sees
//! every tenant, `ACME_KEY` (optional) only tenant `acme`. (A demonstration over a simulated workload: keys on a
//! command line are visible to every user of the machine in `ps`; an application reads them from its own
//! configuration, and stops its server with `ServerHandle::shutdown` and then its meter with `shutdown`.)
//!
//! The workload, on a manual clock starting 2026-03-14 09:00 UTC: three sessions (`s-1` and `s-2` of tenant
//! `acme`, `s-3` of `globex`), three calls each, 7 minutes apart, each call followed by a 2-second
//! `search_docs` tool execution (the last one of `s-3` fails); two budgets.

use chrono::{Duration, TimeZone, Utc};
use tokenmeter::budget::{Budget, BudgetLimit, BudgetScope};
use tokenmeter::http::{HttpConfig, SessionTenants, serve};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    // A port that is not a number (say, the key given without the port before it) stops here: taken as 0, the
    // server would listen on a random port and the key meant for it would be dropped.
    let port: u16 = match args.next() {
        None => 0,
        Some(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("the first argument is the port (0 for any free one), not {p:?}");
            eprintln!("usage: http_server [PORT] [API_KEY] [ACME_KEY]");
            std::process::exit(2);
        }),
    };
    let key = args.next();
    let acme_key = args.next();

    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let tenants = SessionTenants::default();
    let meter = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_sink(tenants.clone())
        .with_budget(Budget::new("monthly", BudgetLimit::usd(50.0).expect("a valid limit")))
        .with_budget(Budget::new("acme-tokens", BudgetLimit::tokens(100_000)).with_scope(BudgetScope::tenant("acme")))
        .build();
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
                {
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
                }
                {
                    let failed = *tenant == "globex" && turn == 2;
                    let _t = tracing::info_span!(
                        "execute_tool search_docs",
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = "search_docs",
                        error.type = if failed { Some("timeout") } else { None },
                    )
                    .entered();
                    clock.advance(Duration::seconds(2));
                }
                clock.advance(Duration::minutes(7) - Duration::seconds(2));
            }
        }
    });

    let mut config = HttpConfig::new().with_port(port).with_session_tenants(tenants);
    if let Some(k) = key {
        config = config.with_api_key(k);
    }
    if let Some(k) = acme_key {
        config = config.with_tenant_key(k, "acme");
    }
    let server = serve(meter, config).unwrap_or_else(|e| {
        eprintln!("cannot start the server: {e}");
        std::process::exit(1);
    });
    println!("http://{}", server.local_addr());
    println!(
        "try: curl http://{}/api/v1/token-usage/s-1 (with -H 'x-api-key: KEY' when started with one; without a key \
         the API is open to anyone who can reach the loopback address); the endpoints: /api/v1/openapi.json",
        server.local_addr()
    );
    loop {
        std::thread::park();
    }
}

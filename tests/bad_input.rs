//! Bad input never panics and is never silently wrong: rejected values are counted, never coerced.

use crate::common;

use common::Harness;
use proptest::prelude::*;
use tracing::field::Empty;
use tracing::info_span;

#[test]
fn impossible_numbers_are_rejected_and_counted() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = Empty,
            output_tokens = Empty,
            cache_read_input_tokens = Empty,
            cache_creation_input_tokens = Empty,
            gen_ai.usage.reasoning.output_tokens = Empty,
            gen_ai.response.time_to_first_chunk = Empty,
        );
        span.record("input_tokens", -5i64); // negative
        span.record("output_tokens", u64::MAX); // absurd
        span.record("cache_read_input_tokens", f64::NAN);
        span.record("cache_creation_input_tokens", f64::INFINITY);
        span.record("gen_ai.usage.reasoning.output_tokens", 2.5f64); // fractional
        span.record("gen_ai.response.time_to_first_chunk", -1.0f64);
        span.record("input_tokens", i64::MIN);
    });
    let call = h.seen.only_call();
    assert_eq!(call.tokens, tokenmeter::TokenUsage::default());
    assert!(!call.metered, "nothing valid was recorded");
    assert_eq!(call.time_to_first_token_us, None);
    assert_eq!(h.meter.capture_stats().rejected_values, 7);
}

#[test]
fn text_and_bools_where_numbers_belong() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = Empty,
            output_tokens = Empty,
            cache_read_input_tokens = Empty
        );
        span.record("input_tokens", "1200"); // decimal text is a number
        span.record("output_tokens", "lots"); // not a number
        span.record("cache_read_input_tokens", true);
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.output, call.tokens.cache_read), (1_200, 0, 0));
    assert_eq!(h.meter.capture_stats().rejected_values, 2);
}

#[test]
fn zero_is_a_real_value_and_the_same_field_twice_keeps_the_last() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-haiku-4-5", output_tokens = 7u64, input_tokens = 0u64);
        span.record("output_tokens", 0u64);
    });
    let call = h.seen.only_call();
    assert!(call.metered, "zero tokens recorded is still metered");
    assert_eq!(call.tokens.output, 0);
    assert_eq!(call.cost.as_ref().map(|c| c.total.picos()), Some(0));
}

#[test]
fn no_model_empty_and_huge_strings() {
    let h = Harness::new();
    let huge = "x".repeat(10 * 1024);
    h.run(|| {
        let _a = info_span!("chat", input_tokens = 10u64).entered();
        drop(_a);
        let _b =
            info_span!("chat", model = "", gen_ai.provider.name = "", input_tokens = 10u64, session.id = "").entered();
        drop(_b);
        let _c = info_span!("chat", model = huge.as_str(), gen_ai.response.id = huge.as_str(), input_tokens = 10u64)
            .entered();
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.is_unpriced()), "no or unknown model: unpriced, not $0");
    assert_eq!(calls[1].model, None, "an empty model is no model");
    assert_eq!(calls[1].dimensions.session, None);
    assert!(calls[2].model.as_deref().unwrap().len() <= tokenmeter::capture::MAX_LABEL_LEN);
    assert!(calls[2].request_id.as_deref().unwrap().len() <= tokenmeter::capture::MAX_LABEL_LEN);
    let models = h.meter.model_usage();
    assert_eq!(models.iter().map(|m| m.totals.unpriced_calls).sum::<u64>(), 3);
}

#[test]
fn past_the_model_cap_a_known_model_is_still_priced_and_budgeted_as_itself() {
    use tokenmeter::{Budget, BudgetLimit, BudgetScope};
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("sonnet", BudgetLimit::usd(100.0).unwrap()).with_scope(BudgetScope::model("claude-sonnet-4-5")),
        )
    });
    h.run(|| {
        // 600 distinct unknown ids (fine-tunes, other providers): a recording thread keeps 512 model keys.
        for i in 0..600 {
            let id = format!("ft-model-{i}");
            let _s = info_span!("chat", model = id.as_str(), input_tokens = 1u64).entered();
        }
        let _s = info_span!("chat", model = "claude-sonnet-4-5-20250929", input_tokens = 100_000u64).entered();
        drop(_s);
        let _s = info_span!("chat", model = "claude-sonnet-4-5-20250929", output_tokens = 100_000u64).entered();
    });
    let calls = h.seen.calls();
    let sonnet: Vec<_> = calls.iter().filter(|c| c.model.as_deref() == Some("claude-sonnet-4-5-20250929")).collect();
    assert_eq!(sonnet.len(), 2);
    let cost = |c: &tokenmeter::CallRecord| c.cost.as_ref().map(|c| c.total.to_string());
    assert_eq!(cost(sonnet[0]).as_deref(), Some("$0.30"), "100k input tokens at $3 a million");
    assert_eq!(cost(sonnet[1]).as_deref(), Some("$1.50"));
    let other = h.meter.model_usage().into_iter().find(|m| &*m.model == "(other)").expect("an (other) row");
    assert_eq!(other.totals.calls, 90, "88 unknown ids and both sonnet calls past the cap");
    assert_eq!(other.totals.unpriced_calls, 88);
    assert_eq!(other.totals.cost.to_string(), "$1.80");
    assert!(!other.priced, "some of its calls are unpriced");
    assert_eq!(h.meter.total_usage().unpriced_calls, 600);
    let status = h.meter.budget_status();
    assert_eq!(status[0].spent.to_string(), "$1.80", "the model budget saw both calls");
}

#[test]
fn a_struct_or_a_sentence_is_not_a_label() {
    // `#[instrument]` on `ask(model: &ModelSpec, prompt: &str)` records `model = ?ModelSpec { .. }`: its Debug
    // carried the spec's system prompt into the call's model, the journal and the metrics' attributes.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct ModelSpec {
        name: &'static str,
        system_prompt: &'static str,
    }
    let spec = ModelSpec { name: "claude-haiku-4-5", system_prompt: "You are the payroll assistant for ACME." };
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("ask", model = ?spec, gen_ai.tool.name = Empty, input_tokens = 10u64);
        span.record("gen_ai.tool.name", tracing::field::display("look up the salary of Alice"));
    });
    let call = h.seen.only_call();
    assert_eq!(call.model, None, "{call:?}");
    assert_eq!(h.meter.capture_stats().rejected_values, 2);
    // Identifiers of every shape providers use are labels.
    let h = Harness::new();
    h.run(|| {
        for model in [
            "claude-sonnet-4-5@20250929",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic/claude-3.5-sonnet:beta",
        ] {
            let _s = info_span!("chat", gen_ai.request.model = %model, input_tokens = 10u64).entered();
        }
    });
    assert_eq!(h.seen.calls().len(), 3);
    assert!(h.seen.calls().iter().all(|c| c.model.is_some()));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
}

#[test]
fn a_structs_debug_is_not_a_dimension() {
    // `#[instrument]` on `run(agent: &Agent, ..)` records `agent = ?agent`: the agent's Debug (its instructions)
    // became the agent dimension of every call, in the journal and the metrics' attributes.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Agent {
        name: &'static str,
        instructions: &'static str,
    }
    #[derive(Debug)]
    enum Role {
        Planner,
    }
    let agent = Agent { name: "payroll", instructions: "You are the payroll assistant for ACME." };
    let h = Harness::new();
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Wrapper(u32);
    let config = serde_json::json!({"system": "You are the payroll assistant."});
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = 10u64,
            agent = ?agent,
            task = ?vec!["a"],
            project = ?config,
            user.id = ?Some(Wrapper(7)),
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.agent, None, "{call:?}");
    // A span declaring `task` is a task of its own: its refused name leaves it `unnamed`, as its task record is.
    assert_eq!(call.dimensions.task.as_deref(), Some("unnamed"), "{call:?}");
    assert_eq!((call.dimensions.project.as_ref(), call.dimensions.user.as_ref()), (None, None), "{call:?}");
    assert_eq!(h.meter.capture_stats().rejected_values, 4);
    // Strings (quoted in their Debug, whatever they hold), numbers and unit variants are values.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = 10u64,
            agent = ?Some(Role::Planner),
            session.id = ?7u32,
            user.id = ?Some(42u64),
            project = ?"acme / web",
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.agent.as_deref(), Some("Planner"));
    assert_eq!(call.dimensions.session.as_deref(), Some("7"));
    assert_eq!(call.dimensions.user.as_deref(), Some("42"), "an `Option`'s own parentheses are not a struct's");
    assert_eq!(call.dimensions.project.as_deref(), Some("acme / web"));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
    // `%` reaches the layer as a `Debug` too, unquoted: text with spaces, quotes, brackets and parentheses is a
    // value.
    let (project, user, task) = ("[WIP] ACME Web", "O'Brien", "report(1).pdf, main(), {{tpl}}");
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = 10u64,
            project = %project,
            user.id = %user,
            task = %task,
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.project.as_deref(), Some(project));
    assert_eq!(call.dimensions.user.as_deref(), Some(user));
    assert_eq!(call.dimensions.task.as_deref(), Some(task));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
    // Nor is it an id: `gen_ai.response.id = ?response` put the message's text in the call's id.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Message {
        id: &'static str,
        content: &'static str,
    }
    let response = Message { id: "msg_01", content: "Alice's salary is $120,000." };
    let h = Harness::new();
    h.run(|| {
        let _a = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, gen_ai.response.id = ?response)
            .entered();
        drop(_a);
        let _b = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, request_id = ?Some(Wrapper(7)))
            .entered();
    });
    let ids: Vec<_> = h.seen.calls().into_iter().map(|c| c.request_id).collect();
    assert_eq!(ids, [None, None]);
    assert_eq!(h.meter.capture_stats().rejected_values, 2);
}

#[test]
fn a_long_debug_value_is_not_rendered_past_what_is_kept() {
    // Only ~264 bytes of a `?value` are kept, but a value holding a long message history was rendered to its end,
    // on the application's thread, with the span's extensions locked.
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RENDERED: AtomicUsize = AtomicUsize::new(0);
    struct Turn;
    impl std::fmt::Debug for Turn {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            RENDERED.fetch_add(1, Ordering::Relaxed);
            f.write_str("a turn of the conversation")
        }
    }
    let history: Vec<Turn> = (0..10_000).map(|_| Turn).collect();
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, agent = ?history).entered();
    });
    // Two bounded renderings (plain and alternate), ~10 turns each, of 10,000.
    assert!(RENDERED.load(Ordering::Relaxed) < 40, "{} turns rendered", RENDERED.load(Ordering::Relaxed));
    assert_eq!(h.seen.only_call().dimensions.agent, None);
}

#[test]
fn an_option_recorded_with_debug_is_its_value() {
    // The SDKs' usage fields are `Option`s: `cache_read_input_tokens = ?usage.cache_read_input_tokens` arrived as
    // "Some(123)", was rejected, and the cache read was lost.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = ?Some(10u32),
            cache_read_input_tokens = ?Some(123u32),
            cache_creation_input_tokens = ?None::<u32>,
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.cache_write_5m), (10, 123, 0));
    assert_eq!(h.meter.capture_stats().rejected_values, 0, "None is no value, not a bad one");
}

#[test]
fn an_option_recorded_with_debug_is_its_value_in_every_field() {
    // `#[instrument]` records an `Option<String>` argument with `?`. Only token fields unwrapped it: the project
    // was the text `Some("acme")` (no budget scope matched it), `error.type = ?None` failed a call that succeeded,
    // and `gen_ai.request.model = ?Some(..)` was refused as a label, leaving the call unpriced.
    let h = Harness::new();
    let (project, none): (Option<String>, Option<&str>) = (Some("acme".into()), None);
    h.run(|| {
        let _session = info_span!("session", project = ?project, user.id = ?none).entered();
        let _s = info_span!(
            "chat",
            gen_ai.request.model = ?Some("claude-haiku-4-5"),
            gen_ai.agent.name = ?Some("triage"),
            request_id = ?Some("req_1"),
            input_tokens = 10u64,
            error.type = ?none,
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.project.as_deref(), Some("acme"));
    assert_eq!(call.dimensions.agent.as_deref(), Some("triage"));
    assert_eq!(call.dimensions.user, None);
    assert_eq!(call.model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(call.request_id.as_deref(), Some("req_1"));
    assert!(call.cost.is_some(), "priced");
    assert!(!call.outcome.is_error(), "{:?}", call.outcome);
    assert_eq!(h.meter.capture_stats().rejected_values, 0);

    // A value of the longest length kept stays whole inside `Some("…")`: the rendering had room for 4 bytes around
    // it, and `Some("` and `")` are 8 (past the labels' 256 bytes, with a longer dimension limit).
    let h = Harness::with(|b| b.with_max_dimension_len(1_024));
    let long = "p".repeat(1_024);
    h.run(|| {
        let _s = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, project = ?Some(&long)).entered();
    });
    assert_eq!(h.seen.only_call().dimensions.project.as_deref(), Some(long.as_str()));
}

#[test]
fn a_string_recorded_with_debug_is_read_without_its_escapes() {
    // A string's `Debug` escapes `\` and `"`: the project `C:\work\acme` was kept as `C:\\work\\acme`, which
    // no budget scope or filter names.
    let h = Harness::new();
    let (path, user) = (Some(r"C:\work\acme"), Some("o\"neil\t\u{7}"));
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-haiku-4-5",
            input_tokens = 1u64,
            project = ?path,
            user.id = ?user,
            request_id = ?Some(r"req\1"),
        )
        .entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.project.as_deref(), Some(r"C:\work\acme"));
    assert_eq!(call.dimensions.user.as_deref(), Some("o\"neil\t\u{7}"));
    assert_eq!(call.request_id.as_deref(), Some(r"req\1"));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
    // Escapes no string's `Debug` writes (an `OsStr`'s `\xFF`): the text as it came, not rejected.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let h = Harness::new();
        let path = std::ffi::OsStr::from_bytes(b"a\xffb");
        h.run(|| {
            let _s = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, project = ?path).entered();
        });
        assert_eq!(h.seen.only_call().dimensions.project.as_deref(), Some(r"a\xFFb"));
        assert_eq!(h.meter.capture_stats().rejected_values, 0);
    }
}

#[test]
fn a_flag_recorded_as_text_in_error_type_is_a_flag() {
    // `error.type = ?Some(false)` failed the call with the type `false`; `?Some(true)` with the type `true`.
    let h = Harness::new();
    h.run(|| {
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = ?Some(false)));
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = ?Some(true)));
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = %false));
    });
    let outcomes: Vec<String> = h.seen.calls().iter().map(|c| format!("{:?}", c.outcome)).collect();
    assert_eq!(outcomes, ["Ok", "Error { error_type: \"error\" }", "Ok"]);
}

#[test]
fn an_error_message_in_error_type_is_cut_to_its_type() {
    #[derive(Debug)]
    struct ApiError(&'static str);
    impl std::fmt::Display for ApiError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    let h = Harness::new();
    let err = ApiError("overloaded_error: the prompt was 'SECRET PROMPT TEXT'");
    h.run(|| {
        let _a = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = %err).entered();
        drop(_a);
        let _b = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = ?err).entered();
        drop(_b);
        let text = err.to_string();
        let _c =
            info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = text.as_str()).entered();
        drop(_c);
        // A message that opens with the prompt's first word keeps nothing of it.
        let prompt_first = ApiError("Summarize SECRET was rejected by the content filter");
        let _d = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = %prompt_first);
    });
    let types: Vec<String> = h
        .seen
        .calls()
        .iter()
        .map(|c| match &c.outcome {
            tokenmeter::Outcome::Error { error_type } => error_type.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(types, ["overloaded_error", "ApiError", "overloaded_error", "error"]);
}

#[test]
fn a_panicking_sink_does_not_reach_the_application() {
    let h = Harness::with(|b| b.on_call(|_| panic!("sink bug")));
    h.run(|| {
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
    });
    assert_eq!(h.meter.capture_stats().sink_panics, 1);
    assert_eq!(h.meter.total_usage().calls, 1);
}

#[derive(Debug, Clone)]
enum Val {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    S(String),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        any::<u64>().prop_map(Val::U),
        (0u64..5_000_000).prop_map(Val::U),
        any::<i64>().prop_map(Val::I),
        any::<f64>().prop_map(Val::F),
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0)].prop_map(Val::F),
        any::<bool>().prop_map(Val::B),
        ".{0,40}".prop_map(Val::S),
        "[0-9]{1,25}".prop_map(Val::S),
    ]
}

const FIELDS: [&str; 12] = [
    "gen_ai.usage.input_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "service_tier",
    "error.type",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random values of random types in every contract field: no panic, the span recorded (as one call, or
    /// several when random response ids start new ones), every recorded token figure within the plausibility
    /// cap and every cost the sum of its parts.
    #[test]
    fn random_field_values_never_panic(values in proptest::collection::vec((0usize..FIELDS.len(), val()), 0..24)) {
        let h = Harness::new();
        h.run(|| {
            let span = info_span!(
                "chat",
                gen_ai.usage.input_tokens = Empty,
                input_tokens = Empty,
                output_tokens = Empty,
                cache_read_input_tokens = Empty,
                cache_creation_input_tokens = Empty,
                cache_creation.ephemeral_1h_input_tokens = Empty,
                gen_ai.usage.reasoning.output_tokens = Empty,
                gen_ai.response.time_to_first_chunk = Empty,
                gen_ai.response.model = Empty,
                gen_ai.response.id = Empty,
                service_tier = Empty,
                error.type = Empty,
            );
            for (i, v) in &values {
                let f = FIELDS[*i];
                match v {
                    Val::U(x) => { span.record(f, *x); }
                    Val::I(x) => { span.record(f, *x); }
                    Val::F(x) => { span.record(f, *x); }
                    Val::B(x) => { span.record(f, *x); }
                    Val::S(x) => { span.record(f, x.as_str()); }
                }
                tracing::info!(parent: &span, output_tokens = 3u64);
            }
        });
        let calls = h.seen.calls();
        prop_assert!(!calls.is_empty());
        let cap = tokenmeter::capture::MAX_TOKENS_PER_FIELD;
        for c in &calls {
            let t = c.tokens;
            prop_assert!(t.input <= cap * 4 && t.cache_read <= cap && t.cache_write() <= cap * 3 && t.output <= cap * 2);
            if let Some(cost) = &c.cost {
                prop_assert_eq!(cost.total, cost.input + cost.cache_read + cost.cache_write_5m + cost.cache_write_1h + cost.output);
            }
        }
    }
}

// === parsers of streams and files ===

/// SSE events from the chunks fed in order, and the count dropped for size.
fn decode(chunks: &[&[u8]]) -> (Vec<tokenmeter::instrument::SseEvent>, u64) {
    let mut d = tokenmeter::instrument::SseDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(d.push(c));
    }
    out.extend(d.finish());
    (out, d.dropped())
}

/// Byte streams made of SSE's pieces (field names, every line ending, a BOM, comments) and random bytes.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"event: ".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b":comment".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"id: 3".to_vec()),
        Just(b"retry: 10".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[a-z{}\":, ]{0,12}".prop_map(|s| s.into_bytes()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    // (20,000 cases each passed once by hand; 512 here.)
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// The same stream cut anywhere decodes to the same events.
    #[test]
    fn sse_decoding_is_the_same_whatever_the_chunking(bytes in sse_bytes(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let whole = decode(&[&bytes]);
        let mut idx: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        idx.sort();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut prev = 0;
        for i in idx {
            chunks.push(&bytes[prev..i]);
            prev = i;
        }
        chunks.push(&bytes[prev..]);
        let split = decode(&chunks);
        prop_assert_eq!(whole, split);
    }

    /// A price file of any shape is read or refused with an error, never a panic.
    #[test]
    fn any_price_file_is_read_or_refused(text in price_file()) {
        let mut book = tokenmeter::PriceBook::builtin();
        let _ = book.merge_toml_str(&text, "fuzz");
    }

    /// So is a budgets file.
    #[test]
    fn any_budgets_file_is_read_or_refused(text in budgets_file()) {
        let _ = tokenmeter::budget::parse_budgets_toml(&text, "fuzz");
    }
}

/// A value of the kinds the files hold: numbers of every shape (exponents, signs, huge, fractional), strings, an
/// array, an inline table, or nothing.
fn file_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9_]{1,8}(\\.[0-9]{0,8})?(e[+-]?[0-9]{1,4})?",
        Just("1e400".to_owned()),
        Just("340282366920938463463374607431768211456".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        "\"[a-zA-Z0-9 ./_=-]{0,16}\"",
        "\\[[0-9, -]{0,16}\\]",
        "\\{ ?[a-z_]{1,8} = \"[a-z0-9-]{0,8}\" ?\\}",
        Just("true".to_owned()),
        Just(String::new()),
    ]
}

/// A price file: an optional web search fee, then model tables of rates (mostly valid, sometimes any value), the
/// other keys a model takes, and long-context tables.
fn price_file() -> impl Strategy<Value = String> {
    let rate = prop_oneof![4 => proptest::sample::select(&["3", "15.0", "0.3", "0", "1e3"][..]).prop_map(str::to_owned), 1 => file_value()];
    let other_key = proptest::sample::select(
        &["cache_write_5m", "cache_write_1h", "cache_read", "min_cacheable_tokens", "fast_multiplier", "bogus"][..],
    );
    let other = (other_key, rate.clone()).prop_map(|(k, v)| format!("{k} = {v}\n"));
    let long = (rate.clone(), rate.clone()).prop_map(|(i, o)| format!("input = {i}\noutput = {o}\n"));
    let model = proptest::sample::select(&["my-finetune", "claude-sonnet-4-5", "claude-opus-4-8", ""][..]);
    let table = (model, rate.clone(), rate, proptest::collection::vec(other, 0..4), proptest::option::of(long))
        .prop_map(|(m, i, o, others, long)| {
            let long = long.map(|l| format!("[models.\"{m}\".long_context]\n{l}")).unwrap_or_default();
            format!("[models.\"{m}\"]\ninput = {i}\noutput = {o}\n{}{long}", others.concat())
        });
    let fee = proptest::option::of(file_value().prop_map(|v| format!("web_search_per_1k = {v}\n")));
    (fee, proptest::collection::vec(table, 0..4))
        .prop_map(|(fee, t)| format!("{}{}", fee.unwrap_or_default(), t.concat()))
}

/// A budgets file: tables of a name, a limit and other keys, each value mostly one its key takes, sometimes any.
fn budgets_file() -> impl Strategy<Value = String> {
    let valid = |key: &'static str| -> BoxedStrategy<String> {
        let values: &'static [&'static str] = match key {
            "limit_usd" => &["500", "0.5", "0", "1e12", "1e13", "0.0000001", "-1"],
            "limit_tokens" => &["2_000_000", "0", "18446744073709551615"],
            "period" => &["\"day\"", "\"month\"", "\"rolling 24h\"", "\"rolling 367d\"", "\"rolling 1d2h\""],
            "time_zone" => &["\"America/New_York\"", "\"UTC\"", "\"Mars/Olympus\""],
            "week_start" => &["\"monday\"", "\"sun\"", "\"someday\""],
            "scope" => &["{ tenant = \"acme\" }", "{ model = \"claude-sonnet-4-5-20250929\" }", "{}", "\"everything\""],
            "thresholds" => &["[80, 100]", "[0, 50, 101]", "[]", "[50, 50]"],
            _ => &["\"warn\"", "\"block\"", "\"stop\""],
        };
        prop_oneof![4 => proptest::sample::select(values).prop_map(str::to_owned), 1 => file_value()].boxed()
    };
    let key = proptest::sample::select(&["period", "time_zone", "week_start", "scope", "thresholds", "action"][..]);
    let line = key.prop_flat_map(move |k| valid(k).prop_map(move |v| format!("{k} = {v}\n")));
    let limit = proptest::sample::select(&["limit_usd", "limit_tokens"][..])
        .prop_flat_map(move |k| valid(k).prop_map(move |v| format!("{k} = {v}\n")));
    let table = ("[a-z][a-z-]{0,8}", limit, proptest::collection::vec(line, 0..6))
        .prop_map(|(name, limit, lines)| format!("[budgets.{name}]\n{limit}{}", lines.concat()));
    proptest::collection::vec(table, 0..4).prop_map(|t| t.concat())
}

/// How far the generated files get: some are read whole, with a model table or a budget in them (a test that only
/// ever reached the first error, or read empty files, would not exercise the parsers).
#[test]
fn the_generated_files_reach_the_parsers() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut prices_read, mut budgets_read) = (0, 0);
    for _ in 0..2_000 {
        // Counted when a file with a model table in it was read.
        let text = price_file().new_tree(&mut runner).unwrap().current();
        let read = tokenmeter::PriceBook::builtin().merge_toml_str(&text, "fuzz").is_ok();
        prices_read += usize::from(read && text.contains("[models."));
        let text = budgets_file().new_tree(&mut runner).unwrap().current();
        budgets_read += usize::from(tokenmeter::budget::parse_budgets_toml(&text, "fuzz").is_ok_and(|b| !b.is_empty()));
    }
    assert!(prices_read >= 20 && budgets_read >= 20, "prices {prices_read}, budgets {budgets_read} of 2,000");
}

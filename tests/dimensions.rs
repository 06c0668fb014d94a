//! Attribution dimensions come from the call span or its nearest ancestor that has them.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::info_span;

#[test]
fn nearest_ancestor_wins_per_dimension() {
    let h = Harness::new();
    h.run(|| {
        let _tenant = info_span!("request", tenant.id = "acme", user.id = "u-outer", project = "billing").entered();
        let _session = info_span!("conversation", session.id = "s-42", user.id = "u-inner").entered();
        let _plain = info_span!("not tracked", http.route = "/chat").entered();
        let _agent = info_span!("agent", gen_ai.agent.name = "planner", operation = "plan").entered();
        let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, project = "override").entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!(d.session.as_deref(), Some("s-42"));
    assert_eq!(d.user.as_deref(), Some("u-inner"), "nearest ancestor wins");
    assert_eq!(d.tenant.as_deref(), Some("acme"));
    assert_eq!(d.project.as_deref(), Some("override"), "the call span's own value wins");
    assert_eq!(d.agent.as_deref(), Some("planner"));
    assert_eq!(d.operation.as_deref(), Some("plan"));
    assert_eq!(d.task, None);
}

#[test]
fn alternative_names() {
    let h = Harness::new();
    h.run(|| {
        let _a = info_span!("conv", gen_ai.conversation.id = "c-1", enduser.id = "e-1", agent = "coder").entered();
        let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!(
        (d.session.as_deref(), d.user.as_deref(), d.agent.as_deref()),
        (Some("c-1"), Some("e-1"), Some("coder"))
    );
}

#[test]
fn dimensions_recorded_later_on_an_ancestor_are_seen_at_close() {
    let h = Harness::new();
    h.run(|| {
        let session = info_span!("conversation", session.id = Empty);
        let _s = session.enter();
        let call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64);
        session.record("session.id", "late");
        drop(call);
    });
    assert_eq!(h.seen.only_call().dimensions.session.as_deref(), Some("late"));
}

#[test]
fn explicit_parent_is_followed() {
    let h = Harness::new();
    h.run(|| {
        let session = info_span!("conversation", session.id = "explicit");
        let _call = info_span!(parent: &session, "chat", model = "claude-haiku-4-5", input_tokens = 1u64);
    });
    assert_eq!(h.seen.only_call().dimensions.session.as_deref(), Some("explicit"));
}

#[test]
fn user_named_extra_dimensions() {
    let h = Harness::with(|b| b.with_dimension("workspace").with_dimension("feature.flag"));
    h.run(|| {
        let _w = info_span!("ws", workspace = "w-9").entered();
        let _f = info_span!("flagged", feature.flag = %"beta", unrelated = 3u64).entered();
        let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!(d.get("workspace"), Some("w-9"));
    assert_eq!(d.get("feature.flag"), Some("beta"));
    assert_eq!(d.get("unrelated"), None);
    assert_eq!(d.extra.len(), 2);
}

#[test]
fn extra_dimensions_given_as_booleans_or_floats_are_kept_as_text() {
    // They were dropped without a trace (integers and strings were kept).
    let h = Harness::with(|b| b.with_dimension("beta").with_dimension("score"));
    h.run(|| {
        let _f = info_span!("flags", beta = true, score = 0.5f64).entered();
        let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!((d.get("beta"), d.get("score")), (Some("true"), Some("0.5")));
    // Built-in ones too: they were rejected and counted, while the same values given with `?` were kept.
    let h = Harness::new();
    h.run(|| {
        let _f = info_span!("flags", project = 3.5f64, tenant.id = true).entered();
        let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!((d.project.as_deref(), d.tenant.as_deref()), (Some("3.5"), Some("true")));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
}

#[test]
fn values_are_length_capped_at_a_char_boundary() {
    let h = Harness::with(|b| b.with_max_dimension_len(8));
    let long = "é".repeat(5_000); // 10 KB
    h.run(|| {
        let _s = info_span!("conv", session.id = long.as_str()).entered();
        let _call = info_span!("chat", model = long.as_str(), input_tokens = 1u64).entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.session.as_deref(), Some("éééé"));
    assert_eq!(call.model.as_deref().map(str::len), Some(tokenmeter::capture::MAX_LABEL_LEN));
}

#[test]
fn no_cap_on_dimension_values_keeps_them_whole() {
    // `usize::MAX` ("no cap") overflowed the bound of a `%` value's text: a panic in the application's span in
    // debug builds, and every `%` value cut to 3 bytes in release builds.
    let h = Harness::with(|b| b.with_max_dimension_len(usize::MAX));
    let session = "s".repeat(300);
    h.run(|| {
        let _s = info_span!("conv", session.id = %session).entered();
        let _call = info_span!("chat", model = %"claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(call.dimensions.session.as_deref(), Some(session.as_str()));
    assert!(call.cost.is_some(), "priced");
}

#[test]
fn negative_integer_ids_are_ids() {
    // Telegram group chats have negative ids; used as the session, they were rejected as impossible numbers
    // and the calls lost their session.
    let h = Harness::new();
    h.run(|| {
        let _chat = info_span!("chat", gen_ai.conversation.id = -1_001_234_567_890i64, user.id = -7i64).entered();
        let _call = info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1u64, tenant.id = -1i64).entered();
    });
    let d = h.seen.only_call().dimensions;
    assert_eq!(
        (d.session.as_deref(), d.user.as_deref(), d.tenant.as_deref()),
        (Some("-1001234567890"), Some("-7"), Some("-1"))
    );
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
}

#[test]
fn integer_ids_beyond_u64_are_ids() {
    // A UUID recorded as its u128 was rejected as an impossible number (an extra dimension's was dropped).
    let h = Harness::with(|b| b.with_dimension("workspace"));
    let uuid: u128 = 0x6f2c_4a1e_9b7d_4c3a_8e5f_1a2b_3c4d_5e6f;
    h.run(|| {
        let _s = info_span!("conversation", session.id = uuid, workspace = -(1i128 << 70)).entered();
        let _call =
            info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1u64, request_id = u128::MAX).entered();
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.session.as_deref(), Some(uuid.to_string().as_str()));
    assert_eq!(call.dimensions.get("workspace"), Some("-1180591620717411303424"));
    assert_eq!(call.request_id.as_deref(), Some("340282366920938463463374607431768211455"));
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
}

#[test]
fn an_extra_dimension_named_like_a_contract_field_is_refused() {
    // `model` is read as the call's model, `session.id` as the session: as extra dimensions they were never
    // filled, silently.
    for name in ["model", "session.id", "input_tokens", "gen_ai.request.model"] {
        let err = tokenmeter::TokenMeter::builder().with_dimension(name).try_build().expect_err(name);
        assert!(err.to_string().contains(&format!("`{name}` is a field of the capture contract")), "{err}");
    }
    assert!(tokenmeter::TokenMeter::builder().with_dimension("workspace").try_build().is_ok());
}

#[test]
fn extra_dimensions_past_the_cap_are_refused() {
    // The 17th was dropped with no word: never filled, and a budget on it said "does not capture".
    let mut builder = tokenmeter::TokenMeter::builder();
    for i in 0..tokenmeter::MAX_EXTRA_DIMENSIONS {
        builder = builder.with_dimension(format!("dim{i}"));
    }
    let full = builder.with_dimension("dim0");
    assert!(full.try_build().is_ok(), "16, and a repeat");
    let mut builder = tokenmeter::TokenMeter::builder();
    for i in 0..=tokenmeter::MAX_EXTRA_DIMENSIONS {
        builder = builder.with_dimension(format!("dim{i}"));
    }
    let err = builder.try_build().expect_err("17");
    assert!(matches!(&err, tokenmeter::BuildError::TooManyDimensions { name, max: 16 } if name == "dim16"), "{err}");
}

#[test]
fn an_extra_dimension_named_like_a_builtin_one_is_refused() {
    // `user` is filled from `user.id`; an extra `user` was captured but never read (budgets and reports take
    // the name for the built-in one), so a block budget on it never blocked.
    for name in ["session", "user", "tenant"] {
        let err = tokenmeter::TokenMeter::builder().with_dimension(name).try_build().expect_err(name);
        assert!(err.to_string().contains(&format!("`{name}` has the name of a built-in dimension")), "{err}");
    }
}

/// Run as a child process (see below): builds a meter whose journal cannot be opened, with no subscriber set.
/// Ignored, so that it is never counted as a test that passed; the test below runs it with `--ignored`.
#[test]
#[ignore = "a child process of the test below, not a test"]
fn build_errors_child() {
    if std::env::var_os("TOKENMETER_BUILD_ERRORS_CHILD").is_none() {
        return;
    }
    // A scoped default set and gone before (a test harness's, a job's log capture): nobody hears this thread.
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {});
    let file = tempfile::NamedTempFile::new().unwrap();
    let not_a_dir = file.path().join("journal");
    let _meter = tokenmeter::TokenMeter::builder()
        .with_journal(tokenmeter::JournalConfig::new(not_a_dir))
        .with_dimension("model")
        .with_dimension("user")
        .build();
}

#[test]
fn build_reports_its_errors_on_stderr_when_no_subscriber_can_hear_them() {
    // The meter is built before the subscriber it is a layer of: `build`'s ERROR events went nowhere, and an
    // application ran without its journal with no word of it.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &common::test_path(module_path!(), "build_errors_child"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOKENMETER_BUILD_ERRORS_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tokenmeter: journal disabled:"), "{stderr}");
    // Every extra dimension that is never filled, not the first only.
    assert!(stderr.contains("dimension never filled: the extra dimension `model`"), "{stderr}");
    assert!(stderr.contains("dimension never filled: the extra dimension `user`"), "{stderr}");
}

#[test]
fn session_id_anywhere_above_wins_over_a_nearer_conversation_id() {
    // A sub-agent's `invoke_agent` span with a conversation of its own, inside the user's session: its calls
    // took the sub-agent's conversation for their session, and dropped out of the user's session (its budget,
    // its reports: 1 call and 1,000 tokens for 2 and 10,000).
    let h = Harness::new();
    h.run(|| {
        let _user = info_span!("request", session.id = "user-S").entered();
        let _main = info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1_000u64);
        drop(_main);
        let _sub = info_span!(
            "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.conversation.id = "conv-sub-1",
            gen_ai.agent.name = "researcher"
        )
        .entered();
        let _call = info_span!("claude", model = "claude-haiku-4-5", input_tokens = 9_000u64).entered();
    });
    let sessions: Vec<_> = h.seen.calls().iter().map(|c| c.dimensions.session.clone()).collect();
    assert_eq!(sessions, [Some("user-S".into()), Some("user-S".into())]);

    // Without a `session.id`, the nearest conversation is the session, as before; and on one span, `session.id`
    // wins whichever comes first.
    let h = Harness::new();
    h.run(|| {
        let _outer = info_span!("conv", gen_ai.conversation.id = "outer").entered();
        let _inner = info_span!("conv", gen_ai.conversation.id = "inner").entered();
        let _call = info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    assert_eq!(h.seen.only_call().dimensions.session.as_deref(), Some("inner"));
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!("both", gen_ai.conversation.id = "conv", session.id = "sess").entered();
        let _call = info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    assert_eq!(h.seen.only_call().dimensions.session.as_deref(), Some("sess"));
}

#[test]
fn current_dimensions_are_those_a_call_made_here_would_get() {
    let h = Harness::with(|b| b.with_dimension("workspace"));
    let (outside, here, in_task, later) = h.run(|| {
        let outside = h.meter.current_dimensions();
        let _request = info_span!("request", session.id = "user-S", user.id = "alice", workspace = "w1").entered();
        let _agent = info_span!(
            "invoke_agent",
            gen_ai.conversation.id = "conv-sub",
            gen_ai.agent.name = "researcher",
            tenant.id = Empty
        )
        .entered();
        let here = h.meter.current_dimensions();
        let in_task = info_span!("step", task = Empty).in_scope(|| h.meter.current_dimensions());
        // Recorded later on an ancestor: seen, as a call's close would see it.
        tracing::Span::current().record("tenant.id", "acme");
        let later = h.meter.current_dimensions();
        // And what a call made here is recorded with is the same.
        drop(info_span!("claude", model = "claude-haiku-4-5", input_tokens = 1u64));
        (outside, here, in_task, later)
    });
    assert_eq!(outside, None, "no current span");
    let here = here.expect("inside spans");
    assert_eq!(
        (here.session.as_deref(), here.user.as_deref(), here.agent.as_deref(), here.tenant.as_deref()),
        (Some("user-S"), Some("alice"), Some("researcher"), None)
    );
    assert_eq!(here.get("workspace"), Some("w1"));
    assert_eq!(in_task.expect("inside spans").task.as_deref(), Some("unnamed"));
    let later = later.expect("inside spans");
    assert_eq!(later.tenant.as_deref(), Some("acme"));
    assert_eq!(h.seen.only_call().dimensions, later);

    // A registry without this meter's layer: its spans carry nothing the meter read.
    let other = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let _s = info_span!("request", user.id = "bob").entered();
        h.meter.current_dimensions()
    });
    assert_eq!(other, Some(tokenmeter::Dimensions::default()));
}

#[test]
fn a_dimension_filter_decides_what_any_record_keeps() {
    // Any span of any crate with a `task` field fills the task: an `#[instrument]`ed `fn run(task: &str)` put the
    // user's instruction into every record, the journal and the API. A filter keeps what it returns.
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with(|b| {
        b.with_dimension("workspace")
            .with_journal(tokenmeter::journal::JournalConfig::new(dir.path()))
            .with_dimension_filter(|dimension, value| match dimension {
                "task" => ["summarize", "triage"].contains(&value).then(|| value.to_owned()),
                "user" => Some(format!("u-{}", value.len())),
                "workspace" if value == "boom" => panic!("a filter's own bug"),
                "workspace" => None,
                _ => Some(value.to_owned()),
            })
    });
    h.run(|| {
        let _request = info_span!("request", user.id = "jane@example.com", session.id = "s-1", workspace = "w1");
        let _r = _request.enter();
        let _run = info_span!("run", task = "Summarize Jane Roe's HIV test results").entered();
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64));
        let _ok = info_span!("ok", task = "triage", workspace = "boom").entered();
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 20u64));
        let here = h.meter.current_dimensions().unwrap();
        assert_eq!((here.user.as_deref(), here.task.as_deref()), (Some("u-16"), Some("triage")));
        let _tool = info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "search").entered();
    });
    let calls = h.seen.calls();
    let kept: Vec<_> = calls
        .iter()
        .map(|c| (c.dimensions.user.as_deref(), c.dimensions.task.as_deref(), c.dimensions.extra.len()))
        .collect();
    assert_eq!(kept, [(Some("u-16"), None, 0), (Some("u-16"), Some("triage"), 0)]);
    let tasks: Vec<_> = h.seen.tasks.lock().iter().map(|t| (t.task.to_string(), t.dimensions.task.clone())).collect();
    assert_eq!(tasks, [("triage".into(), Some("triage".into())), ("unnamed".into(), Some("unnamed".into()))]);
    assert_eq!(h.seen.tools.lock()[0].dimensions.user.as_deref(), Some("u-16"));
    assert_eq!(h.meter.total_usage().calls, 2, "recording goes on past a filter that panics");
    // Nothing the filter dropped reached the journal.
    h.meter.flush().unwrap();
    let mut text = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert_eq!(text.lines().count(), 5, "two calls, a tool and two tasks: {text}");
    for secret in ["Jane", "HIV", "jane@example.com", "w1", "boom"] {
        assert!(!text.contains(secret), "{secret} in the journal: {text}");
    }
    // A budget is matched against what was kept.
    let budgets = tokenmeter::budget::Budget::new("jane", tokenmeter::budget::BudgetLimit::tokens(1))
        .with_scope(tokenmeter::budget::BudgetScope::user("u-16"));
    let h2 = Harness::with(|b| b.with_budget(budgets).with_dimension_filter(|_, v| Some(format!("u-{}", v.len()))));
    h2.run(|| {
        let _u = info_span!("request", user.id = "jane@example.com").entered();
        drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64));
    });
    assert_eq!(h2.meter.budget_status()[0].spent, tokenmeter::budget::BudgetAmount::Tokens(10));
}

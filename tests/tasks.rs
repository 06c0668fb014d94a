//! A span with a `task` field groups the calls under it; its close records one task.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::info_span;

#[test]
fn task_sums_its_calls() {
    let h = Harness::new();
    h.run(|| {
        let _session = info_span!("conv", session.id = "s1").entered();
        {
            let _task = info_span!("task", task = "summarize", error.type = Empty).entered();
            for _ in 0..3 {
                let _c =
                    info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1_000u64, output_tokens = 100u64)
                        .entered();
            }
        }
        // A call outside the task is not counted in it.
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64).entered();
    });
    let tasks = h.seen.tasks.lock().clone();
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(&*t.task, "summarize");
    assert_eq!(t.calls, 3);
    assert_eq!((t.tokens.input, t.tokens.output), (3_000, 300));
    // haiku 4.5: $1/M in, $5/M out: 3 × (1000 + 500) µ$ = $0.0045
    assert_eq!(t.cost.to_string(), "$0.0045");
    assert!(!t.outcome.is_error());
    assert_eq!(t.dimensions.session.as_deref(), Some("s1"));
    for call in h.seen.calls().iter().take(3) {
        assert_eq!(call.dimensions.task.as_deref(), Some("summarize"));
    }
    assert_eq!(h.meter.capture_stats().tasks, 1);
}

#[test]
fn failed_task_and_nesting() {
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!("task", task = "outer");
        let _o = outer.enter();
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
        drop(_c);
        {
            let inner = info_span!("task", task = "inner", otel.status_code = Empty);
            let _i = inner.enter();
            let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 20u64).entered();
            drop(_c);
            inner.record("otel.status_code", "ERROR");
        }
    });
    let tasks = h.seen.tasks.lock().clone();
    assert_eq!(tasks.len(), 2);
    let inner = tasks.iter().find(|t| &*t.task == "inner").unwrap();
    let outer = tasks.iter().find(|t| &*t.task == "outer").unwrap();
    assert!(inner.outcome.is_error());
    assert_eq!((inner.calls, inner.tokens.input), (1, 20), "a call counts toward its nearest task only");
    assert_eq!((outer.calls, outer.tokens.input), (1, 10));
    // With what ran inside it: the outer task's whole.
    assert_eq!(inner.with_subtasks, None, "no task inside it");
    let whole = outer.with_subtasks.as_ref().expect("a task ran inside it");
    assert_eq!((whole.subtasks, whole.calls, whole.failed_calls, whole.tokens.input), (1, 2, 0, 30));
}

#[test]
fn an_agent_runs_whole_cost_counts_its_sub_agents_runs_at_any_depth() {
    // An orchestrator's run (no calls of its own) spawns two researcher runs, one of which runs a writer: the
    // run's record said 0 calls and $0; its whole is every call under it.
    let h = Harness::new();
    h.run(|| {
        let run = info_span!("run", task = "run-17", gen_ai.agent.name = "orchestrator");
        run.in_scope(|| {
            for (i, nested) in [(0, false), (1, true)] {
                let sub = info_span!("research", task = format!("research-{i}"), gen_ai.agent.name = "researcher");
                sub.in_scope(|| {
                    drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1_000u64, output_tokens = 100u64));
                    if nested {
                        info_span!("write", task = "write-0", gen_ai.agent.name = "writer").in_scope(|| {
                            drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 2_000u64, error.type = "timeout"));
                        });
                    }
                });
            }
        });
    });
    let tasks = h.seen.tasks.lock().clone();
    let by = |name: &str| tasks.iter().find(|t| &*t.task == name).unwrap().clone();
    let run = by("run-17");
    assert_eq!((run.calls, run.cost), (0, tokenmeter::Money::ZERO), "none of its own");
    let whole = run.with_subtasks.expect("three tasks ran inside it");
    assert_eq!((whole.subtasks, whole.calls, whole.failed_calls), (3, 3, 1));
    assert_eq!((whole.tokens.input, whole.tokens.output), (4_000, 200));
    // haiku 4.5: 4,000 x $1 + 200 x $5 per million.
    assert_eq!(whole.cost.to_string(), "$0.005");
    let research_1 = by("research-1").with_subtasks.expect("the writer ran inside it");
    assert_eq!((research_1.subtasks, research_1.calls, research_1.tokens.input), (1, 2, 3_000));
    assert_eq!(by("research-0").with_subtasks, None);
    // The tasks' own figures still add up to the calls, each counted once.
    assert_eq!(tasks.iter().map(|t| t.calls).sum::<u64>(), 3);
}

#[test]
fn task_with_unpriced_and_failed_calls() {
    let h = Harness::new();
    h.run(|| {
        let _t = info_span!("task", task = "mixed").entered();
        let _a = info_span!("chat", model = "mystery-model", input_tokens = 10u64).entered();
        drop(_a);
        let _b =
            info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64, error.type = "rate_limit").entered();
    });
    let t = h.seen.tasks.lock()[0].clone();
    assert_eq!((t.calls, t.unpriced_calls, t.failed_calls), (2, 1, 1));
}

#[test]
fn a_task_span_carrying_several_calls_counts_each() {
    // A long-lived span that is a task and receives each call's usage in turn (a new response id starts the
    // next call): the calls split off before its close counted nowhere, so the task said 1 call of 3.
    let h = Harness::new();
    h.run(|| {
        let conversation = info_span!(
            "conversation",
            task = "chat",
            model = "claude-haiku-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        for (id, input) in [("msg_a", 100u64), ("msg_b", 200), ("msg_c", 300)] {
            conversation.record("gen_ai.response.id", id);
            conversation.record("input_tokens", input);
            conversation.record("output_tokens", 10u64);
        }
    });
    assert_eq!(h.seen.calls().len(), 3);
    let tasks = h.seen.tasks.lock().clone();
    let [task] = &tasks[..] else { panic!("{tasks:#?}") };
    assert_eq!((task.calls, task.tokens.input, task.tokens.output), (3, 600, 30));
    // Haiku 4.5: 600 x $1 + 30 x $5 per million.
    assert_eq!(task.cost.to_string(), "$0.00075");
}

#[tracing::instrument(err, fields(task = "triage"))]
fn triage(fail: bool) -> Result<(), String> {
    let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
    if fail { Err("no answer".to_owned()) } else { Ok(()) }
}

#[tracing::instrument(err, fields(gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep"))]
fn grep_tool(fail: bool) -> Result<(), String> {
    if fail { Err("no match".to_owned()) } else { Ok(()) }
}

#[test]
fn instrument_err_fails_a_task_or_tool_span_too() {
    // `#[instrument(err)]` failed only call spans: a task or tool that returned `Err` was recorded `Ok`, and its
    // tokens never counted as waste.
    let h = Harness::new();
    h.run(|| {
        let _ = triage(true);
        let _ = triage(false);
        let _ = grep_tool(true);
        let _ = grep_tool(false);
    });
    let outcomes: Vec<bool> = h.seen.tasks.lock().iter().map(|t| t.outcome.is_error()).collect();
    assert_eq!(outcomes, [true, false]);
    let outcomes: Vec<bool> = h.seen.tools.lock().iter().map(|t| t.outcome.is_error()).collect();
    assert_eq!(outcomes, [true, false]);
    // The calls inside the failed task did not fail: the error is the task's. (One call in each task.)
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| !c.outcome.is_error()), "{calls:#?}");
}

#[test]
fn a_task_never_named_inside_another_is_not_given_the_outer_name() {
    // Its `task` declared and never filled: it took "triage" from the outer task, two "triage" records, the outer
    // one short of the calls under the inner one.
    let h = Harness::new();
    h.run(|| {
        let _outer = info_span!("task", task = "triage").entered();
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
        drop(_c);
        let _inner = info_span!("subtask", task = Empty).entered();
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 20u64).entered();
    });
    let tasks = h.seen.tasks.lock().clone();
    let named: Vec<(&str, Option<&str>, u64)> =
        tasks.iter().map(|t| (&*t.task, t.dimensions.task.as_deref(), t.calls)).collect();
    assert_eq!(named, [("unnamed", Some("unnamed"), 1), ("triage", Some("triage"), 1)]);
    // The calls carry the task whose tally they are in.
    let tasks: Vec<Option<String>> =
        h.seen.calls().iter().map(|c| c.dimensions.task.as_deref().map(str::to_owned)).collect();
    assert_eq!(tasks, [Some("triage".to_owned()), Some("unnamed".to_owned())]);
    // So does a call span that is itself such a task (`#[instrument]` with a `task: Option<&str>` given `None`):
    // the call said `triage` while its own `unnamed` task record held it.
    let h = Harness::new();
    h.run(|| {
        let _outer = info_span!("task", task = "triage").entered();
        let _c = info_span!("chat", task = Empty, model = "claude-haiku-4-5", input_tokens = 10u64).entered();
    });
    let tasks = h.seen.tasks.lock().clone();
    let named: Vec<(&str, u64)> = tasks.iter().map(|t| (&*t.task, t.calls)).collect();
    assert_eq!(named, [("unnamed", 1), ("triage", 0)]);
    assert_eq!(h.seen.only_call().dimensions.task.as_deref(), Some("unnamed"));
}

#[test]
fn a_call_task_or_tool_span_closed_by_a_panic_failed() {
    // `#[instrument]` on a function that panicked: its span closes while the thread unwinds, and read as a success.
    let h = Harness::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.run(|| {
            let _task = info_span!("task", task = "triage").entered();
            let _tool =
                info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep").entered();
            // Answered, then the caller panicked: a call that succeeded.
            drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered());
            let _answered = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
            let _call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = tracing::field::Empty).entered();
            panic!("the request could not be built");
        })
    }));
    assert!(caught.is_err());
    let calls = h.seen.calls();
    let outcomes: Vec<&str> = calls.iter().map(|c| c.outcome.label()).collect();
    assert_eq!(outcomes, ["ok", "panic", "ok"], "unanswered, then answered, both closed by the panic");
    let tasks = h.seen.tasks.lock().clone();
    assert_eq!(tasks.iter().map(|t| t.outcome.label()).collect::<Vec<_>>(), ["panic"]);
    let tools = h.seen.tools.lock().clone();
    assert_eq!(tools.iter().map(|t| t.outcome.label()).collect::<Vec<_>>(), ["panic"]);
    // Nothing changes for a span closed normally.
    let h = Harness::new();
    h.run(|| drop(info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64)));
    assert!(!h.seen.only_call().outcome.is_error());
}

#[test]
fn a_call_left_by_a_panic_caught_before_its_span_closed_failed() {
    // A wrapper that catches the panic and keeps the span (`catch_unwind` around a span made outside it, futures'
    // `catch_unwind`, tower-http's `CatchPanicLayer`): the span closes later, on a thread no longer unwinding.
    let h = Harness::new();
    h.run(|| {
        let task = info_span!("task", task = "triage");
        let call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty);
        let answered = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _t = task.enter();
            answered.in_scope(|| answered.record("input_tokens", 10u64));
            let _c = call.enter();
            panic!("client bug");
        }));
        assert!(caught.is_err());
        // A span the panic did not unwind through is untouched.
        let untouched = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty);
        drop(untouched.enter());
        drop((call, answered, task, untouched));
    });
    let calls = h.seen.calls();
    let outcomes: Vec<&str> = calls.iter().map(|c| c.outcome.label()).collect();
    assert_eq!(outcomes, ["panic", "ok", "ok"]);
    let tasks = h.seen.tasks.lock().clone();
    assert_eq!(tasks.iter().map(|t| t.outcome.label()).collect::<Vec<_>>(), ["panic"]);
}

#[test]
fn a_caught_panic_fails_only_the_call_it_left() {
    // A long-lived span carrying one call after another (split by a new request id): the panic left the first,
    // and the next, closed without usage and without a panic, is no panic.
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-haiku-4-5", request_id = Empty, input_tokens = Empty);
        span.record("request_id", "req_1");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _e = span.enter();
            panic!("client bug");
        }));
        assert!(caught.is_err());
        span.record("request_id", "req_2");
        drop(span);
    });
    let calls = h.seen.calls();
    let outcomes: Vec<&str> = calls.iter().map(|c| c.outcome.label()).collect();
    assert_eq!(outcomes, ["panic", "ok"]);
}

#[test]
fn a_call_answered_before_a_panic_left_it_succeeded() {
    // Usage recorded, then the caller panicked inside the call span and the panic was caught: it was answered.
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _e = span.enter();
            span.record("input_tokens", 10u64);
            panic!("parsing the answer failed");
        }));
        assert!(caught.is_err());
        drop(span);
    });
    assert_eq!(h.seen.only_call().outcome.label(), "ok");
}

#[test]
fn an_instrumented_future_whose_panic_is_caught_failed() {
    use futures_util::FutureExt;
    use tracing::Instrument;
    let h = Harness::new();
    h.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let span = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty);
            let call = async {
                tokio::task::yield_now().await;
                panic!("client bug");
            };
            let caught = std::panic::AssertUnwindSafe(call.instrument(span)).catch_unwind().await;
            assert!(caught.is_err());
        });
    });
    assert_eq!(h.seen.only_call().outcome.label(), "panic");
}

#[test]
fn a_task_with_no_value_of_the_grouped_dimension_is_a_none_row_of_no_calls() {
    use tokenmeter::ledger::{Dimension, GroupBy, Query, Window};
    let h = Harness::new();
    h.run(|| {
        // The task span names no project; its call does, from a span inside the task.
        let _task = info_span!("task", task = "triage").entered();
        let _p = info_span!("work", project = "helpdesk").entered();
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 10u64).entered();
    });
    let r = h.meter.query(&Query::new(Window::All).group_by(GroupBy::Dimension(Dimension::Project))).unwrap();
    let rows: Vec<(&str, u64, u64)> = r.groups.iter().map(|g| (g.key.as_str(), g.calls, g.tasks)).collect();
    assert_eq!(rows, [("helpdesk", 1, 0), ("(none)", 0, 1)]);
    assert_eq!((r.totals.calls, r.totals.tasks), (1, 1));
}

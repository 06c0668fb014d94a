//! `tokenmeter budget`: budgets from TOML against the fixture's spend, through the library's budget accounting.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::{Transcript, cc, close, usage_line};

const BUDGETS: &str = r#"
[budgets.monthly]
limit_usd = 0.5
period = "month"

[budgets.beta]
limit_usd = 0.25
period = "month"
scope = { project = "-home-dev-beta" }
action = "block"

[budgets.tokens-daily]
limit_tokens = 10000
period = "day"
"#;

#[test]
fn budget_states() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(&file, BUDGETS).unwrap();
    let v = cc(&["budget", "--file", file.to_str().unwrap(), "--format", "json"]).json();
    let b = v["budgets"].as_array().unwrap();
    assert_eq!(b.len(), 3);
    let get = |name: &str| b.iter().find(|x| x["budget"] == name).unwrap();
    let monthly = get("monthly");
    assert_eq!(monthly["spent"]["picos"], 371_530_000_000u64);
    assert_eq!(monthly["spent"]["usd"], 0.37153);
    close(monthly["utilization"].as_f64().unwrap(), 0.37153 / 0.5);
    assert_eq!(monthly["over_budget"], false);
    assert_eq!(monthly["thresholds_crossed"], serde_json::json!([50]));
    let beta = get("beta");
    assert_eq!(beta["spent"]["picos"], 329_409_000_000u64);
    assert_eq!(beta["over_budget"], true);
    // Today (2025-10-04) has no calls yet.
    assert_eq!(get("tokens-daily")["spent"]["tokens"], 0);

    let text = cc(&["budget", "--file", file.to_str().unwrap()]).ok().to_owned();
    assert!(text.contains("monthly") && text.contains("74.3%") && text.contains("Over budget: beta"), "{text}");
}

#[test]
fn a_budget_for_each_project_shows_a_row_per_project() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(
        &file,
        "[budgets.per-project]\nlimit_usd = 0.25\nperiod = \"month\"\nscope = { project = \"*\" }\n\n\
         [budgets.per-tenant]\nlimit_usd = 1\nscope = { tenant = \"*\" }\n",
    )
    .unwrap();
    let run = cc(&["budget", "--file", file.to_str().unwrap(), "--format", "json"]);
    let v = run.json();
    let b = v["budgets"].as_array().unwrap();
    let rows: Vec<(&str, &str)> =
        b.iter().map(|x| (x["scope"].as_str().unwrap(), x["member"].as_str().unwrap())).collect();
    assert!(rows.len() >= 2 && rows.iter().all(|(scope, member)| *scope == format!("project={member}")), "{v}");
    // The projects' spend adds up to the month's (as the monthly budget over everything counts it).
    let total: u64 = b.iter().map(|x| x["spent"]["picos"].as_u64().unwrap()).sum();
    assert_eq!(total, 371_530_000_000u64);
    let beta = b.iter().find(|x| x["member"] == "-home-dev-beta").unwrap();
    assert_eq!((beta["spent"]["picos"].as_u64(), beta["over_budget"].as_bool()), (Some(329_409_000_000), Some(true)));
    // No call carries a tenant: the command says so, as for a dimension no call has.
    assert!(run.stderr.contains("budget `per-tenant`: no call in the source has a tenant"), "{}", run.stderr);

    let text = cc(&["budget", "--file", file.to_str().unwrap()]).ok().to_owned();
    assert!(text.contains("project=-home-dev-beta"), "{text}");
    // One project's account at most: the others' calls share `(other)`, and a note says so.
    std::fs::write(&file, "[budgets.per-project]\nlimit_usd = 0.25\nscope = { project = \"*\" }\nmax_members = 1\n")
        .unwrap();
    let run = cc(&["budget", "--file", file.to_str().unwrap(), "--format", "json"]);
    let scopes: Vec<String> =
        run.json()["budgets"].as_array().unwrap().iter().map(|b| b["scope"].as_str().unwrap().to_owned()).collect();
    assert_eq!(scopes.len(), 2, "{scopes:?}");
    assert!(scopes.contains(&"project=(other)".to_owned()), "{scopes:?}");
    assert!(run.stderr.contains("budget `per-project` holds at most its max_members values at once"), "{}", run.stderr);
    assert!(text.contains("Over budget: per-project (project=-home-dev-beta)"), "{text}");
    assert!(text.contains("`per-tenant` (tenant=*): no tenant has spent in its current period."), "{text}");
}

#[test]
fn a_projection_that_leaves_out_unpriced_calls_says_so() {
    // The projection is made from the priced spend: it read a bare `$3.84` beside a spend of `$0.3715 + unpriced`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(&file, BUDGETS).unwrap();
    let text = cc(&["budget", "--file", file.to_str().unwrap()]).ok().to_owned();
    let monthly = row_of(&text, "monthly");
    assert!(monthly.contains("$0.3715 + unpriced") && monthly.contains("$3.84 + unpriced"), "{text}");
    // The beta project's calls all have a price; a token budget counts every call's tokens.
    assert!(
        !row_of(&text, "beta").contains("unpriced") && !row_of(&text, "tokens-daily").contains("unpriced"),
        "{text}"
    );
    // Calls on models without a price only: both figures are `unpriced`, never a $0.00 that reads as nothing spent.
    let t = Transcript::new(&[
        usage_line("2025-10-02T10:00:00Z", "gpt-4o", "m1", 1_000, 200),
        usage_line("2025-10-03T10:00:00Z", "gpt-4o", "m2", 1_000, 200),
    ]);
    let text = t.run(&["-q", "budget", "--file", file.to_str().unwrap()]).ok().to_owned();
    let monthly = row_of(&text, "monthly");
    assert_eq!(monthly.matches("unpriced").count(), 2, "{text}");
    assert!(!monthly.contains("$0.00"), "{text}");
}

/// The table row of budget `name`.
fn row_of<'t>(text: &'t str, name: &str) -> &'t str {
    text.lines().find(|l| l.starts_with(&format!("│ {name} "))).unwrap_or_else(|| panic!("no {name} row:\n{text}"))
}

#[test]
fn tz_is_the_time_zone_of_budgets_without_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    let text = format!("{BUDGETS}\n[budgets.utc-daily]\nlimit_tokens = 10000\nperiod = \"day\"\ntime_zone = \"UTC\"\n");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    // At 2025-10-04T00:00Z it is still 2025-10-03 17:00 in Los Angeles: that day's calls are today's there.
    let v = cc(&["--tz", "America/Los_Angeles", "budget", "--file", file, "--format", "json"]).json();
    let b = v["budgets"].as_array().unwrap();
    let get = |name: &str| b.iter().find(|x| x["budget"] == name).unwrap();
    let daily = get("tokens-daily");
    assert_eq!(daily["period_start"], "2025-10-03T07:00:00Z", "{daily}");
    assert_eq!(daily["resets_at"], "2025-10-04T07:00:00Z");
    assert!(daily["spent"]["tokens"].as_u64().unwrap() > 0, "{daily}");
    assert_eq!(get("monthly")["period_start"], "2025-10-01T07:00:00Z");
    // A budget's own time_zone still wins.
    let own = get("utc-daily");
    assert_eq!(
        (own["period_start"].as_str(), own["spent"]["tokens"].as_u64()),
        (Some("2025-10-04T00:00:00Z"), Some(0))
    );
    // Without --tz, UTC.
    let v = cc(&["budget", "--file", file, "--format", "json"]).json();
    assert_eq!(v["budgets"][2]["period_start"], "2025-10-04T00:00:00Z");
}

#[test]
fn bad_budget_files() {
    cc(&["budget", "--file", "/nonexistent/budgets.toml"]).fails(1, "does not exist");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(&file, "[budgets.x]\nlimit_usd = \"lots\"\n").unwrap();
    cc(&["budget", "--file", file.to_str().unwrap()]).fails(1, "budgets.toml");
    // A file without budgets says so instead of printing an empty table.
    std::fs::write(&file, "# budgets to come\n").unwrap();
    let text = cc(&["budget", "--file", file.to_str().unwrap()]).ok().to_owned();
    assert!(text.contains("The budgets file holds no budgets") && !text.contains('│'), "{text}");
}

/// Records without a `cost` (hand-made files, other tools' exports) are priced from the price book, as the
/// ledger behind every other command prices them: the budget's spend equals the summary's cost.
#[test]
fn budget_prices_records_without_cost() {
    let dir = tempfile::tempdir().unwrap();
    cli_support::write_journal(dir.path());
    let (mut records, mut stripped) = (Vec::new(), 0);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut call = v["call"].clone();
            stripped += usize::from(call.as_object_mut().unwrap().remove("cost").is_some_and(|c| !c.is_null()));
            records.push(call);
        }
    }
    assert!(stripped >= 10, "the fixture's priced records lost their cost ({stripped})");
    let file = dir.path().join("costless.jsonl");
    std::fs::write(&file, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, "[budgets.all]\nlimit_usd = 100\nperiod = \"month\"\n").unwrap();
    let now = cli_support::NOW;
    let summary = cli_support::run(&["--records", file.to_str().unwrap(), "--now", now, "summary", "--format", "json"]);
    let cost = summary.json()["summary"]["cost_picos"].as_u64().unwrap();
    assert!(cost > 0);
    let v = cli_support::run(&[
        "--records",
        file.to_str().unwrap(),
        "--now",
        now,
        "budget",
        "--file",
        budgets.to_str().unwrap(),
        "--format",
        "json",
    ])
    .json();
    let all = &v["budgets"][0];
    assert_eq!(all["spent"]["picos"].as_u64().unwrap(), cost, "{all}");
    // The fixture's calls on a model the price book does not know stay unpriced in both.
    assert_eq!(all["unpriced_calls"], summary.json()["summary"]["unpriced"]["calls"], "{all}");
}

#[test]
fn budget_scopes_by_field_name_or_own_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    // `agent` written as the span field that fills it, and a dimension no call carries (a typo).
    std::fs::write(
        &file,
        "[budgets.sub]\nlimit_usd = 1\nscope = { \"gen_ai.agent.name\" = \"subagent\" }\n\n\
         [budgets.typo]\nlimit_usd = 1\nscope = { tennant = \"acme\" }\n",
    )
    .unwrap();
    let run = cc(&["budget", "--file", file.to_str().unwrap(), "--format", "json"]);
    let v = run.json();
    let b = v["budgets"].as_array().unwrap();
    assert_eq!(b[0]["scope"], "agent=subagent");
    assert!(b[0]["spent"]["picos"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(b[1]["spent"]["picos"], 0);
    let said = format!(
        "{}:7: field `budgets.typo.scope`: budget `typo`: no call in the source has the dimension `tennant`",
        file.display()
    );
    assert!(run.stderr.contains(&said), "{}", run.stderr);
}

#[test]
fn a_call_counts_in_the_day_it_ended_whatever_the_order_it_started_in() {
    // 23:50 to 00:01 (into the new day) and 23:52 to 23:58 (the old day): sorted by start, the first opened the
    // new day and the second, ending 3 minutes before it, was counted there too.
    let dir = tempfile::tempdir().unwrap();
    let call = |ts: &str, minutes: u64, input: u64| {
        serde_json::json!({
            "timestamp": ts, "duration_us": minutes * 60_000_000, "model": "claude-haiku-4-5",
            "provider": "anthropic", "metered": true, "outcome": {"status": "ok"}, "dimensions": {},
            "tokens": {"input": input, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0, "output": 0,
                       "reasoning": 0}
        })
    };
    let file = dir.path().join("records.jsonl");
    let text =
        format!("{}\n{}\n", call("2026-03-14T23:50:00Z", 11, 1_000_000), call("2026-03-14T23:52:00Z", 6, 2_000_000));
    std::fs::write(&file, text).unwrap();
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, "[budgets.daily]\nlimit_usd = 100\nperiod = \"day\"\n").unwrap();
    let file = file.to_str().unwrap();
    let args = ["--records", file, "--now", "2026-03-15T01:00:00Z", "budget", "--file", budgets.to_str().unwrap()];
    let v = cli_support::run(&[&args[..], &["--format", "json"]].concat()).json();
    let daily = &v["budgets"][0];
    assert_eq!(daily["period_start"], "2026-03-15T00:00:00Z", "{daily}");
    // The 00:01 call's $1 only (haiku-4-5 input: $1 per million tokens).
    assert_eq!((daily["spent"]["picos"].as_u64(), &daily["calls"]), (Some(1_000_000_000_000), &1.into()), "{daily}");
}

#[test]
fn calls_stamped_ahead_of_the_clock_and_long_scope_values_count() {
    // Without `--now`, a call stamped two hours ahead (a skewed clock) is counted now, as `summary` counts it: the
    // budget's journal replay left it out and printed a warning past `-q`. A scope value over 128 bytes (a deep
    // Claude Code project folder) was refused, with advice to raise `with_max_dimension_len`.
    let dir = tempfile::tempdir().unwrap();
    let project = format!("-home-dev-{}", "deep-".repeat(40));
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let record = serde_json::json!({
        "timestamp": ahead, "duration_us": 1_000_000, "model": "claude-haiku-4-5",
        "provider": "anthropic", "metered": true, "outcome": {"status": "ok"}, "dimensions": {"project": project},
        "tokens": {"input": 1_000_000, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0, "output": 0,
                   "reasoning": 0}
    });
    // And one whose duration reaches back before 1970 (corrupt): it counts now too, as `summary` counts it.
    let mut corrupt = record.clone();
    corrupt["duration_us"] = serde_json::json!(u64::MAX);
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{record}\n{corrupt}\n")).unwrap();
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, format!("[budgets.deep]\nlimit_usd = 100\nscope = {{ project = \"{project}\" }}\n"))
        .unwrap();
    let args = ["-q", "--records", file.to_str().unwrap(), "budget", "--file", budgets.to_str().unwrap()];
    let run = cli_support::run(&[&args[..], &["--format", "json"]].concat());
    let v = run.json();
    let deep = &v["budgets"][0];
    assert_eq!((deep["spent"]["picos"].as_u64(), &deep["calls"]), (Some(2_000_000_000_000), &2.into()), "{deep}");
    assert_eq!(run.stderr, "", "-q says nothing");
}

#[test]
fn a_dollar_budget_on_a_model_without_a_price_says_how_to_price_it() {
    // The library's advice names `PriceBook::set`; on the command line the price book is `--prices`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(&file, "[budgets.ft]\nlimit_usd = 10\nscope = { model = \"acme-ft-1\" }\n").unwrap();
    cc(&["budget", "--file", file.to_str().unwrap()]).fails(
        1,
        "budget `ft` counts dollars on model `acme-ft-1`, which the price book has no price for: its calls would \
         count $0; fix the model id, or pass --prices",
    );
    // With a price file that knows it, the budget is read.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"acme-ft-1\"]\ninput = 1.0\noutput = 2.0\n").unwrap();
    let out =
        cc(&["--prices", prices.to_str().unwrap(), "budget", "--file", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.json()["budgets"][0]["budget"], "ft");
}

#[test]
#[cfg(unix)]
fn private_copies_left_by_a_killed_run_are_removed() {
    // `budget` (and `mcp --budgets`' `track`) evaluates the budgets over a private copy of the records in the
    // temporary directory, holding a lock in it; a process killed mid-evaluation left it there (hundreds of MB over
    // a large source). Another run removes it once its lock can be taken (the process is gone), or, without a lock
    // file, once it is an hour old; never one whose lock is held (a process still evaluating, in any PID
    // namespace sharing the directory).
    let tmp = tempfile::tempdir().unwrap();
    let dir = |pid: u32| tmp.path().join(format!("tokenmeter-budget-{pid}-0"));
    let (dead, live, old, fresh) = (dir(u32::MAX - 1), dir(u32::MAX - 2), dir(u32::MAX - 3), dir(u32::MAX - 4));
    let other = tmp.path().join("tokenmeter-budget-notes");
    for d in [&dead, &live, &old, &fresh, &other] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("tokenmeter-2000-01-01.jsonl"), "{}\n").unwrap();
    }
    std::fs::File::create(dead.join(".lock")).unwrap();
    let held = std::fs::File::create(live.join(".lock")).unwrap();
    held.lock().unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7_200);
    std::fs::File::open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    let budgets = tmp.path().join("budgets.toml");
    std::fs::write(&budgets, "[budgets.all]\nlimit_usd = 10\n").unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let fixture = cli_support::fixture("claude_code");
    cli_support::run_env(
        &["-q", "--claude-code", &fixture, "--now", cli_support::NOW, "budget", "--file", budgets.to_str().unwrap()],
        &[("TMPDIR", tmpdir)],
    )
    .ok();
    assert!(!dead.exists() && !old.exists(), "a dead process's copy and an old unlocked one are removed");
    assert!(live.exists() && fresh.exists() && other.exists(), "a locked copy, a new one and other names stay");
    let left = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(left, 4, "the run removed its own copy too");
    drop(held);
}

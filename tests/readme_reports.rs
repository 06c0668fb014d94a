//! README.md's "Sample reports" have the fields of the report types they show. The samples are shortened by hand
//! (long arrays keep a few items), so their values are not re-generated here; what can drift silently is their
//! shape: a field renamed, added or dropped in a type and not in the README. Each sample is read into its type
//! (a field the type requires and the sample lacks fails here) and written back, and the two JSON documents must
//! have the same keys at every level (a field the sample shows that the type no longer has fails here).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokenmeter::analysis::{AnomalyReport, BreakdownTree, CacheReport, Comparison, Forecast, TimeOfDayReport};
use tokenmeter::ledger::{LedgerStats, QueryResult};
use tokenmeter::{EfficiencyReport, UsageSummary};

/// Every key path in `v` (`a.b[].c`), arrays' items merged.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = format!("{prefix}.{k}");
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(sample: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(sample.clone()).map_err(|e| format!("does not read as its type: {e}"))?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The README's sample blocks: (line, heading, JSON).
fn samples(readme: &str) -> Vec<(usize, String, String)> {
    let start = readme.find("### Sample reports").expect("README has \"### Sample reports\"");
    let section = &readme[start..];
    let end = section[3..].find("\n### ").map_or(section.len(), |i| i + 3);
    let first_line = readme[..start].lines().count() + 1;
    let mut out = Vec::new();
    let (mut heading, mut block, mut at) = (String::new(), None::<Vec<&str>>, 0);
    for (n, line) in section[..end].lines().enumerate() {
        match (&mut block, line) {
            (None, l) if l.starts_with("#### ") => heading = l[5..].to_owned(),
            (None, "```json") => (block, at) = (Some(Vec::new()), first_line + n),
            (Some(b), "```") => {
                out.push((at, heading.clone(), b.join("\n")));
                block = None;
            }
            (Some(b), l) => b.push(l),
            _ => {}
        }
    }
    out
}

#[test]
fn every_sample_report_has_the_fields_of_its_type() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let samples = samples(&readme);
    assert_eq!(samples.len(), 11, "{:?}", samples.iter().map(|s| &s.1).collect::<Vec<_>>());
    let mut failures = Vec::new();
    for (line, heading, json) in &samples {
        let sample: Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("README.md:{line} ({heading}): not JSON: {e}"));
                continue;
            }
        };
        let call = heading.split('`').nth(1).unwrap_or_default();
        let back = match call.split('(').next().unwrap_or_default() {
            "usage_summary" => round_trip::<UsageSummary>(&sample),
            "efficiency_report" => round_trip::<EfficiencyReport>(&sample),
            "cache_report" => round_trip::<CacheReport>(&sample),
            "breakdown_tree" => round_trip::<BreakdownTree>(&sample),
            "time_of_day" => round_trip::<TimeOfDayReport>(&sample),
            "anomalies" => round_trip::<AnomalyReport>(&sample),
            "forecast" => round_trip::<Forecast>(&sample),
            "compare_periods" | "compare_values" => round_trip::<Comparison>(&sample),
            "query" => round_trip::<QueryResult>(&sample),
            "ledger_stats" => round_trip::<LedgerStats>(&sample),
            other => Err(format!("no report type known for `{other}`")),
        };
        let back = match back {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("README.md:{line} ({heading}): {e}"));
                continue;
            }
        };
        let (mut shown, mut typed) = (BTreeSet::new(), BTreeSet::new());
        key_paths(&sample, "", &mut shown);
        key_paths(&back, "", &mut typed);
        let unknown: Vec<&String> = shown.difference(&typed).collect();
        let missing: Vec<&String> = typed.difference(&shown).collect();
        if !unknown.is_empty() || !missing.is_empty() {
            failures.push(format!(
                "README.md:{line} ({heading}): fields the type does not have: {unknown:?}; fields the type writes \
                 that the sample lacks: {missing:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

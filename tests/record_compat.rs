//! Records a later version writes, read by this one: what it does not know is kept where it can be, never a
//! reason to drop a call's spend.

use tokenmeter::{CallRecord, Outcome};

fn outcome(json: &str) -> Result<Outcome, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[test]
fn an_outcome_status_this_version_does_not_know_is_an_error_of_that_type() {
    assert_eq!(outcome(r#"{"status":"ok"}"#), Ok(Outcome::Ok));
    assert_eq!(outcome(r#"{"status":"ok","retries":2}"#), Ok(Outcome::Ok));
    assert_eq!(
        outcome(r#"{"error_type":"timeout","status":"error"}"#),
        Ok(Outcome::Error { error_type: "timeout".into() })
    );
    assert_eq!(outcome(r#"{"status":"cancelled"}"#), Ok(Outcome::Error { error_type: "cancelled".into() }));
    assert_eq!(
        outcome(r#"{"status":"cancelled","error_type":"user_abort"}"#),
        Ok(Outcome::Error { error_type: "user_abort".into() })
    );
    assert!(outcome(r#"{"status":"error"}"#).unwrap_err().contains("missing field `error_type`"));
    assert!(outcome(r#"{"error_type":"x"}"#).unwrap_err().contains("missing field `status`"));
    assert!(outcome(r#"{"status":"ok","status":"ok"}"#).unwrap_err().contains("duplicate field `status`"));
    assert!(outcome(r#"{"status":7}"#).is_err());
    // What this version writes reads back as itself.
    for o in [Outcome::Ok, Outcome::Error { error_type: "rate_limited".into() }] {
        assert_eq!(outcome(&serde_json::to_string(&o).unwrap()), Ok(o));
    }

    // A call with such an outcome keeps its tokens and cost.
    let line = r#"{"timestamp":"2026-03-14T09:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000},"metered":true,"outcome":{"status":"cancelled"},"cost":{"total":1000000000,"input":1000000000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"claude-haiku-4-5"}}"#;
    let call: CallRecord = serde_json::from_str(line).unwrap();
    assert_eq!(call.outcome, Outcome::Error { error_type: "cancelled".into() });
    assert_eq!((call.tokens.input, call.cost.unwrap().total.picos()), (1000, 1_000_000_000));
}

#[test]
fn a_cost_reads_back_as_the_derived_reader_took_it_and_counts_a_later_fee() {
    let cost = |fields: &str| {
        let line = format!(
            r#"{{"timestamp":"2026-03-14T09:00:00Z","duration_us":5,"tokens":{{"input":5}},"metered":true,"outcome":{{"status":"ok"}},"cost":{fields}}}"#
        );
        serde_json::from_str::<CallRecord>(&line).map(|c| c.cost.unwrap()).map_err(|e| e.to_string())
    };
    let known = r#""input":5,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"m""#;
    // A later fee with a count beside it (not money): the total is the known parts and the fee.
    let c = cost(&format!(r#"{{"total":12,{known},"web_fetch":7,"web_fetch_requests":2}}"#)).unwrap();
    assert_eq!(c.total.picos(), 12);
    // A total that no choice of the unknown numbers makes: damage.
    let err = cost(&format!(r#"{{"total":13,{known},"web_fetch":7,"web_fetch_requests":2}}"#)).unwrap_err();
    assert!(err.contains("cost.total = 13 picodollars is not the sum of its parts (5)"), "{err}");
    // A field given twice is an error, `regional` and its earlier name `us_only` included.
    for dup in [r#""fast":true,"fast":false"#, r#""regional":true,"us_only":false"#, r#""priced_as":"n""#] {
        let err = cost(&format!(r#"{{"total":5,{known},{dup}}}"#)).unwrap_err();
        assert!(err.contains("duplicate field"), "{dup}: {err}");
    }
    assert!(cost(&format!(r#"{{"total":5,{known},"us_only":true}}"#)).unwrap().regional);
    // A struct written as its fields in order (formats that write structs as arrays).
    let c = cost(r#"[5,5,0,0,0,0,0,0,"m"]"#).unwrap();
    assert_eq!((c.total.picos(), c.input.picos(), &*c.priced_as, c.fast), (5, 5, "m", false));
    assert!(cost(r#"[5,5,0]"#).unwrap_err().contains("invalid length 3"));
    assert_eq!(outcome(r#"["error","timeout"]"#), Ok(Outcome::Error { error_type: "timeout".into() }));
    assert_eq!(outcome(r#"["ok"]"#), Ok(Outcome::Ok));
}

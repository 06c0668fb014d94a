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

//! `Money` (and the records and totals that hold it) read back exactly, to `u128::MAX` picos, inside the serde
//! types users wrap them in that do not buffer: structs, externally and adjacently tagged enums. (Internally
//! tagged and untagged enums and `#[serde(flatten)]` buffer through a value type without 128-bit integers: there
//! serde says "u128 is not supported", as `Money`'s documentation says.)

use crate::common;

use serde::{Deserialize, Serialize};
use tokenmeter::{CallRecord, Money, UsageTotals};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data")]
enum Adjacent {
    Totals(UsageTotals),
    Call(Box<CallRecord>),
    Amount { cost: Money },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum External {
    Totals(UsageTotals),
    Amount(Money),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
enum Internal {
    Amount { cost: Money },
}

#[test]
fn money_reads_back_exactly_inside_the_wrappers_that_do_not_buffer() {
    let cost = Money::from_picos(u128::MAX - 1);
    let totals = UsageTotals { cost, calls: 3, ..UsageTotals::default() };
    // Just under the $1e12 a call may cost: past `u64`, as sums of calls often are.
    let big = 10u128.pow(24) - 1;
    let h = common::Harness::new();
    h.run(|| drop(tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 10u64)));
    let mut call = h.seen.only_call();
    let priced = call.cost.as_mut().unwrap();
    let others = priced.total.picos() - priced.input.picos();
    (priced.total, priced.input) = (Money::from_picos(big), Money::from_picos(big - others));
    assert_eq!(call.cost.as_ref().map(|c| c.total), Some(Money::from_picos(big)));
    for value in [Adjacent::Totals(totals.clone()), Adjacent::Call(Box::new(call)), Adjacent::Amount { cost }] {
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<Adjacent>(&json).unwrap(), value, "{json}");
    }
    for value in [External::Totals(totals), External::Amount(cost)] {
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<External>(&json).unwrap(), value, "{json}");
    }
    // The limit the documentation states: a buffered wrapper cannot hold a 128-bit integer.
    let json = serde_json::to_string(&Internal::Amount { cost: Money::from_picos(1) }).unwrap();
    let err = serde_json::from_str::<Internal>(&json).unwrap_err();
    assert!(err.to_string().contains("u128 is not supported"), "{err}");
}

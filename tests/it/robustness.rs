//! Streams written differently from the simulator's still give the right CDR.
//!
//! Each test takes the hand-written call of `kazoo-events.md` §4.6 (`notes_pstn_hold.jsonl`)
//! and changes it the way another recorder or Kazoo build might, then checks the fields that
//! must not move.

use serde_json::Value;

use crate::support::{fixtures_dir, replay_lines};

fn notes_frames() -> Vec<Value> {
    std::fs::read_to_string(fixtures_dir().join("notes_pstn_hold.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn one_cdr(frames: &[Value]) -> Value {
    let lines: Vec<String> = frames.iter().map(Value::to_string).collect();
    let closed = replay_lines(&lines);
    assert_eq!(closed.len(), 1, "one session expected");
    serde_json::to_value(&closed[0].cdr).unwrap()
}

fn assert_core(c: &Value) {
    assert_eq!(c["dir"], 2, "{c}");
    assert_eq!(c["type"], 2);
    assert_eq!(c["ans"], 1);
    assert_eq!(c["cliNum"], "+14155550123");
    assert_eq!(c["ddiNum"], "+15125550100");
    assert_eq!(c["ansDevNum"], "user_4k2n9x");
    assert_eq!(c["hold"], 15);
    assert_eq!(c["cause"], "NORMAL_CLEARING");
}

#[test]
fn reference_call() {
    let c = one_cdr(&notes_frames());
    assert_core(&c);
    // talk + hold = 74 + 15 = the call's `billing_seconds` 89 (kazoo-events.md §4.6).
    assert_eq!(
        (c["dur"].as_u64(), c["ring"].as_u64(), c["talk"].as_u64()),
        (Some(95), Some(5), Some(74))
    );
    assert_eq!(c["tags"], serde_json::json!({}));
}

#[test]
fn without_the_bridge_event() {
    let frames: Vec<Value> = notes_frames()
        .into_iter()
        .filter(|f| f["name"] != "CHANNEL_BRIDGE")
        .collect();
    let c = one_cdr(&frames);
    assert_core(&c);
    assert_eq!(c["talk"], 74);
}

#[test]
fn with_timestamps_only_and_numbers_as_strings() {
    let frames: Vec<Value> = notes_frames()
        .into_iter()
        .map(|mut f| {
            if let Some(d) = f.get_mut("data").and_then(Value::as_object_mut) {
                d.remove("msg_id");
                d.remove("channel_created_time");
                if let Some(ts) = d.get("timestamp").and_then(Value::as_i64) {
                    d.insert("timestamp".into(), Value::from(ts.to_string()));
                }
            }
            f
        })
        .collect();
    let c = one_cdr(&frames);
    assert_core(&c);
    // Whole-second times: created 15:30:00, answered and bridged 15:30:06, ended 15:31:35.
    assert_eq!(
        (c["dur"].as_u64(), c["ring"].as_u64(), c["talk"].as_u64()),
        (Some(95), Some(6), Some(74))
    );
}

#[test]
fn reversed_stream() {
    let mut frames = notes_frames();
    frames.reverse();
    let c = one_cdr(&frames);
    assert_core(&c);
    assert_eq!(c, one_cdr(&notes_frames()));
}

#[test]
fn lost_create_is_partial_but_keeps_its_start() {
    let frames: Vec<Value> = notes_frames()
        .into_iter()
        .filter(|f| !(f["name"] == "CHANNEL_CREATE" && f["data"]["call_direction"] == "inbound"))
        .collect();
    let c = one_cdr(&frames);
    assert_core(&c);
    assert_eq!(
        c["start"], "2024-05-14T15:30:00+00:00",
        "channel_created_time recovers the start"
    );
    assert_eq!(c["tags"]["partial"], "1");
}

#[test]
fn account_only_in_the_routing_key() {
    let frames: Vec<Value> = notes_frames()
        .into_iter()
        .map(|mut f| {
            if let Some(ccv) = f
                .pointer_mut("/data/custom_channel_vars")
                .and_then(Value::as_object_mut)
            {
                ccv.remove("account_id");
            }
            f
        })
        .collect();
    assert_core(&one_cdr(&frames));
}

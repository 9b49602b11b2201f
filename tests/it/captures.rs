//! The public Kazoo captures (`fixtures/capture_*.jsonl`, made by `tools/kazoo_captures.py`)
//! checked against what Kazoo itself says about the calls: the expected values come from the
//! frames (`duration_seconds`, `billing_seconds`, the routed caller id on ANSWER/DESTROY),
//! never from postcall.

use postcall::cdr::{CallType, Direction};
use serde_json::Value;

use crate::support::{fixtures_dir, replay_lines};

fn lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixtures_dir().join(name))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn data(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap();
    v["data"].clone()
}

/// A number Kazoo sent as a string or a number.
fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

fn permutations(v: &[String]) -> Vec<Vec<String>> {
    if v.len() <= 1 {
        return vec![v.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..v.len() {
        let mut rest = v.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

#[test]
fn internal_call_shows_the_routed_caller_id_whatever_the_order() {
    let frames = lines("capture_bh_readme_star97.jsonl");
    let create = data(&frames[0]);
    let destroy = data(&frames[2]);
    // The capture itself: the phone's own value at CREATE, the device's caller id after.
    assert_eq!(create["caller_id_number"], "user_wpxnx7am9w");
    let routed = destroy["caller_id_number"].as_str().unwrap();
    assert_eq!(routed, "356");
    for order in permutations(&frames) {
        let closed = replay_lines(&order);
        assert_eq!(closed.len(), 1);
        let cdr = &closed[0].cdr;
        assert_eq!(
            cdr.dir,
            Direction::Internal,
            "a device calling a feature code is internal"
        );
        assert_eq!(cdr.cli_num.as_deref(), Some(routed));
        assert_eq!(cdr.cli_name.as_deref(), destroy["caller_id_name"].as_str());
    }
}

/// Every leg seen only at its DESTROY spans Kazoo's `duration_seconds`.
#[test]
fn a_leg_seen_only_at_its_destroy_lasts_its_duration_seconds() {
    for name in [
        "capture_bh_readme_star97_destroy_only.jsonl",
        "capture_zoho_destroys.jsonl",
    ] {
        let frames = lines(name);
        for line in &frames {
            let d = data(line);
            let closed = replay_lines(std::slice::from_ref(line));
            assert_eq!(closed.len(), 1, "{name}");
            let cdr = &closed[0].cdr;
            assert_eq!(
                cdr.dur as i64,
                int(&d["duration_seconds"]),
                "{name} {}",
                d["call_id"]
            );
            assert_eq!(cdr.tags.get("partial").map(String::as_str), Some("1"));
        }
    }
    // The real inbound carrier leg: 9 s, cancelled by the caller, from the carrier.
    let closed = replay_lines(&lines("capture_zoho_destroys.jsonl"));
    let carrier = closed
        .iter()
        .find(|c| c.cdr.dir == Direction::Incoming)
        .unwrap();
    assert_eq!(
        (
            carrier.cdr.dur,
            carrier.cdr.ans,
            carrier.cdr.cause.as_deref()
        ),
        (9, 0, Some("ORIGINATOR_CANCEL"))
    );
}

/// The same `*97` leg with or without its CREATE and ANSWER: one record, same start and end.
#[test]
fn losing_create_and_answer_keeps_start_end_and_caller() {
    let full = replay_lines(&lines("capture_bh_readme_star97.jsonl"));
    let destroy_only = replay_lines(&lines("capture_bh_readme_star97_destroy_only.jsonl"));
    let (a, b) = (&full[0].cdr, &destroy_only[0].cdr);
    assert_eq!((&a.start, &a.end, a.dur), (&b.start, &b.end, b.dur));
    assert_eq!(a.cli_num, b.cli_num);
}

/// Kazoo's webhook samples: a leg answered, bridged to `af1e…` (never in the stream), billed
/// 6 s. The samples carry one `timestamp` for all four events, so the times are re-spaced here
/// the way a live stream would have them (answer, bridge, hang-up 6 s after the answer).
#[test]
fn a_billed_bridge_to_an_unseen_leg_is_answered_and_tagged() {
    let frames = lines("capture_webhook_samples.jsonl");
    let destroy = data(&frames[3]);
    let billed = int(&destroy["billing_seconds"]);
    assert_eq!(billed, 6);
    let as_is = replay_lines(&frames);
    assert_eq!(as_is.len(), 1);
    assert_eq!(
        as_is[0].cdr.tags.get("unseen_peer").map(String::as_str),
        Some("1")
    );

    let base = 1_557_130_209_000_000i64; // the samples' timestamp, in µs
    let at = [0, 400_000, 450_000, 400_000 + billed * 1_000_000 - 300_000];
    let timed: Vec<String> = frames
        .iter()
        .zip(at)
        .map(|(l, dt)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["data"]["msg_id"] = Value::from((base + dt).to_string());
            v.to_string()
        })
        .collect();
    let closed = replay_lines(&timed);
    assert_eq!(closed.len(), 1);
    let cdr = &closed[0].cdr;
    assert_eq!(cdr.ans, 1, "{cdr:?}");
    assert!(
        (cdr.talk + cdr.hold).abs_diff(billed as u64) <= 1,
        "{cdr:?}"
    );
    assert_eq!(cdr.tags.get("unseen_peer").map(String::as_str), Some("1"));
    assert_eq!(
        (cdr.dir, cdr.call_type),
        (Direction::Unknown, CallType::Unknown),
        "the unseen party may be a carrier"
    );

    // Without Kazoo's evidence (billing 0) the bridge alone does not make an answer.
    let unbilled: Vec<String> = timed
        .iter()
        .map(|l| l.replace("\"billing_seconds\":6", "\"billing_seconds\":0"))
        .collect();
    let cdr = &replay_lines(&unbilled)[0].cdr;
    assert_eq!(cdr.ans, 0);
    assert!(!cdr.tags.contains_key("unseen_peer"));
}

/// After a reconnect only the DESTROYs of a simulated answered PSTN call arrive: the call is
/// still answered, from `billing_seconds`, and talks as long as Kazoo billed the device leg.
#[test]
fn destroys_alone_still_give_an_answered_call() {
    let frames: Vec<String> = postcall::sim::scenario("pstn_answered")
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .filter(|t| data(t)["event_name"] == "CHANNEL_DESTROY")
        .collect();
    assert!(frames.len() >= 2);
    let device = frames
        .iter()
        .map(|l| data(l))
        .find(|d| d["custom_channel_vars"]["authorizing_type"] == "device")
        .unwrap();
    let closed = replay_lines(&frames);
    assert_eq!(closed.len(), 1);
    let cdr = &closed[0].cdr;
    assert_eq!(cdr.ans, 1, "{cdr:?}");
    let billed = int(&device["billing_seconds"]) as u64;
    assert!((cdr.talk + cdr.hold).abs_diff(billed) <= 1, "{cdr:?}");
    let longest = frames
        .iter()
        .map(|l| int(&data(l)["duration_seconds"]))
        .max()
        .unwrap();
    assert!((cdr.dur as i64 - longest).abs() <= 1, "{cdr:?}");
}

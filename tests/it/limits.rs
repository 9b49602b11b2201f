//! What one session or one frame can cost: bounded whatever the input.

use std::sync::Arc;

use postcall::replay::Replay;
use postcall::session::{Applied, Assembler, Settings};
use postcall::source::{decode_frame, Frame};
use serde_json::{json, Value};

use crate::support::fixtures_dir;

const ACCOUNT: &str = "fcf7b9a4d79956568efec53468bf28e0";

/// A Blackhole frame for one event of leg `call_id`, all legs sharing one interaction.
fn frame(name: &str, call_id: &str, t_us: i64) -> String {
    let gregorian = t_us / 1_000_000 + 62_167_219_200;
    format!(
        r#"{{"action":"event","subscribed_key":"call.*.*","name":"{name}","data":{{"event_name":"{name}","msg_id":"{t_us}","timestamp":{gregorian},"call_id":"{call_id}","call_direction":"outbound","custom_channel_vars":{{"account_id":"{ACCOUNT}","call_interaction_id":"63882922500-flood","authorizing_type":"device"}}}}}}"#
    )
}

/// 100 000 legs in one interaction: the session holds at most `max_legs_per_session`, every
/// other event is refused and counted, and the CDR says it is truncated. (Without the limit
/// the timeline alone needed legs² memory: 28 GB at 42 000 legs.)
#[test]
fn a_session_of_100_000_legs_stays_within_its_limits() {
    const LEGS: i64 = 100_000;
    let settings = Arc::new(Settings::default());
    let max = settings.max_legs_per_session;
    let mut asm = Assembler::new(settings);
    let start = 1_715_703_300_000_000i64;
    let mut most_legs = 0;
    for k in 0..LEGS {
        let call = format!("flood-{k}");
        // The legs that fit also end, so the session closes normally; the others only start.
        let events = if usize::try_from(k).unwrap() < max {
            2
        } else {
            1
        };
        for (name, t) in [
            ("CHANNEL_CREATE", start + k),
            ("CHANNEL_DESTROY", start + LEGS + k),
        ]
        .into_iter()
        .take(events)
        {
            let line = frame(name, &call, t);
            let Ok(Frame::Event(ev)) = decode_frame(&line) else {
                panic!("frame decodes: {line}");
            };
            let applied = asm.apply(&ev, postcall::clock::WallTime::from_us(t));
            assert!(
                usize::try_from(k).unwrap() < max || matches!(applied, Applied::OverLimit { .. }),
                "leg {k}: {applied:?}"
            );
        }
        most_legs = most_legs.max(asm.open_legs());
    }
    assert_eq!(most_legs, max);
    let stats = asm.stats();
    assert_eq!(stats.refused, LEGS as u64 - max as u64);
    assert_eq!(stats.events, 2 * max as u64);
    let mut cdrs = Vec::new();
    asm.flush(&mut cdrs);
    assert_eq!(cdrs.len(), 1, "one session, not one per refused leg");
    assert_eq!(
        cdrs[0].cdr.tags.get("truncated").map(String::as_str),
        Some("1")
    );
    assert!(!cdrs[0].cdr.tags.contains_key("forced_close"));
}

/// The events of `fixture`, parsed.
fn fixture(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixtures_dir().join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `frame` moved `secs` later (its msg_id, timestamp and channel times).
fn shifted(mut frame: Value, secs: i64) -> Value {
    let data = &mut frame["data"];
    if let Some(m) = data["msg_id"].as_str().and_then(|m| m.parse::<i64>().ok()) {
        data["msg_id"] = json!((m + secs * 1_000_000).to_string());
    }
    if let Some(t) = data["timestamp"].as_i64() {
        data["timestamp"] = json!(t + secs);
    }
    if let Some(t) = data["channel_created_time"].as_i64() {
        data["channel_created_time"] = json!(t + secs * 1_000_000);
    }
    frame
}

fn replay(frames: &[Value]) -> (Vec<Value>, postcall::replay::ReplayStats) {
    let mut r = Replay::new(Arc::new(Settings::default()));
    frames.iter().for_each(|f| r.feed_line(&f.to_string()));
    let (closed, stats) = r.finish();
    let cdrs = closed
        .iter()
        .map(|c| serde_json::to_value(&c.cdr).unwrap())
        .collect();
    (cdrs, stats)
}

/// One frame from a node whose clock is five hours ahead, in the middle of an answered call:
/// the call's CDR is exactly what it is without that frame (before, the frame moved the
/// clock past the 4-hour idle timeout and the call came out `ans 0, forced_close`), and the
/// frame is counted as clamped.
#[test]
fn one_frame_from_a_clock_hours_ahead_does_not_age_calls_in_progress() {
    let call = fixture("pstn_answered.jsonl");
    let (alone, _) = replay(&call);
    let stray = shifted(fixture("internal_call.jsonl").remove(0), 5 * 3600);
    let mut mixed = call.clone();
    mixed.insert(call.len() / 2, stray);
    let (cdrs, stats) = replay(&mixed);
    assert_eq!(stats.clamped, 1);
    let ours: Vec<&Value> = cdrs.iter().filter(|c| c["id"] == alone[0]["id"]).collect();
    assert_eq!(ours, [&alone[0]]);
    assert_eq!(alone[0]["ans"], 1);
}

/// A recording that really moves on (calls hours apart) is not mistaken for a wrong clock:
/// every call keeps its own times.
#[test]
fn calls_hours_apart_in_one_recording_keep_their_times() {
    let first = fixture("pstn_answered.jsonl");
    let later: Vec<Value> = fixture("hold_resume.jsonl")
        .into_iter()
        .map(|f| shifted(f, 9 * 3600))
        .collect();
    let (a, _) = replay(&first);
    let (b, _) = replay(&later);
    let (both, stats) = replay(&[first, later].concat());
    assert_eq!(stats.clamped, 0);
    assert_eq!(both, [a, b].concat());
}

/// A leg keeps one value per application variable and at most `MAX_CAV_KEYS` of them: a PBX
/// that sends new keys on every event cannot grow it without bound; the CDR says `truncated`.
#[test]
fn a_leg_keeps_a_bounded_set_of_application_variables() {
    let mut asm = Assembler::new(Arc::new(Settings::default()));
    let start = 1_715_703_300_000_000i64;
    for n in 0..200i64 {
        let cavs: serde_json::Map<String, Value> = [("same".to_owned(), json!(format!("{n:03}")))]
            .into_iter()
            .chain((0..63).map(|k| (format!("k{n}-{k}"), json!("v"))))
            .collect();
        let mut v: Value =
            serde_json::from_str(&frame("CHANNEL_ANSWER", "tagged", start + n)).unwrap();
        v["data"]["custom_application_vars"] = Value::Object(cavs);
        let text = v.to_string();
        let Ok(Frame::Event(ev)) = decode_frame(&text) else {
            panic!("frame decodes");
        };
        asm.apply(&ev, postcall::clock::WallTime::from_us(start + n));
    }
    let mut cdrs = Vec::new();
    asm.flush(&mut cdrs);
    let tags = &cdrs[0].cdr.tags;
    assert_eq!(tags.get("truncated").map(String::as_str), Some("1"));
    // 64 keys held: "same", with its latest value, and the first event's 63 other keys.
    assert_eq!(tags.get("same").map(String::as_str), Some("199"));
    let app_keys = tags
        .keys()
        .filter(|k| k.starts_with('k') || *k == "same")
        .count();
    assert_eq!(app_keys, postcall::session::leg::MAX_CAV_KEYS);
}

//! Tests of the simulator: frames decode, follow the Kazoo 4.3 field rules, stay in time
//! order, match the committed fixtures, and mixes stay streaming and distinct.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::frames::encode_call_id;
use super::mix::Mix;
use super::*;
use crate::clock::StreamTime;
use crate::source::{decode_frame, EventKind, Frame, GREGORIAN_UNIX_OFFSET_SECS};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.jsonl"))
}

fn all() -> Vec<(&'static str, Vec<SimFrame>)> {
    scenario_names()
        .iter()
        .map(|n| (*n, scenario(n).expect("known scenario")))
        .collect()
}

/// Decodes `f` and checks the envelope and the K43 field rules; returns the event.
fn check_frame(f: &SimFrame) -> crate::source::CallEvent<'_> {
    let Ok(Frame::Event(ev)) = decode_frame(&f.text) else {
        panic!("not an event frame: {}", f.text)
    };
    let v: Value = serde_json::from_str(&f.text).unwrap();
    let d = &v["data"];
    let name = v["name"].as_str().unwrap();
    assert_eq!(ev.kind.name(), name);
    assert_eq!(d["event_name"], name);
    assert_eq!(d["call_id"].as_str(), Some(&*ev.call_id));
    let acct = d["custom_channel_vars"]["account_id"].as_str().unwrap();
    assert_eq!(v["subscribed_key"], "call.*.*");
    assert_eq!(v["subscription_key"], format!("call.{acct}.{name}.*"));
    assert_eq!(
        v["routing_key"],
        format!("call.{acct}.{name}.{}", encode_call_id(&ev.call_id))
    );
    let park = matches!(
        ev.kind,
        EventKind::Parked | EventKind::Retrieved | EventKind::ParkAbandoned
    );
    let msg_id = d["msg_id"].as_str().unwrap();
    if park {
        assert_eq!(d["app_name"], "callflow");
        assert!(d.get("timestamp").is_none() && d.get("call_direction").is_none());
        assert_eq!(msg_id.len(), 32);
        assert!(d["parking_slot"].is_string());
        assert_eq!(ev.time, None);
    } else {
        assert_eq!(d["app_name"], "ecallmgr");
        assert_eq!(d["app_version"], "4.0.0");
        let us: i64 = msg_id.parse().unwrap();
        assert_eq!(ev.time.map(StreamTime::as_us), Some(us));
        assert_eq!(
            d["timestamp"].as_i64(),
            Some(us.div_euclid(1_000_000) + GREGORIAN_UNIX_OFFSET_SECS)
        );
        assert!(f.time_us >= us, "sent before it happened");
        assert!(d["channel_created_time"].as_i64().unwrap() <= us);
        assert_eq!(d["channel_loopback_bowout"], false);
        assert!(d["custom_application_vars"].is_object());
        assert!(d["custom_sip_headers"].is_object());
        let sip = matches!(
            ev.kind,
            EventKind::Create | EventKind::Answer | EventKind::Destroy
        );
        for k in ["request", "to", "to_uri", "from", "from_uri"] {
            assert_eq!(d.get(k).is_some(), sip, "{k} on {name}");
        }
        let destroy = ev.kind == EventKind::Destroy;
        for k in ["duration_seconds", "billing_seconds", "ringing_seconds"] {
            assert_eq!(d.get(k).map(Value::is_i64), destroy.then_some(true), "{k}");
        }
        assert_eq!(d.get("hangup_code").is_some(), destroy);
        let state = d["channel_call_state"].as_str().unwrap();
        let want = match ev.kind {
            EventKind::Create => "DOWN",
            EventKind::Hold => "HELD",
            EventKind::Destroy => "HANGUP",
            _ => "ACTIVE",
        };
        assert_eq!(state, want);
    }
    *ev
}

#[test]
fn every_scenario_frame_decodes_and_follows_field_rules() {
    assert_eq!(scenario_names().len(), 19);
    assert!(scenario("nope").is_none());
    for (name, frames) in all() {
        assert!(!frames.is_empty(), "{name}");
        for f in &frames {
            check_frame(f);
        }
    }
}

#[test]
fn scenarios_are_in_time_order() {
    for (name, frames) in all() {
        assert!(
            frames.windows(2).all(|w| w[0].time_us <= w[1].time_us),
            "{name}: send times go backwards"
        );
        let times: Vec<i64> = frames
            .iter()
            .filter_map(|f| check_frame(f).time.map(StreamTime::as_us))
            .collect();
        let ordered = times.windows(2).all(|w| w[0] < w[1]);
        assert_eq!(ordered, name != "out_of_order_duplicates", "{name}");
    }
}

#[test]
fn carrier_create_is_unrouted_and_b_legs_know_their_a_leg() {
    let frames = scenario("pstn_answered").unwrap();
    let evs: Vec<_> = frames.iter().map(check_frame).collect();
    let a = &evs[0];
    assert_eq!(a.kind, EventKind::Create);
    assert_eq!(a.ccv.interaction_id, None);
    assert_eq!(a.ccv.resource_type, None);
    let v: Value = serde_json::from_str(&frames[0].text).unwrap();
    assert_eq!(
        v["data"]["custom_channel_vars"]
            .as_object()
            .map(|o| o.len()),
        Some(1)
    );
    let answer = evs
        .iter()
        .find(|e| e.call_id == a.call_id && e.kind == EventKind::Answer)
        .unwrap();
    assert_eq!(
        answer.ccv.resource_type.as_deref(),
        Some("offnet-origination")
    );
    assert_eq!(answer.ccv.authorizing_type.as_deref(), Some("resource"));
    let iid = answer.ccv.interaction_id.clone().unwrap();
    assert_eq!(iid.len(), 20);
    let b = evs.iter().find(|e| e.call_id != a.call_id).unwrap();
    assert_eq!(b.kind, EventKind::Create);
    assert_eq!(b.other_leg.as_deref(), Some(&*a.call_id));
    assert_eq!(b.ccv.bridge_id.as_deref(), Some(&*a.call_id));
    assert_eq!(b.ccv.interaction_id.as_deref(), Some(&*iid));
    assert_eq!(b.ccv.authorizing_type.as_deref(), Some("device"));
}

#[test]
fn special_legs_carry_their_markers() {
    // Events borrow from their frames; the frames of this test live until it ends.
    let ev = |name: &str| -> Vec<_> {
        let frames: &'static [SimFrame] = scenario(name).unwrap().leak();
        frames.iter().map(check_frame).collect()
    };
    let fwd = ev("forward_to_mobile");
    assert!(fwd.iter().any(|e| e.loopback && e.loopback_other.is_some()));
    assert!(fwd.iter().any(
        |e| e.ccv.call_forward && e.ccv.resource_type.as_deref() == Some("offnet-termination")
    ));
    let q = ev("acdc_queue");
    let agent = q.iter().find(|e| e.ccv.agent_id.is_some()).unwrap();
    assert_eq!(agent.ccv.member_call_id.as_deref(), Some(&*q[0].call_id));
    assert!(agent
        .call_id
        .contains(agent.ccv.agent_id.as_deref().unwrap()));
    let pickup = ev("call_pickup");
    let a_iid = pickup
        .iter()
        .find(|e| e.call_id == pickup[0].call_id && e.ccv.interaction_id.is_some())
        .and_then(|e| e.ccv.interaction_id.clone());
    assert!(pickup
        .iter()
        .any(|e| e.hangup_cause.as_deref() == Some("PICKED_OFF")));
    assert!(pickup.iter().any(|e| e.call_id != pickup[0].call_id
        && e.direction == Some(crate::source::Direction::Inbound)
        && e.ccv.interaction_id == a_iid));
    let blind = ev("blind_transfer");
    assert!(blind.iter().any(|e| !e.related.is_empty()));
    let att = ev("attended_transfer");
    let iids: HashSet<_> = att
        .iter()
        .filter_map(|e| e.ccv.interaction_id.clone())
        .collect();
    assert_eq!(iids.len(), 2, "consultation call has its own interaction");
    let withheld = ev("withheld_caller_id");
    assert_eq!(withheld[0].caller_number.as_deref(), Some("anonymous"));
    let busy = ev("outbound_busy");
    assert!(busy
        .iter()
        .any(|e| e.hangup_cause.as_deref() == Some("USER_BUSY")));
    let missing = ev("missing_destroy");
    assert_eq!(
        missing
            .iter()
            .filter(|e| e.kind == EventKind::Destroy)
            .count(),
        1
    );
    let ooo = scenario("out_of_order_duplicates").unwrap();
    let texts: HashSet<_> = ooo.iter().map(|f| &f.text).collect();
    assert_eq!(texts.len() + 2, ooo.len(), "two verbatim duplicates");
}

#[test]
fn scenarios_match_committed_fixtures() {
    for (name, frames) in all() {
        let path = fixture_path(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run the regenerate_fixtures test)", path.display())
        });
        assert!(
            committed == to_jsonl(&frames),
            "{name}: generator output differs from {} — if intended, run \
             `cargo test --lib sim -- --ignored regenerate_fixtures`",
            path.display()
        );
    }
}

#[test]
#[ignore = "writes fixtures/*.jsonl"]
fn regenerate_fixtures() {
    for (name, frames) in all() {
        std::fs::write(fixture_path(name), to_jsonl(&frames)).unwrap();
    }
}

#[test]
fn mix_streams_decodable_frames_in_time_order() {
    let spec = MixSpec {
        calls: 2_000,
        seed: 7,
        mean_gap_ms: 300,
        faults: true,
        ..MixSpec::default()
    };
    let mut last = i64::MIN;
    let mut n = 0usize;
    let mut interactions = HashSet::new();
    for f in mix(spec.clone()) {
        assert!(f.time_us >= last, "time went backwards");
        last = f.time_us;
        let ev = check_frame(&f);
        interactions.extend(ev.ccv.interaction_id.map(Cow::into_owned));
        n += 1;
    }
    assert!(n > 2_000 * 5, "{n} frames");
    assert!(
        interactions.len() >= 2_000,
        "{} interactions",
        interactions.len()
    );
    // Same spec, same bytes.
    let a: Vec<_> = mix(spec.clone()).take(500).collect();
    let b: Vec<_> = mix(spec).take(500).collect();
    assert_eq!(a, b);
}

#[test]
fn mix_calls_have_distinct_ids() {
    let spec = MixSpec {
        calls: 2_000,
        seed: 11,
        faults: true,
        ..MixSpec::default()
    };
    let pbx = Pbx::demo(spec.pbx_seed);
    let mut owner: HashMap<String, u64> = HashMap::new();
    let mut kinds = HashSet::new();
    for i in 0..spec.calls {
        let s = Mix::call(&pbx, &spec, i, spec.start_us, false);
        kinds.insert(s.legs.len());
        for id in s
            .legs
            .iter()
            .map(|l| l.call_id.clone())
            .chain(s.interactions.clone())
        {
            if let Some(prev) = owner.insert(id.clone(), i) {
                assert_eq!(prev, i, "{id} reused by calls {prev} and {i}");
            }
        }
    }
    assert_eq!(kinds, HashSet::from([2, 3, 4]), "varied leg counts");
}

#[test]
fn mix_memory_follows_calls_in_flight() {
    let spec = MixSpec {
        calls: 4_000,
        seed: 3,
        mean_gap_ms: 200,
        ..MixSpec::default()
    };
    let mut m = Mix::new(spec);
    let mut peak = 0;
    while m.next().is_some() {
        peak = peak.max(m.in_flight());
    }
    // ~90 s mean call length / 0.2 s spacing ≈ 450 concurrent calls, far below 4 000.
    assert!(peak < 1_500, "peak {peak} calls in flight");
    assert_eq!(m.in_flight(), 0);
}

/// Prints each scenario's event timeline in ms after its start (for checking the docs).
#[test]
#[ignore = "diagnostic output"]
fn print_timelines() {
    for (name, frames) in all() {
        let start = frames
            .iter()
            .map(check_frame)
            .filter_map(|e| e.created_us)
            .min()
            .unwrap();
        println!("== {name}");
        let mut legs: Vec<String> = Vec::new();
        for f in &frames {
            let e = check_frame(f);
            if !legs.iter().any(|l| *l == e.call_id) {
                legs.push(e.call_id.to_string());
            }
            let leg = legs.iter().position(|l| *l == e.call_id).unwrap();
            let t = e.time.map_or(f.time_us, StreamTime::as_us);
            println!(
                "  {:>10.3}  leg{leg} {:<15} created {:>8.3} other {:?} cause {:?}",
                (t - start) as f64 / 1e3,
                e.kind.name(),
                (e.created_us.unwrap_or(0) - start) as f64 / 1e3,
                e.other_leg
                    .as_ref()
                    .and_then(|o| legs.iter().position(|l| l == o)),
                e.hangup_cause
            );
        }
    }
}

/// The full-size mix: 100 000 calls stream through with bounded in-flight state.
#[test]
#[ignore = "slow in debug builds"]
fn mix_100k_calls_streams() {
    let spec = MixSpec {
        calls: 100_000,
        mean_gap_ms: 50,
        faults: true,
        ..MixSpec::default()
    };
    let mut m = Mix::new(spec);
    let (mut frames, mut bytes, mut peak) = (0usize, 0usize, 0usize);
    while let Some(f) = m.next() {
        frames += 1;
        bytes += f.text.len();
        peak = peak.max(m.in_flight());
    }
    println!(
        "{frames} frames, {} MiB, peak {peak} calls in flight",
        bytes >> 20
    );
    assert!(peak < 10_000, "peak {peak}");
}

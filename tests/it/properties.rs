//! Properties of the assembler that must hold for any input.

use postcall::cdr::{CallType, Cdr};
use proptest::prelude::*;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::SplitMix64;

use crate::support::{fixture_files, replay_lines};

/// Cases per property: the default here, or `POSTCALL_FUZZ_CASES` (scripts/fuzz raises it
/// for a long bounded run).
fn cases(default: u32) -> u32 {
    std::env::var("POSTCALL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// PRODUCT.md §3 invariants of one CDR.
pub fn check_invariants(c: &Cdr) -> Result<(), String> {
    let fail = |m: &str| Err(format!("{m}: {}", serde_json::to_string(c).unwrap()));
    if c.ring + c.talk + c.hold + c.park > c.dur {
        return fail("ring + talk + hold + park > dur");
    }
    if c.lost == 1 && c.aban == 1 {
        return fail("lost and aban both set");
    }
    if c.short == 1 && c.ans == 0 {
        return fail("short without ans");
    }
    if (c.ans == 1) != c.answer.is_some() {
        return fail("ans disagrees with answer");
    }
    if (c.lost == 1 || c.aban == 1) && (c.ans == 1 || !c.dir.is_external_incoming()) {
        return fail("lost/aban on an answered or non-incoming call");
    }
    if c.ans == 0 && c.talk + c.hold > 0 {
        return fail("talk or hold without an answer");
    }
    if c.t2t == 1 && c.call_type != CallType::External {
        return fail("t2t on a call without trunks");
    }
    Ok(())
}

fn fixture_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn invariants_hold_for_every_fixture() {
    for f in fixture_files() {
        for c in replay_lines(&fixture_lines(&f)) {
            if let Err(e) = check_invariants(&c.cdr) {
                panic!("{}: {e}", f.display());
            }
        }
    }
}

/// (call id, event name) of a frame, when it is an event.
fn leg_and_event(line: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let d = v.get("data")?;
    Some((
        d.get("call_id")?.as_str()?.to_owned(),
        d.get("event_name")?.as_str()?.to_owned(),
    ))
}

/// Uniform-enough index below `n` for the perturbations (proptest supplies the seed).
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Shuffles each leg's events among the positions that leg's events occupy, and duplicates
/// some frames verbatim, within each stretch between PARK_* frames. Those carry no time of
/// their own (they take the latest time seen, PRODUCT.md §3), so where they arrive relative
/// to the timed frames is part of their meaning and stays fixed.
fn perturb(lines: &[String], seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::seed_from_u64(seed);
    let mut out = Vec::with_capacity(lines.len() + 4);
    let mut block: Vec<String> = Vec::new();
    for l in lines {
        if leg_and_event(l).is_some_and(|(_, ev)| ev.starts_with("PARK_")) {
            out.extend(perturb_block(&block, &mut rng));
            block.clear();
            out.push(l.clone());
        } else {
            block.push(l.clone());
        }
    }
    out.extend(perturb_block(&block, &mut rng));
    out
}

fn perturb_block(lines: &[String], rng: &mut SplitMix64) -> Vec<String> {
    let mut out = lines.to_vec();
    if out.is_empty() {
        return out;
    }
    let mut by_leg: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, l) in lines.iter().enumerate() {
        if let Some((leg, _)) = leg_and_event(l) {
            by_leg.entry(leg).or_default().push(i);
        }
    }
    for slots in by_leg.values() {
        let mut frames: Vec<String> = slots.iter().map(|&i| lines[i].clone()).collect();
        for i in (1..frames.len()).rev() {
            frames.swap(i, below(rng, i + 1));
        }
        for (&slot, frame) in slots.iter().zip(frames) {
            out[slot] = frame;
        }
    }
    for _ in 0..below(rng, 3) {
        let i = below(rng, out.len());
        let at = i + below(rng, out.len() - i + 1);
        let frame = out[i].clone();
        out.insert(at, frame);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn duplicates_and_leg_shuffles_do_not_change_cdrs(pick in 0usize..1000, seed in any::<u64>()) {
        let files = fixture_files();
        let lines = fixture_lines(&files[pick % files.len()]);
        let expected = replay_lines(&lines);
        let got = replay_lines(&perturb(&lines, seed));
        let cdrs = |v: &[postcall::session::ClosedSession]| v.iter().map(|c| c.cdr.clone()).collect::<Vec<_>>();
        prop_assert_eq!(cdrs(&got), cdrs(&expected));
    }

    #[test]
    fn random_call_mixes_give_one_valid_cdr_per_call(seed in any::<u64>(), faults in any::<bool>()) {
        let spec = postcall::sim::MixSpec { calls: 40, seed, mean_gap_ms: 1_500, faults, ..Default::default() };
        let lines: Vec<String> = postcall::sim::mix(spec).map(|f| f.text).collect();
        let closed = replay_lines(&lines);
        prop_assert_eq!(closed.len(), 40);
        for c in &closed {
            if let Err(e) = check_invariants(&c.cdr) {
                return Err(TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(lines in proptest::collection::vec(".{0,200}", 0..20)) {
        for c in replay_lines(&lines) {
            prop_assert!(check_invariants(&c.cdr).is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut r = postcall::replay::Replay::new(Default::default());
        r.feed_reader(&bytes[..]).unwrap();
        r.finish();
    }

    #[test]
    fn structured_garbage_never_panics(frames in proptest::collection::vec(frame_strategy(), 1..30)) {
        for c in replay_lines(&frames) {
            prop_assert!(check_invariants(&c.cdr).is_ok(), "{:?}", check_invariants(&c.cdr));
        }
    }
}

/// Frames with the right shape and keys but random values of random types.
fn frame_strategy() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (1_715_700_000_000_000i64..1_715_700_900_000_000)
            .prop_map(|t| serde_json::Value::from(t.to_string())),
        (63_882_919_000i64..63_882_920_000).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "a",
            "b",
            "c",
            "x@y",
            "device",
            "resource",
            "offnet-termination",
            "inbound",
            "outbound",
            "HELD"
        ])
        .prop_map(serde_json::Value::from),
        Just(serde_json::json!([1, "a", {"id": "r"}])),
        Just(serde_json::json!({"k": "v"})),
    ];
    let keys = prop::sample::subsequence(
        vec![
            "msg_id",
            "timestamp",
            "channel_created_time",
            "call_direction",
            "other_leg_call_id",
            "caller_id_number",
            "callee_id_number",
            "channel_is_loopback",
            "channel_loopback_other_leg_id",
            "hangup_cause",
            "billing_seconds",
            "transfer_history",
            "media_recordings",
            "request",
        ],
        0..10,
    );
    let ccv_keys = prop::sample::subsequence(
        vec![
            "account_id",
            "authorizing_type",
            "resource_type",
            "bridge_id",
            "call_interaction_id",
            "owner_id",
            "username",
        ],
        0..6,
    );
    (
        prop::sample::select(vec![
            "CHANNEL_CREATE",
            "CHANNEL_ANSWER",
            "CHANNEL_BRIDGE",
            "CHANNEL_HOLD",
            "CHANNEL_UNHOLD",
            "CHANNEL_DESTROY",
            "PARK_PARKED",
            "PARK_RETRIEVED",
            "PARK_ABANDONED",
            "DTMF",
        ]),
        prop::sample::select(vec!["a", "b", "c"]),
        keys,
        proptest::collection::vec(value.clone(), 10),
        ccv_keys,
        proptest::collection::vec(value, 6),
    )
        .prop_map(|(name, call, keys, values, ccv_keys, ccv_values)| {
            let mut data = serde_json::Map::new();
            data.insert("event_name".into(), name.into());
            data.insert("call_id".into(), call.into());
            for (k, v) in keys.into_iter().zip(values) {
                data.insert(k.into(), v);
            }
            let ccv: serde_json::Map<String, serde_json::Value> = ccv_keys
                .into_iter()
                .map(str::to_owned)
                .zip(ccv_values)
                .collect();
            data.insert("custom_channel_vars".into(), ccv.into());
            serde_json::json!({"action": "event", "name": name, "data": data}).to_string()
        })
}

/// Replays `lines` through an assembler, snapshotting to JSON and restoring after `cut`
/// lines (as a shutdown and restart would), and returns every CDR.
fn replay_with_restart(lines: &[String], cut: usize) -> Vec<postcall::cdr::Cdr> {
    use postcall::session::{Assembler, Settings, Snapshot};
    use postcall::source::{decode_frame, Frame};
    let settings = std::sync::Arc::new(Settings::default());
    let mut asm = Assembler::new(settings.clone());
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i == cut {
            let json = serde_json::to_string(&asm.snapshot()).unwrap();
            let snap: Snapshot = serde_json::from_str(&json).unwrap();
            asm = Assembler::restore(settings.clone(), snap);
        }
        if let Ok(Frame::Event(ev)) = decode_frame(l) {
            let now = ev.time.or(asm.stream_time()).unwrap_or_default();
            asm.apply(&ev, now.as_processing_time());
            asm.poll(now.as_processing_time(), &mut out);
        }
    }
    asm.flush(&mut out);
    let mut cdrs: Vec<_> = out.into_iter().map(|c| c.cdr).collect();
    cdrs.sort_by(|a, b| a.id.cmp(&b.id));
    cdrs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn a_snapshot_and_restore_anywhere_changes_nothing(pick in 0usize..1000, cut in 0usize..40) {
        let files = fixture_files();
        let lines = fixture_lines(&files[pick % files.len()]);
        let cut = cut % (lines.len() + 1);
        prop_assert_eq!(replay_with_restart(&lines, cut), replay_with_restart(&lines, usize::MAX));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(16), ..ProptestConfig::default() })]

    #[test]
    fn a_restart_in_a_busy_stream_changes_nothing(seed in any::<u64>(), cut in 0usize..400) {
        let spec = postcall::sim::MixSpec { calls: 30, seed, mean_gap_ms: 500, faults: true, ..Default::default() };
        let lines: Vec<String> = postcall::sim::mix(spec).map(|f| f.text).collect();
        let cut = cut % lines.len();
        prop_assert_eq!(replay_with_restart(&lines, cut), replay_with_restart(&lines, usize::MAX));
    }
}

/// Arbitrary JSON: strings with any characters (brackets, `&`, `=`, `%`, unicode), nesting.
fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// The form and query encoders never panic, lose no leaf, and never touch the URL's own
    /// query string (Logic Apps signatures).
    #[test]
    fn form_and_query_encoding_keep_every_leaf(cdr in json_strategy(), custom in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4)) {
        use postcall::delivery::payload::{encode, flatten, payload};
        use postcall::delivery::{Format, Method};
        let p = payload("t", "i", "a", &cdr, &custom);
        let tree: serde_json::Value = serde_json::from_str(p.get()).unwrap();
        let leaves = flatten(&tree);
        let form = encode("https://x.test/h", Method::Post, Format::Form, &p).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&form.body).into_owned().collect();
        prop_assert_eq!(&pairs, &leaves);
        let base = "https://x.test/h?sp=%2Ftriggers&sig=a%2Bb%3D";
        let get = encode(base, Method::Get, Format::Json, &p).unwrap();
        prop_assert!(get.url.starts_with(base));
        let query = get.url.split_once('?').unwrap().1;
        let q: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        prop_assert_eq!(&q[2..], &leaves[..]);
        let json = encode("https://x.test/h", Method::Put, Format::Json, &p).unwrap();
        prop_assert_eq!(json.body, p.get().as_bytes().to_vec());
    }
}

/// What Kazoo said about one leg of a simulated call, read from its frames.
#[derive(Default)]
struct KazooLeg {
    loopback: bool,
    answer_us: Option<i64>,
    first_bridge_us: Option<i64>,
    billing: Option<u64>,
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn kazoo_legs(lines: &[String]) -> std::collections::BTreeMap<String, KazooLeg> {
    let mut legs: std::collections::BTreeMap<String, KazooLeg> = Default::default();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let d = &v["data"];
        let (Some(id), Some(ev)) = (d["call_id"].as_str(), d["event_name"].as_str()) else {
            continue;
        };
        let t = d["msg_id"].as_str().and_then(|m| m.parse::<i64>().ok());
        let leg = legs.entry(id.to_owned()).or_default();
        leg.loopback |= d["channel_is_loopback"] == true;
        match ev {
            "CHANNEL_ANSWER" => leg.answer_us = earliest(leg.answer_us, t),
            "CHANNEL_DESTROY" => leg.billing = d["billing_seconds"].as_u64(),
            "CHANNEL_BRIDGE" => {
                let peer = d["other_leg_call_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                for who in [id.to_owned(), peer] {
                    let b = &mut legs.entry(who).or_default().first_bridge_us;
                    *b = earliest(*b, t);
                }
            }
            _ => {}
        }
    }
    legs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// Kazoo bills a leg from its answer to its hang-up (`billing_seconds`, rounded up). For a
    /// person's leg that was answered to be bridged (its ANSWER within 1 s of its first
    /// CHANNEL_BRIDGE, so not a PBX answer for a prompt or a queue), the session's talk + hold
    /// is that time, within a second, unless a transfer, a park or a party the stream never
    /// showed intervenes. One simulated call of a random kind per case.
    #[test]
    fn talk_and_hold_agree_with_kazoo_billing_seconds(seed in any::<u64>()) {
        let spec = postcall::sim::MixSpec { calls: 1, seed, ..Default::default() };
        let lines: Vec<String> = postcall::sim::mix(spec).map(|f| f.text).collect();
        let closed = replay_lines(&lines);
        prop_assert_eq!(closed.len(), 1);
        let cdr = &closed[0].cdr;
        let intervened = ["transferred", "parked", "unseen_peer"].iter().any(|t| cdr.tags.contains_key(*t));
        prop_assume!(!intervened);
        let mut checked = 0;
        for (id, leg) in kazoo_legs(&lines) {
            let (Some(billing), Some(answer), Some(bridge)) = (leg.billing, leg.answer_us, leg.first_bridge_us) else {
                continue;
            };
            if leg.loopback || billing == 0 || (bridge - answer).abs() > 1_000_000 {
                continue;
            }
            checked += 1;
            prop_assert!(
                (cdr.talk + cdr.hold).abs_diff(billing) <= 1,
                "leg {} billed {} s, session talk {} + hold {}: {}",
                id, billing, cdr.talk, cdr.hold, serde_json::to_string(cdr).unwrap()
            );
        }
        // An answered session without intervention has at least one such leg.
        prop_assert!(cdr.ans == 0 || checked > 0, "answered, but no leg billed from its bridge: {}", serde_json::to_string(cdr).unwrap());
    }
}

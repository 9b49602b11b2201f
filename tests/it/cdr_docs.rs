//! Kazoo's stored leg CDRs: documents from Kazoo's source read as DESTROY events,
//! and sessions built from a stream against those built from its calls' CDR documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use postcall::replay::{replay_cdr_docs, replay_str};
use postcall::session::{ClosedSession, Settings};
use postcall::sim;
use serde_json::Value;

fn flat(c: &ClosedSession) -> BTreeMap<String, Value> {
    let v = serde_json::to_value(&c.cdr).unwrap();
    let mut out = BTreeMap::new();
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| walk(&format!("{prefix}{k}."), v, out)),
            _ => {
                out.insert(prefix.trim_end_matches('.').to_owned(), v.clone());
            }
        }
    }
    walk("", &v, &mut out);
    out
}

/// Fields a session built from leg CDRs cannot know, and why:
/// - `hold`, `park`: no hold or park event is in a leg CDR: both are 0; held time counts as
///   talk, parked time as talk while a bridged party stayed on the line, `lostinPark` is 0
///   and tag `parked` is absent.
/// - `answer`, `ring`, `talk`: without a CHANNEL_ANSWER the answer is DESTROY − Kazoo's
///   `billing_seconds`, which Kazoo rounds up: at most 1 s early.
/// - tag `backfilled`: on every session built from CDRs, never on a live one.
/// - the last answering party (`lAns*`) of a transferred call: without CHANNEL_BRIDGE events,
///   which leg the caller was bridged to last is read from `other_leg_call_id`; when the
///   transfer target's leg was originated by the transferring agent's consult leg, the caller
///   is not seen joining it, and the agent stays the last answering party (2 of 300 mixed
///   calls).
const MAY_DIFFER: &[&str] = &[
    "answer",
    "ring",
    "talk",
    "hold",
    "park",
    "lostinPark",
    "tags.parked",
    "tags.backfilled",
];

fn secs(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .timestamp()
}

/// Live and CDR-built sessions of the same calls agree on everything but [`MAY_DIFFER`], and
/// on those within the stated bounds. Returns the differing fields seen.
fn assert_agree(what: &str, live: &ClosedSession, built: &ClosedSession) -> Vec<String> {
    assert_eq!(live.cdr.id, built.cdr.id, "{what}: id");
    assert_eq!(live.tenant_id, built.tenant_id, "{what}: tenant");
    assert_eq!(
        live.start_us.div_euclid(1_000_000),
        built.start_us.div_euclid(1_000_000),
        "{what}: start"
    );
    assert_eq!(live.end_us, built.end_us, "{what}: end");
    assert_eq!(live.user_ids, built.user_ids, "{what}: users");
    let (fl, fb) = (flat(live), flat(built));
    let mut differ = Vec::new();
    for k in fl
        .keys()
        .chain(fb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if fl.get(k) != fb.get(k) {
            let after_transfer = k.starts_with("lAns") && live.cdr.tags.contains_key("transferred");
            assert!(
                MAY_DIFFER.contains(&k.as_str()) || after_transfer,
                "{what}: {k}: live {:?}, from CDRs {:?}",
                fl.get(k),
                fb.get(k)
            );
            differ.push(k.clone());
        }
    }
    assert_eq!(fb.get("tags.backfilled"), Some(&Value::from("1")), "{what}");
    assert_eq!(fb["hold"], 0, "{what}");
    assert_eq!(fb["park"], 0, "{what}");
    match (fl.get("answer"), fb.get("answer")) {
        (None, None) => {}
        (Some(l), Some(b)) => {
            let early = secs(l) - secs(b);
            assert!((0..=1).contains(&early), "{what}: answer {l} vs {b}");
        }
        other => panic!("{what}: answer {other:?}"),
    }
    let n = |m: &BTreeMap<String, Value>, k: &str| m[k].as_i64().unwrap();
    // Held time is talk without the hold events; parked time is talk only where a bridged
    // party stayed on the line (a parked caller whose agent hung up is between legs).
    let (talk, hold, park) = (n(&fl, "talk"), n(&fl, "hold"), n(&fl, "park"));
    assert!(
        (talk - 1..=talk + hold + park + 1).contains(&n(&fb, "talk")),
        "{what}: talk {} vs live talk {talk} hold {hold} park {park}",
        n(&fb, "talk")
    );
    assert!((n(&fl, "ring") - n(&fb, "ring")).abs() <= 1, "{what}: ring");
    differ
}

/// Every scenario but `missing_destroy` (its stream lost a DESTROY, so the stream alone
/// does not show the CDR Kazoo stored for that leg): the session built from the calls' leg
/// CDR documents is the live session, up to [`MAY_DIFFER`].
#[test]
fn scenarios_build_the_same_session_from_stream_and_from_leg_cdrs() {
    let settings = Arc::new(Settings::default());
    let mut seen_differ = std::collections::BTreeSet::new();
    for name in sim::scenario_names()
        .iter()
        .filter(|n| **n != "missing_destroy")
    {
        let frames = sim::scenario(name).unwrap();
        let live = replay_str(&sim::to_jsonl(&frames), settings.clone());
        let docs = sim::cdrs::documents(&frames);
        let (built, errors) = replay_cdr_docs(&docs, settings.clone());
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(live.len(), 1, "{name}");
        assert_eq!(built.len(), 1, "{name}");
        assert!(!live[0].cdr.tags.contains_key("backfilled"), "{name}");
        seen_differ.extend(assert_agree(name, &live[0], &built[0]));
    }
    // The hold and park scenarios show the documented losses.
    for k in [
        "hold",
        "park",
        "lostinPark",
        "tags.parked",
        "tags.backfilled",
    ] {
        assert!(
            seen_differ.contains(k),
            "{k} never differed: {seen_differ:?}"
        );
    }
}

/// The same over a random mix of 300 calls (without damaged streams), matched by session id.
#[test]
fn mixed_calls_build_the_same_sessions_from_stream_and_from_leg_cdrs() {
    let settings = Arc::new(Settings::default());
    let frames: Vec<sim::SimFrame> = sim::mix(sim::MixSpec {
        calls: 300,
        seed: 15,
        ..sim::MixSpec::default()
    })
    .collect();
    let live = replay_str(&sim::to_jsonl(&frames), settings.clone());
    let docs = sim::cdrs::documents(&frames);
    let (built, errors) = replay_cdr_docs(&docs, settings);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(live.len(), 300);
    let by_id: BTreeMap<&str, &ClosedSession> =
        built.iter().map(|c| (c.cdr.id.as_str(), c)).collect();
    assert_eq!(by_id.len(), live.len());
    for l in &live {
        let b = by_id
            .get(l.cdr.id.as_str())
            .unwrap_or_else(|| panic!("{} not built from CDRs", l.cdr.id));
        assert_agree(&l.cdr.id, l, b);
    }
}

// === the Crossbar client against the test Crossbar ===

mod crossbar {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use postcall::net::{HttpClient, HttpError, Secret};
    use postcall::replay::replay_cdr_docs;
    use postcall::session::Settings;
    use postcall::sim::{self, Pbx, DEMO_SEED};
    use postcall::source::crossbar::{Crossbar as Client, CrossbarError, MAX_CDR_RANGE_SECS};
    use postcall::source::GREGORIAN_UNIX_OFFSET_SECS;
    use serde_json::Value;

    use crate::servers::cdr_store::CdrFault;
    use crate::servers::crossbar::Crossbar;

    const TOKEN: &str = "cdr-test-token";

    /// A fake Crossbar holding the leg CDRs of `calls` mixed calls, and a client for it.
    async fn setup(calls: u64, timeout: Duration) -> (Crossbar, Client, Vec<Value>) {
        let frames: Vec<sim::SimFrame> = sim::mix(sim::MixSpec {
            calls,
            seed: 7,
            ..sim::MixSpec::default()
        })
        .collect();
        let docs = sim::cdrs::documents(&frames);
        let cb = Crossbar::start(Pbx::demo(DEMO_SEED), "unused-key", 3600).await;
        {
            let mut st = cb.state.lock().unwrap();
            st.valid.insert(TOKEN.into());
            st.cdrs.add(docs.clone());
        }
        let http = HttpClient::new(
            postcall::net::tls::client_config(None).unwrap(),
            &Default::default(),
        );
        let client = Client::new(&cb.url(), http, timeout);
        (cb, client, docs)
    }

    fn account(docs: &[Value]) -> String {
        docs[0]["pvt_account_id"].as_str().unwrap().to_owned()
    }

    fn created_unix(d: &Value) -> i64 {
        d["pvt_created"].as_i64().unwrap() - GREGORIAN_UNIX_OFFSET_SECS
    }

    /// Every page of a window, following `next_start_key`.
    async fn all_pages(
        client: &Client,
        acct: &str,
        from: i64,
        to: i64,
        size: u32,
    ) -> (Vec<postcall::source::crossbar::CdrSummary>, usize) {
        let token = Secret::new(TOKEN);
        let (mut rows, mut pages, mut key) = (Vec::new(), 0, None::<String>);
        loop {
            let page = client
                .cdr_page(&token, acct, from, to, key.as_deref(), size)
                .await
                .unwrap();
            assert_eq!(page.skipped, 0);
            pages += 1;
            rows.extend(page.rows);
            match page.next_start_key {
                Some(k) => key = Some(k),
                None => return (rows, pages),
            }
        }
    }

    async fn pages_cover_the_window(plain: bool) {
        let (cb, client, docs) = setup(120, Duration::from_secs(5)).await;
        cb.state.lock().unwrap().cdrs.plain = plain;
        let acct = account(&docs);
        let mine: Vec<&Value> = docs
            .iter()
            .filter(|d| d["pvt_account_id"] == acct.as_str())
            .collect();
        // A window cutting the stream in the middle, bounds inclusive.
        let mut created: Vec<i64> = mine.iter().map(|d| created_unix(d)).collect();
        created.sort_unstable();
        let (from, to) = (created[created.len() / 4], created[3 * created.len() / 4]);
        let want: BTreeSet<String> = mine
            .iter()
            .filter(|d| (from..=to).contains(&created_unix(d)))
            .map(|d| d["_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(want.len() > 40, "{}", want.len());
        let (rows, pages) = all_pages(&client, &acct, from, to, 7).await;
        assert_eq!(pages, want.len().div_ceil(7), "pages");
        let got: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        assert_eq!(got.len(), want.len(), "no row twice");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
        // Newest first, and each summary agrees with its document.
        let by_id = |id: &str| *mine.iter().find(|d| d["_id"] == id).unwrap();
        let order: Vec<i64> = rows.iter().map(|r| created_unix(by_id(&r.id))).collect();
        assert!(order.windows(2).all(|w| w[0] >= w[1]), "descending");
        for r in &rows {
            let d = by_id(&r.id);
            assert_eq!(r.call_id, d["call_id"].as_str().unwrap());
            assert_eq!(r.interaction_id.as_deref(), d["interaction_id"].as_str());
            assert_eq!(r.duration_seconds, d["duration_seconds"].as_i64());
            assert_eq!(r.billing_seconds, d["billing_seconds"].as_i64());
            assert_eq!(
                r.end_unix_s,
                Some(d["timestamp"].as_i64().unwrap() - GREGORIAN_UNIX_OFFSET_SECS)
            );
        }
        let st = cb.state.lock().unwrap();
        let first = &st.paths[0];
        assert!(
            first.contains(&format!(
                "created_from={}",
                from + GREGORIAN_UNIX_OFFSET_SECS
            )),
            "{first}"
        );
        assert!(
            first.contains(&format!("created_to={}", to + GREGORIAN_UNIX_OFFSET_SECS)),
            "{first}"
        );
        assert!(
            first.contains("page_size=7") && !first.contains("start_key"),
            "{first}"
        );
        assert!(st.paths[1].contains("start_key="), "{}", st.paths[1]);
    }

    #[tokio::test]
    async fn cdr_pages_cover_a_window_once_in_the_chunked_envelope() {
        pages_cover_the_window(false).await;
    }

    #[tokio::test]
    async fn cdr_pages_cover_a_window_once_in_the_plain_envelope() {
        pages_cover_the_window(true).await;
    }

    /// The chunked body really arrives in HTTP chunks with string trailer values.
    #[tokio::test]
    async fn the_default_listing_is_chunked_with_string_trailers() {
        let (cb, _, docs) = setup(10, Duration::from_secs(5)).await;
        let acct = account(&docs);
        let to = docs.iter().map(created_unix).max().unwrap() + GREGORIAN_UNIX_OFFSET_SECS;
        let http = HttpClient::new(
            postcall::net::tls::client_config(None).unwrap(),
            &Default::default(),
        );
        let req = hyper::Request::get(format!(
            "{}/v2/accounts/{acct}/cdrs?created_to={to}&page_size=2",
            cb.url()
        ))
        .header("x-auth-token", TOKEN)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
        let r = http.send(req, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            r.headers
                .get("transfer-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("chunked")
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["page_size"], "2");
        assert!(v["next_start_key"].is_string());
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert!(v["data"][0]["timestamp"].is_string());
    }

    #[tokio::test]
    async fn legs_of_an_interaction_over_several_pages_build_its_session() {
        let (cb, client, docs) = setup(40, Duration::from_secs(5)).await;
        cb.state.lock().unwrap().cdrs.default_page_size = Some(1);
        let token = Secret::new(TOKEN);
        let acct = account(&docs);
        // The interaction with the most legs in this account.
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for d in docs.iter().filter(|d| d["pvt_account_id"] == acct.as_str()) {
            *counts
                .entry(d["interaction_id"].as_str().unwrap())
                .or_default() += 1;
        }
        let (interaction, n) = counts.iter().max_by_key(|(_, n)| **n).unwrap();
        assert!(*n >= 2);
        let legs = client.cdr_legs(&token, &acct, interaction).await.unwrap();
        assert_eq!(legs.len(), *n);
        let want: Vec<Value> = docs
            .iter()
            .filter(|d| d["interaction_id"] == *interaction)
            .cloned()
            .collect();
        for d in &want {
            assert!(legs.contains(d), "{} missing", d["_id"]);
        }
        // A CDR id names its interaction too.
        let by_cdr = client
            .cdr_legs(&token, &acct, want[0]["_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(by_cdr.len(), *n);
        let (from_http, errors) = replay_cdr_docs(&legs, Arc::new(Settings::default()));
        let (from_docs, _) = replay_cdr_docs(&want, Arc::new(Settings::default()));
        assert!(errors.is_empty());
        assert_eq!(from_http.len(), 1);
        assert_eq!(from_http[0].cdr, from_docs[0].cdr);
        // One document by id: the public fields.
        let one = client
            .get(
                &token,
                &format!(
                    "/v2/accounts/{acct}/cdrs/{}",
                    want[0]["_id"].as_str().unwrap()
                ),
            )
            .await
            .unwrap();
        assert_eq!(one["id"], want[0]["_id"]);
        assert!(one.get("pvt_created").is_none() && one.get("_id").is_none());
        let ev = postcall::source::leg_event(&one).unwrap();
        assert_eq!(ev.call_id, want[0]["call_id"].as_str().unwrap());
    }

    #[tokio::test]
    async fn windows_kazoo_refuses_are_refused_before_any_request() {
        let (cb, client, docs) = setup(3, Duration::from_secs(5)).await;
        let token = Secret::new(TOKEN);
        let acct = account(&docs);
        for (from, to) in [(100, 99), (0, MAX_CDR_RANGE_SECS + 1)] {
            let e = client
                .cdr_page(&token, &acct, from, to, None, 10)
                .await
                .unwrap_err();
            assert!(matches!(e, CrossbarError::Range { .. }), "{e}");
            assert!(!e.is_retryable());
        }
        assert!(client
            .cdr_page(&token, &acct, 0, MAX_CDR_RANGE_SECS, None, 10)
            .await
            .is_ok());
        assert_eq!(cb.state.lock().unwrap().cdrs.requests, 1);
        // The server refuses them too (Kazoo's 400), permanently.
        for q in [
            "created_from=200&created_to=100",
            "created_from=0&created_to=2682001",
        ] {
            let e = client
                .get(&token, &format!("/v2/accounts/{acct}/cdrs?{q}"))
                .await
                .unwrap_err();
            assert_eq!(e.status(), Some(400), "{e}");
            assert!(!e.is_retryable());
        }
    }

    #[tokio::test]
    async fn failures_are_typed_retryable_or_permanent() {
        let (cb, client, docs) = setup(3, Duration::from_millis(300)).await;
        let token = Secret::new(TOKEN);
        let acct = account(&docs);
        let to = docs.iter().map(created_unix).max().unwrap();
        cb.state.lock().unwrap().cdrs.faults.extend([
            CdrFault::Status(503),
            CdrFault::Status(429),
            CdrFault::Drop,
            CdrFault::DropMidBody,
            CdrFault::Slow(Duration::from_secs(2)),
        ]);
        let mut errors = Vec::new();
        for _ in 0..5 {
            errors.push(
                client
                    .cdr_page(&token, &acct, to - 3600, to, None, 10)
                    .await
                    .unwrap_err(),
            );
        }
        assert_eq!(errors[0].status(), Some(503));
        assert_eq!(errors[1].status(), Some(429));
        assert!(
            matches!(errors[2], CrossbarError::Http { .. }),
            "{}",
            errors[2]
        );
        assert!(
            matches!(errors[3], CrossbarError::Http { .. }),
            "{}",
            errors[3]
        );
        assert!(
            matches!(
                errors[4],
                CrossbarError::Http {
                    error: HttpError::Timeout(_),
                    ..
                }
            ),
            "{}",
            errors[4]
        );
        for e in &errors {
            assert!(e.is_retryable(), "{e}");
        }
        // Faults used up: the same request succeeds.
        let page = client
            .cdr_page(&token, &acct, to - 3600, to, None, 10)
            .await
            .unwrap();
        assert!(!page.rows.is_empty());
        // Permanent: a refused token, an unknown CDR id, an id of neither shape.
        let e = client
            .cdr_page(&Secret::new("wrong"), &acct, to - 3600, to, None, 10)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CrossbarError::Unauthorized { .. }) && !e.is_retryable(),
            "{e}"
        );
        for id in ["202405-no-such-call", "nonsense"] {
            let e = client.cdr_legs(&token, &acct, id).await.unwrap_err();
            assert_eq!(e.status(), Some(404), "{e}");
            assert!(!e.is_retryable());
        }
    }
}

// === fixtures/backfill: a recorded stream and the leg CDRs Kazoo stored for it ===

const BACKFILL_FIXTURE: &str = "mix25";

fn backfill_fixture_spec() -> sim::MixSpec {
    sim::MixSpec {
        calls: 25,
        seed: 2015,
        ..sim::MixSpec::default()
    }
}

fn backfill_paths() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/backfill");
    (
        dir.join(format!("{BACKFILL_FIXTURE}.jsonl")),
        dir.join(format!("{BACKFILL_FIXTURE}.cdrs.json")),
    )
}

/// The fixture as the generator makes it: the stream of a 25-call mix, and the documents
/// `sim::cdrs::documents` derives from its CHANNEL_DESTROY frames following Kazoo's source.
fn backfill_fixture_generated() -> (String, String) {
    let frames: Vec<sim::SimFrame> = sim::mix(backfill_fixture_spec()).collect();
    let docs = sim::cdrs::documents(&frames);
    let mut cdrs = serde_json::to_string_pretty(&docs).unwrap();
    cdrs.push('\n');
    (sim::to_jsonl(&frames), cdrs)
}

#[test]
#[ignore = "writes fixtures/backfill/mix25.*"]
fn regenerate_backfill_fixture() {
    let (stream, cdrs) = backfill_fixture_generated();
    let (s, c) = backfill_paths();
    std::fs::write(s, stream).unwrap();
    std::fs::write(c, cdrs).unwrap();
}

#[test]
fn backfill_fixture_matches_its_generator() {
    let (stream, cdrs) = backfill_fixture_generated();
    let (s, c) = backfill_paths();
    assert!(
        std::fs::read_to_string(&s).unwrap() == stream
            && std::fs::read_to_string(&c).unwrap() == cdrs,
        "fixtures/backfill differs from its generator; if intended: \
         cargo test --test it -- --ignored regenerate_backfill_fixture"
    );
}

/// Replaying the recorded stream and building from its CDR documents agree (as above).
#[test]
fn backfill_fixture_stream_and_cdrs_agree() {
    let (s, c) = backfill_paths();
    let settings = Arc::new(Settings::default());
    let live = replay_str(&std::fs::read_to_string(s).unwrap(), settings.clone());
    let docs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(c).unwrap()).unwrap();
    let (built, errors) = replay_cdr_docs(&docs, settings);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(live.len(), 25);
    assert_eq!(built.len(), live.len());
    for (l, b) in live.iter().zip(&built) {
        assert_agree(&l.cdr.id, l, b);
    }
}

// === leg CDRs meeting what the stream delivered ===

fn live_events(frames: &[sim::SimFrame]) -> Vec<postcall::source::CallEvent<'_>> {
    frames
        .iter()
        .filter_map(|f| match postcall::source::decode_frame(&f.text).unwrap() {
            postcall::source::Frame::Event(e) => Some(*e),
            postcall::source::Frame::Reply(_) => None,
        })
        .collect()
}

/// A call that ended while the stream was down (its last frames, the DESTROYs after the last
/// other event, lost) is completed by the leg CDRs into exactly the live session (hold and
/// park included: they came live), tagged `backfilled`.
#[test]
fn leg_cdrs_complete_a_session_whose_last_destroys_were_lost() {
    let settings = Arc::new(Settings::default());
    let mut completed = 0;
    for name in sim::scenario_names()
        .iter()
        .filter(|n| **n != "missing_destroy")
    {
        let frames = sim::scenario(name).unwrap();
        let live = replay_str(&sim::to_jsonl(&frames), settings.clone());
        let docs = sim::cdrs::documents(&frames);
        let mut asm = postcall::session::Assembler::new(settings.clone());
        let events = live_events(&frames);
        let now = frames.last().unwrap().time_us;
        let last_other = events
            .iter()
            .rposition(|e| e.kind != postcall::source::EventKind::Destroy)
            .unwrap();
        if last_other + 1 == events.len() {
            continue; // ends with a PARK_* event: no DESTROY to lose at the end
        }
        completed += 1;
        for (e, f) in events[..=last_other].iter().zip(&frames) {
            asm.apply(e, postcall::clock::WallTime::from_us(f.time_us));
        }
        let seen: std::collections::BTreeSet<&str> = events[..=last_other]
            .iter()
            .filter(|e| e.kind == postcall::source::EventKind::Destroy)
            .map(|e| &*e.call_id)
            .collect();
        let lost = events[last_other + 1..]
            .iter()
            .map(|e| &*e.call_id)
            .filter(|c| !seen.contains(c))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let mut accepted = 0;
        for d in &docs {
            match asm.apply(
                &postcall::source::leg_event(d).unwrap(),
                postcall::clock::WallTime::from_us(now),
            ) {
                postcall::session::Applied::Accepted => accepted += 1,
                postcall::session::Applied::Duplicate => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            accepted, lost,
            "{name}: the lost DESTROYs, and only those, come from CDRs"
        );
        let mut out = Vec::new();
        asm.flush(&mut out);
        assert_eq!(out.len(), 1, "{name}");
        let mut cdr = out[0].cdr.clone();
        assert_eq!(
            cdr.tags.remove("backfilled").as_deref(),
            Some("1"),
            "{name}"
        );
        assert_eq!(cdr, live[0].cdr, "{name}");
    }
    assert!(completed >= 15, "{completed}");
}

/// Leg CDRs of legs the stream delivered whole are duplicates: nothing changes, no tag.
#[test]
fn leg_cdrs_of_legs_seen_live_are_duplicates() {
    let settings = Arc::new(Settings::default());
    for name in sim::scenario_names() {
        let frames = sim::scenario(name).unwrap();
        let live = replay_str(&sim::to_jsonl(&frames), settings.clone());
        let mut asm = postcall::session::Assembler::new(settings.clone());
        let now = frames.last().unwrap().time_us;
        for e in &live_events(&frames) {
            let t = e.time.map_or(now, postcall::clock::StreamTime::as_us);
            asm.apply(e, postcall::clock::WallTime::from_us(t));
        }
        for d in &sim::cdrs::documents(&frames) {
            let applied = asm.apply(
                &postcall::source::leg_event(d).unwrap(),
                postcall::clock::WallTime::from_us(now),
            );
            assert_eq!(applied, postcall::session::Applied::Duplicate, "{name}");
        }
        let mut out = Vec::new();
        asm.flush(&mut out);
        assert_eq!(out.len(), live.len(), "{name}");
        assert!(!out[0].cdr.tags.contains_key("backfilled"), "{name}");
        assert_eq!(out[0].cdr.id, live[0].cdr.id, "{name}");
    }
}

/// `missing_destroy`: the stream never delivers B's DESTROY, so replay keeps the session open
/// until the idle timeout and force-closes it. Kazoo stored B's CDR all the same; applied to
/// the open session, it closes the session normally, as the call really ended.
#[test]
fn a_lost_destroy_is_closed_from_its_leg_cdr() {
    let settings = Arc::new(Settings::default());
    let frames = sim::scenario("missing_destroy").unwrap();
    let live = replay_str(&sim::to_jsonl(&frames), settings.clone());
    assert!(live[0].cdr.tags.contains_key("forced_close"));
    let docs = sim::scenario_cdrs("missing_destroy").unwrap();
    assert_eq!(docs.len(), 2, "both legs have a CDR");
    assert_eq!(
        sim::cdrs::documents(&frames).len(),
        1,
        "the stream shows one DESTROY"
    );

    let mut asm = postcall::session::Assembler::new(settings.clone());
    for (e, f) in live_events(&frames).iter().zip(&frames) {
        asm.apply(e, postcall::clock::WallTime::from_us(f.time_us));
    }
    let now = frames.last().unwrap().time_us;
    let applied: Vec<_> = docs
        .iter()
        .map(|d| {
            asm.apply(
                &postcall::source::leg_event(d).unwrap(),
                postcall::clock::WallTime::from_us(now),
            )
        })
        .collect();
    // Written in end order: B's (lost from the stream) first, then A's (seen live).
    assert_eq!(
        applied,
        [
            postcall::session::Applied::Accepted,
            postcall::session::Applied::Duplicate
        ],
        "B's DESTROY from its CDR; A's was seen live"
    );
    let mut out = Vec::new();
    // The session closes after the grace period, not the 4-hour idle timeout.
    asm.poll(
        postcall::clock::WallTime::from_us(now + settings.grace_us + 1),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let cdr = &out[0].cdr;
    for tag in ["forced_close", "partial", "unseen_peer"] {
        assert!(!cdr.tags.contains_key(tag), "{tag}: {:?}", cdr.tags);
    }
    assert_eq!(cdr.tags.get("backfilled").map(String::as_str), Some("1"));
    assert_eq!(
        (cdr.id.as_str(), cdr.end.as_str(), cdr.dur),
        (
            live[0].cdr.id.as_str(),
            live[0].cdr.end.as_str(),
            live[0].cdr.dur
        )
    );
    assert_eq!(cdr.answering, live[0].cdr.answering);
    // The answering leg's talk, as Kazoo billed it (B answered first, so the caller talked
    // for as long as B was billed).
    assert_eq!(Some(cdr.talk as i64), docs[0]["billing_seconds"].as_i64());
}

/// A mix with damaged streams: the documents of the calls as they happened include the CDR
/// of every DESTROY the stream lost, and apart from those they are the stream's.
#[test]
fn mix_documents_include_the_destroys_a_damaged_stream_lost() {
    let spec = sim::MixSpec {
        calls: 400,
        seed: 3,
        faults: true,
        ..sim::MixSpec::default()
    };
    let frames: Vec<sim::SimFrame> = sim::mix(spec.clone()).collect();
    let from_stream = sim::cdrs::documents(&frames);
    let all = sim::cdrs::mix_documents(spec);
    let ids = |docs: &[Value]| -> std::collections::BTreeSet<String> {
        docs.iter()
            .map(|d| d["_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (stream_ids, all_ids) = (ids(&from_stream), ids(&all));
    assert!(stream_ids.is_subset(&all_ids));
    let lost = all_ids.len() - stream_ids.len();
    assert!(lost >= 1, "no DESTROY lost in 400 damaged calls");
    for d in &from_stream {
        assert!(all.contains(d), "{} differs", d["_id"]);
    }
}

//! Backfill through the whole sidecar, on real sockets: a fake Blackhole, a fake Crossbar
//! holding the leg CDRs Kazoo's `cdr` app stores for the simulated calls
//! (`sim::cdrs::mix_documents`, written from Kazoo's source), and a receiver counting every
//! webhook per session id. The expected sessions are those live assembly gives for the whole
//! stream (`replay`), so "every call exactly once" means: every id, each delivered once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postcall::config::PluginConfig;
use postcall::sim::{self, MixSpec, Pbx, SimFrame, DEMO_SEED};

use crate::run::{accounts, demo_blackhole, free_port, get, spawn_binary, start, Running, TOKEN};
use crate::servers::blackhole::Blackhole;
use crate::servers::crossbar::Crossbar;
use crate::servers::http::{HttpServer, Reply};

/// Session id → webhooks received, and the last CDR of each.
#[derive(Clone, Default)]
pub(crate) struct Counts(
    Arc<Mutex<BTreeMap<String, usize>>>,
    Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
);

impl Counts {
    async fn start(&self) -> HttpServer {
        let me = self.clone();
        HttpServer::start(None, move |r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = v["cdr"]["id"].as_str().unwrap_or("").to_owned();
            *me.0.lock().unwrap().entry(id.clone()).or_default() += 1;
            me.1.lock().unwrap().insert(id, v["cdr"].clone());
            Reply::status(200)
        })
        .await
    }

    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    fn cdr(&self, id: &str) -> serde_json::Value {
        self.1.lock().unwrap()[id].clone()
    }
}

/// The whole sidecar's surroundings: Blackhole, Crossbar with stored CDRs, a counting receiver.
pub(crate) struct Rig {
    pub(crate) bh: Blackhole,
    pub(crate) cb: Crossbar,
    pub(crate) rx: Counts,
    _server: HttpServer,
    dir: tempfile::TempDir,
}

impl Rig {
    pub(crate) async fn new() -> Self {
        let bh = demo_blackhole().await;
        let cb = Crossbar::start(Pbx::demo(DEMO_SEED), "unused-key", 3600).await;
        cb.state.lock().unwrap().valid.insert(TOKEN.into());
        let rx = Counts::default();
        let server = rx.start().await;
        Self {
            bh,
            cb,
            rx,
            _server: server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// One JSON trigger per tenant to the receiver; Crossbar for resyncs and backfill.
    pub(crate) fn config(&self, backfill: &str) -> PluginConfig {
        let mut triggers = String::new();
        for (n, a) in accounts().iter().enumerate() {
            triggers.push_str(&format!(
                "[[trigger]]\nid = \"t{n}\"\ntenant = \"{a}\"\n[trigger.action]\nurl = \"{}/calls\"\nmethod = \"POST\"\nformat = \"json\"\nretries = 10\n\n",
                self._server.url()
            ));
        }
        std::fs::write(self.dir.path().join("triggers.toml"), triggers).unwrap();
        let quoted: Vec<String> = accounts().iter().map(|a| format!("\"{a}\"")).collect();
        let text = format!(
            "[cdr]\ngrace_secs = 1\n\
             [kazoo]\nwebsocket_url = \"{}\"\ncrossbar_url = \"{}\"\naccounts = [{}]\nauth_token = \"{TOKEN}\"\ndirectory_refresh_secs = 0\n\
             [triggers]\nfiles = [\"triggers.toml\"]\nallow_http = true\n\
             [delivery]\ndata_dir = \"data\"\nallow_private = [\"127.0.0.1/32\"]\n\
             [backfill]\nsettle_secs = 1\nrequests_per_sec = 1000\n{backfill}\n",
            self.bh.url(),
            self.cb.url(),
            quoted.join(", ")
        );
        let path = self.dir.path().join("plugin.toml");
        std::fs::write(&path, text).unwrap();
        PluginConfig::load(&path).unwrap()
    }
}

/// A mix of calls two hours ago, its frames in time order, the CDRs Kazoo stored for it, and
/// the session ids live assembly gives for the whole stream.
fn calls(n: u64, seed: u64) -> (Vec<SimFrame>, Vec<serde_json::Value>, Vec<String>) {
    let spec = MixSpec {
        calls: n,
        seed,
        mean_gap_ms: 20_000,
        start_us: postcall::clock::WallTime::now().as_us() - 2 * 3600 * 1_000_000,
        ..MixSpec::default()
    };
    let frames: Vec<SimFrame> = sim::mix(spec.clone()).collect();
    let docs = sim::cdrs::mix_documents(spec);
    let text: Vec<&str> = frames.iter().map(|f| f.text.as_str()).collect();
    let ids = postcall::replay::replay_str(&text.join("\n"), Arc::new(Default::default()))
        .into_iter()
        .map(|c| c.cdr.id)
        .collect();
    (frames, docs, ids)
}

/// Pushes frames and waits until the sidecar has taken them all (an undecodable frame marks
/// the end: it is counted when everything before it is folded in).
pub(crate) async fn push_all(bh: &Blackhole, run: &Running, frames: &[SimFrame], marks: u64) {
    for f in frames {
        bh.push(&f.text);
    }
    bh.push(r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#);
    let reg = run.started.registry.clone();
    let want = format!("postcall_frames_skipped_total{{reason=\"missing_call_id\"}} {marks}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while !reg.render().contains(&want) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("frames folded in");
}

/// Waits until a metric line reads `value`.
async fn wait_metric(run: &Running, line: &str) {
    let reg = run.started.registry.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !reg.render().lines().any(|l| l == line) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never saw {line}:\n{}", reg.render()));
}

/// Waits until every expected id arrived; then until the outbox is empty and nothing is
/// open, so late duplicates would have arrived too.
pub(crate) async fn wait_delivered(
    rx: &Counts,
    run: &Running,
    expected: &[String],
) -> BTreeMap<String, usize> {
    let t = Instant::now();
    while expected.iter().any(|id| !rx.snapshot().contains_key(id)) {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "missing: {:?}",
            expected
                .iter()
                .filter(|id| !rx.snapshot().contains_key(*id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_metric(run, "postcall_open_sessions 0").await;
    wait_metric(run, "postcall_outbox_pending 0").await;
    rx.snapshot()
}

fn assert_exactly_once(got: &BTreeMap<String, usize>, expected: &[String]) {
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains(k)).collect();
    assert!(extra.is_empty(), "sessions no call has: {extra:?}");
    let missing: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
}

/// postcall is stopped while calls go on: the first third of the stream arrives live, the
/// second third happens while it is down (Blackhole replays nothing), the last third arrives
/// after the restart. Every call is delivered exactly once: those of the downtime built from
/// Kazoo's CDRs (tag `backfilled`), those straddling the stop completed from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_while_stopped_are_backfilled_exactly_once() {
    let mut rig = Rig::new().await;
    let (frames, docs, expected) = calls(30, 61);
    rig.cb.state.lock().unwrap().cdrs.add(docs);
    let cfg = rig.config("");
    let third = frames.len() / 3;

    let first = start(cfg.clone()).await;
    rig.bh.wait_subscribed(1).await;
    push_all(&rig.bh, &first, &frames[..third], 1).await;
    let stopped = first.stop().await;

    let second = start(cfg).await;
    rig.bh.wait_subscribed(2).await;
    push_all(&rig.bh, &second, &frames[2 * third..], 1).await;
    wait_metric(&second, "postcall_backfill_windows_total 1").await;
    let got = wait_delivered(&rig.rx, &second, &expected).await;
    let (_, metrics) = get(second.started.admin, "/metrics").await;
    second.stop().await;
    assert_exactly_once(&got, &expected);
    let backfilled_legs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("postcall_backfill_legs_folded_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(backfilled_legs > 0, "{metrics}");
    println!(
        "backfill across a restart: {} calls, {} open at the stop, {backfilled_legs} stored legs folded in, every call delivered once",
        expected.len(),
        stopped.saved_open
    );
}

/// A call whose last DESTROY the stream lost (scenario `missing_destroy`) would wait out the
/// 4-hour idle timeout and go out force-closed. Quiet with a leg up, its interaction is looked
/// up in Kazoo's stored CDRs, whose DESTROY ends the leg at its real time: the call goes out
/// after the grace period, complete, tagged `backfilled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_destroy_is_ended_from_the_stored_cdr() {
    let mut rig = Rig::new().await;
    let frames = sim::scenario("missing_destroy").unwrap();
    let docs = sim::scenario_cdrs("missing_destroy").unwrap();
    let stored_end = docs
        .iter()
        .filter_map(|d| d["timestamp"].as_i64())
        .max()
        .unwrap();
    rig.cb.state.lock().unwrap().cdrs.add(docs);
    let text: Vec<&str> = frames.iter().map(|f| f.text.as_str()).collect();
    let live_id = postcall::replay::replay_str(&text.join("\n"), Arc::new(Default::default()))
        .pop()
        .unwrap()
        .cdr
        .id;

    let run = start(rig.config("lost_destroy_after_secs = 1")).await;
    rig.bh.wait_subscribed(1).await;
    push_all(&rig.bh, &run, &frames, 1).await;
    let got = wait_delivered(&rig.rx, &run, std::slice::from_ref(&live_id)).await;
    let (_, metrics) = get(run.started.admin, "/metrics").await;
    run.stop().await;
    assert_exactly_once(&got, std::slice::from_ref(&live_id));
    assert!(
        metrics.contains("postcall_backfill_lookups_total 1"),
        "{metrics}"
    );
    let cdr = rig.rx.cdr(&live_id);
    let tags: Vec<&str> = cdr["tags"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(tags.contains(&"backfilled"), "{cdr}");
    assert!(
        !tags.contains(&"forced_close") && !tags.contains(&"partial"),
        "{cdr}"
    );
    // The call ends when Kazoo's stored DESTROY says (Gregorian seconds there).
    let end = chrono::DateTime::parse_from_rfc3339(cdr["end"].as_str().unwrap()).unwrap();
    assert_eq!(
        end.timestamp(),
        stored_end - postcall::source::GREGORIAN_UNIX_OFFSET_SECS,
        "{cdr}"
    );
}

mod pure {
    //! The assembler's side of the backfill, with time as an argument.

    use std::sync::Arc;

    use postcall::session::{Assembler, Settings};
    use postcall::source::{decode_frame, Frame};

    const ACCOUNT: &str = "fcf7b9a4d79956568efec53468bf28e0";
    const S: i64 = 1_000_000;

    fn apply(asm: &mut Assembler, name: &str, call_id: &str, interaction: &str, t: i64) {
        let gregorian = t / S + 62_167_219_200;
        let line = format!(
            r#"{{"action":"event","subscribed_key":"call.*.*","name":"{name}","data":{{"event_name":"{name}","msg_id":"{t}","timestamp":{gregorian},"call_id":"{call_id}","call_direction":"inbound","custom_channel_vars":{{"account_id":"{ACCOUNT}","call_interaction_id":"{interaction}"}}}}}}"#
        );
        let Ok(Frame::Event(ev)) = decode_frame(&line) else {
            panic!("{line}");
        };
        asm.apply(&ev, postcall::clock::WallTime::from_us(t));
    }

    /// While a backfill reads a gap, a session with a leg first seen after its CREATE is not
    /// closed; a complete one is. Released, it closes by the usual rules.
    #[test]
    fn incomplete_sessions_wait_while_a_gap_is_read() {
        let settings = Arc::new(Settings::default());
        let grace = settings.grace_us;
        let mut asm = Assembler::new(settings);
        let t = 1_715_703_300 * S;
        apply(&mut asm, "CHANNEL_ANSWER", "seen-late", "63882922500-a", t);
        apply(
            &mut asm,
            "CHANNEL_DESTROY",
            "seen-late",
            "63882922500-a",
            t + S,
        );
        apply(&mut asm, "CHANNEL_CREATE", "whole", "63882922500-b", t);
        apply(&mut asm, "CHANNEL_DESTROY", "whole", "63882922500-b", t + S);
        asm.hold_incomplete(true);
        let mut out = Vec::new();
        asm.poll(
            postcall::clock::WallTime::from_us(t + S + 10 * grace),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(asm.open_sessions(), 1, "the incomplete one waits");
        asm.poll(
            postcall::clock::WallTime::from_us(t + S + 100 * grace),
            &mut out,
        );
        assert_eq!(out.len(), 1, "still held");
        asm.hold_incomplete(false);
        asm.poll(
            postcall::clock::WallTime::from_us(t + S + 101 * grace),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(
            out[1].cdr.tags.contains_key("partial"),
            "{:?}",
            out[1].cdr.tags
        );
    }

    /// A session quiet with a leg up is named for a lookup after `quiet`, then after twice
    /// that since its last event, then four times; one with its legs down never.
    #[test]
    fn quiet_sessions_are_looked_up_at_doubling_intervals() {
        let mut asm = Assembler::new(Arc::new(Settings::default()));
        let t = 1_715_703_300 * S;
        let q = 60 * S;
        apply(&mut asm, "CHANNEL_CREATE", "up", "63882922500-up", t);
        apply(&mut asm, "CHANNEL_CREATE", "down", "63882922500-dn", t);
        apply(&mut asm, "CHANNEL_DESTROY", "down", "63882922500-dn", t + S);
        let mut out = Vec::new();
        let mut at = |asm: &mut Assembler, now: i64| {
            out.clear();
            asm.quiet_sessions(postcall::clock::WallTime::from_us(now), q, &mut out);
            out.clone()
        };
        assert!(at(&mut asm, t + q - 1).is_empty());
        let want = vec![(ACCOUNT.to_owned(), "63882922500-up".to_owned())];
        assert_eq!(at(&mut asm, t + q), want);
        assert!(at(&mut asm, t + q + 1).is_empty());
        assert!(at(&mut asm, t + 2 * q - 1).is_empty());
        assert_eq!(at(&mut asm, t + 2 * q), want);
        assert!(at(&mut asm, t + 4 * q - 1).is_empty());
        assert_eq!(at(&mut asm, t + 4 * q), want);
    }
}

/// The connection drops mid-stream and the frames sent meanwhile are lost (Blackhole replays
/// nothing); Crossbar fails the first backfill reads (503, a dropped connection, a slow
/// answer). The backfill retries with backoff, says so in `/readyz` and the metrics, and
/// events keep flowing meanwhile; in the end every call is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_that_lost_frames_is_backfilled_through_crossbar_failures() {
    use crate::servers::cdr_store::CdrFault;

    let mut rig = Rig::new().await;
    let (frames, docs, expected) = calls(30, 62);
    {
        let mut st = rig.cb.state.lock().unwrap();
        st.cdrs.add(docs);
        st.cdrs.faults.extend([
            CdrFault::Status(503),
            CdrFault::Drop,
            CdrFault::Slow(Duration::from_millis(300)),
        ]);
    }
    let third = frames.len() / 3;
    let run = start(rig.config("")).await;
    rig.bh.wait_subscribed(1).await;
    push_all(&rig.bh, &run, &frames[..third], 1).await;

    rig.bh.drop_all();
    rig.bh.wait_subscribed(2).await;
    // Reading the gap fails at first: retried, visible, and ingest goes on meanwhile.
    let t = Instant::now();
    loop {
        let (status, body) = get(run.started.admin, "/readyz").await;
        if status == 503 && body.contains("backfill") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "/readyz never said the backfill is retrying"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    push_all(&rig.bh, &run, &frames[2 * third..], 2).await;

    wait_metric(&run, "postcall_backfill_windows_total 1").await;
    let got = wait_delivered(&rig.rx, &run, &expected).await;
    let (status, _) = get(run.started.admin, "/readyz").await;
    let (_, metrics) = get(run.started.admin, "/metrics").await;
    run.stop().await;
    assert_exactly_once(&got, &expected);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("postcall_backfill_errors_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("postcall_backfill_retrying 0"),
        "{metrics}"
    );
}
/// The `postcall` binary is killed with SIGKILL mid-stream (no saved sessions: the stream mark
/// is all that says where it stopped) while calls go on; started again, every call is
/// delivered exactly once — those it had delivered are not sent again, those in progress and
/// those of the downtime are built from Kazoo's CDRs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_backfills_from_its_stream_mark_exactly_once() {
    let mut rig = Rig::new().await;
    let (frames, docs, expected) = calls(30, 63);
    rig.cb.state.lock().unwrap().cdrs.add(docs);
    let cfg = rig.config("");
    let third = frames.len() / 3;
    let spawn = |admin| spawn_binary(&cfg, admin);
    let mut child = spawn(free_port());
    rig.bh.wait_subscribed(1).await;
    for f in &frames[..third] {
        rig.bh.push(&f.text);
    }
    // Killed once the mark has caught up with what it received.
    let last = frames[third - 1].time_us;
    let mark = rig.dir.path().join("data/stream.mark");
    let t = Instant::now();
    while postcall::backfill::mark::read(&mark)
        .ok()
        .flatten()
        .is_none_or(|m| m.as_us() < last)
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the stream mark never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = rig.rx.snapshot();

    let admin = free_port();
    let mut child = spawn(admin);
    rig.bh.wait_subscribed(2).await;
    for f in &frames[2 * third..] {
        rig.bh.push(&f.text);
    }
    let t = Instant::now();
    while expected
        .iter()
        .any(|id| !rig.rx.snapshot().contains_key(id))
    {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "not every call arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Settled: the gap read, nothing open, nothing pending.
    let t = Instant::now();
    loop {
        let (_, m) = get(admin, "/metrics").await;
        let settled = [
            "postcall_backfill_windows_total 1",
            "postcall_open_sessions 0",
            "postcall_outbox_pending 0",
        ]
        .iter()
        .all(|l| m.lines().any(|x| x == *l));
        if settled {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never settled:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!before.is_empty(), "calls were delivered before the kill");
    assert_exactly_once(&rig.rx.snapshot(), &expected);
}

/// `reconcile` over the window of a restart: with backfill off it names exactly the calls
/// postcall never delivered (read through the running sidecar's admin listener); with
/// backfill on, nothing is missing (read from the stopped sidecar's store: the embedded file,
/// then a PostgreSQL store, which reconcile reads directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_names_exactly_what_is_missing() {
    use postcall::run::reconcile::{reconcile, ReconcileOptions};

    let pg = crate::servers::postgres::Postgres::start("reconcile_names_exactly_what_is_missing");
    let mut variants = vec![(false, None), (true, None)];
    if let Some(pg) = &pg {
        variants.push((true, Some(pg.database("reconcile").await)));
    }
    for (backfill, store) in variants {
        let mut rig = Rig::new().await;
        let (frames, docs, expected) = calls(24, 64);
        rig.cb.state.lock().unwrap().cdrs.add(docs);
        let mut extra = String::from(if backfill { "" } else { "enabled = false" });
        if let Some(url) = &store {
            extra.push_str(&format!(
                "\n[store]\npostgres_url = \"{url}\"\ninstance = \"a\"\n"
            ));
        }
        let cfg = rig.config(&extra);
        let third = frames.len() / 3;
        let first = start(cfg.clone()).await;
        rig.bh.wait_subscribed(1).await;
        push_all(&rig.bh, &first, &frames[..third], 1).await;
        first.stop().await;
        let second = start(cfg.clone()).await;
        rig.bh.wait_subscribed(2).await;
        push_all(&rig.bh, &second, &frames[2 * third..], 1).await;
        if backfill {
            wait_metric(&second, "postcall_backfill_windows_total 1").await;
        }
        wait_metric(&second, "postcall_open_sessions 0").await;
        wait_metric(&second, "postcall_outbox_pending 0").await;

        let now = postcall::clock::WallTime::now().as_us();
        let opts = ReconcileOptions {
            from_us: now - 3 * 3600 * 1_000_000,
            to_us: now,
            account: None,
            admin: second.started.admin,
        };
        let env = |_: &str| None;
        let report = if backfill {
            second.stop().await;
            reconcile(&cfg, &env, &opts).await.unwrap()
        } else {
            let r = reconcile(&cfg, &env, &opts).await.unwrap();
            second.stop().await;
            r
        };
        let delivered = rig.rx.snapshot();
        let never: Vec<String> = expected
            .iter()
            .filter(|id| !delivered.contains_key(*id))
            .cloned()
            .collect();
        let mut missing: Vec<String> = report.missing.iter().map(|s| s.id.clone()).collect();
        missing.sort();
        let mut never_sorted = never.clone();
        never_sorted.sort();
        println!(
            "reconcile, backfill {backfill}, PostgreSQL {}: {report}",
            store.is_some()
        );
        assert_eq!(report.kazoo, expected.len(), "{report}");
        assert_eq!(missing, never_sorted, "{report}");
        assert_eq!(report.complete(), backfill, "{report}");
        if backfill {
            assert!(
                report.disagreeing.is_empty() && report.unknown_to_kazoo.is_empty(),
                "{report}"
            );
        } else {
            assert!(
                !never.is_empty(),
                "the downtime lost calls without backfill"
            );
        }
    }
}

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

use crate::run::{accounts, get, start, Running, TOKEN};
use crate::servers::blackhole::Blackhole;
use crate::servers::crossbar::Crossbar;
use crate::servers::http::{HttpServer, Reply};

/// Session id → webhooks received.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<String, usize>>>);

impl Counts {
    async fn start(&self) -> HttpServer {
        let me = self.clone();
        HttpServer::start(None, move |r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = v["cdr"]["id"].as_str().unwrap_or("").to_owned();
            *me.0.lock().unwrap().entry(id).or_default() += 1;
            Reply::status(200)
        })
        .await
    }

    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
}

struct Rig {
    bh: Blackhole,
    cb: Crossbar,
    rx: Counts,
    _server: HttpServer,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Self {
        let accts = accounts();
        let refs: Vec<&str> = accts.iter().map(String::as_str).collect();
        let bh = Blackhole::start(&[TOKEN], &refs).await;
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
    fn config(&self, backfill: &str) -> PluginConfig {
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
        start_us: postcall::source::blackhole::now_us() - 2 * 3600 * 1_000_000,
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
async fn push_all(bh: &Blackhole, run: &Running, frames: &[SimFrame], marks: u64) {
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
async fn wait_delivered(
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

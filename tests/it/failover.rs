//! Active-active on PostgreSQL with real `postcall run` processes: two instances subscribed to
//! one fake Blackhole, one throwaway PostgreSQL cluster, one slow receiver (so a backlog builds
//! and attempts are in flight).
//!
//! - One instance is SIGKILLed mid-stream and mid-backlog: every session is delivered, the only
//!   duplicates are deliveries whose first attempt started before the kill (attempts in flight
//!   whose outcome the dead instance never recorded), and the survivor's takeover time is
//!   measured from its `postcall_store_takeovers` counter.
//! - PostgreSQL is stopped mid-run and started again: both instances hold their sessions and
//!   retry; nothing is lost.
//! - One instance is cut off from PostgreSQL (a TCP proxy that closes and refuses its
//!   connections): its leases run out, the other takes over, and after healing nothing is lost.
//!
//! Each run prints one report line. Without `POSTCALL_TEST_PG_BIN` they are skipped (loudly).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::run::{demo_blackhole, free_port, get, spawn_binary, stream, write_config_with};
use crate::servers::blackhole::Blackhole;
use crate::servers::http::{HttpServer, Reply};
use crate::servers::postgres::{Postgres, Proxy};

/// Every request the receiver answered: webhook id, session id, arrival.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, String, Instant)>>>,
    /// How long it takes to answer.
    answer: Duration,
}

/// How long the receiver takes to answer (so attempts overlap and a backlog builds).
const ANSWER: Duration = Duration::from_millis(300);
/// Attempts in flight per endpoint, per instance.
const PER_ENDPOINT: usize = 2;

impl Receiver {
    async fn start(&self) -> HttpServer {
        let me = self.clone();
        let answer = self.answer;
        HttpServer::start(None, move |r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let session = v["cdr"]["id"].as_str().unwrap_or("").to_owned();
            let hook = r
                .headers
                .get("webhook-id")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned();
            me.got.lock().unwrap().push((hook, session, r.at));
            Reply {
                delay: Some(answer),
                ..Reply::status(200)
            }
        })
        .await
    }

    fn sessions(&self) -> BTreeSet<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.1.clone())
            .collect()
    }

    async fn wait_for(&self, expected: &BTreeSet<String>, limit: Duration) {
        let t = Instant::now();
        while !self.sessions().is_superset(expected) && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Webhook ids answered more than once, with the arrival of their first request.
    fn duplicates(&self) -> BTreeMap<String, (usize, Instant)> {
        let mut by: BTreeMap<String, (usize, Instant)> = BTreeMap::new();
        for (hook, _, at) in self.got.lock().unwrap().iter() {
            let e = by.entry(hook.clone()).or_insert((0, *at));
            e.0 += 1;
            e.1 = e.1.min(*at);
        }
        by.retain(|_, (n, _)| *n > 1);
        by
    }

    /// Most requests being answered at once (each takes `answer` from its arrival).
    fn max_concurrent(&self) -> usize {
        let got = self.got.lock().unwrap();
        let mut edges: Vec<(Instant, i32)> = Vec::new();
        for (_, _, at) in got.iter() {
            // The request arrived when its body was complete; it is answered ANSWER later.
            edges.push((*at, 1));
            edges.push((*at + self.answer, -1));
        }
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        usize::try_from(most).unwrap_or(0)
    }
}

/// Blackhole, receiver, cluster and a configuration per instance.
struct Cluster {
    bh: Blackhole,
    rx: Receiver,
    _server: HttpServer,
    pg: Postgres,
    dirs: Vec<tempfile::TempDir>,
    receiver_url: String,
}

impl Cluster {
    async fn new(pg: Postgres, answer: Duration) -> Self {
        let bh = demo_blackhole().await;
        let rx = Receiver {
            got: Arc::default(),
            answer,
        };
        let server = rx.start().await;
        let receiver_url = format!("{}/calls", server.url());
        Self {
            bh,
            rx,
            _server: server,
            pg,
            dirs: Vec::new(),
            receiver_url,
        }
    }

    /// The configuration of instance `name`, reaching PostgreSQL on `port`.
    fn config(&mut self, name: &str, port: u16) -> postcall::config::PluginConfig {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
        let extra = format!(
            "[delivery]\ndata_dir = \"data\"\nallow_private = [\"127.0.0.1/32\"]\n\
             attempt_timeout_secs = 1\nmax_in_flight_per_endpoint = {PER_ENDPOINT}\n\
             [store]\npostgres_url = \"{url}\"\ninstance = \"{name}\"\nlease_secs = 6\n\
             poll_ms = 200\nop_timeout_secs = 3\n"
        );
        let cfg = write_config_with(dir.path(), &self.bh.url(), &[&self.receiver_url], &extra);
        self.dirs.push(dir);
        cfg
    }
}

/// A counter from an instance's `/metrics` (0 when absent or unreachable).
async fn metric(admin: std::net::SocketAddr, name: &str) -> u64 {
    match tokio::time::timeout(Duration::from_secs(2), get(admin, "/metrics")).await {
        Ok((200, text)) => text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64),
        _ => 0,
    }
}

/// Waits until `admin` reports `name` at least `at_least`; returns how long it took.
async fn wait_metric(
    admin: std::net::SocketAddr,
    name: &str,
    at_least: u64,
    limit: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if metric(admin, name).await >= at_least {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Waits until the instance at `admin` (running `cfg`) holds a claim: attempts in flight
/// whose outcome it has not recorded.
async fn wait_until_holding(admin: std::net::SocketAddr, cfg: &postcall::config::PluginConfig) {
    let t = Instant::now();
    while held(admin).await == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the instance never held a claim:\n{}",
            log_tail(cfg)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Deliveries an instance has claimed whose outcome it has not recorded.
async fn held(admin: std::net::SocketAddr) -> u64 {
    let claims = metric(admin, "postcall_store_claims_total").await;
    let mut done = metric(admin, "postcall_delivery_retries_total").await;
    for outcome in ["delivered", "dead"] {
        let name = format!("postcall_deliveries_total{{outcome=\"{outcome}\"}}");
        done += metric(admin, &name).await;
    }
    claims.saturating_sub(done)
}

struct Child(std::process::Child);

/// The last lines of an instance's log (for a failure message).
fn log_tail(cfg: &postcall::config::PluginConfig) -> String {
    let text = std::fs::read_to_string(cfg.file.with_file_name("postcall.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lost(expected: &BTreeSet<String>, rx: &Receiver) -> usize {
    expected.difference(&rx.sessions()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_instances_killed_mid_stream_and_mid_backlog() {
    let Some(pg) =
        Postgres::start("failover::one_of_two_instances_killed_mid_stream_and_mid_backlog")
    else {
        return;
    };
    let port = pg.port();
    let mut c = Cluster::new(pg, ANSWER).await;
    let (cfg_a, cfg_b) = (c.config("a", port), c.config("b", port));
    let (admin_a, admin_b) = (free_port(), free_port());
    let mut a = Child(spawn_binary(&cfg_a, admin_a));
    let _b = Child(spawn_binary(&cfg_b, admin_b));
    c.bh.wait_subscribed(2).await;
    let (frames, expected) = stream(80, 41, 300);
    let half = frames.len() / 2;
    for f in &frames[..half] {
        c.bh.push(f);
    }
    // Mid-backlog: kill a while it holds claims (attempts in flight, outcome not recorded).
    wait_until_holding(admin_a, &cfg_a).await;
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let killed = Instant::now();
    // Mid-stream: the rest of the calls reach the survivor only.
    for f in &frames[half..] {
        c.bh.push(f);
    }
    let takeover = wait_metric(
        admin_b,
        "postcall_store_takeovers_total",
        1,
        Duration::from_secs(60),
    )
    .await;
    c.rx.wait_for(&expected, Duration::from_secs(120)).await;
    let dups = c.rx.duplicates();
    let late: Vec<&String> = dups
        .iter()
        .filter(|(_, (_, first))| *first >= killed)
        .map(|(k, _)| k)
        .collect();
    let most = c.rx.max_concurrent();
    println!(
        "failover run kill -9: CDRs expected {}, delivered {}, lost {}, duplicates {} (all first sent before the kill), takeover after {}, receiver max concurrent {most} (limit {PER_ENDPOINT} per endpoint per instance)",
        expected.len(),
        c.rx.sessions().intersection(&expected).count(),
        lost(&expected, &c.rx),
        dups.len(),
        takeover.map_or("(no claim left to take over)".into(), |d| format!("{} ms", d.as_millis())),
    );
    assert_eq!(lost(&expected, &c.rx), 0, "every session delivered");
    assert!(
        late.is_empty(),
        "a duplicate whose first attempt came after the kill: {late:?}"
    );
    assert!(
        dups.values().all(|(n, _)| *n == 2),
        "a delivery sent more than twice: {dups:?}"
    );
    assert!(
        most <= 2 * PER_ENDPOINT,
        "per-endpoint limit is per instance"
    );
    assert!(
        takeover.is_some(),
        "the survivor took over the dead instance's claims"
    );
    drop(c.pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run() {
    let Some(pg) = Postgres::start("failover::postgres_restarted_mid_run") else {
        return;
    };
    let port = pg.port();
    let mut c = Cluster::new(pg, ANSWER).await;
    let (cfg_a, cfg_b) = (c.config("a", port), c.config("b", port));
    let (admin_a, admin_b) = (free_port(), free_port());
    let _a = Child(spawn_binary(&cfg_a, admin_a));
    let _b = Child(spawn_binary(&cfg_b, admin_b));
    c.bh.wait_subscribed(2).await;
    let (frames, expected) = stream(40, 43, 300);
    let half = frames.len() / 2;
    for f in &frames[..half] {
        c.bh.push(f);
    }
    wait_metric(
        admin_a,
        "postcall_store_claims_total",
        1,
        Duration::from_secs(60),
    )
    .await
    .expect("deliveries flow");
    c.pg.stop();
    for f in &frames[half..] {
        c.bh.push(f);
    }
    // Both instances see the database gone (enqueue or claim errors) while it is down.
    let down = Instant::now();
    // Down long enough for both instances to fail and retry several times.
    for admin in [admin_a, admin_b] {
        let failing = wait_metric(
            admin,
            "postcall_outbox_errors_total",
            3,
            Duration::from_secs(30),
        );
        assert!(
            failing.await.is_some(),
            "both instances see the database gone"
        );
    }
    let held_for = down.elapsed();
    c.pg.start_server();
    c.rx.wait_for(&expected, Duration::from_secs(120)).await;
    println!(
        "failover run postgres restart: CDRs expected {}, delivered {}, lost {}, database down {} ms (both instances holding sessions and retrying)",
        expected.len(),
        c.rx.sessions().intersection(&expected).count(),
        lost(&expected, &c.rx),
        held_for.as_millis()
    );
    assert_eq!(lost(&expected, &c.rx), 0, "nothing lost across the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_partitioned_from_postgres() {
    let Some(pg) = Postgres::start("failover::one_instance_partitioned_from_postgres") else {
        return;
    };
    let port = pg.port();
    let proxy = Proxy::start(port).await;
    let mut c = Cluster::new(pg, ANSWER).await;
    let (cfg_a, cfg_b) = (c.config("a", proxy.port()), c.config("b", port));
    let (admin_a, admin_b) = (free_port(), free_port());
    let _a = Child(spawn_binary(&cfg_a, admin_a));
    let _b = Child(spawn_binary(&cfg_b, admin_b));
    c.bh.wait_subscribed(2).await;
    let (frames, expected) = stream(60, 47, 300);
    let half = frames.len() / 2;
    for f in &frames[..half] {
        c.bh.push(f);
    }
    // Cut while a has attempts in flight (claimed, outcome not recorded yet).
    wait_until_holding(admin_a, &cfg_a).await;
    proxy.cut();
    let claims_at_cut = metric(admin_a, "postcall_store_claims_total").await;
    for f in &frames[half..] {
        c.bh.push(f);
    }
    let takeover = wait_metric(
        admin_b,
        "postcall_store_takeovers_total",
        1,
        Duration::from_secs(60),
    )
    .await;
    // While cut off, a claims nothing more.
    let claims_cut = metric(admin_a, "postcall_store_claims_total").await;
    proxy.heal();
    c.rx.wait_for(&expected, Duration::from_secs(120)).await;
    println!(
        "failover run partition: CDRs expected {}, delivered {}, lost {}, takeover after {} (lease 6 s), duplicates {}",
        expected.len(),
        c.rx.sessions().intersection(&expected).count(),
        lost(&expected, &c.rx),
        takeover.map_or("never".into(), |d| format!("{} ms", d.as_millis())),
        c.rx.duplicates().len(),
    );
    assert_eq!(lost(&expected, &c.rx), 0, "nothing lost after healing");
    assert!(
        takeover.is_some(),
        "the other instance took over the cut-off one's claims"
    );
    assert_eq!(claims_cut, claims_at_cut, "no claims while cut off");
}

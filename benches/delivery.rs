//! `cargo bench --bench delivery`: webhooks/s through the durable outbox and engine — the
//! embedded redb outbox and, when `POSTCALL_TEST_PG_BIN` names PostgreSQL's binaries, the
//! PostgreSQL outbox on a throwaway local cluster — against a bare hyper client posting the
//! same bodies to the same loopback keep-alive receiver, and the latency from session close
//! (outbox write) to the first attempt (PRODUCT.md §7).
//!
//! Side by side in one run, printed as ratios; nothing asserts a time. The bare client and the
//! embedded outbox alternate for `POSTCALL_BENCH_ROUNDS` rounds (3 by default), each ratio
//! taken between runs made moments apart, and the median ratio is the result: on a shared
//! machine one pair of runs can be off by half. Without `POSTCALL_TEST_PG_BIN` the PostgreSQL
//! row says it was skipped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use postcall::delivery::{DeliveryOptions, Endpoint, Engine, Format, Job, Method, Outbox, Storage};
use postcall::net::guard::AddressGuard;
use postcall::net::http::HttpOptions;
use postcall::net::HttpClient;
use postcall::run::sidecar::SESSIONS_PER_WRITE;
use tokio::net::TcpListener;

// The tests' throwaway cluster (initdb on a temp dir, a free loopback port).
#[allow(dead_code)]
#[path = "../tests/it/servers/postgres.rs"]
mod postgres;

/// A receiver answering 200 at once; counts requests and records the `t` (µs) in each body.
async fn receiver(count: Arc<AtomicU64>, lat: Arc<Mutex<Vec<i64>>>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (count, lat) = (count.clone(), lat.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (count, lat) = (count.clone(), lat.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if let Some(i) = memchr_t(&body) {
                            let now = chrono::Utc::now().timestamp_micros();
                            lat.lock().unwrap().push(now - i);
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// CPU seconds (user + system) this process has used so far, and those of its threads whose
/// names start with `threads` (Linux `/proc`; zero elsewhere).
fn cpu_seconds(threads: &str) -> (f64, f64) {
    fn ticks(stat: &str) -> f64 {
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0
    }
    let all = std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| ticks(&s));
    let mut named = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim().starts_with(threads) {
                named += std::fs::read_to_string(t.path().join("stat")).map_or(0.0, |s| ticks(&s));
            }
        }
    }
    (all, named)
}

/// The `"t":<µs>` the latency probe put in customData.
fn memchr_t(body: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(body).ok()?;
    let i = s.find("\"probe\":\"")? + 9;
    s[i..].split('"').next()?.parse().ok()
}

fn cdr_body() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/park_retrieve.jsonl"
    ))
    .unwrap();
    let c = postcall::replay::replay_str(&text, Arc::new(Default::default()));
    serde_json::to_value(&c[0].cdr).unwrap()
}

/// Job `n`, shaped as the sidecar makes them: its webhook id derived from a session id and a
/// trigger id (a UUID, so ids arrive in no order: a sequential id would let the outbox append
/// where it must insert), due when written.
fn job(n: u64, url: &str, cdr: &serde_json::Value, probe: Option<i64>) -> Job {
    let mut custom = std::collections::BTreeMap::new();
    if let Some(t) = probe {
        custom.insert("probe".to_owned(), t.to_string());
    }
    let now = chrono::Utc::now().timestamp_micros();
    Job {
        webhook_id: postcall::delivery::webhook_id(&format!("bench-session-{n}"), "bench"),
        trigger_id: "bench".into(),
        endpoint: Endpoint {
            url: url.into(),
            method: Method::Post,
            format: Format::Json,
            retries: 1,
            signed: false,
        },
        payload: postcall::delivery::payload::payload("bench", "u", "t", cdr, &custom),
        attempts: 0,
        next_attempt_us: now,
        created_us: now,
        last_error: None,
    }
}

/// The embedded outbox's owner (writer) and reader threads.
const OUTBOX_THREADS: &str = "postcall-";

/// The bare client: `conc` workers posting the same body over pooled keep-alive connections.
struct Bare {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    url: String,
    body: Bytes,
    n: u64,
    conc: usize,
}

impl Bare {
    /// Webhooks/s, and CPU µs per webhook (the whole process: client and receiver).
    async fn run(&self) -> (f64, f64) {
        let cpu = cpu_seconds("");
        let t = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..self.conc {
            let (client, next, url, body, n) = (
                self.client.clone(),
                next.clone(),
                self.url.clone(),
                self.body.clone(),
                self.n,
            );
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let req = Request::post(&url)
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let resp = client.request(req).await.unwrap();
                    let _ = resp.into_body().collect().await;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let rate = self.n as f64 / t.elapsed().as_secs_f64();
        (rate, (cpu_seconds("").0 - cpu.0) * 1e6 / self.n as f64)
    }
}

/// One round: the bare client (when it ran beside), then the engine.
struct Round {
    /// Bare webhooks/s and CPU µs per webhook.
    bare: Option<(f64, f64)>,
    /// The engine's webhooks/s.
    rate: f64,
    /// The engine's CPU µs per webhook: the whole process, and the outbox's threads.
    cpu: (f64, f64),
}

/// What one storage backend measured.
struct Row {
    rounds: Vec<Round>,
    /// Close → first attempt percentiles.
    latency: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

impl Row {
    fn rate(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.rate).collect())
    }

    /// The median of the rounds' ratios to the bare client that ran just before each.
    fn share_of_bare(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .filter_map(|r| r.bare.map(|(b, _)| r.rate / b))
                .collect(),
        )
    }
}

/// Runs the outbox-and-engine half of the bench on one storage backend.
struct Probe {
    count: Arc<AtomicU64>,
    lat: Arc<Mutex<Vec<i64>>>,
    url: String,
    cdr: serde_json::Value,
    n: u64,
    conc: usize,
}

impl Probe {
    /// `rounds` rounds, each the bare client (when given) then `n` webhooks through the engine,
    /// so every ratio compares runs made moments apart on a shared machine; then the close →
    /// first attempt percentiles on an idle system. Job ids start at `first`.
    async fn run(&self, storage: Storage, first: u64, rounds: u64, bare: Option<&Bare>) -> Row {
        let conc = self.conc;
        let http = HttpClient::with_guard(
            postcall::net::tls::client_config(None).unwrap(),
            &HttpOptions::default(),
            AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]),
        );
        let engine = Engine::with_storage(
            storage,
            http,
            DeliveryOptions {
                max_in_flight: conc,
                max_in_flight_per_endpoint: conc,
                ..DeliveryOptions::default()
            },
        );
        let stopped = CancellationToken::new();
        let stop = stopped.clone();
        let task = tokio::spawn(engine.clone().run(stopped));
        let mut done = Vec::new();
        for r in 0..rounds {
            let bare = match bare {
                Some(b) => Some(b.run().await),
                None => None,
            };
            let (rate, cpu) = self.throughput(&engine, first + r * self.n).await;
            done.push(Round { bare, rate, cpu });
        }
        let latency = self.latency(&engine, first + rounds * self.n).await;
        stop.cancel();
        let _ = task.await;
        Row {
            rounds: done,
            latency,
        }
    }

    /// Webhooks/s for `n` jobs enqueued in batches of [`SESSIONS_PER_WRITE`] (the sidecar's
    /// sink writes every session waiting in its queue, up to that many, in one transaction; a
    /// burst or a sustained load keeps that queue full), and the CPU µs per webhook (the
    /// process, the outbox's threads).
    async fn throughput(&self, engine: &Arc<Engine>, first: u64) -> (f64, (f64, f64)) {
        let n = self.n;
        // Built before the clock starts, like the bare client's body: what is timed is the
        // delivery of ready payloads, not the trigger matching that makes them.
        let all: Vec<Job> = (first..first + n)
            .map(|i| job(i, &self.url, &self.cdr, None))
            .collect();
        let before = self.count.load(Ordering::Relaxed);
        let cpu = cpu_seconds(OUTBOX_THREADS);
        let t = Instant::now();
        for chunk in all.chunks(SESSIONS_PER_WRITE) {
            engine.enqueue(chunk).await.unwrap();
        }
        while self.count.load(Ordering::Relaxed) - before < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        let spent = cpu_seconds(OUTBOX_THREADS);
        let per = |a: f64, b: f64| (a - b) * 1e6 / n as f64;
        (rate, (per(spent.0, cpu.0), per(spent.1, cpu.1)))
    }

    /// Close → first attempt on an idle system: one session every 5 ms.
    async fn latency(&self, engine: &Arc<Engine>, first: u64) -> String {
        self.lat.lock().unwrap().clear();
        for i in 0..400 {
            let now = chrono::Utc::now().timestamp_micros();
            let j = job(first + i, &self.url, &self.cdr, Some(now));
            engine.enqueue(&[j]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut l = self.lat.lock().unwrap().clone();
        l.sort_unstable();
        let pct = |p: f64| l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
        format!(
            "{} samples: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            l.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        )
    }
}

fn main() {
    let n: u64 = std::env::var("POSTCALL_BENCH_WEBHOOKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let conc = 16usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let count = Arc::new(AtomicU64::new(0));
        let lat = Arc::new(Mutex::new(Vec::new()));
        let addr = receiver(count.clone(), lat.clone()).await;
        let url = format!("http://{addr}/hook");
        let cdr = cdr_body();
        let body = Bytes::from(postcall::delivery::payload::payload("bench", "u", "t", &cdr, &Default::default()).get().to_owned());

        let rounds: u64 = std::env::var("POSTCALL_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1);
        let bare = Bare {
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
            url: url.clone(),
            body: body.clone(),
            n,
            conc,
        };

        // The bare client and the embedded outbox and engine, round after round; then
        // PostgreSQL once (it is an order of magnitude slower), against the bare median.
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
        let probe = Probe { count: count.clone(), lat: lat.clone(), url: url.clone(), cdr: cdr.clone(), n, conc };
        let embedded = probe.run(Storage::Embedded(outbox), 0, rounds, Some(&bare)).await;
        let bare_rate = median(embedded.rounds.iter().filter_map(|r| r.bare.map(|b| b.0)).collect());
        let pg = postgres::Postgres::start("bench delivery (PostgreSQL outbox)");
        let pg_row = match &pg {
            Some(pg) => {
                let url = pg.database("bench").await;
                let store = postcall::delivery::pg::PgStore::connect(postcall::delivery::pg::PgOptions {
                    url: postcall::net::Secret::new(url),
                    ca_file: None,
                    instance: "bench".into(),
                    lease: Duration::from_secs(30),
                    poll: Duration::from_secs(1),
                    pool_size: 8,
                    op_timeout: Duration::from_secs(10),
                })
                .await
                .unwrap();
                Some(probe.run(store.into_storage(), 10 * n * rounds, 1, None).await)
            }
            None => None,
        };

        println!("payload {} bytes, {n} webhooks per round, {rounds} rounds, {conc} concurrent, loopback keep-alive receiver", body.len());
        for (i, r) in embedded.rounds.iter().enumerate() {
            let (b, b_cpu) = r.bare.unwrap_or_default();
            println!(
                "  round {}: bare {b:>6.0} webhooks/s (CPU {b_cpu:.0} µs each, receiver included), embedded {:>6.0} webhooks/s = {:.0} % (CPU {:.0} µs each, {:.0} µs on the outbox's threads)",
                i + 1,
                r.rate,
                100.0 * r.rate / b,
                r.cpu.0,
                r.cpu.1
            );
        }
        println!("bare hyper client             : {bare_rate:>8.0} webhooks/s  (median of the rounds)");
        println!(
            "embedded outbox + engine      : {:>8.0} webhooks/s  ({:.0} % of bare, the median of the rounds' ratios; target >= 50 %)",
            embedded.rate(),
            100.0 * embedded.share_of_bare()
        );
        match &pg_row {
            Some(pg) => println!(
                "PostgreSQL outbox + engine    : {:>8.0} webhooks/s  ({:.0} % of bare, {:.0} % of embedded; CPU {:.0} µs per webhook)",
                pg.rate(),
                100.0 * pg.rate() / bare_rate,
                100.0 * pg.rate() / embedded.rate(),
                pg.rounds.first().map_or(0.0, |r| r.cpu.0)
            ),
            None => println!("PostgreSQL outbox + engine    : SKIPPED (set POSTCALL_TEST_PG_BIN)"),
        }
        println!("close → first attempt (request received), one session every 5 ms (target p99 < 10 ms):");
        println!("  embedded   {}", embedded.latency);
        if let Some(pg) = &pg_row {
            println!("  PostgreSQL {}", pg.latency);
        }
        drop(pg);
    });
}

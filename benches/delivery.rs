//! `cargo bench --bench delivery`: webhooks/s through the durable outbox and engine against
//! a bare hyper client posting the same bodies to the same loopback keep-alive receiver, and
//! the latency from session close (outbox write) to the first attempt (PRODUCT.md §7).
//!
//! Side by side in one run, printed as ratios; nothing asserts a time.

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
use postcall::delivery::{DeliveryOptions, Endpoint, Engine, Format, Job, Method, Outbox};
use postcall::net::guard::AddressGuard;
use postcall::net::http::HttpOptions;
use postcall::net::HttpClient;
use tokio::net::TcpListener;

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

fn job(n: u64, url: &str, cdr: &serde_json::Value, probe: Option<i64>) -> Job {
    let mut custom = std::collections::BTreeMap::new();
    if let Some(t) = probe {
        custom.insert("probe".to_owned(), t.to_string());
    }
    Job {
        webhook_id: format!("msg_bench_{n}"),
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
        next_attempt_us: 0,
        created_us: chrono::Utc::now().timestamp_micros(),
        last_error: None,
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

        // 1. Bare hyper: `conc` workers posting the same body over pooled keep-alive connections.
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        let t = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..conc {
            let (client, next, url, body) = (client.clone(), next.clone(), url.clone(), body.clone());
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let req = Request::post(&url).header("content-type", "application/json").body(Full::new(body.clone())).unwrap();
                    let resp = client.request(req).await.unwrap();
                    let _ = resp.into_body().collect().await;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let bare = n as f64 / t.elapsed().as_secs_f64();

        // 2. The outbox and engine. The sidecar's sink writes every session waiting in its
        //    queue with one transaction; a sustained load keeps that queue non-empty, so the
        //    sessions arrive here in batches of 64.
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
        let http = HttpClient::with_guard(
            postcall::net::tls::client_config(None).unwrap(),
            &HttpOptions::default(),
            AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]),
        );
        let engine = Engine::new(outbox, http, DeliveryOptions { max_in_flight: conc, max_in_flight_per_endpoint: conc, ..DeliveryOptions::default() });
        let stopped = CancellationToken::new();
    let stop = stopped.clone();
        let task = tokio::spawn(engine.clone().run(stopped));
        let before = count.load(Ordering::Relaxed);
        let t = Instant::now();
        let all: Vec<Job> = (0..n).map(|i| job(i, &url, &cdr, None)).collect();
        for chunk in all.chunks(64) {
            engine.enqueue(chunk).await.unwrap();
        }
        while count.load(Ordering::Relaxed) - before < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let outboxed = n as f64 / t.elapsed().as_secs_f64();

        // 3. Latency on an idle system: one session every 5 ms, close → first attempt.
        lat.lock().unwrap().clear();
        for i in 0..400 {
            let now = chrono::Utc::now().timestamp_micros();
            engine.enqueue(&[job(n + 1 + i, &url, &cdr, Some(now))]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut l = lat.lock().unwrap().clone();
        l.sort_unstable();
        let pct = |p: f64| l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
        stop.cancel();
        let _ = task.await;

        println!("payload {} bytes, {n} webhooks, {conc} concurrent, loopback keep-alive receiver", body.len());
        println!("bare hyper client          : {bare:>8.0} webhooks/s");
        println!("postcall outbox + engine   : {outboxed:>8.0} webhooks/s");
        println!("ratio (target >= 50 %)     : {:.0} %", 100.0 * outboxed / bare);
        println!(
            "close → first attempt (request received), {} samples: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms (target p99 < 10 ms)",
            l.len(), pct(0.5), pct(0.9), pct(0.99), pct(1.0)
        );
    });
}

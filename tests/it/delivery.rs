//! Webhook delivery against real local receivers (HTTP and HTTPS with a test CA) and the
//! real redb outbox on a temp dir: methods and formats, signatures, the seed's retry rules,
//! timeouts, dead letters and re-sends, restarts, isolation between endpoints, SSRF guard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::delivery::{
    webhook_id, DeliveryOptions, Endpoint, Engine, Format, Job, Method, Outbox,
};
use postcall::net::guard::AddressGuard;
use postcall::net::http::HttpOptions;
use postcall::net::{HttpClient, Secret};
use serde_json::json;

use crate::servers::http::{HttpServer, Recorded, Reply};
use crate::servers::tls::TestCa;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn loopback_guard() -> AddressGuard {
    AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()])
}

fn fast() -> DeliveryOptions {
    DeliveryOptions {
        retry_unit: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(5),
        max_in_flight: 16,
        max_in_flight_per_endpoint: 4,
    }
}

struct Running {
    engine: Arc<Engine>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    async fn start(
        outbox: Arc<Outbox>,
        ca: Option<&TestCa>,
        guard: AddressGuard,
        opts: DeliveryOptions,
    ) -> Self {
        let tls = match ca {
            Some(ca) => ca.client(),
            None => postcall::net::tls::client_config(None).unwrap(),
        };
        let http = HttpClient::with_guard(tls, &HttpOptions::default(), guard);
        let engine = Engine::new(outbox, http, opts);
        let key = postcall::delivery::sign::SigningKey::parse(&Secret::new(SECRET)).unwrap();
        engine.use_keys(Arc::new(postcall::delivery::StaticKeys(
            [("trig".to_owned(), key)].into(),
        )));
        let rx = CancellationToken::new();
        let stop = rx.clone();
        let task = tokio::spawn(engine.clone().run(rx));
        Self {
            engine,
            stop,
            task,
            _dir: None,
        }
    }

    async fn temp(ca: Option<&TestCa>, guard: AddressGuard, opts: DeliveryOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
        let mut r = Self::start(outbox, ca, guard, opts).await;
        r._dir = Some(dir);
        r
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    /// Waits until the outbox has no pending job and `dead` dead letters.
    async fn settle(&self, dead: usize) {
        let ob = self.engine.outbox().embedded().unwrap().clone();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if ob.pending_len().unwrap() == 0 && ob.dead().unwrap().len() == dead {
                    return;
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("outbox settled");
    }
}

fn job(n: u32, url: &str, method: Method, format: Format, retries: u32, secret: bool) -> Job {
    let cdr = json!({"id": format!("s{n}"), "cliNum": "+14155550123", "dur": 98, "recordingIds": ["r1"], "tags": {"k": "v w"}});
    let custom = [("crm".to_owned(), "hubspot".to_owned())].into();
    Job {
        webhook_id: webhook_id(&format!("s{n}"), "trig"),
        trigger_id: "trig".into(),
        endpoint: Endpoint {
            url: url.into(),
            method,
            format,
            retries,
            signed: secret,
        },
        payload: postcall::delivery::payload::payload("trig", "user-1", "acct-1", &cdr, &custom),
        attempts: 0,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    }
}

fn verify(r: &Recorded, signed: &[u8]) {
    let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
    wh.verify(signed, &r.headers).expect("signature verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_method_and_format_over_https_signed() {
    let ca = TestCa::new();
    let mut rx = HttpServer::start(Some(&ca), |_| Reply::status(202)).await;
    let run = Running::temp(Some(&ca), loopback_guard(), fast()).await;
    let base = format!("{}/hook?api-version=2016-10-01&sig=Ab%2Bc", rx.url());
    let jobs = [
        job(1, &base, Method::Post, Format::Json, 1, true),
        job(2, &base, Method::Put, Format::Form, 1, true),
        job(3, &base, Method::Get, Format::Json, 1, true),
        job(4, &base, Method::Post, Format::Json, 1, false),
    ];
    for j in &jobs {
        run.engine.enqueue(std::slice::from_ref(j)).await.unwrap();
        let r = rx.next_request().await;
        assert_eq!(r.header("webhook-id"), Some(j.webhook_id.as_str()));
        assert!(r.header("user-agent").unwrap().starts_with("postcall/"));
        match (j.endpoint.method, j.endpoint.format) {
            (Method::Post, Format::Json) => {
                assert_eq!(r.method, hyper::Method::POST);
                assert_eq!(r.header("content-type"), Some("application/json"));
                assert_eq!(&r.body[..], j.payload.get().as_bytes(), "the payload as is");
                assert_eq!(r.uri, "/hook?api-version=2016-10-01&sig=Ab%2Bc");
            }
            (Method::Put, Format::Form) => {
                assert_eq!(r.method, hyper::Method::PUT);
                assert_eq!(
                    r.header("content-type"),
                    Some("application/x-www-form-urlencoded")
                );
                let pairs: Vec<(String, String)> =
                    url::form_urlencoded::parse(&r.body).into_owned().collect();
                assert!(pairs.contains(&("cdr[tags][k]".into(), "v w".into())));
                assert!(pairs.contains(&("cdr[recordingIds][0]".into(), "r1".into())));
                assert!(pairs.contains(&("customData[crm]".into(), "hubspot".into())));
            }
            (Method::Get, _) => {
                assert_eq!(r.method, hyper::Method::GET);
                assert!(r.body.is_empty() && r.header("content-type").is_none());
                assert!(
                    r.uri.starts_with(
                        "/hook?api-version=2016-10-01&sig=Ab%2Bc&triggerId=trig&id=user-1&"
                    ),
                    "{}",
                    r.uri
                );
                let q: Vec<(String, String)> =
                    url::form_urlencoded::parse(r.uri.split_once('?').unwrap().1.as_bytes())
                        .into_owned()
                        .collect();
                assert!(q.contains(&("cdr[cliNum]".into(), "+14155550123".into())));
                assert!(q.contains(&("sig".into(), "Ab+c".into())));
            }
            _ => unreachable!(),
        }
        if j.endpoint.signed {
            let signed: Vec<u8> = if r.method == hyper::Method::GET {
                r.uri.split_once('?').unwrap().1.as_bytes().to_vec()
            } else {
                r.body.to_vec()
            };
            verify(&r, &signed);
        } else {
            assert!(r.header("webhook-signature").is_none());
        }
    }
    run.settle(0).await;
    assert_eq!(run.engine.counters.delivered.load(Ordering::Relaxed), 4);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_seed_exactly_then_dead_letter() {
    let mut rx = HttpServer::start(None, |_| Reply::status(503)).await;
    let opts = fast();
    let unit = opts.retry_unit;
    let run = Running::temp(None, loopback_guard(), opts).await;
    let j = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        3,
        false,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    let mut times = Vec::new();
    for n in 1..=4 {
        let r = rx.next_request().await;
        times.push(r.at);
        assert_eq!(
            r.header("webhook-id"),
            Some(j.webhook_id.as_str()),
            "same id on every attempt"
        );
        assert_eq!(r.header("webhook-attempt"), Some(n.to_string().as_str()));
    }
    run.settle(1).await;
    for (n, w) in times.windows(2).enumerate() {
        let waited = w[1] - w[0];
        assert!(
            waited >= unit * (n as u32 + 1),
            "retry {} after {waited:?}",
            n + 1
        );
    }
    let dead = run.engine.outbox().embedded().unwrap().dead().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 4, "1 + retries attempts");
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 503"));
    assert!(
        rx.next_request_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no fifth attempt"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_statuses_are_not_retried_and_2xx_variants_succeed() {
    let statuses = [400u16, 404, 410, 501, 302, 200, 201, 202, 204, 429];
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let rx = HttpServer::start(None, move |r| {
        h.fetch_add(1, Ordering::Relaxed);
        let code: u16 = r.uri.trim_start_matches('/').parse().unwrap();
        // 429 is answered once, then accepted.
        if code == 429 && r.header("webhook-attempt") == Some("2") {
            Reply::status(200)
        } else {
            Reply::status(code)
        }
    })
    .await;
    let run = Running::temp(None, loopback_guard(), fast()).await;
    let jobs: Vec<Job> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            job(
                i as u32,
                &format!("{}/{s}", rx.url()),
                Method::Post,
                Format::Json,
                5,
                false,
            )
        })
        .collect();
    run.engine.enqueue(&jobs).await.unwrap();
    run.settle(5).await;
    let mut dead: Vec<String> = run
        .engine
        .outbox()
        .embedded()
        .unwrap()
        .dead()
        .unwrap()
        .iter()
        .map(|j| j.last_error.clone().unwrap())
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        ["HTTP 302", "HTTP 400", "HTTP 404", "HTTP 410", "HTTP 501"]
    );
    assert_eq!(
        hits.load(Ordering::Relaxed),
        statuses.len() + 1,
        "one attempt each, two for the 429"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_times_out_and_is_retried() {
    let mut rx = HttpServer::start(None, |_| Reply {
        delay: Some(Duration::from_secs(3)),
        ..Reply::status(200)
    })
    .await;
    let run = Running::temp(
        None,
        loopback_guard(),
        DeliveryOptions {
            attempt_timeout: Duration::from_millis(100),
            ..fast()
        },
    )
    .await;
    run.engine
        .enqueue(&[job(
            1,
            &format!("{}/h", rx.url()),
            Method::Post,
            Format::Json,
            1,
            false,
        )])
        .await
        .unwrap();
    rx.next_request().await;
    rx.next_request().await;
    run.settle(1).await;
    let dead = run.engine.outbox().embedded().unwrap().dead().unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("timed out"),
        "{dead:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_resend_with_the_same_webhook_id() {
    let accept = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = accept.clone();
    let mut rx = HttpServer::start(None, move |_| {
        Reply::status(if a.load(Ordering::Relaxed) { 200 } else { 422 })
    })
    .await;
    let run = Running::temp(None, loopback_guard(), fast()).await;
    let j = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        2,
        false,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    let first = rx.next_request().await;
    run.settle(1).await;
    accept.store(true, Ordering::Relaxed);
    run.engine.resend(&j.webhook_id).await.unwrap();
    let again = rx.next_request().await;
    assert_eq!(first.header("webhook-id"), again.header("webhook-id"));
    assert_eq!(first.body, again.body);
    run.settle(0).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_backlog_loses_nothing() {
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let s = seen.clone();
    let rx = HttpServer::start(None, move |r| {
        s.lock()
            .unwrap()
            .insert(r.header("webhook-id").unwrap().to_owned());
        Reply {
            delay: Some(Duration::from_millis(20)),
            ..Reply::status(200)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let jobs: Vec<Job> = (0..60)
        .map(|i| {
            job(
                i,
                &format!("{}/h", rx.url()),
                Method::Post,
                Format::Json,
                1,
                false,
            )
        })
        .collect();
    let opts = DeliveryOptions {
        max_in_flight_per_endpoint: 2,
        ..fast()
    };
    {
        let outbox = Arc::new(Outbox::open(&path).unwrap());
        let run = Running::start(outbox, None, loopback_guard(), opts.clone()).await;
        run.engine.enqueue(&jobs).await.unwrap();
        // Crash mid-backlog: the dispatcher and its in-flight attempts are dropped on the spot.
        let counters_seen = seen.clone();
        tokio::time::timeout(Duration::from_secs(10), async {
            while counters_seen.lock().unwrap().len() < 10 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        let outbox = run.engine.outbox().embedded().unwrap().clone();
        run.task.abort();
        let _ = run.task.await;
        drop(run.engine);
        assert!(outbox.pending_len().unwrap() > 0);
        // Aborted attempt tasks let go of the store as the runtime drops them.
        tokio::time::timeout(Duration::from_secs(10), async {
            while Arc::strong_count(&outbox) > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }
    let outbox = Arc::new(Outbox::open(&path).unwrap());
    let run = Running::start(outbox, None, loopback_guard(), opts).await;
    run.settle(0).await;
    let expected: std::collections::BTreeSet<String> =
        jobs.iter().map(|j| j.webhook_id.clone()).collect();
    assert_eq!(
        *seen.lock().unwrap(),
        expected,
        "every job delivered at least once"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_does_not_hold_up_others() {
    let slow = HttpServer::start(None, |_| Reply {
        delay: Some(Duration::from_secs(600)),
        ..Reply::status(200)
    })
    .await;
    let mut fast_rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let run = Running::temp(
        None,
        loopback_guard(),
        DeliveryOptions {
            max_in_flight: 8,
            max_in_flight_per_endpoint: 2,
            // Long enough that the hung attempts are still in flight at the end, however
            // slow the machine is.
            attempt_timeout: Duration::from_secs(600),
            ..fast()
        },
    )
    .await;
    let slow_jobs: Vec<Job> = (0..6)
        .map(|i| {
            job(
                i,
                &format!("{}/h", slow.url()),
                Method::Post,
                Format::Json,
                0,
                false,
            )
        })
        .collect();
    let fast_jobs: Vec<Job> = (100..110)
        .map(|i| {
            job(
                i,
                &format!("{}/h", fast_rx.url()),
                Method::Post,
                Format::Json,
                0,
                false,
            )
        })
        .collect();
    run.engine.enqueue(&slow_jobs).await.unwrap();
    run.engine.enqueue(&fast_jobs).await.unwrap();
    for _ in 0..10 {
        fast_rx.next_request().await;
    }
    let counters = &run.engine.counters;
    tokio::time::timeout(Duration::from_secs(60), async {
        // Delivered and recorded: only the six slow jobs are left in the outbox.
        while counters.delivered.load(Ordering::Relaxed) < 10
            || run
                .engine
                .outbox()
                .embedded()
                .unwrap()
                .pending_len()
                .unwrap()
                > 6
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the fast endpoint's ten deliveries complete while the slow one hangs");
    // The slow endpoint holds exactly its two slots; none of its jobs has finished.
    assert_eq!(counters.attempts.load(Ordering::Relaxed), 12);
    run.stop.cancel();
    run.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_allow_listed() {
    let mut rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let run = Running::temp(None, AddressGuard::strict(vec![]), fast()).await;
    let by_ip = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        3,
        false,
    );
    let by_name = job(
        2,
        &format!("http://localhost:{}/h", rx.addr.port()),
        Method::Post,
        Format::Json,
        3,
        false,
    );
    run.engine.enqueue(&[by_ip, by_name]).await.unwrap();
    run.settle(2).await;
    for d in run.engine.outbox().embedded().unwrap().dead().unwrap() {
        assert_eq!(d.attempts, 1, "not retried");
        assert!(
            d.last_error.as_deref().unwrap().contains("not public"),
            "{d:?}"
        );
    }
    assert!(rx
        .next_request_within(Duration::from_millis(200))
        .await
        .is_none());
    run.stop().await;
}

/// A receiver that reads each request and never answers; counts the requests it holds.
async fn stalled_receiver(held: Arc<tokio::sync::watch::Sender<usize>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let held = held.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                held.send_modify(|n| *n += 1);
                // Hold the connection until the client gives up.
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.read_to_end(&mut Vec::new()).await;
            });
        }
    });
    format!("http://{addr}/stalled")
}

/// Sixteen endpoints that never answer cannot take every delivery slot: with the defaults
/// (64 overall, 4 per endpoint) they used to fill all 64, and a healthy endpoint waited for
/// the 10 s attempt deadline. Now it is delivered while every stalled attempt is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_endpoints_leave_slots_for_a_healthy_one() {
    let (held_tx, mut held) = tokio::sync::watch::channel(0usize);
    let held_tx = Arc::new(held_tx);
    let opts = DeliveryOptions {
        attempt_timeout: Duration::from_secs(120),
        ..DeliveryOptions::default()
    };
    let run = Running::temp(None, loopback_guard(), opts).await;
    let mut jobs = Vec::new();
    for e in 0..16u32 {
        let url = stalled_receiver(held_tx.clone()).await;
        for k in 0..8 {
            jobs.push(job(100 * e + k, &url, Method::Post, Format::Json, 1, false));
        }
    }
    run.engine.enqueue(&jobs).await.unwrap();
    // The stalled endpoints hold every slot they are given.
    tokio::time::timeout(Duration::from_secs(30), held.wait_for(|n| *n >= 48))
        .await
        .expect("stalled endpoints took their slots")
        .unwrap();
    let mut healthy = HttpServer::start(None, |_| Reply::status(204)).await;
    let j = job(
        9_999,
        &format!("{}/ok", healthy.url()),
        Method::Post,
        Format::Json,
        1,
        false,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    let got = healthy
        .next_request_within(Duration::from_secs(60))
        .await
        .expect("the healthy endpoint is served while the others stall");
    assert_eq!(got.header("webhook-id"), Some(j.webhook_id.as_str()));
    let c = &run.engine.counters;
    assert_eq!(
        c.retried.load(Ordering::Relaxed) + c.dead.load(Ordering::Relaxed),
        0,
        "no stalled attempt had finished"
    );
    // At most 48 of the 64 slots in shared use plus one first attempt per stalled endpoint
    // from the reserve; never all 64.
    let in_flight = *held.borrow();
    assert!(in_flight < 64, "{in_flight} stalled attempts in flight");
    run.stop.cancel();
}

/// A receiver answering 200 with an endless body: the attempt counts as delivered after the
/// headers and the first KiB; the body is not read further (it used to be read up to 32 MiB,
/// then the attempt failed and was retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_response_body_is_not_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sent_tx, mut sent) = tokio::sync::watch::channel(None::<u64>);
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        tcp.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(65536));
        let mut total = 0u64;
        // Until the client closes, or 64 MiB: far more than postcall may read.
        while total < 64 << 20 {
            if tcp.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            total += 65536;
        }
        sent_tx.send(Some(total)).unwrap();
    });
    let run = Running::temp(None, loopback_guard(), fast()).await;
    let j = job(
        1,
        &format!("http://{addr}/big"),
        Method::Post,
        Format::Json,
        0,
        false,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    run.settle(0).await;
    assert_eq!(run.engine.counters.delivered.load(Ordering::Relaxed), 1);
    let total = tokio::time::timeout(Duration::from_secs(30), sent.wait_for(Option::is_some))
        .await
        .expect("the receiver learns the client is gone")
        .unwrap()
        .unwrap();
    assert!(
        total < 16 << 20,
        "the receiver wrote {total} bytes before postcall hung up"
    );
    run.stop().await;
}

/// The data directory is 0700 and its files 0600 (they hold call records and receiver URLs
/// with their `sig`); looser modes left by an older version are tightened.
#[cfg(unix)]
#[test]
fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let old = root.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outbox = Outbox::open_with_reserve(&dir.join("outbox.redb"), 4096).unwrap();
    drop(outbox);
    let state = postcall::run::state::SavedState {
        open: postcall::session::Assembler::new(Arc::default()).snapshot(),
        closed: Vec::new(),
    };
    postcall::run::state::save(&dir.join("sessions.json"), &state).unwrap();
    let reopened = Outbox::open(&old.join("outbox.redb")).unwrap();
    drop(reopened);
    std::fs::set_permissions(
        old.join("outbox.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(Outbox::open(&old.join("outbox.redb")).unwrap());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&old), 0o700);
    for f in [
        dir.join("outbox.redb"),
        dir.join("outbox.redb.reserve"),
        dir.join("sessions.json"),
        old.join("outbox.redb"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// A key source whose answer the test changes.
struct SwitchKeys(std::sync::Mutex<postcall::delivery::KeyLookup>);

impl postcall::delivery::KeySource for SwitchKeys {
    fn key(&self, _trigger_id: &str) -> postcall::delivery::KeyLookup {
        self.0.lock().unwrap().clone()
    }
}

const ROTATED: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn key(secret: &str) -> postcall::delivery::KeyLookup {
    postcall::delivery::KeyLookup::Key(
        postcall::delivery::sign::SigningKey::parse(&Secret::new(secret)).unwrap(),
    )
}

async fn engine_with(keys: Arc<dyn postcall::delivery::KeySource>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
    let http = HttpClient::with_guard(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions::default(),
        loopback_guard(),
    );
    let engine = Engine::new(outbox, http, fast());
    engine.use_keys(keys);
    let rx = CancellationToken::new();
    let stop = rx.clone();
    let task = tokio::spawn(engine.clone().run(rx));
    Running {
        engine,
        stop,
        task,
        _dir: Some(dir),
    }
}

/// A key source whose first lookup panics (a bug in an attempt), then answers.
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl postcall::delivery::KeySource for PanicsOnce {
    fn key(&self, _trigger_id: &str) -> postcall::delivery::KeyLookup {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a bug in an attempt");
        }
        key(SECRET)
    }
}

/// An attempt whose task panics leaves no outcome: its slot and its job are freed, it is
/// counted, and the job (still pending in the outbox) is attempted again and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_panics_is_counted_and_its_job_attempted_again() {
    let mut rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let run = engine_with(Arc::new(PanicsOnce(Default::default()))).await;
    let j = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        2,
        true,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.next_request())
        .await
        .expect("attempted again after the panic");
    verify(&got, &got.body);
    run.settle(0).await;
    let c = &run.engine.counters;
    assert_eq!(
        c.lost_attempts.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(c.delivered.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Jobs hold no secret: each attempt is signed with the trigger's key of the moment, so after
/// a rotation the retry carries the new signature (Standard Webhooks semantics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_signed_with_the_current_key() {
    let keys = Arc::new(SwitchKeys(std::sync::Mutex::new(key(SECRET))));
    let k = keys.clone();
    let mut rx = HttpServer::start(None, move |_| {
        // Rotate as soon as the first attempt arrives; that attempt fails.
        let mut cur = k.0.lock().unwrap();
        let first = *cur == key(SECRET);
        *cur = key(ROTATED);
        Reply::status(if first { 503 } else { 200 })
    })
    .await;
    let run = engine_with(keys).await;
    let j = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        2,
        true,
    );
    run.engine.enqueue(std::slice::from_ref(&j)).await.unwrap();
    let (a, b) = (rx.next_request().await, rx.next_request().await);
    verify(&a, &a.body);
    let new = standardwebhooks::Webhook::new(ROTATED).unwrap();
    new.verify(&b.body, &b.headers)
        .expect("the retry is signed with the new key");
    assert!(standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&b.body, &b.headers)
        .is_err());
    run.settle(0).await;
    run.stop().await;
}

/// A signed job whose trigger is gone cannot be signed: it becomes a dead letter saying so,
/// without a request; unsigned jobs are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_job_of_a_removed_trigger_is_dead_lettered() {
    let keys = Arc::new(SwitchKeys(std::sync::Mutex::new(
        postcall::delivery::KeyLookup::Removed,
    )));
    let mut rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let run = engine_with(keys).await;
    let signed = job(
        1,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        2,
        true,
    );
    let unsigned = job(
        2,
        &format!("{}/h", rx.url()),
        Method::Post,
        Format::Json,
        2,
        false,
    );
    run.engine
        .enqueue(&[signed.clone(), unsigned.clone()])
        .await
        .unwrap();
    let got = rx.next_request().await;
    assert_eq!(got.header("webhook-id"), Some(unsigned.webhook_id.as_str()));
    run.settle(1).await;
    let dead = run
        .engine
        .outbox()
        .embedded()
        .unwrap()
        .dead_one(&signed.webhook_id)
        .unwrap();
    assert_eq!(
        dead.last_error.as_deref(),
        Some("trigger trig was removed: the delivery cannot be signed")
    );
    assert_eq!(dead.attempts, 0);
    assert!(rx
        .next_request_within(Duration::from_millis(300))
        .await
        .is_none());
    run.stop().await;
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A webhook given up for good is logged at WARN with its reason (visible at the default
/// level of every command); retried and delivered attempts stay at INFO.
#[tokio::test(flavor = "current_thread")]
async fn dead_letters_are_logged_at_warn_with_the_reason() {
    let logs = LogCapture::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    // This runtime has one thread: the engine's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let rx = HttpServer::start(None, |r| {
        if r.uri.ends_with("/ok") {
            Reply::status(200)
        } else {
            Reply::status(404)
        }
    })
    .await;
    let run = Running::temp(None, loopback_guard(), fast()).await;
    let gone = job(
        1,
        &format!("{}/gone", rx.url()),
        Method::Post,
        Format::Json,
        3,
        false,
    );
    let ok = job(
        2,
        &format!("{}/ok", rx.url()),
        Method::Post,
        Format::Json,
        3,
        false,
    );
    run.engine.enqueue(&[gone.clone(), ok]).await.unwrap();
    run.settle(1).await;
    run.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    for want in [
        "WARN",
        "delivery dead-lettered",
        gone.webhook_id.as_str(),
        "trigger_id=trig",
        "reason=HTTP 404",
        "attempts=1",
    ] {
        assert!(line.contains(want), "{want} not in {line}");
    }
}

/// Per lane, jobs are attempted in the order they are due: a stored backlog (written before
/// the engine ran) first, then the jobs written while it runs — whether those are held in
/// memory or read back — each batch in its order. One attempt at a time makes the order
/// the receiver sees the order of the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_is_served_in_due_order_backlog_first() {
    let mut rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let url = format!("{}/h", rx.url());
    let base = postcall::clock::WallTime::now().as_us();
    let numbered = |from: u32, to: u32| -> Vec<Job> {
        (from..to)
            .map(|i| {
                let mut j = job(i, &url, Method::Post, Format::Json, 1, false);
                j.next_attempt_us = base + i64::from(i);
                j.created_us = j.next_attempt_us;
                j
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
    let backlog = numbered(0, 6);
    let written = backlog.clone();
    outbox.call(move |s| s.enqueue(&written)).await.unwrap();
    let opts = DeliveryOptions {
        max_in_flight: 1,
        max_in_flight_per_endpoint: 1,
        ..fast()
    };
    let mut run = Running::start(outbox, None, loopback_guard(), opts).await;
    run._dir = Some(dir);
    let later = [numbered(6, 10), numbered(10, 13), numbered(13, 20)];
    for batch in &later {
        run.engine.enqueue(batch).await.unwrap();
    }
    let expected: Vec<String> = backlog
        .iter()
        .chain(later.iter().flatten())
        .map(|j| j.webhook_id.clone())
        .collect();
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        seen.push(
            rx.next_request()
                .await
                .header("webhook-id")
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, expected);
    run.settle(0).await;
    run.stop().await;
}

/// Only the jobs actually written are handed to the engine in memory: a second copy in the
/// same batch, or of a job already pending, is not (it would be attempted twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_written_jobs_are_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    let storage: postcall::delivery::Storage =
        Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap()).into();
    let url = "http://127.0.0.1:9/h";
    let a = job(1, url, Method::Post, Format::Json, 1, false);
    let b = job(2, url, Method::Post, Format::Json, 1, false);
    let (n, handed) = storage
        .enqueue_handed(vec![a.clone(), a.clone(), b.clone()], Vec::new())
        .await
        .unwrap();
    assert_eq!(n, 2);
    let ids: Vec<&str> = handed.iter().map(|j| j.webhook_id.as_str()).collect();
    assert_eq!(ids, [a.webhook_id.as_str(), b.webhook_id.as_str()]);
    let (n, handed) = storage
        .enqueue_handed(vec![b.clone()], Vec::new())
        .await
        .unwrap();
    assert_eq!(
        (n, handed.len()),
        (0, 0),
        "already pending: not handed over again"
    );
}

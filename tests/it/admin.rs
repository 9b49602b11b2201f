//! The admin listener under hostile clients, on 127.0.0.1: idle and slow-header connections
//! are closed and capped, DNS-rebound and cross-site requests are refused, the dead letters
//! need the token, a non-loopback bind without a token does not start.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::delivery::{webhook_id, Completion, DeliveryOptions, Endpoint, Engine, Job, Outbox};
use postcall::net::{HttpClient, Secret};
use postcall::run::admin::{self, AdminOptions};
use postcall::run::metrics::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "adm-0123456789abcdef";

/// Sends `request` as is and returns the status and body (the listener closes after one
/// answer).
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

fn post(path: &str, host: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n{extra}\r\n")
}

/// Idle connections and connections that never finish their headers are closed after the
/// header timeout; no more than `max_connections` are ever served at once (the rest wait in
/// the kernel's queue, holding no descriptor of postcall's), and `/healthz` answers as soon as
/// the flood is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_capped() {
    let reg = Registry {
        admin: Some(Arc::default()),
        ..Registry::default()
    };
    let counters = reg.admin.clone().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let opts = AdminOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_connections: 8,
        header_timeout: Duration::from_millis(300),
        ..AdminOptions::default()
    };
    let (addr, _task) = admin::serve(opts, reg, shutdown).await.unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..40 {
        clients.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if n % 2 == 1 {
                // Slow headers: a request line and then nothing.
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
                    .await
                    .unwrap();
            }
            let mut buf = Vec::new();
            // The server closes (EOF, possibly after a 408) or resets.
            let _ = s.read_to_end(&mut buf).await;
        });
    }
    let mut peak = 0;
    let all_closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            peak = peak.max(counters.open_connections.load(Ordering::Relaxed));
            tokio::select! {
                r = clients.join_next() => match r {
                    Some(r) => r.unwrap(),
                    None => break,
                },
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    assert!(
        all_closed.is_ok(),
        "idle admin connections were never closed"
    );
    assert!(peak <= 8, "{peak} admin connections served at once");
    assert_eq!(counters.connections.load(Ordering::Relaxed), 40);
    let (status, body) = raw(addr, &get("/healthz", &addr.to_string(), "")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

fn dead_job(n: u32) -> Job {
    let cdr = serde_json::json!({"id": format!("s{n}"), "cliNum": "+14155550123"});
    Job {
        webhook_id: webhook_id(&format!("s{n}"), "trig"),
        trigger_id: "trig".into(),
        endpoint: Endpoint {
            url: "https://alice:pa55word@crm.example.com/h?sig=SIGVALUE".into(),
            method: postcall::delivery::Method::Post,
            format: postcall::delivery::Format::Json,
            retries: 0,
            signed: false,
        },
        payload: postcall::delivery::payload::payload("trig", "u", "a", &cdr, &Default::default()),
        attempts: 1,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    }
}

async fn with_dead_letter(
    token: Option<&str>,
) -> (SocketAddr, Job, tempfile::TempDir, CancellationToken) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
    let j = dead_job(1);
    outbox.enqueue(std::slice::from_ref(&j)).unwrap();
    outbox
        .complete(&j, Completion::Dead("HTTP 500".into()))
        .unwrap();
    let http = HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let engine = Engine::new(outbox, http, DeliveryOptions::default());
    let reg = Registry {
        engine: Some(engine),
        ..Registry::default()
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let opts = AdminOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: token.map(Secret::new),
        allowed_hosts: vec!["postcall.internal".into()],
        ..AdminOptions::default()
    };
    let (addr, _) = admin::serve(opts, reg, shutdown).await.unwrap();
    (addr, j, dir, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_cross_site_and_tokenless_requests_are_refused() {
    let (addr, j, _dir, _stop) = with_dead_letter(Some(TOKEN)).await;
    let host = addr.to_string();
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let resend = format!("/deliveries/dead/{}/resend", j.webhook_id);

    // DNS rebinding: a foreign name resolving to 127.0.0.1.
    let (s, _) = raw(addr, &get("/deliveries/dead", "evil.example:9646", &bearer)).await;
    assert_eq!(s, 403);
    let (s, _) = raw(addr, &get("/metrics", "evil.example", "")).await;
    assert_eq!(s, 403);
    let (s, _) = raw(addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(s, 403, "no Host at all");
    // Dead letters need the token once one is set.
    let (s, _) = raw(addr, &get("/deliveries/dead", &host, "")).await;
    assert_eq!(s, 401);
    let (s, _) = raw(
        addr,
        &get("/deliveries/dead", &host, "Authorization: Bearer nope\r\n"),
    )
    .await;
    assert_eq!(s, 401);
    let (s, body) = raw(
        addr,
        &get("/deliveries/dead", "postcall.internal:9646", &bearer),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(&j.webhook_id));
    // No userinfo (user or password) and no query in what the listener shows.
    for leak in ["alice", "pa55word", "SIGVALUE"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    // Cross-site POSTs (a web page elsewhere) are refused even with the token.
    for headers in [
        format!("{bearer}Origin: http://evil.example\r\n"),
        format!("{bearer}Sec-Fetch-Site: cross-site\r\n"),
        format!("{bearer}Origin: null\r\n"),
    ] {
        let (s, _) = raw(addr, &post(&resend, &host, &headers)).await;
        assert_eq!(s, 403, "{headers}");
    }
    let (s, _) = raw(addr, &post(&resend, &host, "")).await;
    assert_eq!(s, 401);
    // The path that used to panic in the router is a plain 404.
    let (s, _) = raw(addr, &post("/deliveries/dead/resend", &host, &bearer)).await;
    assert_eq!(s, 404);
    let same = format!("{bearer}Origin: http://{host}\r\nSec-Fetch-Site: same-origin\r\n");
    let (s, body) = raw(addr, &post(&resend, &host, &same)).await;
    assert_eq!((s, body.as_str()), (200, "queued\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_resending_is_off_and_dead_letters_stay_local() {
    let (addr, j, _dir, _stop) = with_dead_letter(None).await;
    let host = addr.to_string();
    let (s, _) = raw(addr, &get("/deliveries/dead", &host, "")).await;
    assert_eq!(s, 200, "loopback without a token: readable from this host");
    let (s, _) = raw(addr, &get("/deliveries/dead", "attacker.example", "")).await;
    assert_eq!(s, 403);
    let resend = format!("/deliveries/dead/{}/resend", j.webhook_id);
    let (s, _) = raw(addr, &post(&resend, &host, "")).await;
    assert_eq!(s, 403);
}

/// `--admin 0.0.0.0:…` without a token is refused before anything is opened or bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_admin_without_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.toml");
    std::fs::write(
        &path,
        "[kazoo]\nwebsocket_url = \"ws://127.0.0.1:9/\"\naccounts = [\"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"]\nauth_token = \"t\"\n[delivery]\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let cfg = postcall::config::PluginConfig::load(&path).unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let opts = postcall::run::sidecar::RunOptions {
        admin: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    };
    let err = postcall::run::sidecar::run(cfg, opts, shutdown, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin.token_env") && err.contains("not on loopback"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the refusal"
    );
}

/// The shipped unit raises the descriptor limit well above what postcall can use and keeps
/// the usual systemd hardening.
#[test]
fn the_systemd_unit_sets_limits_and_hardening() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/postcall.service"),
    )
    .unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} not set"))
            .to_owned()
    };
    let nofile: u64 = value("LimitNOFILE").parse().unwrap();
    assert!(nofile >= 8192, "LimitNOFILE={nofile}");
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/var/lib/postcall"),
        ("UMask", "0077"),
        ("StateDirectoryMode", "0700"),
    ] {
        assert_eq!(value(k), v, "{k}");
    }
}

//! No secret is ever printed or logged. Every kind of secret postcall holds — a
//! `whsec_` signing secret, a Kazoo auth token, a Crossbar API key, a URL's `sig` query value,
//! the user and password of a URL — is fed through every error path we know of (configuration
//! and trigger parse errors, `check`, a rejected trigger reload, a refused subscription and a
//! close reason echoing the token, a refused API key, a failed delivery whose receiver echoes
//! its URL, the dead-letter listings), with every log line captured at TRACE, and the output
//! is searched for each secret.
//!
//! Its own test binary: the capturing subscriber is the process-wide default, so events from
//! every thread (blocking pool included) are seen.

#![allow(dead_code)]

#[path = "it/servers/mod.rs"]
mod servers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::config::PluginConfig;
use postcall::delivery::{webhook_id, DeliveryOptions, Endpoint, Engine, Job, Outbox};
use postcall::net::guard::AddressGuard;
use postcall::net::{HttpClient, Secret};
use postcall::source::auth::{Auth, Credentials};
use postcall::source::backoff::Backoff;
use postcall::source::blackhole::{self, BlackholeOptions, SourceCounters};
use postcall::source::crossbar::Crossbar;
use tokio::sync::mpsc;

use servers::blackhole::Blackhole;
use servers::http::{HttpServer, Reply};

const WHSEC_KEY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KAZOO_TOKEN: &str = "kzTOKEN7f3a9e0b1c2d4e5f";
const API_KEY: &str = "apiKEY93c1d0e5f7a2b4c6d8";
const SIG: &str = "sigVALUE8d7c6b5a4f3e";
const USER: &str = "hookUSER42x";
const PASS: &str = "hookPASS99y";
const ACCOUNT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";

fn whsec() -> String {
    format!("whsec_{WHSEC_KEY}")
}

const SECRETS: &[&str] = &[WHSEC_KEY, KAZOO_TOKEN, API_KEY, SIG, USER, PASS];

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What the test itself saw: error messages, CLI output, listings.
#[derive(Default)]
struct Seen(String);

impl Seen {
    fn add(&mut self, what: &str, text: impl std::fmt::Display) {
        self.0.push_str(&format!("--- {what}\n{text}\n"));
    }
}

fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
        .args(args)
        .env("RUST_LOG", "trace")
        .output()
        .expect("postcall runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config_errors(dir: &std::path::Path, seen: &mut Seen) {
    let broken = [
        // The secret on the line of a syntax error (an unclosed string).
        format!("[kazoo]\nwebsocket_url = \"ws://127.0.0.1:9/\"\nauth_token = \"{KAZOO_TOKEN}\n"),
        // A type error on the line after it.
        format!("[kazoo]\napi_key = \"{API_KEY}\"\nping_secs = \"often\"\n"),
        // The secret as the value of the wrong type.
        format!("[kazoo]\nping_secs = \"{KAZOO_TOKEN}\"\n"),
        // A bare (unquoted) secret.
        format!("[kazoo]\napi_key = {API_KEY}\n"),
        // Two secrets, one as a value of the wrong type.
        format!("[admin]\ntoken = \"{API_KEY}\"\nmax_connections = \"{KAZOO_TOKEN}\"\n"),
    ];
    for (n, text) in broken.iter().enumerate() {
        let path = dir.join(format!("broken{n}.toml"));
        std::fs::write(&path, text).unwrap();
        let e = PluginConfig::load(&path).unwrap_err();
        assert!(e.to_string().contains("line "), "{e}");
        seen.add("config error", &e);
        seen.add("check", cli(&["check", "--config", path.to_str().unwrap()]));
    }
}

fn trigger_files(dir: &std::path::Path, seen: &mut Seen) -> std::path::PathBuf {
    let url = format!("https://{USER}:{PASS}@crm.example.com/h?sig={SIG}");
    let head = format!("[[trigger]]\nid = \"t1\"\ntenant = \"{ACCOUNT}\"\n[trigger.action]\n");
    let broken = [
        format!(
            "{head}url = \"{url}\"\nsecret = \"{}\"\nretries = \"3\"\n",
            whsec()
        ),
        format!("{head}url = \"{url}\"\nsecret = \"{}\n", whsec()),
        format!("{head}url = \"{url}\nmethod = \"POST\"\n"),
        format!("{head}url = \"{url}\"\nmethod = \"{}\"\n", whsec()),
        format!("{head}secret = {}\n", whsec()),
    ];
    let triggers = dir.join("triggers.toml");
    let config = dir.join("plugin.toml");
    std::fs::write(
        &config,
        "[triggers]\nfiles = [\"triggers.toml\"]\nwatch_ms = 0\n",
    )
    .unwrap();
    for text in &broken {
        std::fs::write(&triggers, text).unwrap();
        seen.add(
            "check (triggers)",
            cli(&["check", "--config", config.to_str().unwrap()]),
        );
        let tc = PluginConfig::load(&config)
            .unwrap()
            .trigger_config()
            .unwrap();
        let e = postcall::trigger::reload::build_from_files(&tc.sources).unwrap_err();
        seen.add("trigger error", &e);
    }
    config
}

/// A running reloader rejects a broken change: its warning is logged.
async fn rejected_reload(config: &std::path::Path) {
    let dir = config.parent().unwrap();
    std::fs::write(
        dir.join("triggers.toml"),
        format!(
            "[[trigger]]\nid = \"t1\"\ntenant = \"{ACCOUNT}\"\n[trigger.action]\nurl = \"https://crm.example.com/h?sig={SIG}\"\nsecret = \"{}\"\n",
            whsec()
        ),
    )
    .unwrap();
    let tc = PluginConfig::load(config)
        .unwrap()
        .trigger_config()
        .unwrap();
    let reloader = postcall::trigger::Reloader::new(tc.sources).unwrap();
    let (req_tx, req_rx) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let mut status = reloader.status();
    tokio::spawn(reloader.clone().run(
        None::<postcall::trigger::remote::HttpFetcher>,
        req_rx,
        shutdown,
    ));
    std::fs::write(
        dir.join("triggers.toml"),
        format!(
            "[[trigger]]\nid = \"t1\"\ntenant = \"{ACCOUNT}\"\n[trigger.action]\nurl = \"https://crm.example.com/h?sig={SIG}\"\nsecret = \"{}\nretries = 2\n",
            whsec()
        ),
    )
    .unwrap();
    req_tx.send(()).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.rejected >= 1),
    )
    .await
    .expect("the broken change is rejected")
    .unwrap();
}

/// A server that echoes the token in a refused subscription and in a close reason.
async fn blackhole_echoes(seen: &mut Seen) {
    let mut bh = Blackhole::start(&[KAZOO_TOKEN], &[ACCOUNT]).await;
    let options = |url: String| BlackholeOptions {
        url,
        accounts: vec![ACCOUNT.into()],
        bindings: vec!["call.*.*".into()],
        ping_interval: Duration::from_secs(5),
        pong_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        subscribe_timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(50),
        },
        tls: postcall::net::tls::client_config(None).unwrap(),
        max_frame_bytes: 1 << 20,
    };
    let auth = || {
        Auth::new(
            Credentials::Token(Secret::new(KAZOO_TOKEN)),
            None,
            Duration::ZERO,
            Duration::ZERO,
        )
    };
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let counters = Arc::new(SourceCounters::default());
    tokio::spawn(blackhole::run(
        options(bh.url()),
        auth(),
        tx,
        shutdown.clone(),
        counters.clone(),
    ));
    bh.wait_subscribed(1).await;
    bh.close_all(&format!("token {KAZOO_TOKEN} revoked"));
    bh.wait_subscribed(2).await;
    while let Ok(m) = rx.try_recv() {
        seen.add("source message", format!("{m:?}"));
    }
    // A server that does not know the token: Kazoo echoes it in the refusal.
    let refusing = Blackhole::start(&["another-token"], &[ACCOUNT]).await;
    let (tx2, _rx2) = mpsc::channel(64);
    let counters2 = Arc::new(SourceCounters::default());
    tokio::spawn(blackhole::run(
        options(refusing.url()),
        auth(),
        tx2,
        shutdown,
        counters2.clone(),
    ));
    let mut st = counters2.status.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        st.wait_for(|_| {
            counters2
                .subscribe_errors
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        }),
    )
    .await
    .expect("the subscription is refused")
    .unwrap();
    stop.cancel();
}

/// Crossbar refuses the API key and echoes it.
async fn crossbar_echoes(seen: &mut Seen) {
    let server = HttpServer::start(None, |_| {
        Reply::json(
            401,
            &serde_json::json!({"status": "error", "message": format!("invalid api key {API_KEY}")}),
        )
    })
    .await;
    let http = HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let cb = Crossbar::new(&server.url(), http, Duration::from_secs(5));
    let auth = Auth::new(
        Credentials::ApiKey(Secret::new(API_KEY)),
        Some(cb),
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let e = auth
        .token(postcall::clock::WallTime::from_us(0))
        .await
        .unwrap_err();
    tracing::error!(error = %e, "token exchange failed (as the source logs it)");
    seen.add("api key refused", &e);
}

/// A delivery to a URL with user, password and `sig`, signed, whose receiver fails and echoes
/// what it got; then the dead-letter listings.
async fn delivery(dir: &std::path::Path, seen: &mut Seen) {
    let rx = HttpServer::start(None, |r| {
        Reply::json(
            500,
            &serde_json::json!({"error": "rejected", "echo": r.uri, "auth": r.header("authorization")}),
        )
    })
    .await;
    let base = rx.url().replace("http://", "");
    let url = format!("http://{USER}:{PASS}@{base}/hook?sig={SIG}");
    let data = dir.join("data");
    let outbox = Arc::new(Outbox::open(&data.join("outbox.redb")).unwrap());
    let http = HttpClient::with_guard(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
        AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]),
    );
    let engine = Engine::new(outbox.clone(), http, DeliveryOptions::default());
    let key = postcall::delivery::sign::SigningKey::parse(&Secret::new(whsec())).unwrap();
    engine.use_keys(Arc::new(postcall::delivery::StaticKeys(
        [("t1".to_owned(), key)].into(),
    )));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(engine.clone().run(shutdown));
    let cdr = serde_json::json!({"id": "s1"});
    let job = Job {
        webhook_id: webhook_id("s1", "t1"),
        trigger_id: "t1".into(),
        endpoint: Endpoint {
            url,
            method: postcall::delivery::Method::Post,
            format: postcall::delivery::Format::Json,
            retries: 0,
            signed: true,
        },
        payload: postcall::delivery::payload::payload(
            "t1",
            "u",
            ACCOUNT,
            &cdr,
            &Default::default(),
        ),
        attempts: 0,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    };
    engine.enqueue(std::slice::from_ref(&job)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while outbox.dead_len().unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("dead-lettered");
    stop.cancel();
    task.await.unwrap();
    for j in outbox.dead().unwrap() {
        seen.add("redacted", j.redacted());
    }
    drop((engine, outbox));
    let config = dir.join("deliveries.toml");
    std::fs::write(&config, "[delivery]\ndata_dir = \"data\"\n").unwrap();
    let c = config.to_str().unwrap();
    seen.add(
        "deliveries list",
        cli(&["deliveries", "--config", c, "list"]),
    );
    seen.add(
        "deliveries show",
        cli(&["deliveries", "--config", c, "show", &job.webhook_id]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Seen::default();

    config_errors(dir.path(), &mut seen);
    let config = trigger_files(dir.path(), &mut seen);
    rejected_reload(&config).await;
    blackhole_echoes(&mut seen).await;
    crossbar_echoes(&mut seen).await;
    delivery(dir.path(), &mut seen).await;

    let logs = capture.text();
    // Each path did run and report.
    for expected in [
        "Trigger change rejected",
        "subscription refused",
        "closed by server",
        "token exchange",
        "delivery attempt",
        "HTTP 500",
    ] {
        assert!(
            logs.contains(expected) || seen.0.contains(expected),
            "{expected:?} never reported"
        );
    }
    assert!(
        logs.lines().any(|l| l.contains("TRACE")),
        "TRACE events captured"
    );
    for secret in SECRETS {
        for (name, text) in [("logs", &logs), ("output", &seen.0)] {
            if let Some(line) = text.lines().find(|l| l.contains(secret)) {
                panic!("{secret} appears in the {name}: {line}");
            }
        }
    }
}

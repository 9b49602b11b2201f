//! The live Kazoo source against a fake Blackhole and a fake Crossbar on 127.0.0.1: the
//! protocol, tokens, reconnects and resyncs, keep-alive, shutdown, and CDRs equal to replay.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::net::Secret;
use postcall::run::driver::{drive, DriverCounters, DriverOptions};
use postcall::run::live::{self, KazooOptions};
use postcall::session::{ClosedSession, Settings};
use postcall::sim::{self, Pbx, DEMO_SEED};
use postcall::source::auth::{Auth, Credentials};
use postcall::source::backoff::Backoff;
use postcall::source::blackhole::{
    self, BlackholeOptions, SourceCounters, SourceMsg, SourceStatus,
};
use tokio::sync::{mpsc, watch};

use crate::run::accounts;
use crate::servers::blackhole::Blackhole;
use crate::servers::crossbar::Crossbar;

const TOKEN: &str = "static-token-0123456789";
const API_KEY: &str = "4a6e9c0f2b8d4e1a9c7b5d3f1e2a4b6c4a6e9c0f2b8d4e1a9c7b5d3f1e2a4b6c";

fn pbx() -> Pbx {
    Pbx::demo(DEMO_SEED)
}

fn account_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn fast_settings() -> Settings {
    Settings {
        grace_us: 50_000,
        ..Settings::default()
    }
}

/// A Blackhole that accepts the tokens a Crossbar (tokens living `token_ttl_secs`) hands out
/// for the API key, and options that log in with that key.
async fn api_key_rig(token_ttl_secs: i64) -> (Blackhole, Crossbar, KazooOptions) {
    let accts = accounts();
    let bh = Blackhole::start(&[], &account_refs(&accts)).await;
    let cb = Crossbar::start(pbx(), API_KEY, token_ttl_secs).await;
    let state = cb.state.clone();
    bh.accept_tokens(move |t| state.lock().unwrap().valid.contains(t));
    let mut o = opts(&bh.url(), Credentials::ApiKey(Secret::new(API_KEY)));
    o.crossbar_url = Some(cb.url());
    (bh, cb, o)
}

fn opts(url: &str, credentials: Credentials) -> KazooOptions {
    let mut o = KazooOptions::new(url, credentials, accounts());
    o.ping_interval = Duration::from_secs(5);
    o.pong_timeout = Duration::from_secs(5);
    o.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    o.request_timeout = Duration::from_secs(5);
    o.directory_refresh = None;
    o
}

fn call_id(frame: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(frame).unwrap();
    v["data"]["call_id"].as_str().unwrap_or_default().to_owned()
}

fn scenario(name: &str) -> Vec<String> {
    sim::scenario(name)
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .collect()
}

/// The source and the driver running, CDRs on `out`.
struct Pipeline {
    out: mpsc::Receiver<ClosedSession>,
    shutdown: CancellationToken,
    source: Arc<SourceCounters>,
    driver: Arc<DriverCounters>,
    settings: watch::Receiver<Arc<Settings>>,
}

impl Pipeline {
    async fn start(o: KazooOptions, base: Settings) -> Self {
        let rx = CancellationToken::new();
        let shutdown = rx.clone();
        let src = live::start(o, Arc::new(base), rx.clone()).await.unwrap();
        let (tx, out) = mpsc::channel(64);
        let driver = Arc::new(DriverCounters::default());
        let dopts = DriverOptions {
            tick: Duration::from_millis(20),
            tenants: src.accounts.iter().cloned().collect(),
            channels: src.channels.clone(),
            limits: Default::default(),
            backfill: None,
        };
        let settings = src.settings.clone();
        tokio::spawn(drive(
            None,
            src.settings,
            src.messages,
            tx,
            dopts,
            driver.clone(),
            rx,
        ));
        Self {
            out,
            shutdown,
            source: src.counters,
            driver,
            settings,
        }
    }

    async fn next(&mut self) -> ClosedSession {
        tokio::time::timeout(Duration::from_secs(10), self.out.recv())
            .await
            .expect("a CDR within 10 s")
            .expect("pipeline running")
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_gives_the_replay_cdr_with_directory_names() {
    let accts = accounts();
    let (mut bh, cb, mut o) = api_key_rig(3600).await;
    o.directory_refresh = Some(Duration::from_secs(3600));
    let mut p = Pipeline::start(o, fast_settings()).await;
    p.settings
        .wait_for(|s| !s.directory.devices.is_empty())
        .await
        .unwrap();
    bh.wait_subscribed(1).await;

    // Every account × binding subscribed, with Kazoo 4.3's fields.
    let reqs = bh.requests();
    assert_eq!(reqs.len(), accts.len());
    for r in &reqs {
        assert_eq!(r["action"], "subscribe");
        assert!(r["auth_token"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(r["request_id"].as_str().is_some());
        assert_eq!(r["data"]["binding"], "call.*.*");
        assert!(accts.contains(&r["data"]["account_id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(bh.rejected_upgrades(), 0, "no subprotocol header sent");

    let frames = scenario("ring_group_second_answers");
    for f in &frames {
        bh.push(f);
    }
    let got = p.next().await;
    let settings = p.settings.borrow().clone();
    let expected = postcall::replay::replay_str(&frames.join("\n"), settings.clone());
    assert_eq!(expected.len(), 1);
    assert_eq!(got.cdr, expected[0].cdr);
    // Names come from the PBX's directory, not the caller-id fallback.
    let pbx = pbx();
    let answering = pbx.accounts[0]
        .devices
        .iter()
        .find(|d| Some(d.username.as_str()) == got.cdr.answering.party.dev_num.as_deref())
        .expect("answering device in the directory");
    assert_eq!(
        got.cdr.answering.party.dev_name.as_deref(),
        Some(answering.name.as_str())
    );
    assert_eq!(cb.exchanges(), 1, "one token exchange, cached afterwards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscriptions_are_reported_and_the_rest_kept() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts[..1])).await;
    let (tx, mut rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let counters = Arc::new(SourceCounters::default());
    let o = BlackholeOptions {
        url: bh.url(),
        accounts: accts.clone(), // the second account is not the token's
        bindings: vec!["call.*.*".into(), "call.CHANNEL_FOO.*".into()],
        ping_interval: Duration::from_secs(5),
        pong_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        subscribe_timeout: Duration::from_secs(5),
        backoff: Backoff::default(),
        tls: postcall::net::tls::client_config(None).unwrap(),
        max_frame_bytes: 1 << 20,
    };
    let auth = Auth::new(
        Credentials::Token(Secret::new(TOKEN)),
        None,
        Duration::ZERO,
        Duration::ZERO,
    );
    tokio::spawn(blackhole::run(o, auth, tx, shutdown, counters.clone()));
    bh.wait_subscribed(1).await;
    let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let n = accts.len();
    assert_eq!(
        msg,
        SourceMsg::Connected {
            at: match msg {
                SourceMsg::Connected { at, .. } => at,
                _ => postcall::clock::WallTime::from_us(0),
            },
            reconnect: false,
            subscribed: 1,
            refused: 2 * n - 1,
        }
    );
    assert_eq!(
        counters
            .subscribe_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        (2 * n - 1) as u64
    );
}

/// Captures log output of the current thread (a current-thread runtime runs every task on it).
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

#[tokio::test]
async fn a_bad_token_is_retried_and_never_logged() {
    let logs = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let accts = accounts();
    let mut bh = Blackhole::start(&["the-right-one"], &account_refs(&accts)).await;
    let secret = "wrong-token-SECRET-42";
    let mut o = opts(&bh.url(), Credentials::Token(Secret::new(secret)));
    o.accounts.truncate(1);
    let p = Pipeline::start(o, fast_settings()).await;
    let mut status = p.source.status.subscribe();
    // Refused, backed off, refused again.
    for _ in 0..2 {
        status
            .wait_for(|s| *s == SourceStatus::Backoff)
            .await
            .unwrap();
        status
            .wait_for(|s| *s == SourceStatus::Connecting)
            .await
            .unwrap();
    }
    assert!(
        p.source
            .subscribe_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    // The operator fixes the token on the PBX side: the next attempt subscribes.
    bh.set_tokens(&[secret]);
    bh.wait_subscribed(1).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("failed to authenticate token [redacted]"),
        "{text}"
    );
    assert!(
        !text.contains("SECRET-42"),
        "token leaked into logs: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanged_tokens_are_refreshed_before_reconnecting() {
    // Tokens live 60 s and are renewed 120 s before expiry: every connect needs a new one.
    let (mut bh, cb, mut o) = api_key_rig(60).await;
    o.token_refresh_before = Duration::from_secs(120);
    let _p = Pipeline::start(o, fast_settings()).await;
    bh.wait_subscribed(1).await;
    assert_eq!(cb.exchanges(), 1);
    bh.drop_all();
    bh.wait_subscribed(2).await;
    assert_eq!(cb.exchanges(), 2, "a fresh token for the new socket");
    let issued = cb.state.lock().unwrap().issued.clone();
    let used: Vec<String> = bh
        .requests()
        .iter()
        .map(|r| r["auth_token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(used.first(), issued.first());
    assert_eq!(used.last(), issued.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_mid_call_reconnects_resubscribes_and_resyncs() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    let cb = Crossbar::start(pbx(), API_KEY, 3600).await;
    cb.state.lock().unwrap().valid.insert(TOKEN.into());
    let mut o = opts(&bh.url(), Credentials::Token(Secret::new(TOKEN)));
    o.crossbar_url = Some(cb.url());
    let mut p = Pipeline::start(o, fast_settings()).await;
    bh.wait_subscribed(1).await;

    // Call A loses its DESTROYs in the gap; call B is still up after it.
    let a: Vec<String> = scenario("pstn_answered");
    let b: Vec<String> = scenario("hold_resume");
    let a_up: Vec<&String> = a
        .iter()
        .filter(|f| !f.contains("CHANNEL_DESTROY"))
        .collect();
    let split = b.len() / 2;
    for f in a_up.iter().copied().chain(&b[..split]) {
        bh.push(f);
    }
    let b_ids: HashSet<String> = b.iter().map(|f| call_id(f)).collect();
    cb.state
        .lock()
        .unwrap()
        .channels
        .insert(accts[0].clone(), b_ids.into_iter().collect());
    // The pushes above are in flight on the socket; make sure they are in before dropping.
    let sentinel = r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#;
    bh.push(sentinel);
    let driver = p.driver.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while driver.skipped("missing_call_id") + driver.skipped("missing_data") == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("frames processed");
    let mut status = p.source.status.subscribe();
    bh.drop_all();
    let source = p.source.clone();
    status
        .wait_for(|_| {
            source
                .connections
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2
        })
        .await
        .unwrap();
    assert_eq!(
        bh.requests().len(),
        2 * accts.len(),
        "re-subscribed every account"
    );

    let first = p.next().await;
    assert_eq!(first.cdr.tags.get("gap").map(String::as_str), Some("1"));
    assert_eq!(
        first.cdr.tags.get("forced_close"),
        None,
        "closed by the resync, not the idle timeout"
    );
    assert!(first.cdr.answering.party.dev_num.is_some());
    assert_eq!(
        driver
            .resync_ended_legs
            .load(std::sync::atomic::Ordering::Relaxed) as usize,
        a_up.iter()
            .map(|f| call_id(f))
            .collect::<HashSet<_>>()
            .len()
    );

    for f in &b[split..] {
        bh.push(f);
    }
    let second = p.next().await;
    assert_eq!(second.cdr.tags.get("gap").map(String::as_str), Some("1"));
    let replayed = postcall::replay::replay_str(&b.join("\n"), Arc::new(fast_settings()));
    let mut expected = replayed[0].cdr.clone();
    expected.tags.insert("gap".into(), "1".into());
    assert_eq!(
        second.cdr, expected,
        "the call that spanned the gap is otherwise intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_skipped_and_counted() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    let mut p = Pipeline::start(
        opts(&bh.url(), Credentials::Token(Secret::new(TOKEN))),
        fast_settings(),
    )
    .await;
    bh.wait_subscribed(1).await;
    bh.push("{not json");
    bh.push(r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#);
    bh.push(r#"{"action":"surprise"}"#);
    let frames = scenario("pstn_answered");
    for f in &frames {
        bh.push(f);
    }
    let got = p.next().await;
    let expected = postcall::replay::replay_str(&frames.join("\n"), Arc::new(fast_settings()));
    assert_eq!(got.cdr, expected[0].cdr);
    assert_eq!(p.driver.skipped("invalid_json"), 1);
    assert_eq!(p.driver.skipped("unknown_action"), 1);
    assert_eq!(
        p.driver.skipped("missing_call_id") + p.driver.skipped("missing_data"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ping_drops_and_reconnects() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    let mut o = opts(&bh.url(), Credentials::Token(Secret::new(TOKEN)));
    o.ping_interval = Duration::from_millis(50);
    o.pong_timeout = Duration::from_millis(150);
    let p = Pipeline::start(o, fast_settings()).await;
    bh.wait_subscribed(1).await;
    bh.mute_all();
    bh.wait_subscribed(2).await;
    assert!(
        p.source
            .keepalive_timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// A close from the server is answered with a close frame (RFC 6455 §5.5.1), then the client
/// reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_is_answered_then_reconnected() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    let o = opts(&bh.url(), Credentials::Token(Secret::new(TOKEN)));
    let _p = Pipeline::start(o, fast_settings()).await;
    bh.wait_subscribed(1).await;
    bh.close_all("maintenance");
    bh.wait_subscribed(2).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while bh.close_replies() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server's close was answered with a close frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_backoff_is_prompt() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, _rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let counters = Arc::new(SourceCounters::default());
    let o = BlackholeOptions {
        url: format!("ws://127.0.0.1:{port}/"),
        accounts: accounts(),
        bindings: vec!["call.*.*".into()],
        ping_interval: Duration::from_secs(5),
        pong_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        subscribe_timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_secs(600),
            max: Duration::from_secs(600),
        },
        tls: postcall::net::tls::client_config(None).unwrap(),
        max_frame_bytes: 1 << 20,
    };
    let auth = Auth::new(
        Credentials::Token(Secret::new(TOKEN)),
        None,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut status = counters.status.subscribe();
    let task = tokio::spawn(blackhole::run(o, auth, tx, shutdown, counters.clone()));
    status
        .wait_for(|s| *s == SourceStatus::Backoff)
        .await
        .unwrap();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped while backing off for 5+ minutes")
        .unwrap();
    assert_eq!(*counters.status.borrow(), SourceStatus::Stopped);
}

#[tokio::test]
async fn the_fake_enforces_kazoo_rules() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let accts = accounts();
    let bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    // A subprotocol header is refused at the upgrade.
    let mut req = bh.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "kazoo".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    assert_eq!(bh.rejected_upgrades(), 1);
    // Without a token, and with the keys outside `data`, subscribing fails like Kazoo.
    let (mut ws, _) = tokio_tungstenite::connect_async(bh.url()).await.unwrap();
    let mut ask = async |v: serde_json::Value| {
        ws.send(Message::text(v.to_string())).await.unwrap();
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("reply")
        };
        serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap()
    };
    let r = ask(serde_json::json!({"action":"subscribe","request_id":"r1","data":{"account_id":accts[0],"binding":"call.*.*"}})).await;
    assert_eq!(r["data"]["errors"][0], "authentication token required");
    assert_eq!(r["request_id"], "r1");
    let r = ask(serde_json::json!({"action":"subscribe","auth_token":TOKEN,"account_id":accts[0],"binding":"call.*.*","data":{"x":1}})).await;
    assert_eq!(
        r["data"]["errors"][0],
        "missing required keys : account_id, binding"
    );
    let r = ask(serde_json::json!({"action":"subscribe","auth_token":TOKEN,"data":{"account_id":accts[0],"binding":"call.*.*"}})).await;
    assert_eq!(r["status"], "success");
    assert_eq!(r["data"]["subscribed"].as_array().unwrap().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_private_ca_and_descendant_discovery() {
    let ca = crate::servers::tls::TestCa::new();
    let accts = accounts();
    let mut bh = Blackhole::start_with(Some(&ca), &[TOKEN], &account_refs(&accts)).await;
    let cb = Crossbar::start(pbx(), API_KEY, 3600).await;
    cb.state.lock().unwrap().valid.insert(TOKEN.into());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();

    // Without the CA the certificate is refused: nothing subscribes.
    let mut o = opts(&bh.url(), Credentials::Token(Secret::new(TOKEN)));
    o.accounts.truncate(1);
    let untrusting = Pipeline::start(o.clone(), fast_settings()).await;
    let mut status = untrusting.source.status.subscribe();
    status
        .wait_for(|s| *s == SourceStatus::Backoff)
        .await
        .unwrap();
    assert_eq!(*bh.subscribed.borrow(), 0);
    drop(untrusting);

    // With it, and with the sub-accounts discovered from the first account.
    o.ca_file = Some(ca_file);
    o.crossbar_url = Some(cb.url());
    o.discover_descendants = true;
    let _p = Pipeline::start(o, fast_settings()).await;
    bh.wait_subscribed(1).await;
    let source = _p.source.clone();
    _p.source
        .status
        .subscribe()
        .wait_for(|s| *s == SourceStatus::Subscribed)
        .await
        .unwrap();
    assert!(
        source
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let subscribed: HashSet<String> = bh
        .requests()
        .iter()
        .map(|r| r["data"]["account_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subscribed, accts.iter().cloned().collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_a_replayable_fixture_without_the_token() {
    let accts = accounts();
    let mut bh = Blackhole::start(&[TOKEN], &account_refs(&accts)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    let out = dir.path().join("recorded.jsonl");
    std::fs::write(
        &cfg,
        format!(
            "[kazoo]\nwebsocket_url = \"{}\"\naccounts = [\"{}\"]\nauth_token_env = \"POSTCALL_TEST_TOKEN\"\ndirectory_refresh_secs = 0\n",
            bh.url(),
            accts[0]
        ),
    )
    .unwrap();
    let frames = scenario("call_pickup");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postcall"));
    cmd.args([
        "record",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["--frames", &frames.len().to_string()])
    .env("POSTCALL_TEST_TOKEN", TOKEN);
    let child = tokio::task::spawn_blocking(move || cmd.output());
    bh.wait_subscribed(1).await;
    for f in &frames {
        bh.push(f);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("record exits after its frames")
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let recorded = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        recorded,
        frames.iter().map(|f| format!("{f}\n")).collect::<String>()
    );
    assert!(!recorded.contains(TOKEN));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(TOKEN));
}

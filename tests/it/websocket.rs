//! The Blackhole client against a hostile websocket server on 127.0.0.1: a server that stops
//! reading and floods pings cannot stall the reader; the keep-alive ends the connection and
//! readiness says so; a message over the size limit ends the connection, counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::net::Secret;
use postcall::run::admin::readiness;
use postcall::run::metrics::Registry;
use postcall::source::auth::{Auth, Credentials};
use postcall::source::backoff::Backoff;
use postcall::source::blackhole::{self, BlackholeOptions, SourceCounters, SourceStatus};
use tokio::sync::{mpsc, watch};

use crate::servers::blackhole::Blackhole;

const TOKEN: &str = "ws-hostile-token";
const ACCOUNT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";

fn options(url: String, max_frame_bytes: usize) -> BlackholeOptions {
    BlackholeOptions {
        url,
        accounts: vec![ACCOUNT.into()],
        bindings: vec!["call.*.*".into()],
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
        subscribe_timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        tls: postcall::net::tls::client_config(None).unwrap(),
        max_frame_bytes,
    }
}

struct Client {
    counters: Arc<SourceCounters>,
    frames: mpsc::Receiver<blackhole::SourceMsg>,
    _stop: CancellationToken,
}

async fn connect(bh: &mut Blackhole, max_frame_bytes: usize) -> Client {
    let (tx, frames) = mpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let counters = Arc::new(SourceCounters::default());
    let auth = Auth::new(
        Credentials::Token(Secret::new(TOKEN)),
        None,
        Duration::ZERO,
        Duration::ZERO,
    );
    tokio::spawn(blackhole::run(
        options(bh.url(), max_frame_bytes),
        auth,
        tx,
        shutdown,
        counters.clone(),
    ));
    bh.wait_subscribed(1).await;
    let mut status = counters.status.subscribe();
    status
        .wait_for(|s| *s == SourceStatus::Subscribed)
        .await
        .unwrap();
    Client {
        counters,
        frames,
        _stop: stop,
    }
}

/// The server stops reading and floods pings: the client's pongs cannot be written, which
/// used to block the read loop on a flush forever (keep-alive never fired, `/readyz` stayed
/// 200). Now the connection is dropped and readiness reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_socket_flooding_pings_is_dropped() {
    let mut bh = Blackhole::start(&[TOKEN], &[ACCOUNT]).await;
    let client = connect(&mut bh, 1 << 20).await;
    let reg = Registry {
        source: Some(client.counters.clone()),
        ..Registry::default()
    };
    assert!(readiness(&reg).is_ok());
    let mut status = client.counters.status.subscribe();
    bh.wedge_all();
    tokio::time::timeout(
        Duration::from_secs(60),
        status.wait_for(|s| *s != SourceStatus::Subscribed),
    )
    .await
    .expect("the wedged connection is given up")
    .unwrap();
    assert!(readiness(&reg).is_err(), "readiness tells the truth");
    assert_eq!(client.counters.disconnects.load(Ordering::Relaxed), 1);
    eprintln!(
        "wedged socket dropped: keep-alive timeouts {}, pings skipped {}",
        client.counters.keepalive_timeouts.load(Ordering::Relaxed),
        client.counters.pings_skipped.load(Ordering::Relaxed)
    );
    // And the client comes back on a fresh socket.
    bh.wait_subscribed(2).await;
    drop(client.frames);
}

/// A message over the limit ends the connection (counted) instead of being buffered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_ends_the_connection() {
    let mut bh = Blackhole::start(&[TOKEN], &[ACCOUNT]).await;
    let mut client = connect(&mut bh, 64 * 1024).await;
    bh.push(&format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000)));
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), client.frames.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(m, blackhole::SourceMsg::Frame { .. }) {
            break;
        }
    }
    bh.push(&format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000)));
    bh.wait_subscribed(2).await;
    assert_eq!(client.counters.oversize_frames.load(Ordering::Relaxed), 1);
    assert_eq!(client.counters.frames.load(Ordering::Relaxed), 1);
}

fn create(call: &str, extra: &str) -> String {
    format!(
        r#"{{"action":"event","name":"CHANNEL_CREATE","routing_key":"call.{ACCOUNT}.CHANNEL_CREATE.{call}","data":{{"event_name":"CHANNEL_CREATE","call_id":"{call}","account_id":"{ACCOUNT}","msg_id":"1700000000000000","call_direction":"inbound"{extra}}}}}"#
    )
}

/// Through the driver (the path `run` uses): a tenant cannot open legs beyond its limit, and a
/// caller name of 1 MB or 10 000 custom variables are cut, each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_enforces_the_ingest_limits() {
    use postcall::run::driver::{drive, DriverCounters, DriverOptions};
    use postcall::source::limits::IngestLimits;
    let (tx, rx) = mpsc::channel(64);
    let (out_tx, _out) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone();
    let (_settings_tx, settings) = watch::channel(Arc::new(postcall::session::Settings::default()));
    let counters = Arc::new(DriverCounters::default());
    let opts = DriverOptions {
        tick: Duration::from_millis(10),
        tenants: Default::default(),
        channels: None,
        limits: IngestLimits {
            max_open_legs_per_tenant: 3,
            ..IngestLimits::default()
        },
        backfill: None,
    };
    let driver = tokio::spawn(drive(
        None,
        settings,
        rx,
        out_tx,
        opts,
        counters.clone(),
        shutdown,
    ));
    let now = postcall::clock::WallTime::now();
    let vars: Vec<String> = (0..10_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let big = format!(
        r#","caller_id_name":"{}","custom_application_vars":{{{}}}"#,
        "N".repeat(1 << 20),
        vars.join(",")
    );
    for (n, extra) in ["", &big, "", "", ""].iter().enumerate() {
        let text = create(&format!("leg-{n}"), extra);
        tx.send(blackhole::SourceMsg::Frame { text, at: now })
            .await
            .unwrap();
    }
    drop(tx);
    let asm = driver.await.unwrap();
    assert_eq!(asm.open_legs(), 3);
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(get(&counters.refused_events), 2, "legs 4 and 5 refused");
    assert_eq!(get(&counters.truncated_fields), 1, "the caller name");
    assert_eq!(get(&counters.dropped_values), 10_000 - 64);
}

//! The live Blackhole websocket client.
//!
//! One task owns the socket: connect (no subprotocol, `ws` or `wss` via rustls), subscribe
//! every account × binding with the token inside each message (`data.account_id`,
//! `data.binding`, as Kazoo 4.3 requires), match replies by `request_id`, forward every other
//! text frame untouched, ping on a timer with a pong deadline (met only by a pong), and on any failure reconnect
//! after a jittered, capped exponential backoff — re-fetching the token and re-subscribing
//! every time, since Blackhole keeps no subscription across sockets.
//!
//! The reader only ever waits on the bounded channel into the assembler, never on anything
//! behind it, and never on a write: a writer task owns the socket's sending half. Shutdown is observed everywhere, including during the backoff sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::clock::WallTime;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use super::auth::Auth;
use super::backoff::{Backoff, Jitter};
use super::event::{decode_frame, Frame};
use crate::net::Secret;

/// How to reach Blackhole and what to subscribe.
#[derive(Debug, Clone)]
pub struct BlackholeOptions {
    /// `ws://host:5555/` or `wss://…`.
    pub url: String,
    /// Accounts to subscribe (each gets every binding).
    pub accounts: Vec<String>,
    /// Bindings (default `call.*.*`).
    pub bindings: Vec<String>,
    /// Websocket ping interval.
    pub ping_interval: Duration,
    /// A ping without its pong for this long drops the connection (other frames do not count).
    pub pong_timeout: Duration,
    /// TCP + TLS + upgrade deadline.
    pub connect_timeout: Duration,
    /// Every subscribe must be answered within this long.
    pub subscribe_timeout: Duration,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// TLS for `wss://`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Largest websocket message or frame accepted; a larger one ends the connection
    /// (counted in `oversize_frames`, logged).
    pub max_frame_bytes: usize,
}

/// Messages waiting for the writer task. Pings and subscribes only: a full queue means the
/// socket is wedged, which the keep-alive deadline then reports.
const WRITE_QUEUE: usize = 8;

/// Bytes tungstenite may hold unsent (pongs it owes a server that stopped reading) before
/// the connection is dropped.
const MAX_UNSENT_BYTES: usize = 1 << 20;

/// What the source tells the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMsg {
    /// A text frame other than a subscribe reply, with its receive time.
    Frame {
        /// The frame, byte for byte.
        text: String,
        /// Receive time.
        at: WallTime,
    },
    /// Every subscribe was answered; `subscribed` succeeded.
    Connected {
        /// When.
        at: WallTime,
        /// Not the first connection: events may have been missed.
        reconnect: bool,
        /// Subscriptions accepted.
        subscribed: usize,
        /// Subscriptions refused.
        refused: usize,
    },
    /// An established connection was lost.
    Disconnected {
        /// When.
        at: WallTime,
        /// Why.
        reason: String,
    },
}

/// Where the client is (for readiness and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceStatus {
    /// Connecting or subscribing.
    #[default]
    Connecting,
    /// Subscribed and reading.
    Subscribed,
    /// Waiting before the next attempt.
    Backoff,
    /// Stopped.
    Stopped,
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Current status.
    pub status: watch::Sender<SourceStatus>,
    /// Connection attempts.
    pub connect_attempts: AtomicU64,
    /// Connections that subscribed.
    pub connections: AtomicU64,
    /// Established connections lost.
    pub disconnects: AtomicU64,
    /// Frames forwarded.
    pub frames: AtomicU64,
    /// Subscribe requests refused by the server.
    pub subscribe_errors: AtomicU64,
    /// Connections dropped for a missing pong.
    pub keepalive_timeouts: AtomicU64,
    /// Pings not queued because the writer was still busy (the socket is not draining).
    pub pings_skipped: AtomicU64,
    /// Connections ended by a message over `max_frame_bytes`.
    pub oversize_frames: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("shutdown")]
    Shutdown,
    #[error("token: {0}")]
    Auth(String),
    #[error("connect: {0}")]
    Connect(String),
    #[error("token refused by blackhole: {0}")]
    TokenRefused(String),
    #[error("every subscription was refused")]
    NothingSubscribed,
    #[error("subscribe replies missing after {0:?}")]
    SubscribeTimeout(Duration),
    #[error("no pong within {0:?}")]
    KeepaliveTimeout(Duration),
    #[error("a message over the {0}-byte limit")]
    Oversize(usize),
    #[error("connection closed: {0}")]
    Closed(String),
}

/// Runs the client until `shutdown` turns true or the receiver of `tx` is dropped.
pub async fn run(
    opts: BlackholeOptions,
    auth: Arc<Auth>,
    tx: mpsc::Sender<SourceMsg>,
    shutdown: CancellationToken,
    counters: Arc<SourceCounters>,
) {
    run_inner(&opts, &auth, &tx, &shutdown, &counters).await;
    counters.status.send_replace(SourceStatus::Stopped);
}

async fn run_inner(
    opts: &BlackholeOptions,
    auth: &Auth,
    tx: &mpsc::Sender<SourceMsg>,
    shutdown: &CancellationToken,
    counters: &SourceCounters,
) {
    let mut jitter = Jitter::from_clock();
    let mut attempt: u32 = 0;
    let mut connected_before = false;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        counters.status.send_replace(SourceStatus::Connecting);
        bump(&counters.connect_attempts);
        let mut subscribed = false;
        let ended = connection(
            opts,
            auth,
            tx,
            shutdown,
            counters,
            connected_before,
            &mut subscribed,
        )
        .await;
        if subscribed {
            connected_before = true;
            attempt = 0;
            bump(&counters.disconnects);
            if matches!(ended, Ended::Shutdown) {
                return;
            }
            let msg = SourceMsg::Disconnected {
                at: WallTime::now(),
                reason: ended.to_string(),
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        match &ended {
            Ended::Shutdown => return,
            Ended::TokenRefused(_) => auth.invalidate().await,
            Ended::KeepaliveTimeout(_) => bump(&counters.keepalive_timeouts),
            Ended::Oversize(_) => bump(&counters.oversize_frames),
            _ => {}
        }
        let delay = opts.backoff.delay(attempt, jitter.next_u64());
        attempt = attempt.saturating_add(1);
        counters.status.send_replace(SourceStatus::Backoff);
        tracing::warn!(error = %ended, retry_in_ms = delay.as_millis() as u64, attempt, "blackhole connection ended");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

fn is_auth_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("authenticat") || m.contains("auth_account_id not set")
}

/// Sends what the reader queues, so the reader never waits on a write: a server that stops
/// reading wedges this task, not the read loop. Returns why it stopped.
async fn writer<S>(mut write: S, mut queue: mpsc::Receiver<Message>) -> String
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    while let Some(m) = queue.recv().await {
        if matches!(m, Message::Close(_)) {
            // Closing the sink sends our close frame, or, when the server closed first,
            // flushes the echo tungstenite queued for it (a Close message would be refused).
            if let Err(e) = write.close().await {
                return e.to_string();
            }
            break;
        }
        if let Err(e) = write.send(m).await {
            return e.to_string();
        }
    }
    "writer stopped".into()
}

/// One connection from connect to its end.
async fn connection(
    opts: &BlackholeOptions,
    auth: &Auth,
    tx: &mpsc::Sender<SourceMsg>,
    shutdown: &CancellationToken,
    counters: &SourceCounters,
    reconnect: bool,
    subscribed_flag: &mut bool,
) -> Ended {
    let token = match auth.token(WallTime::now()).await {
        Ok(t) => t,
        Err(e) => return Ended::Auth(e.to_string()),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(opts.max_frame_bytes))
        .max_frame_size(Some(opts.max_frame_bytes))
        .max_write_buffer_size(MAX_UNSENT_BYTES);
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        opts.url.as_str(),
        Some(config),
        true,
        Some(Connector::Rustls(opts.tls.clone())),
    );
    let ws = tokio::select! {
        r = tokio::time::timeout(opts.connect_timeout, connect) => match r {
            Err(_) => return Ended::Connect(format!("timed out after {:?}", opts.connect_timeout)),
            Ok(Err(e)) => return Ended::Connect(token.scrub(&e.to_string())),
            Ok(Ok((ws, _))) => ws,
        },
        () = shutdown.cancelled() => return Ended::Shutdown,
    };
    let (write, read) = ws.split();
    let (queue, queued) = mpsc::channel(WRITE_QUEUE);
    let mut writer = tokio::spawn(writer(write, queued));
    let ended = read_loop(
        opts,
        &token,
        read,
        &queue,
        &mut writer,
        tx,
        shutdown,
        counters,
        reconnect,
        subscribed_flag,
    )
    .await;
    // A close frame goes out if the socket takes it soon; a wedged writer is not waited for.
    // When the server closed, this sends the close reply the protocol owes it (RFC 6455
    // §5.5.1).
    if matches!(ended, Ended::Shutdown | Ended::Closed(_)) {
        let _ = queue.try_send(Message::Close(None));
    }
    drop(queue);
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    ended
}

/// Reads until the connection ends. Never awaits a write: pings go through the writer's
/// bounded queue (skipped and counted when it is full), pongs are written by tungstenite as
/// the socket allows. The keep-alive deadline is met only by a pong, so a server that floods
/// pings while not reading is dropped after `pong_timeout`.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
async fn read_loop<R>(
    opts: &BlackholeOptions,
    token: &Secret,
    mut read: R,
    queue: &mpsc::Sender<Message>,
    writer: &mut tokio::task::JoinHandle<String>,
    tx: &mpsc::Sender<SourceMsg>,
    shutdown: &CancellationToken,
    counters: &SourceCounters,
    reconnect: bool,
    subscribed_flag: &mut bool,
) -> Ended
where
    R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let subscribe_deadline = Instant::now() + opts.subscribe_timeout;
    let mut pending: Vec<(String, String, String)> = Vec::new();
    let pairs: Vec<(String, String)> = opts
        .accounts
        .iter()
        .flat_map(|a| opts.bindings.iter().map(move |b| (a.clone(), b.clone())))
        .collect();
    let stamp = WallTime::now().as_us();
    for (n, (account, binding)) in pairs.into_iter().enumerate() {
        let request_id = format!("postcall-{stamp}-{n}");
        let msg = subscribe_message(token, &request_id, &account, &binding);
        match tokio::time::timeout_at(subscribe_deadline, queue.send(Message::text(msg))).await {
            Err(_) => return Ended::SubscribeTimeout(opts.subscribe_timeout),
            Ok(Err(_)) => return Ended::Closed("the socket stopped taking writes".into()),
            Ok(Ok(())) => {}
        }
        pending.push((request_id, account, binding));
    }
    let (mut ok, mut refused) = (0usize, 0usize);
    let mut next_ping = Instant::now() + opts.ping_interval;
    let mut pong_deadline: Option<Instant> = None;

    loop {
        let waiting_pong = pong_deadline.unwrap_or(next_ping);
        tokio::select! {
            () = shutdown.cancelled() => return Ended::Shutdown,
            why = &mut *writer => {
                let why = why.unwrap_or_else(|e| e.to_string());
                return Ended::Closed(token.scrub(&why));
            }
            () = tokio::time::sleep_until(subscribe_deadline), if !pending.is_empty() => {
                return Ended::SubscribeTimeout(opts.subscribe_timeout);
            }
            () = tokio::time::sleep_until(next_ping), if pong_deadline.is_none() => {
                if queue.try_send(Message::Ping(Vec::new().into())).is_err() {
                    bump(&counters.pings_skipped);
                }
                pong_deadline = Some(Instant::now() + opts.pong_timeout);
            }
            () = tokio::time::sleep_until(waiting_pong), if pong_deadline.is_some() => {
                return Ended::KeepaliveTimeout(opts.pong_timeout);
            }
            msg = read.next() => {
                let msg = match msg {
                    None => return Ended::Closed("end of stream".into()),
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        tracing::warn!(limit_bytes = opts.max_frame_bytes, "blackhole sent a message over the size limit; reconnecting");
                        return Ended::Oversize(opts.max_frame_bytes);
                    }
                    Some(Err(e)) => return Ended::Closed(token.scrub(&e.to_string())),
                    Some(Ok(m)) => m,
                };
                let text = match msg {
                    Message::Text(t) => t.as_str().to_owned(),
                    Message::Close(frame) => {
                        let why = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                        return Ended::Closed(token.scrub(&format!("closed by server {why}")));
                    }
                    Message::Pong(_) => {
                        if pong_deadline.take().is_some() {
                            next_ping = Instant::now() + opts.ping_interval;
                        }
                        continue;
                    }
                    // tungstenite queues the pong and writes it as the socket allows.
                    _ => continue,
                };
                if !pending.is_empty() && text.contains("\"reply\"") {
                    if let Ok(Frame::Reply(reply)) = decode_frame(&text) {
                        if let Some(i) = pending.iter().position(|p| Some(&p.0) == reply.request_id.as_ref()) {
                            let (_, account, binding) = pending.swap_remove(i);
                            if reply.ok {
                                ok += 1;
                                tracing::info!(account_id = %account, binding = %binding, "subscribed");
                            } else {
                                refused += 1;
                                bump(&counters.subscribe_errors);
                                let message = token.scrub(&reply.errors.join("; "));
                                tracing::error!(account_id = %account, binding = %binding, error = %message, "subscription refused");
                                if is_auth_error(&message) {
                                    return Ended::TokenRefused(message);
                                }
                            }
                            if pending.is_empty() {
                                if ok == 0 {
                                    return Ended::NothingSubscribed;
                                }
                                *subscribed_flag = true;
                                bump(&counters.connections);
                                counters.status.send_replace(SourceStatus::Subscribed);
                                let m = SourceMsg::Connected { at: WallTime::now(), reconnect, subscribed: ok, refused };
                                if tx.send(m).await.is_err() {
                                    return Ended::Shutdown;
                                }
                            }
                            continue;
                        }
                    }
                }
                bump(&counters.frames);
                if tx.send(SourceMsg::Frame { text, at: WallTime::now() }).await.is_err() {
                    return Ended::Shutdown;
                }
            }
        }
    }
}

fn subscribe_message(token: &Secret, request_id: &str, account: &str, binding: &str) -> String {
    serde_json::json!({
        "action": "subscribe",
        "auth_token": token.expose(),
        "request_id": request_id,
        "data": {"account_id": account, "binding": binding},
    })
    .to_string()
}

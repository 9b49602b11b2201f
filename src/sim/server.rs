//! A Blackhole stand-in on 127.0.0.1 for `postcall demo`: it speaks the Kazoo 4.3 protocol
//! (no subprotocol, token and `data.account_id`/`data.binding` in each subscribe, one reply
//! per request with the echoed `request_id`) and, once a socket has subscribed, streams
//! simulated frames in real time, sped up by a factor.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use super::SimFrame;

type Frames = Box<dyn Iterator<Item = SimFrame> + Send>;

/// A running simulated Blackhole.
pub struct SimServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Frames sent so far.
    pub sent: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimServer {
    /// Starts serving `frames` (in their `time_us` order, `speed` times faster than real time)
    /// to sockets that subscribe with `token`.
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub async fn start(
        token: &str,
        frames: impl Iterator<Item = SimFrame> + Send + 'static,
        speed: f64,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let frames: Arc<Mutex<Frames>> = Arc::new(Mutex::new(Box::new(frames)));
        let (sent_tx, sent) = watch::channel(0u64);
        let sent_tx = Arc::new(sent_tx);
        let token = token.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (frames, sent_tx, token) = (frames.clone(), sent_tx.clone(), token.clone());
                tokio::spawn(async move {
                    let _ = connection(tcp, &token, frames, speed.max(0.001), &sent_tx).await;
                });
            }
        });
        Ok(Self { addr, sent, task })
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
fn no_subprotocol(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    if req.headers().contains_key("sec-websocket-protocol") {
        let mut e = ErrorResponse::new(None);
        *e.status_mut() = StatusCode::BAD_REQUEST;
        return Err(e);
    }
    Ok(resp)
}

/// The nine call events Blackhole 4.3 offers.
const CALL_EVENTS: [&str; 9] = [
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_DESTROY",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "PARK_PARKED",
    "PARK_RETRIEVED",
    "PARK_ABANDONED",
];

/// Kazoo 4.3's answer to one client request on a socket (`kazoo-events.md` §2.2–§2.4):
/// authenticate (once per socket), validate `data`, check the binding and the account, reply
/// with the echoed `request_id`. `authenticated` is the socket's state.
pub fn kazoo_reply(
    req: &Value,
    token_ok: &dyn Fn(&str) -> bool,
    account_ok: &dyn Fn(&str) -> bool,
    authenticated: &mut bool,
) -> Value {
    let request_id = req["request_id"]
        .as_str()
        .unwrap_or("00000000000000000000000000000000");
    let error = |m: String| json!({"action":"reply","request_id":request_id,"status":"error","data":{"errors":[m]}});
    if !*authenticated {
        match req.get("auth_token") {
            None => return error("authentication token required".into()),
            Some(Value::String(t)) if token_ok(t) => {}
            Some(Value::String(t)) => return error(format!("failed to authenticate token {t}")),
            Some(_) => return error("invalid authentication token format".into()),
        }
    }
    if req["action"] != "subscribe" {
        return json!({"action":"reply","request_id":request_id,"status":"success","data":{}});
    }
    let Some(data) = req
        .get("data")
        .and_then(Value::as_object)
        .filter(|d| !d.is_empty())
    else {
        return error("missing required keys in data object".into());
    };
    let missing: Vec<&str> = ["account_id", "binding"]
        .into_iter()
        .filter(|k| !data.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return error(format!("missing required keys : {}", missing.join(", ")));
    }
    let binding = data["binding"].as_str().unwrap_or("");
    let parts: Vec<&str> = binding.split('.').collect();
    if parts[0] != "call" {
        return error("no available subscriptions to requested binding".into());
    }
    if parts.len() != 3 {
        return error(format!(
            "invalid format for call subscription : {}",
            parts.join(", ")
        ));
    }
    if parts[1] != "*" && !CALL_EVENTS.contains(&parts[1]) {
        return error(format!("event {} not supported", parts[1]));
    }
    if !account_ok(data["account_id"].as_str().unwrap_or("")) {
        return error("unauthorized account id".into());
    }
    *authenticated = true;
    // Kazoo 4.3 lists `call.*.*` once per internal binding: nine times.
    let n = if parts[1] == "*" {
        CALL_EVENTS.len()
    } else {
        1
    };
    json!({"action":"reply","request_id":request_id,"status":"success","data":{"subscribed":vec![binding; n]}})
}

async fn connection(
    tcp: tokio::net::TcpStream,
    token: &str,
    frames: Arc<Mutex<Frames>>,
    speed: f64,
    sent: &watch::Sender<u64>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws = tokio_tungstenite::accept_hdr_async(tcp, no_subprotocol).await?;
    let (mut write, mut read) = ws.split();
    let mut authenticated = false;
    let mut subscribed = false;
    let mut clock: Option<(tokio::time::Instant, i64)> = None;
    let mut pending: Option<SimFrame> = None;
    loop {
        // The next frame to send, once a subscription exists.
        if subscribed && pending.is_none() {
            pending = frames.lock().ok().and_then(|mut f| f.next());
        }
        let due = pending.as_ref().map(|f| {
            let (start, t0) = *clock.get_or_insert((tokio::time::Instant::now(), f.time_us));
            let offset = Duration::from_micros(u64::try_from(f.time_us - t0).unwrap_or(0));
            start + offset.div_f64(speed)
        });
        tokio::select! {
            () = async { if let Some(d) = due { tokio::time::sleep_until(d).await } }, if due.is_some() => {
                if let Some(f) = pending.take() {
                    write.send(Message::text(f.text)).await?;
                    sent.send_modify(|n| *n += 1);
                }
            }
            m = read.next() => match m {
                None => return Ok(()),
                Some(m) => match m? {
                    Message::Text(t) => {
                        // Kazoo drops the socket on invalid JSON.
                        let Ok(req) = serde_json::from_str::<Value>(t.as_str()) else { return Ok(()) };
                        let reply = kazoo_reply(&req, &|t| t == token, &|_| true, &mut authenticated);
                        subscribed |= reply["status"] == "success" && req["action"] == "subscribe";
                        write.send(Message::text(reply.to_string())).await?;
                    }
                    // A ping: tungstenite queued the pong, push it out.
                    _ => write.flush().await?,
                },
            },
        }
    }
}

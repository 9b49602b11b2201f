//! A fake Kazoo Blackhole on 127.0.0.1:0 that enforces the protocol the way Kazoo 4.3 does
//! (`kazoo-events.md` §2; the reply rules are the library's `sim::server::kazoo_reply`): no
//! subprotocol (HTTP 400), `auth_token` required until the socket
//! authenticated, `account_id` and `binding` inside `data`, only the nine call events,
//! accounts limited to the token's hierarchy, one reply per command with the echoed
//! `request_id`. A test pushes frames to subscribed sockets, drops connections, or mutes
//! them (stops reading, so pings go unanswered).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use super::tls::TestCa;

#[derive(Clone, Debug)]
enum Cmd {
    Push(String),
    Drop,
    Mute,
    Wedge,
    Close(String),
}

type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    /// Also accepts tokens this check approves (tokens issued by a fake Crossbar).
    check: Option<TokenCheck>,
    accounts: HashSet<String>,
    /// Every subscribe request received, as sent.
    requests: Vec<Value>,
    rejected_upgrades: u64,
    /// Close frames clients sent back after the server closed (RFC 6455 §5.5.1).
    close_replies: u64,
}

/// A running fake Blackhole.
pub struct Blackhole {
    /// Where it listens.
    pub addr: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    cmds: broadcast::Sender<Cmd>,
    /// Number of sockets with at least one accepted subscription, ever (one per connection).
    pub subscribed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    /// Starts a plain-websocket server accepting `tokens` for `accounts`.
    pub async fn start(tokens: &[&str], accounts: &[&str]) -> Self {
        Self::start_with(None, tokens, accounts).await
    }

    /// Starts a server, over TLS with a certificate of `ca` when given.
    pub async fn start_with(ca: Option<&TestCa>, tokens: &[&str], accounts: &[&str]) -> Self {
        let tls = ca.map(|ca| tokio_rustls::TlsAcceptor::from(ca.server.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            ..State::default()
        }));
        // Large enough for a load run's whole stream: a lagging socket would lose frames.
        let (cmds, _) = broadcast::channel(1 << 18);
        let (sub_tx, subscribed) = watch::channel(0u64);
        let sub_tx = Arc::new(sub_tx);
        let (st, cm) = (state.clone(), cmds.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (state, cmds, sub_tx) = (st.clone(), cm.subscribe(), sub_tx.clone());
                tokio::spawn(serve(tcp, tls.clone(), state, cmds, sub_tx));
            }
        });
        Self {
            addr,
            scheme: if ca.is_some() { "wss" } else { "ws" },
            state,
            cmds,
            subscribed,
            task,
        }
    }

    /// `ws://127.0.0.1:PORT/` (`wss://` over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme, self.addr)
    }

    /// Sends a text frame to every socket with a subscription.
    pub fn push(&self, frame: &str) {
        let _ = self.cmds.send(Cmd::Push(frame.to_owned()));
    }

    /// Closes every connection abruptly.
    pub fn drop_all(&self) {
        let _ = self.cmds.send(Cmd::Drop);
    }

    /// Every open socket stops reading (pings go unanswered).
    pub fn mute_all(&self) {
        let _ = self.cmds.send(Cmd::Mute);
    }

    /// Every open socket stops reading and floods pings (the client's pongs pile up until its
    /// socket cannot write any more).
    pub fn wedge_all(&self) {
        let _ = self.cmds.send(Cmd::Wedge);
    }

    /// Every open socket is closed with a close frame carrying `reason`.
    #[allow(dead_code)] // tests/secrets.rs
    pub fn close_all(&self, reason: &str) {
        let _ = self.cmds.send(Cmd::Close(reason.to_owned()));
    }

    /// Also accepts the tokens `check` approves.
    pub fn accept_tokens(&self, check: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.state.lock().unwrap().check = Some(Arc::new(check));
    }

    /// Replaces the accepted tokens.
    pub fn set_tokens(&self, tokens: &[&str]) {
        self.state.lock().unwrap().tokens = tokens.iter().map(|s| s.to_string()).collect();
    }

    /// Subscribe requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many clients answered a server close with a close frame of their own.
    pub fn close_replies(&self) -> u64 {
        self.state.lock().unwrap().close_replies
    }

    /// Upgrades refused for carrying a subprotocol.
    pub fn rejected_upgrades(&self) -> u64 {
        self.state.lock().unwrap().rejected_upgrades
    }

    /// Waits until `n` sockets have subscribed in total.
    pub async fn wait_subscribed(&mut self, n: u64) {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.subscribed.wait_for(|&c| c >= n),
        )
        .await
        .expect("subscription within 10 s")
        .unwrap();
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.cmds.send(Cmd::Drop);
    }
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
async fn serve(
    tcp: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<State>>,
    cmds: broadcast::Receiver<Cmd>,
    sub_tx: Arc<watch::Sender<u64>>,
) {
    let st = state.clone();
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.headers().contains_key("sec-websocket-protocol") {
            st.lock().unwrap().rejected_upgrades += 1;
            let mut e = ErrorResponse::new(None);
            *e.status_mut() = StatusCode::BAD_REQUEST;
            return Err(e);
        }
        Ok(resp)
    };
    match tls {
        None => {
            if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await {
                session(ws, state, cmds, sub_tx).await;
            }
        }
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, check).await {
                session(ws, state, cmds, sub_tx).await;
            }
        }
    }
}

async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    state: Arc<Mutex<State>>,
    mut cmds: broadcast::Receiver<Cmd>,
    sub_tx: Arc<watch::Sender<u64>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut write, mut read) = ws.split();
    let mut authenticated = false;
    let mut subscribed = false;
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Ok(Cmd::Push(f)) => {
                    if subscribed && write.send(Message::text(f)).await.is_err() {
                        return;
                    }
                }
                Ok(Cmd::Drop) | Err(broadcast::error::RecvError::Closed) => return,
                Ok(Cmd::Mute) => loop {
                    match cmds.recv().await {
                        Ok(Cmd::Drop) | Err(broadcast::error::RecvError::Closed) => return,
                        _ => {}
                    }
                },
                Ok(Cmd::Wedge) => {
                    let ping = Message::Ping(vec![0x5a; 125].into());
                    loop {
                        tokio::select! {
                            r = write.send(ping.clone()) => if r.is_err() { return },
                            c = cmds.recv() => if matches!(c, Ok(Cmd::Drop) | Err(broadcast::error::RecvError::Closed)) { return },
                        }
                    }
                }
                Ok(Cmd::Close(reason)) => {
                    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy,
                        reason: reason.into(),
                    };
                    let _ = write.send(Message::Close(Some(frame))).await;
                    // The client must answer with a close frame; wait a little for it.
                    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), async {
                        while let Some(m) = read.next().await {
                            if matches!(m, Ok(Message::Close(_))) {
                                return true;
                            }
                        }
                        false
                    });
                    if answered.await == Ok(true) {
                        state.lock().unwrap().close_replies += 1;
                    }
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            msg = read.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(_)) => continue,
                    _ => return,
                };
                // Kazoo crashes the socket on invalid JSON.
                let Ok(req) = serde_json::from_str::<Value>(&text) else { return };
                let reply = handle(&state, &req, &mut authenticated);
                if reply["status"] == "success" && req["action"] == "subscribe" && !subscribed {
                    subscribed = true;
                    sub_tx.send_modify(|c| *c += 1);
                }
                if write.send(Message::text(reply.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn handle(state: &Mutex<State>, req: &Value, authenticated: &mut bool) -> Value {
    let mut st = state.lock().unwrap();
    if req["action"] == "subscribe" {
        st.requests.push(req.clone());
    }
    let token_ok = |t: &str| st.tokens.contains(t) || st.check.as_ref().is_some_and(|c| c(t));
    let account_ok = |a: &str| st.accounts.contains(a);
    postcall::sim::server::kazoo_reply(req, &token_ok, &account_ok, authenticated)
}

//! The admin HTTP listener (loopback by default): `/metrics`, `/healthz`, `/readyz`, the
//! dead letters (`GET /deliveries/dead`, `POST /deliveries/dead/{id}/resend`) and the CDR
//! journal (`/cdrs`, see [`super::cdrs`]) — the outbox is held open by the running process,
//! so this is how they are read and re-sent while it runs.
//!
//! The listener is hostile-input safe:
//! - **Bounded**: at most [`AdminOptions::max_connections`] connections at once (a further
//!   client waits in the kernel's accept queue and costs postcall no descriptor), one request
//!   per connection, headers within [`AdminOptions::header_timeout`], the whole exchange within
//!   [`AdminOptions::connection_timeout`]. Accept errors (`EMFILE`) back off instead of
//!   spinning. The cap is far below the descriptor limit, so the admin port can never take
//!   the descriptors delivery and the websocket need.
//! - **DNS rebinding**: the `Host` header must name the bound address (an IP literal of it,
//!   any IP literal on a wildcard bind, `localhost` on a loopback or wildcard bind) or one of
//!   [`AdminOptions::allowed_hosts`].
//! - **Authentication**: with a token, the dead letters and the journal (personal data) need
//!   `Authorization: Bearer <token>`; re-sending (dead letters or journal) always needs it, plus a same-origin request
//!   (`Origin` naming this host, `Sec-Fetch-Site` same-origin or none). A non-loopback bind
//!   without a token is refused before anything starts ([`AdminOptions::validate`]).
//!   `/metrics`, `/healthz` and `/readyz` carry no personal data and stay open.
//! - **Console**: `/console/…` is the operator's console ([`crate::console`]): the same
//!   `Host` check, then its own authentication (the token as a bearer token or through its
//!   login form), CSRF tokens and the same-origin check on every form.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::Registry;
use crate::net::Secret;
use crate::source::blackhole::SourceStatus;

/// How the admin listener is bound and protected.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Address to bind (`127.0.0.1:9646`; port 0 picks one).
    pub addr: SocketAddr,
    /// Bearer token for the dead letters and re-sends. Required on a non-loopback bind.
    pub token: Option<Secret>,
    /// Host names (besides the bound address) the `Host` header may carry.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once (32).
    pub max_connections: usize,
    /// A client must send its request headers within this long (5 s).
    pub header_timeout: Duration,
    /// A connection is closed after this long, whatever it is doing (30 s).
    pub connection_timeout: Duration,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 9646)),
            token: None,
            allowed_hosts: Vec::new(),
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the admin options cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    /// A listener reachable from elsewhere without authentication.
    #[error("the admin listener {0} is not on loopback: set an admin token ([admin] token_env) or bind 127.0.0.1")]
    NoToken(SocketAddr),
    /// A token too short to resist guessing.
    #[error("the admin token must be at least 16 characters")]
    ShortToken,
}

impl AdminOptions {
    /// Refuses a non-loopback bind without a token, and weak tokens.
    ///
    /// # Errors
    /// [`AdminError`].
    pub fn validate(&self) -> Result<(), AdminError> {
        match &self.token {
            Some(t) if t.expose().chars().count() < 16 => Err(AdminError::ShortToken),
            None if !self.addr.ip().is_loopback() => Err(AdminError::NoToken(self.addr)),
            _ => Ok(()),
        }
    }
}

/// Counters of the admin listener.
#[derive(Debug, Default)]
pub struct AdminCounters {
    /// Connections being served now.
    pub open_connections: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Failed `accept` calls (each followed by a back-off pause).
    pub accept_errors: AtomicU64,
    /// Requests refused: wrong `Host`, missing or wrong token, cross-origin.
    pub refused: AtomicU64,
}

/// What a request is checked against.
struct Guard {
    bound: SocketAddr,
    names: Vec<String>,
    token: Option<[u8; 32]>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Guard {
    fn new(bound: SocketAddr, opts: &AdminOptions) -> Self {
        Self {
            bound,
            names: opts
                .allowed_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            token: opts.token.as_ref().map(|t| digest(t.expose())),
        }
    }

    /// Whether `Host` names this listener (not a rebound foreign name).
    fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(auth) = host.and_then(|h| h.parse::<hyper::http::uri::Authority>().ok()) else {
            return false;
        };
        let name = auth.host().trim_start_matches('[').trim_end_matches(']');
        let wildcard = self.bound.ip().is_unspecified();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return wildcard || ip == self.bound.ip();
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        (name == "localhost" && (wildcard || self.bound.ip().is_loopback()))
            || self.names.contains(&name)
    }

    /// Whether the request carries the token (compared as digests, so timing tells nothing
    /// about the token).
    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| digest(given.trim()) == *expected)
    }

    /// Whether a state-changing request comes from this origin (not from a web page
    /// elsewhere).
    fn same_origin<B>(req: &Request<B>) -> bool {
        let h = req.headers();
        let site_ok = h
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|s| s == "same-origin" || s == "none");
        let origin_ok = match h.get(hyper::header::ORIGIN).map(|v| v.to_str()) {
            None => true,
            Some(Ok(origin)) => {
                let host = h.get(hyper::header::HOST).and_then(|v| v.to_str().ok());
                let bare = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                host.is_some() && bare == host
            }
            Some(Err(_)) => false,
        };
        site_ok && origin_ok
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::UNAUTHORIZED, TEXT, "admin token required\n");
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Whether the process is ready, and why not.
pub fn readiness(reg: &Registry) -> Result<(), String> {
    if let Some(s) = &reg.source {
        let status = *s.status.borrow();
        if status != SourceStatus::Subscribed {
            return Err(format!("event source not subscribed ({status:?})"));
        }
    }
    if let Some(e) = &reg.engine {
        if e.outbox().is_failing() {
            return Err("outbox unavailable (storage errors; see the log)".into());
        }
    }
    if let Some(b) = &reg.backfill {
        if let crate::backfill::BackfillState::Retrying { window, error } = b.state() {
            return Err(format!(
                "backfill of {window} cannot read Kazoo's CDRs ({error}); retrying, events keep flowing"
            ));
        }
    }
    Ok(())
}

/// The dead letter named by `POST /deliveries/dead/{id}/resend`, if that is the path.
fn resend_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/deliveries/dead/")?
        .strip_suffix("/resend")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

async fn route<B>(reg: &Registry, guard: &Guard, req: &Request<B>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok());
    if !guard.host_ok(host) {
        bump(reg, |c| &c.refused);
        return reply(StatusCode::FORBIDDEN, TEXT, "host not allowed\n");
    }
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, super::metrics::CONTENT_TYPE, reg.render())
        }
        (&Method::GET, "/healthz") => reply(StatusCode::OK, TEXT, "ok\n"),
        (&Method::GET, "/readyz") => match readiness(reg) {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n"),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
        },
        (&Method::GET, "/deliveries/dead") => {
            if guard.token.is_some() && !guard.authorized(req) {
                bump(reg, |c| &c.refused);
                return unauthorized();
            }
            let Some(engine) = reg.engine.as_ref() else {
                return reply(StatusCode::NOT_FOUND, TEXT, "no delivery engine\n");
            };
            match engine.outbox().dead().await {
                Ok(jobs) => {
                    let v: Vec<serde_json::Value> = jobs.iter().map(|j| j.redacted()).collect();
                    reply(
                        StatusCode::OK,
                        "application/json",
                        serde_json::to_vec(&v).unwrap_or_default(),
                    )
                }
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e.to_string()),
            }
        }
        (&Method::POST, p) if resend_id(p).is_some() => {
            if let Some(refused) = refuse_write(reg, guard, req) {
                return refused;
            }
            let id = resend_id(p).unwrap_or_default();
            let Some(engine) = reg.engine.as_ref() else {
                return reply(StatusCode::NOT_FOUND, TEXT, "no delivery engine\n");
            };
            match engine.resend(id).await {
                Ok(_) => reply(StatusCode::OK, TEXT, "queued\n"),
                Err(crate::delivery::OutboxError::NotFound(_)) => {
                    reply(StatusCode::NOT_FOUND, TEXT, "no such dead letter\n")
                }
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e.to_string()),
            }
        }
        (m, p) if super::cdrs::is_cdrs_path(p) => {
            // CDRs are personal data: the token whenever one is set; re-sends always.
            if super::cdrs::is_write(m) {
                if let Some(refused) = refuse_write(reg, guard, req) {
                    return refused;
                }
            } else if guard.token.is_some() && !guard.authorized(req) {
                bump(reg, |c| &c.refused);
                return unauthorized();
            }
            super::cdrs::serve(reg, m, p, req.uri().query()).await
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// Why a state-changing request (a re-send) is refused: no token configured, a missing or
/// wrong token, or a cross-origin request. `None` lets it through.
fn refuse_write<B>(
    reg: &Registry,
    guard: &Guard,
    req: &Request<B>,
) -> Option<Response<Full<Bytes>>> {
    let refused = if guard.token.is_none() {
        reply(
            StatusCode::FORBIDDEN,
            TEXT,
            "re-sending over the admin listener needs an admin token ([admin] token_env)\n",
        )
    } else if !guard.authorized(req) {
        unauthorized()
    } else if !Guard::same_origin(req) {
        reply(
            StatusCode::FORBIDDEN,
            TEXT,
            "cross-origin request refused\n",
        )
    } else {
        return None;
    };
    bump(reg, |c| &c.refused);
    Some(refused)
}

fn bump(reg: &Registry, which: impl Fn(&AdminCounters) -> &AtomicU64) {
    if let Some(c) = &reg.admin {
        which(c).fetch_add(1, Ordering::Relaxed);
    }
}

impl Guard {
    /// For a console path: the `Host` check (refused as every other path is) and what the
    /// console needs to authenticate the request. `None` for other paths.
    fn console_access<B>(
        &self,
        reg: &Registry,
        req: &Request<B>,
    ) -> Option<Result<crate::console::Access, Response<Full<Bytes>>>> {
        if !crate::console::is_console_path(req.uri().path()) {
            return None;
        }
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok());
        if !self.host_ok(host) {
            bump(reg, |c| &c.refused);
            return Some(Err(reply(
                StatusCode::FORBIDDEN,
                TEXT,
                "host not allowed\n",
            )));
        }
        Some(Ok(crate::console::Access {
            bearer: self.authorized(req),
            token: self.token,
            same_origin: Self::same_origin(req),
        }))
    }
}

/// The pause after the `n`th accept error in a row: 10 ms doubling to 1 s.
fn accept_backoff(n: u32) -> Duration {
    Duration::from_millis(
        10u64
            .saturating_mul(1 << n.saturating_sub(1).min(7))
            .min(1000),
    )
}

/// Accepts while a connection slot is free (a client beyond the cap waits in the kernel's
/// queue), backing off after errors, until `shutdown`. `handle` serves one connection and
/// releases its slot by dropping the permit.
async fn accept_loop<S, A, AF, H, HF>(
    mut accept: A,
    slots: Arc<Semaphore>,
    counters: Arc<AdminCounters>,
    shutdown: CancellationToken,
    handle: H,
) where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<S>>,
    H: Fn(S, OwnedSemaphorePermit) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    let mut failures: u32 = 0;
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            r = accept() => r,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok(s) => {
                failures = 0;
                counters.connections.fetch_add(1, Ordering::Relaxed);
                conns.spawn(handle(s, permit));
            }
            Err(e) => {
                drop(permit);
                failures = failures.saturating_add(1);
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                let pause = accept_backoff(failures);
                if failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, pause_ms = pause.as_millis() as u64, "admin listener: accept failed; backing off");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    conns.shutdown().await;
}

/// Binds the listener (so the caller learns the port at once) and serves until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    opts: AdminOptions,
    mut reg: Registry,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(opts.addr).await?;
    let local = listener.local_addr()?;
    let counters = reg.admin.get_or_insert_with(Default::default).clone();
    let guard = Arc::new(Guard::new(local, &opts));
    let reg = Arc::new(reg);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let (header_timeout, connection_timeout) = (opts.header_timeout, opts.connection_timeout);
    let listener = Arc::new(listener);
    let c = counters.clone();
    let task = tokio::spawn(accept_loop(
        move || {
            let l = listener.clone();
            async move { l.accept().await.map(|(tcp, _)| tcp) }
        },
        slots,
        counters,
        shutdown,
        move |tcp, permit| {
            let (reg, guard, counters) = (reg.clone(), guard.clone(), c.clone());
            async move {
                counters.open_connections.fetch_add(1, Ordering::Relaxed);
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (reg, guard) = (reg.clone(), guard.clone());
                    async move {
                        let r = match guard.console_access(&reg, &req) {
                            Some(Ok(access)) => {
                                crate::console::handle(reg.console.as_ref(), access, req).await
                            }
                            Some(Err(refused)) => refused,
                            None => route(&reg, &guard, &req).await,
                        };
                        Ok::<_, Infallible>(r)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(false)
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(tcp), svc);
                let _ = tokio::time::timeout(connection_timeout, conn).await;
                counters.open_connections.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }
        },
    ));
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str, token: Option<&str>, names: &[&str]) -> Guard {
        let opts = AdminOptions {
            token: token.map(Secret::new),
            allowed_hosts: names.iter().map(|s| s.to_string()).collect(),
            ..AdminOptions::default()
        };
        Guard::new(bound.parse().unwrap(), &opts)
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn hosts() {
        let g = guard("127.0.0.1:9646", None, &["postcall.internal"]);
        for ok in [
            "127.0.0.1:9646",
            "127.0.0.1",
            "localhost:9646",
            "LOCALHOST",
            "postcall.internal:9646",
            "postcall.internal.",
        ] {
            assert!(g.host_ok(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:9646",
            "10.0.0.1",
            "[::1]:9646",
            "",
            "127.0.0.1.evil.example",
            "a b",
        ] {
            assert!(!g.host_ok(Some(bad)), "{bad}");
        }
        assert!(!g.host_ok(None));
        let any = guard("0.0.0.0:9646", Some("0123456789abcdef"), &[]);
        assert!(any.host_ok(Some("10.1.2.3:9646")) && any.host_ok(Some("[fd00::1]:9646")));
        assert!(!any.host_ok(Some("rebound.example:9646")));
    }

    #[test]
    fn tokens_and_origins() {
        let g = guard("127.0.0.1:1", Some("0123456789abcdef"), &[]);
        let with = |h: &[(&str, &str)]| g.authorized(&request("POST", "/", h));
        assert!(with(&[("authorization", "Bearer 0123456789abcdef")]));
        assert!(!with(&[("authorization", "Bearer 0123456789abcdeF")]));
        assert!(!with(&[("authorization", "Basic 0123456789abcdef")]));
        assert!(!with(&[]));
        let same = |h: &[(&str, &str)]| Guard::same_origin(&request("POST", "/", h));
        assert!(same(&[("host", "127.0.0.1:1")]));
        assert!(same(&[
            ("host", "127.0.0.1:1"),
            ("origin", "http://127.0.0.1:1"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!same(&[
            ("host", "127.0.0.1:1"),
            ("origin", "http://evil.example")
        ]));
        assert!(!same(&[("host", "127.0.0.1:1"), ("origin", "null")]));
        assert!(!same(&[("sec-fetch-site", "cross-site")]));
        assert!(!same(&[("sec-fetch-site", "same-site")]));
    }

    #[test]
    fn validation() {
        let opts = |addr: &str, token: Option<&str>| AdminOptions {
            addr: addr.parse().unwrap(),
            token: token.map(Secret::new),
            ..AdminOptions::default()
        };
        assert!(opts("127.0.0.1:0", None).validate().is_ok());
        assert!(opts("[::1]:0", None).validate().is_ok());
        assert!(matches!(
            opts("0.0.0.0:9646", None).validate(),
            Err(AdminError::NoToken(_))
        ));
        assert!(matches!(
            opts("10.0.0.5:9646", None).validate(),
            Err(AdminError::NoToken(_))
        ));
        assert_eq!(
            opts("0.0.0.0:0", Some("short")).validate(),
            Err(AdminError::ShortToken)
        );
        assert!(opts("0.0.0.0:0", Some("0123456789abcdef"))
            .validate()
            .is_ok());
    }

    /// No path, method or header set makes the router panic (the resend route used to slice
    /// out of range on `/deliveries/dead/resend`).
    #[test]
    fn no_route_panics() {
        let reg = Registry::default();
        let paths = [
            "/deliveries/dead/resend",
            "/deliveries/dead//resend",
            "/deliveries/dead/x/resend",
            "/deliveries/dead/a/b/resend",
            "/deliveries/dead/",
            "/deliveries/dead",
            "/deliveries/dead/resend/resend",
            "/deliveries/deadresend",
            "/cdrs",
            "/cdrs/",
            "/cdrs/x",
            "/cdrs/x/resend",
            "/cdrs/resend",
            "/cdrs//resend",
            "/cdrs?limit=0&from=yesterday",
            "/cdrsx",
            "/",
            "/%2e%2e/metrics",
            "/metrics?x=1",
            "/readyz/",
            "*",
        ];
        for token in [None, Some("0123456789abcdef")] {
            let g = guard("127.0.0.1:9646", token, &[]);
            for p in paths {
                for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"] {
                    for auth in [None, Some("Bearer 0123456789abcdef")] {
                        let mut h = vec![("host", "127.0.0.1:9646")];
                        h.extend(auth.map(|a| ("authorization", a)));
                        let Ok(uri) = p.parse::<hyper::Uri>() else {
                            continue;
                        };
                        let req = request(m, &uri.to_string(), &h);
                        let r = futures_util::FutureExt::now_or_never(route(&reg, &g, &req))
                            .expect("no engine: nothing to wait for");
                        assert!(r.status().as_u16() >= 200, "{m} {p}");
                    }
                }
            }
        }
        assert_eq!(resend_id("/deliveries/dead/resend"), None);
        assert_eq!(resend_id("/deliveries/dead//resend"), None);
        assert_eq!(resend_id("/deliveries/dead/msg_1/resend"), Some("msg_1"));
    }

    /// The journal's routes: reading needs the token when one is set, re-sending always
    /// needs it and a same-origin request (no engine here: 404 means the request got through).
    #[test]
    fn journal_routes_need_the_token() {
        let reg = Registry::default();
        let status = |token: Option<&str>, m: &str, p: &str, h: &[(&str, &str)]| {
            let g = guard("127.0.0.1:9646", token, &[]);
            let mut headers = vec![("host", "127.0.0.1:9646")];
            headers.extend_from_slice(h);
            let req = request(m, p, &headers);
            futures_util::FutureExt::now_or_never(route(&reg, &g, &req))
                .unwrap()
                .status()
                .as_u16()
        };
        let tok = Some("0123456789abcdef");
        let auth = ("authorization", "Bearer 0123456789abcdef");
        assert_eq!(status(None, "GET", "/cdrs", &[]), 404);
        assert_eq!(status(None, "POST", "/cdrs/x/resend", &[]), 403);
        assert_eq!(status(None, "POST", "/cdrs/resend", &[]), 403);
        assert_eq!(status(tok, "GET", "/cdrs", &[]), 401);
        assert_eq!(status(tok, "GET", "/cdrs/x", &[]), 401);
        assert_eq!(status(tok, "GET", "/cdrs/x", &[auth]), 404);
        assert_eq!(status(tok, "POST", "/cdrs/x/resend", &[]), 401);
        assert_eq!(status(tok, "POST", "/cdrs/x/resend", &[auth]), 404);
        let cross = ("origin", "http://evil.example");
        assert_eq!(status(tok, "POST", "/cdrs/x/resend", &[auth, cross]), 403);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_paths_never_panic(path in "/[a-z/_%.]{0,40}", post: bool) {
            let reg = Registry::default();
            let g = guard("127.0.0.1:9646", Some("0123456789abcdef"), &[]);
            if let Ok(uri) = path.parse::<hyper::Uri>() {
                let req = request(if post { "POST" } else { "GET" }, &uri.to_string(), &[
                    ("host", "127.0.0.1:9646"),
                    ("authorization", "Bearer 0123456789abcdef"),
                ]);
                let _ = futures_util::FutureExt::now_or_never(route(&reg, &g, &req));
            }
        }
    }

    /// Accept errors (EMFILE) are followed by a growing pause: in one second of (paused,
    /// virtual) time a listener that always fails is asked only a handful of times.
    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off() {
        let calls = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(AdminCounters::default());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let n = calls.clone();
        let task = tokio::spawn(accept_loop(
            move || {
                n.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(std::io::Error::from_raw_os_error(24)) }
            },
            Arc::new(Semaphore::new(4)),
            counters.clone(),
            shutdown,
            |(), _permit| async {},
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let made = calls.load(Ordering::Relaxed);
        assert!((5..=10).contains(&made), "{made} accept calls in 1 s");
        assert_eq!(counters.accept_errors.load(Ordering::Relaxed), made);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(accept_backoff(1), Duration::from_millis(10));
        assert_eq!(accept_backoff(30), Duration::from_secs(1));
    }
}

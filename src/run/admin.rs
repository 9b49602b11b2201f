//! The admin HTTP listener (loopback by default): `/metrics`, `/healthz`, `/readyz`, and the
//! dead letters (`GET /deliveries/dead`, `POST /deliveries/dead/{id}/resend`) — the outbox is
//! held open by the running process, so this is how dead letters are re-sent while it runs.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Registry;
use crate::source::blackhole::SourceStatus;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
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
        e.outbox()
            .pending_len()
            .map_err(|err| format!("outbox unavailable: {err}"))?;
    }
    Ok(())
}

fn route(reg: &Registry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    match (method, path) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "text/plain; version=0.0.4", reg.render())
        }
        (&Method::GET, "/healthz") => reply(StatusCode::OK, text, "ok\n"),
        (&Method::GET, "/readyz") => match readiness(reg) {
            Ok(()) => reply(StatusCode::OK, text, "ready\n"),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, text, format!("{why}\n")),
        },
        (&Method::GET, "/deliveries/dead") => {
            match reg.engine.as_ref().map(|e| e.outbox().dead()) {
                Some(Ok(jobs)) => {
                    let v: Vec<serde_json::Value> = jobs.iter().map(|j| j.redacted()).collect();
                    reply(
                        StatusCode::OK,
                        "application/json",
                        serde_json::to_vec(&v).unwrap_or_default(),
                    )
                }
                Some(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, text, e.to_string()),
                None => reply(StatusCode::NOT_FOUND, text, "no delivery engine\n"),
            }
        }
        (&Method::POST, p) if p.starts_with("/deliveries/dead/") && p.ends_with("/resend") => {
            let id = &p["/deliveries/dead/".len()..p.len() - "/resend".len()];
            match reg.engine.as_ref().map(|e| e.resend(id)) {
                Some(Ok(_)) => reply(StatusCode::OK, text, "queued\n"),
                Some(Err(crate::delivery::OutboxError::NotFound(_))) => {
                    reply(StatusCode::NOT_FOUND, text, "no such dead letter\n")
                }
                Some(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, text, e.to_string()),
                None => reply(StatusCode::NOT_FOUND, text, "no delivery engine\n"),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, text, "not found\n"),
    }
}

/// Binds the listener (so the caller learns the port at once) and serves until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    reg: Registry,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                r = listener.accept() => match r {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
                _ = shutdown.changed() => return,
            };
            let reg = reg.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = route(&reg, req.method(), req.uri().path());
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok((local, task))
}

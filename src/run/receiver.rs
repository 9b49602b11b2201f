//! A webhook receiver: an HTTP/1.1 server (plain or TLS) on 127.0.0.1 that hands every request
//! to a handler and answers what the handler returns. The demo prints what it receives; the
//! tests script answers (statuses, delays, headers) and record requests with the same server.
//!
//! A tool for the demo and for tests on loopback, not a production endpoint: it reads whole
//! bodies into memory and serves every connection it accepts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers, as sent.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When the request was complete at the receiver.
    pub at: Instant,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// A reply with a status and no body.
    ///
    /// # Panics
    /// `status` is not a valid HTTP status (100–999).
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("a valid HTTP status"),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
        }
    }

    /// A reply with a status and a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            body: Bytes::from(body.to_string()),
            ..Self::status(status)
        }
        .with_header("content-type", "application/json")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 (a free port) answering every request with `handler`,
    /// over TLS when `tls` is given. The handler gets each request once its body is complete.
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub async fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(Received) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler = Arc::new(handler);
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (handler, acceptor) = (handler.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(answer(req, &*handler).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            if let Ok(stream) = a.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            task,
            tls: tls.is_some(),
        })
    }

    /// The base URL (`http[s]://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    handler: &(dyn Fn(Received) -> Reply + Send + Sync),
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = handler(Received {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = reply.status;
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

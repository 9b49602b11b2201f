//! A webhook receiver: an HTTP/1.1 server (plain or TLS) on 127.0.0.1 that hands every request
//! to a handler and answers what the handler returns. The demo prints what it receives; the
//! tests script answers (statuses, delays, headers, chunked bodies, dropped connections) and
//! record requests with the same server.
//!
//! A tool for the demo and for tests on loopback, not a production endpoint: it reads whole
//! bodies into memory and serves every connection it accepts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
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

/// What the receiver does with a request: a [`Reply`], or one of the ways a faulty server
/// answers.
#[derive(Debug, Clone)]
pub enum Served {
    /// Answer with a complete body (`content-length`).
    Reply(Reply),
    /// Answer with `Transfer-Encoding: chunked`, one HTTP chunk per item, after the reply's
    /// delay.
    Chunked(Reply, Vec<Bytes>),
    /// Close the connection without answering (after the delay, if any).
    Drop(Option<Duration>),
    /// Send the head and the first chunk, then close the connection mid-body.
    DropMidBody(Reply, Bytes),
}

impl From<Reply> for Served {
    fn from(r: Reply) -> Self {
        Served::Reply(r)
    }
}

/// A response body sent as the given chunks; ends with an error (connection cut) when `cut`
/// is set.
struct ChunkBody {
    chunks: std::collections::VecDeque<Bytes>,
    cut: bool,
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let next = match self.chunks.pop_front() {
            Some(c) => Some(Ok(hyper::body::Frame::data(c))),
            None if self.cut => {
                self.cut = false;
                Some(Err(std::io::Error::other("connection cut mid-body")))
            }
            None => None,
        };
        std::task::Poll::Ready(next)
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
        handler: impl Fn(Received) -> Served + Send + Sync + 'static,
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
                        async move { answer(req, &*handler).await }
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

/// Reads the request, asks the handler, and answers as it says (`Err` closes the connection).
async fn answer(
    req: Request<Incoming>,
    handler: &(dyn Fn(Received) -> Served + Send + Sync),
) -> Result<Response<ChunkBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let served = handler(Received {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let (reply, chunks, cut, chunked) = match served {
        Served::Reply(r) => {
            let body = r.body.clone();
            (r, vec![body], false, false)
        }
        Served::Chunked(r, chunks) => (r, chunks, false, true),
        Served::DropMidBody(r, first) => (r, vec![first], true, true),
        Served::Drop(delay) => {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            return Err(std::io::Error::other("connection dropped"));
        }
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::new(ChunkBody {
        chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
        cut,
    });
    *resp.status_mut() = reply.status;
    if !chunked {
        resp.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, reply.body.len().into());
    }
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

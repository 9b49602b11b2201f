//! A real HTTP/1.1 server (plain or TLS) on 127.0.0.1:0 whose answers a test scripts and whose
//! requests it records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::tls::TestCa;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When the request was complete at the server.
    pub at: std::time::Instant,
}

impl Recorded {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the server answers.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// A reply with a status and a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
            delay: None,
        }
    }

    /// A reply with a status and no body.
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the server does with a request, beyond a plain [`Reply`].
pub enum Served {
    /// Answer with a complete body (`content-length`).
    Reply(Reply),
    /// Answer with `Transfer-Encoding: chunked`, one HTTP chunk per item, after `delay`.
    Chunked(Reply, Vec<Bytes>),
    /// Close the connection without answering (after `delay`, if any).
    Drop(Option<Duration>),
    /// Send the head and the first chunk, then close the connection mid-body.
    DropMidBody(Reply, Bytes),
}

type Handler = Arc<dyn Fn(&Recorded) -> Served + Send + Sync>;

/// A response body sent as the given chunks; ends with an error (connection cut) when
/// `cut` is set.
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

/// A running server; it stops when dropped.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Recorded>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl HttpServer {
    /// Starts a server answering every request with `handler`; TLS when `ca` is given.
    pub async fn start(
        ca: Option<&TestCa>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_served(ca, move |r| Served::Reply(handler(r))).await
    }

    /// Starts a server whose handler may also stream chunks or cut connections.
    pub async fn start_served(
        ca: Option<&TestCa>,
        handler: impl Fn(&Recorded) -> Served + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(handler);
        let acceptor = ca.map(|ca| tokio_rustls::TlsAcceptor::from(ca.server.clone()));
        let tls = acceptor.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (handler, tx, acceptor) = (handler.clone(), tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (handler, tx) = (handler.clone(), tx.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let rec = Recorded {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                at: std::time::Instant::now(),
                            };
                            let served = handler(&rec);
                            let _ = tx.send(rec);
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
                                resp.headers_mut().insert(
                                    hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                    v.parse().unwrap(),
                                );
                            }
                            Ok::<_, std::io::Error>(resp)
                        }
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
        Self {
            addr,
            requests,
            task,
            tls,
        }
    }

    /// The base URL (`http[s]://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://127.0.0.1:{}", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}", self.addr.port())
        }
    }

    /// The next request the server received (waits for it).
    pub async fn next_request(&mut self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("server running")
    }
}

impl HttpServer {
    /// The next request if one arrives within `wait` (to show that none does).
    pub async fn next_request_within(&mut self, wait: Duration) -> Option<Recorded> {
        tokio::time::timeout(wait, self.requests.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

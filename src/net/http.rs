//! One pooled HTTP/1.1 client over rustls (hyper + hyper-util), for Crossbar, remote trigger
//! sets and webhooks. Redirects are never followed (hyper does not), every request has a
//! deadline covering connect, headers and body, and response bodies are size-capped.
//!
//! Errors never carry the URL: webhook URLs hold signed query parameters (Logic Apps `sig`)
//! and Crossbar URLs are not secret but the rule is simpler without exceptions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;

use super::guard::{AddressGuard, Forbidden, GuardedResolver};

/// Why a request produced no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection (refused, DNS, TLS handshake, reset before a response).
    #[error("connect failed: {0}")]
    Connect(String),
    /// The destination is not allowed (SSRF guard); retrying cannot help.
    #[error("{0}")]
    Forbidden(String),
    /// No complete response within the deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The response body broke off or exceeded the size limit.
    #[error("response body: {0}")]
    Body(String),
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most the client's size limit).
    pub body: Bytes,
}

/// Tunables of [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP connect timeout (the request deadline still applies on top).
    pub connect_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// Largest response body read; a larger one is an error.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            max_body_bytes: 32 << 20,
        }
    }
}

/// A cheap-to-clone pooled client for `http://` and `https://` URLs.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    max_body: usize,
    guard: Arc<AddressGuard>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client verifying servers with `tls` that may reach any address (the PBX's own
    /// Crossbar is usually on a private network).
    pub fn new(tls: Arc<ClientConfig>, opts: &HttpOptions) -> Self {
        Self::with_guard(tls, opts, AddressGuard::permissive())
    }

    /// A client that only reaches addresses `guard` allows, checked on the resolved
    /// addresses at connect time and on IP-literal hosts before sending.
    pub fn with_guard(tls: Arc<ClientConfig>, opts: &HttpOptions, guard: AddressGuard) -> Self {
        let guard = Arc::new(guard);
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(guard.clone()));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(opts.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .build(https);
        Self {
            inner,
            max_body: opts.max_body_bytes,
            guard,
        }
    }

    /// Sends `req` and reads the whole response within `deadline`.
    ///
    /// # Errors
    /// No connection, no complete response in time, or a body over the size limit.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        deadline: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let work = async {
            let (parts, body) = self.request(req).await?.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| HttpError::Body(e.to_string()))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| HttpError::Timeout(deadline))?
    }
}

impl HttpClient {
    /// Sends `req` and returns the status and at most `keep` bytes of the body; the rest is
    /// never read (the connection is closed instead of drained), so a receiver streaming a
    /// huge body costs `keep` bytes. For webhooks, where only the status matters.
    ///
    /// # Errors
    /// No connection or no response headers within `deadline`.
    pub async fn send_for_status(
        &self,
        req: Request<Full<Bytes>>,
        deadline: Duration,
        keep: usize,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        self.send_head(req, deadline, keep)
            .await
            .map(|(parts, head)| (parts.status, head))
    }

    /// [`HttpClient::send_for_status`] with the whole response head (status and headers).
    ///
    /// # Errors
    /// No connection or no response headers within `deadline`.
    pub async fn send_head(
        &self,
        req: Request<Full<Bytes>>,
        deadline: Duration,
        keep: usize,
    ) -> Result<(hyper::http::response::Parts, Bytes), HttpError> {
        let work = async {
            let (parts, mut body) = self.request(req).await?.into_parts();
            let mut head = Vec::new();
            while head.len() < keep {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            let n = data.len().min(keep - head.len());
                            head.extend_from_slice(&data[..n]);
                        }
                    }
                    // The status is what counts; a body that breaks off does not undo it.
                    Some(Err(_)) | None => break,
                }
            }
            Ok((parts, Bytes::from(head)))
        };
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| HttpError::Timeout(deadline))?
    }

    /// Sends `req` (after the guard's check of an IP-literal host) and returns the response
    /// head with its unread body.
    async fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, HttpError> {
        self.check_literal(&req)?;
        self.inner
            .request(req)
            .await
            .map_err(|e| match forbidden_in(&e) {
                Some(f) => HttpError::Forbidden(f.to_string()),
                None => HttpError::Connect(error_chain(&e)),
            })
    }

    /// Refuses an IP-literal host the guard does not allow, before any connection.
    fn check_literal<B>(&self, req: &Request<B>) -> Result<(), HttpError> {
        if let Some(host) = req.uri().host() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                self.guard
                    .check(ip)
                    .map_err(|e| HttpError::Forbidden(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// The guard's refusal, if that is what broke the connection.
fn forbidden_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Forbidden> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(f) = c.downcast_ref::<Forbidden>() {
            return Some(f);
        }
        if let Some(f) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Forbidden>())
        {
            return Some(f);
        }
        cur = c.source();
    }
    None
}

/// An error and its sources, `: `-joined (hyper's top-level messages are terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

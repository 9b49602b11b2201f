//! The remote trigger source: one HTTPS URL returning a trigger document, fetched with
//! conditional requests (`If-None-Match` / `If-Modified-Since`) so an unchanged set costs a 304.
//!
//! [`TriggerFetcher`] is the seam: the poll loop in [`super::reload`] only sees
//! [`Fetched`] values, so it is tested with an in-memory fetcher under paused time, and
//! [`HttpFetcher`] is tested against a real HTTPS server on 127.0.0.1.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use hyper::StatusCode;

use super::file::DocFormat;
use super::model::redacted_url;
use crate::net::{HttpClient, HttpError};

/// The validators of the document last fetched, echoed on the next request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag` of the last answer.
    pub etag: Option<String>,
    /// `Last-Modified` of the last answer.
    pub last_modified: Option<String>,
}

/// The answer to one poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The document has not changed since the validators sent.
    NotModified,
    /// A (possibly) new document.
    New {
        /// The document text.
        body: String,
        /// How it is written (JSON when the content type says so, else TOML).
        format: DocFormat,
        /// Validators to send next time.
        validators: Validators,
    },
}

/// Why a poll produced no document.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A status other than 200 or 304.
    #[error("unexpected status {0}")]
    Status(StatusCode),
    /// The body is not UTF-8.
    #[error("the document is not UTF-8")]
    NotUtf8,
}

/// Fetches the remote trigger document.
pub trait TriggerFetcher: Send + Sync + 'static {
    /// One conditional request.
    fn fetch(
        &self,
        validators: &Validators,
    ) -> impl Future<Output = Result<Fetched, FetchError>> + Send;

    /// Names the source in errors and logs (never with a query string).
    fn origin(&self) -> String;
}

/// [`TriggerFetcher`] over the shared HTTPS client.
#[derive(Clone)]
pub struct HttpFetcher {
    client: HttpClient,
    url: hyper::Uri,
    deadline: Duration,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("url", &redacted_url(&self.url))
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// Fetches `url` with `client`; each request must complete within `deadline`.
    pub fn new(client: HttpClient, url: hyper::Uri, deadline: Duration) -> Self {
        Self {
            client,
            url,
            deadline,
        }
    }
}

fn header(h: &hyper::HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl TriggerFetcher for HttpFetcher {
    async fn fetch(&self, validators: &Validators) -> Result<Fetched, FetchError> {
        let mut req = hyper::Request::get(self.url.clone())
            .header(
                "accept",
                "application/toml, application/json;q=0.9, */*;q=0.1",
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let h = req.headers_mut();
        for (name, value) in [
            (IF_NONE_MATCH, &validators.etag),
            (IF_MODIFIED_SINCE, &validators.last_modified),
        ] {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                h.insert(name, v);
            }
        }
        let resp = self.client.send(req, self.deadline).await?;
        match resp.status {
            StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
            StatusCode::OK => {
                let json = header(&resp.headers, CONTENT_TYPE)
                    .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
                let body =
                    String::from_utf8(resp.body.to_vec()).map_err(|_| FetchError::NotUtf8)?;
                Ok(Fetched::New {
                    body,
                    format: if json {
                        DocFormat::Json
                    } else {
                        DocFormat::Toml
                    },
                    validators: Validators {
                        etag: header(&resp.headers, ETAG),
                        last_modified: header(&resp.headers, LAST_MODIFIED),
                    },
                })
            }
            other => Err(FetchError::Status(other)),
        }
    }

    fn origin(&self) -> String {
        redacted_url(&self.url)
    }
}

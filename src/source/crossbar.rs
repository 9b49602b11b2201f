//! Crossbar, Kazoo's REST API: token exchange and the few reads postcall needs (account,
//! directory listings, active channels, descendants, stored leg CDRs).
//!
//! CDRs (`cb_cdrs.erl`, 4.3): [`Crossbar::cdr_page`] reads one page of the `/cdrs` summary
//! listing of a window (at most [`MAX_CDR_RANGE_SECS`]; longer windows are refused with a
//! typed error before any request: the caller cuts longer ones), [`Crossbar::cdr_legs`] the
//! whole stored documents of one interaction. [`CrossbarError::is_retryable`] tells a caller
//! whether to back off and retry.
//!
//! Every response is Kazoo's envelope `{"data": …, "status": …, "next_start_key": …}`;
//! listings are paged with `start_key`. The auth token travels in `X-Auth-Token` and never
//! appears in an error.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::Value;

use crate::clock::WallTime;
use crate::net::{HttpClient, HttpError, Secret};
use crate::source::GREGORIAN_UNIX_OFFSET_SECS;

/// Why a Crossbar call failed.
#[derive(Debug, thiserror::Error)]
pub enum CrossbarError {
    /// No response.
    #[error("crossbar {path}: {error}")]
    Http {
        /// Request path.
        path: String,
        /// Transport error (in the message, not a `source()`, so it is said once).
        error: HttpError,
    },
    /// The token was refused (401): get a new one.
    #[error("crossbar {path}: unauthorized: {message}")]
    Unauthorized {
        /// Request path.
        path: String,
        /// Kazoo's message.
        message: String,
    },
    /// Any other non-2xx status.
    #[error("crossbar {path}: HTTP {status}: {message}")]
    Status {
        /// Request path.
        path: String,
        /// Status code.
        status: u16,
        /// Kazoo's message.
        message: String,
    },
    /// A 2xx response that is not the expected JSON.
    #[error("crossbar {path}: unexpected response: {message}")]
    Invalid {
        /// Request path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A CDR window Kazoo would refuse (400): `to` before `from`, or longer than
    /// [`MAX_CDR_RANGE_SECS`]: cut it into windows Kazoo accepts.
    #[error("CDR window {from_unix_s}..{to_unix_s} is not 0..={MAX_CDR_RANGE_SECS} s long")]
    Range {
        /// Start (Unix seconds).
        from_unix_s: i64,
        /// End (Unix seconds).
        to_unix_s: i64,
    },
}

impl CrossbarError {
    /// Whether the same request may succeed later: no connection, a timeout, a body that
    /// broke off, 408, 429 or a 5xx. A refused token (401: get a new one), other 4xx, a
    /// destination the guard forbids, a malformed answer and a bad window are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { error, .. } => !matches!(error, HttpError::Forbidden(_)),
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Unauthorized { .. } | Self::Invalid { .. } | Self::Range { .. } => false,
        }
    }

    /// The HTTP status Kazoo answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The longest `created_from`..`created_to` window Kazoo's `/cdrs` accepts: 31 days + 1 hour
/// (`crossbar_view`, `maximum_range` default; a longer one is a 400).
pub const MAX_CDR_RANGE_SECS: i64 = 2_682_000;

/// One row of the `/cdrs` listing: a summary of one stored leg CDR, not the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrSummary {
    /// The CDR id (`YYYYMM-<call_id>`), for `/cdrs/{cdr_id}` and `/cdrs/legs/{cdr_id}`.
    pub id: String,
    /// The leg's call id.
    pub call_id: String,
    /// The interaction (session) the leg belongs to, for `/cdrs/legs/{interaction_id}`.
    pub interaction_id: Option<String>,
    /// When the leg started (Unix s): the listing's `timestamp`, which `cb_cdrs` computes as
    /// the document's `timestamp` − `duration_seconds` and sends as a string.
    pub start_unix_s: Option<i64>,
    /// When the leg ended (Unix s): `start_unix_s` + `duration_seconds`.
    pub end_unix_s: Option<i64>,
    /// `duration_seconds`.
    pub duration_seconds: Option<i64>,
    /// `billing_seconds`.
    pub billing_seconds: Option<i64>,
    /// `other_leg_call_id`.
    pub other_leg_call_id: Option<String>,
    /// `hangup_cause`.
    pub hangup_cause: Option<String>,
    /// `direction` (`inbound`/`outbound`, relative to the switch).
    pub direction: Option<String>,
}

impl CdrSummary {
    /// A listing row; `None` without an `id` or `call_id`. Empty strings (what `cb_cdrs`
    /// writes for a missing field) are absent; numbers may be strings.
    pub fn from_row(row: &Value) -> Option<Self> {
        let text = |k: &str| {
            row.get(k)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        let int = |k: &str| {
            row.get(k).and_then(|v| match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let duration_seconds = int("duration_seconds");
        let start_unix_s = int("timestamp").map(|g| g - GREGORIAN_UNIX_OFFSET_SECS);
        Some(Self {
            id: text("id")?,
            call_id: text("call_id")?,
            interaction_id: text("interaction_id"),
            start_unix_s,
            end_unix_s: start_unix_s.map(|s| s + duration_seconds.unwrap_or(0)),
            duration_seconds,
            billing_seconds: int("billing_seconds"),
            other_leg_call_id: text("other_leg_call_id"),
            hangup_cause: text("hangup_cause"),
            direction: text("direction"),
        })
    }
}

/// One page of the `/cdrs` listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CdrPage {
    /// The rows, in Kazoo's order (newest first).
    pub rows: Vec<CdrSummary>,
    /// Rows of the page that were not summaries (no `id` or `call_id`); skipped.
    pub skipped: usize,
    /// Pass back as `start_key` for the next page; `None` on the last page.
    pub next_start_key: Option<String>,
}

/// A token issued by `PUT /v2/api_auth`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: Secret,
    /// The account it belongs to.
    pub account_id: Option<String>,
    /// When it expires, from the JWT `exp` claim when the token is a JWT.
    pub expires: Option<WallTime>,
}

/// A Crossbar endpoint (`http[s]://host:8000`).
#[derive(Debug, Clone)]
pub struct Crossbar {
    base: String,
    http: HttpClient,
    timeout: Duration,
}

impl Crossbar {
    /// A client for the API at `base_url` (with or without a trailing `/`, with or without
    /// `/v2`).
    pub fn new(base_url: &str, http: HttpClient, timeout: Duration) -> Self {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v2").unwrap_or(base).to_owned();
        Self {
            base,
            http,
            timeout,
        }
    }

    /// Exchanges an account API key for a token (`PUT /v2/api_auth`).
    ///
    /// # Errors
    /// Transport errors, a refused key (`Unauthorized`), or a response without `auth_token`.
    pub async fn api_auth(&self, api_key: &Secret) -> Result<IssuedToken, CrossbarError> {
        let path = "/v2/api_auth";
        let body = serde_json::json!({"data": {"api_key": api_key.expose()}}).to_string();
        let v = self
            .call(Method::PUT, path, None, Some(body), api_key)
            .await?;
        let token = v
            .get("auth_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CrossbarError::Invalid {
                path: path.into(),
                message: "no auth_token in the response".into(),
            })?;
        let account_id = v
            .pointer("/data/account_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(IssuedToken {
            expires: jwt_expiry(token),
            token: Secret::new(token),
            account_id,
        })
    }

    /// `GET path` and the envelope's `data`.
    ///
    /// # Errors
    /// Transport errors, a refused token, a non-2xx status or a body that is not JSON.
    pub async fn get(&self, token: &Secret, path: &str) -> Result<Value, CrossbarError> {
        let mut v = self
            .call(Method::GET, path, Some(token), None, token)
            .await?;
        Ok(v.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// Every item of a paged listing (`data` arrays joined, following `next_start_key`).
    ///
    /// # Errors
    /// As [`Crossbar::get`]; also a `data` that is not an array.
    pub async fn list(&self, token: &Secret, path: &str) -> Result<Vec<Value>, CrossbarError> {
        let mut items = Vec::new();
        let mut start: Option<String> = None;
        for _ in 0..10_000 {
            let page_path = match &start {
                None => path.to_owned(),
                Some(k) => {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    format!("{path}{sep}start_key={}", percent_encode(k))
                }
            };
            let mut v = self
                .call(Method::GET, &page_path, Some(token), None, token)
                .await?;
            match v.get_mut("data").map(Value::take) {
                Some(Value::Array(a)) => items.extend(a),
                Some(Value::Null) | None => {}
                Some(_) => {
                    return Err(CrossbarError::Invalid {
                        path: path.into(),
                        message: "data is not a list".into(),
                    })
                }
            }
            let next = next_start_key(&v);
            if next.is_none() || next == start {
                return Ok(items);
            }
            start = next;
        }
        Ok(items)
    }

    /// One page of leg CDR summaries of `account_id` stored (`pvt_created`, about when the
    /// leg ended) within `from_unix_s..=to_unix_s`:
    /// `GET /v2/accounts/{A}/cdrs?created_from=G&created_to=G&page_size=N[&start_key=K]`,
    /// Gregorian seconds. Both envelopes are read: the chunked default (trailer values are
    /// strings) and the plain one.
    ///
    /// # Errors
    /// [`CrossbarError::Range`] for a window Kazoo would refuse; else
    /// as [`Crossbar::get`], and a `data` that is not a list.
    pub async fn cdr_page(
        &self,
        token: &Secret,
        account_id: &str,
        from_unix_s: i64,
        to_unix_s: i64,
        start_key: Option<&str>,
        page_size: u32,
    ) -> Result<CdrPage, CrossbarError> {
        if to_unix_s < from_unix_s || to_unix_s - from_unix_s > MAX_CDR_RANGE_SECS {
            return Err(CrossbarError::Range {
                from_unix_s,
                to_unix_s,
            });
        }
        let mut path = format!(
            "/v2/accounts/{}/cdrs?created_from={}&created_to={}&page_size={}",
            percent_encode(account_id),
            from_unix_s + GREGORIAN_UNIX_OFFSET_SECS,
            to_unix_s + GREGORIAN_UNIX_OFFSET_SECS,
            page_size.max(1)
        );
        if let Some(k) = start_key {
            path.push_str("&start_key=");
            path.push_str(&percent_encode(k));
        }
        let v = self
            .call(Method::GET, &path, Some(token), None, token)
            .await?;
        let rows = data_list(&v, &path)?;
        let mut page = CdrPage {
            next_start_key: next_start_key(&v),
            ..CdrPage::default()
        };
        for row in rows {
            match CdrSummary::from_row(row) {
                Some(r) => page.rows.push(r),
                None => page.skipped += 1,
            }
        }
        Ok(page)
    }

    /// Every stored leg CDR document of one interaction (all pages of
    /// `GET /v2/accounts/{A}/cdrs/legs/{interaction_id}`), as Kazoo stored them; read each
    /// with [`leg_event`](crate::source::leg_event). A CDR id works too: Kazoo looks its
    /// interaction up.
    ///
    /// # Errors
    /// As [`Crossbar::list`].
    pub async fn cdr_legs(
        &self,
        token: &Secret,
        account_id: &str,
        interaction_id: &str,
    ) -> Result<Vec<Value>, CrossbarError> {
        let path = format!(
            "/v2/accounts/{}/cdrs/legs/{}",
            percent_encode(account_id),
            percent_encode(interaction_id)
        );
        self.list(token, &path).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<String>,
        scrub: &Secret,
    ) -> Result<Value, CrossbarError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("postcall/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = token {
            req = req.header("x-auth-token", t.expose());
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CrossbarError::Invalid {
                path: path.into(),
                message: format!("bad request: {e}"),
            })?;
        let resp =
            self.http
                .send(req, self.timeout)
                .await
                .map_err(|error| CrossbarError::Http {
                    path: path.into(),
                    error,
                })?;
        let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let status = resp.status.as_u16();
        if !resp.status.is_success() {
            let message = scrub.scrub(&kazoo_message(json.as_ref(), &resp.body));
            return Err(if status == 401 {
                CrossbarError::Unauthorized {
                    path: path.into(),
                    message,
                }
            } else {
                CrossbarError::Status {
                    path: path.into(),
                    status,
                    message,
                }
            });
        }
        json.ok_or_else(|| CrossbarError::Invalid {
            path: path.into(),
            message: "body is not JSON".into(),
        })
    }
}

/// `data` as a list (absent or null: empty).
fn data_list<'v>(v: &'v Value, path: &str) -> Result<&'v [Value], CrossbarError> {
    match v.get("data") {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) | None => Ok(&[]),
        Some(_) => Err(CrossbarError::Invalid {
            path: path.into(),
            message: "data is not a list".into(),
        }),
    }
}

/// `next_start_key` as the opaque text to pass back: a string as it is (chunked trailers
/// and encoded keys), a number or other JSON value as its JSON text.
fn next_start_key(v: &Value) -> Option<String> {
    match v.get("next_start_key")? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Kazoo's error text: top-level `message`, else `data.message`, else the body's start.
fn kazoo_message(json: Option<&Value>, body: &[u8]) -> String {
    json.and_then(|v| {
        v.get("message")
            .or_else(|| v.pointer("/data/message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
    .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// The `exp` claim of a JWT, in unix µs (`None` for opaque tokens).
pub fn jwt_expiry(token: &str) -> Option<WallTime> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?.as_i64()?;
    exp.checked_mul(1_000_000).map(WallTime::from_us)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_exp_is_read_and_opaque_tokens_have_none() {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"account_id":"a","exp":1715700000}"#);
        assert_eq!(
            jwt_expiry(&format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig")),
            Some(WallTime::from_us(1_715_700_000_000_000))
        );
        assert_eq!(jwt_expiry("0123456789abcdef"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    /// A listing row as Kazoo's 2015 `applications/crossbar/doc/cdrs.md` shows it (2600hz/kazoo,
    /// file `fixtures/captures/kazoo-2015_crossbar_cdrs.md.grouped.txt`, see provenance.json):
    /// numbers as strings, `timestamp` the leg's start (`cb_cdrs:normalize_cdr/3` subtracts
    /// `duration_seconds`; the row's `unix_timestamp` 1435321607 is the same instant).
    #[test]
    fn listing_rows_are_read_as_kazoo_writes_them() {
        let row = serde_json::json!({
            "authorizing_id": "e7d89a1d901d3b10a0b06675f5ef49c1",
            "billing_seconds": "1", "call_id": "{CALL_ID}", "call_priority": "",
            "direction": "inbound", "duration_seconds": "8", "hangup_cause": "NORMAL_CLEARING",
            "id": "201506-{CALL_ID}", "other_leg_call_id": "{OTHER_LEG_CALL_ID}", "owner_id": "",
            "timestamp": "63602540807", "unix_timestamp": "1435321607"
        });
        let s = CdrSummary::from_row(&row).unwrap();
        assert_eq!(s.id, "201506-{CALL_ID}");
        assert_eq!(s.call_id, "{CALL_ID}");
        assert_eq!(s.start_unix_s, Some(1_435_321_607));
        assert_eq!(s.end_unix_s, Some(1_435_321_615));
        assert_eq!((s.duration_seconds, s.billing_seconds), (Some(8), Some(1)));
        assert_eq!(s.interaction_id, None);
        assert_eq!(s.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
        assert_eq!(s.direction.as_deref(), Some("inbound"));
        assert_eq!(
            CdrSummary::from_row(&serde_json::json!({"id": "x", "call_id": ""})),
            None
        );
    }

    #[test]
    fn retryable_errors_are_transport_timeouts_429_and_5xx() {
        let status = |status| CrossbarError::Status {
            path: "/".into(),
            status,
            message: String::new(),
        };
        let http = |error| CrossbarError::Http {
            path: "/".into(),
            error,
        };
        for e in [
            status(500),
            status(502),
            status(503),
            status(429),
            status(408),
            http(HttpError::Connect("refused".into())),
            http(HttpError::Timeout(Duration::from_secs(1))),
            http(HttpError::Body("broke off".into())),
        ] {
            assert!(e.is_retryable(), "{e}");
        }
        for e in [
            status(400),
            status(403),
            status(404),
            CrossbarError::Unauthorized {
                path: "/".into(),
                message: String::new(),
            },
            http(HttpError::Forbidden("guard".into())),
            CrossbarError::Range {
                from_unix_s: 2,
                to_unix_s: 1,
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn start_keys_are_encoded() {
        assert_eq!(percent_encode("[\"a b\"]"), "%5B%22a%20b%22%5D");
    }
}

//! Crossbar, Kazoo's REST API: token exchange and the few reads postcall needs (account,
//! directory listings, active channels, descendants).
//!
//! Every response is Kazoo's envelope `{"data": …, "status": …, "next_start_key": …}`;
//! listings are paged with `start_key`. The auth token travels in `X-Auth-Token` and never
//! appears in an error.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::Value;

use crate::net::{HttpClient, HttpError, Secret};

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
}

/// A token issued by `PUT /v2/api_auth`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: Secret,
    /// The account it belongs to.
    pub account_id: Option<String>,
    /// When it expires (unix µs), from the JWT `exp` claim when the token is a JWT.
    pub expires_us: Option<i64>,
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
            expires_us: jwt_expiry_us(token),
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
            let next = match v.get("next_start_key") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            if next.is_none() || next == start {
                return Ok(items);
            }
            start = next;
        }
        Ok(items)
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
pub fn jwt_expiry_us(token: &str) -> Option<i64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?.as_i64()?;
    exp.checked_mul(1_000_000)
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
            jwt_expiry_us(&format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig")),
            Some(1_715_700_000_000_000)
        );
        assert_eq!(jwt_expiry_us("0123456789abcdef"), None);
        assert_eq!(jwt_expiry_us("a.!!!.c"), None);
    }

    #[test]
    fn start_keys_are_encoded() {
        assert_eq!(percent_encode("[\"a b\"]"), "%5B%22a%20b%22%5D");
    }
}

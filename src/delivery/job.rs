//! One delivery: a CDR payload for one trigger's endpoint, with its attempt state. The
//! endpoint is copied in, so a trigger edited while a delivery is pending does not change
//! where it goes — but the signing secret is not: a signed job names its trigger and is
//! signed with that trigger's key at send time (see [`super::keys`]), so no secret is
//! stored in the outbox.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::payload::{Format, Method};
use crate::net::Secret;

/// Where and how to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredEndpoint")]
pub struct Endpoint {
    /// Target URL.
    pub url: String,
    /// Method.
    pub method: Method,
    /// Body format (POST/PUT).
    pub format: Format,
    /// Retries after the first attempt (0–10).
    pub retries: u32,
    /// Signed (Standard Webhooks) with the trigger's key current at send time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

/// An endpoint as stored, old rows included: versions before 0.1 stored the signing secret
/// itself (`secret`). Such a row reads as `signed` (the secret is dropped; the outbox rewrites
/// the row when it opens).
#[derive(Deserialize)]
struct StoredEndpoint {
    url: String,
    method: Method,
    format: Format,
    retries: u32,
    #[serde(default)]
    signed: bool,
    #[serde(default)]
    secret: Option<Secret>,
}

impl From<StoredEndpoint> for Endpoint {
    fn from(e: StoredEndpoint) -> Self {
        Self {
            url: e.url,
            method: e.method,
            format: e.format,
            retries: e.retries,
            signed: e.signed || e.secret.is_some(),
        }
    }
}

impl Endpoint {
    /// The concurrency lane: scheme, host and port. Deliveries to one lane never hold up
    /// another lane.
    pub fn lane(&self) -> String {
        lane_of(&self.url)
    }
}

/// URLs whose lane was worked out lately, at most this many (then forgotten all at once).
const LANES_REMEMBERED: usize = 1024;

/// The lane of `url`, remembered: a delivery's lane is asked for when it is written,
/// attempted and recorded, and parsing its URL each time cost more than the lookup.
fn lane_of(url: &str) -> String {
    static LANES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::LazyLock::new(Default::default);
    if let Some(lane) = LANES.lock().ok().and_then(|m| m.get(url).cloned()) {
        return lane;
    }
    let lane = match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => "invalid".into(),
    };
    if let Ok(mut m) = LANES.lock() {
        if m.len() >= LANES_REMEMBERED {
            m.clear();
        }
        m.insert(url.to_owned(), lane.clone());
    }
    lane
}

/// A pending or dead delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Stable `webhook-id`: the same across retries, restarts and re-sends.
    pub webhook_id: String,
    /// The trigger that matched.
    pub trigger_id: String,
    /// Where to.
    pub endpoint: Endpoint,
    /// `{triggerId, id, tenantId, cdr, customData}`.
    pub payload: Box<serde_json::value::RawValue>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (unix µs).
    pub next_attempt_us: i64,
    /// When the job was written (unix µs).
    pub created_us: i64,
    /// What the last attempt got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Job {
    /// The job as an operator may see it: the signing secret, the URL's user name and
    /// password and its query (Logic Apps carry a `sig` there) are left out.
    pub fn redacted(&self) -> Value {
        let url = crate::net::redact_url(&self.endpoint.url);
        serde_json::json!({
            "webhookId": self.webhook_id,
            "triggerId": self.trigger_id,
            "url": url,
            "method": self.endpoint.method,
            "format": self.endpoint.format,
            "retries": self.endpoint.retries,
            "signed": self.endpoint.signed,
            "attempts": self.attempts,
            "createdUs": self.created_us,
            "lastError": self.last_error,
            "payload": serde_json::from_str::<Value>(self.payload.get()).unwrap_or(Value::Null),
        })
    }
}

/// The stable webhook id of (session, trigger).
pub fn webhook_id(session_id: &str, trigger_id: &str) -> String {
    const NS: uuid::Uuid = uuid::Uuid::from_u128(0x6d1c_3f0e_5a2b_4c8d_9e7f_1a2b_3c4d_5e6f);
    let name = format!("{session_id}\u{1f}{trigger_id}");
    format!("msg_{}", uuid::Uuid::new_v5(&NS, name.as_bytes()).simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint {
            url: url.into(),
            method: Method::Post,
            format: Format::Json,
            retries: 0,
            signed: false,
        }
    }

    /// Lanes as the WHATWG URL standard reads these URLs (scheme and host lower-cased,
    /// the scheme's default port filled in), the same whether remembered or not.
    #[test]
    fn a_lane_is_scheme_host_and_port_whether_remembered_or_not() {
        let cases = [
            (
                "https://Hooks.Example.COM/a?b=c",
                "https://hooks.example.com:443",
            ),
            ("http://user:pw@10.0.0.1/x", "http://10.0.0.1:80"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
            ("https://example.com:8443/p", "https://example.com:8443"),
            ("not a url", "invalid"),
        ];
        for round in 0..2 {
            for (url, lane) in cases {
                assert_eq!(endpoint(url).lane(), lane, "{url} (round {round})");
            }
        }
        // More URLs than are remembered: the memory is emptied, the answers stay right.
        for i in 0..LANES_REMEMBERED + 10 {
            let url = format!("http://h{i}.example/");
            assert_eq!(endpoint(&url).lane(), format!("http://h{i}.example:80"));
        }
        assert_eq!(endpoint(cases[0].0).lane(), cases[0].1);
    }
}

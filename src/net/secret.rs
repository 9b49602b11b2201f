//! A string that must never reach a log line, an error message or a recorded fixture.

use std::fmt;

/// A secret value (auth token, API key, signing secret). `Debug` and `Display` print
/// `[redacted]`; the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by `[redacted]` (for messages a
    /// server echoes back, such as Blackhole's `failed to authenticate token <token>`).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A URL as it may be shown or logged: no user name or password, the query replaced by
/// `[redacted]` (Logic Apps URLs carry their `sig` there), no fragment.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.query().is_some() {
                u.set_query(Some("[redacted]"));
            }
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "[invalid url]".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("eyJhbGciOi.top.secret");
        assert!(!format!("{s:?} {s}").contains("top"));
        assert_eq!(
            s.scrub("failed to authenticate token eyJhbGciOi.top.secret"),
            "failed to authenticate token [redacted]"
        );
        assert_eq!(Secret::default().scrub("x"), "x");
        assert_eq!(
            redact_url("https://al:pw@h.example:8443/p/a?sig=S&x=1#frag"),
            "https://h.example:8443/p/a?[redacted]"
        );
        assert_eq!(redact_url("https://al@h.example/"), "https://h.example/");
        assert_eq!(redact_url("not a url al:pw@"), "[invalid url]");
    }
}

//! `[kazoo]`: where the PBX is and how to authenticate. Secrets are best given through
//! environment variables (`auth_token_env`, `api_key_env`); inline values are accepted for
//! tests and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Problem};
use crate::net::Secret;
use crate::run::live::KazooOptions;
use crate::source::auth::Credentials;
use crate::source::backoff::Backoff;

/// `[kazoo]` as written.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KazooSection {
    /// Blackhole URL, `ws://host:5555/` or `wss://…`.
    pub websocket_url: String,
    /// Crossbar URL, `http[s]://host:8000` (needed for API keys, names and resyncs).
    pub crossbar_url: Option<String>,
    /// Accounts to subscribe.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Also subscribe every descendant account (default false).
    #[serde(default)]
    pub discover_descendants: bool,
    /// Bindings (default `["call.*.*"]`).
    pub bindings: Option<Vec<String>>,
    /// A static auth token (prefer `auth_token_env`).
    pub auth_token: Option<String>,
    /// Environment variable holding a static auth token.
    pub auth_token_env: Option<String>,
    /// An account API key (prefer `api_key_env`).
    pub api_key: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Extra CA certificate file (PEM) for a private CA.
    pub ca_file: Option<PathBuf>,
    /// Directory refresh period in seconds; 0 disables the directory (default 900).
    pub directory_refresh_secs: Option<u64>,
    /// Websocket ping interval in seconds (default 30).
    pub ping_secs: Option<u64>,
    /// Seconds to wait for the pong after a ping (default 10).
    pub pong_timeout_secs: Option<u64>,
    /// Largest reconnect delay in seconds (default 60).
    pub max_backoff_secs: Option<u64>,
}

impl std::fmt::Debug for KazooSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KazooSection")
            .field("websocket_url", &self.websocket_url)
            .field("crossbar_url", &self.crossbar_url)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

fn secs(path: &str, v: Option<u64>, default: u64, file: &Path, out: &mut Vec<Problem>) -> Duration {
    let v = v.unwrap_or(default);
    if v == 0 || v > 86_400 {
        out.push(Problem::Config(ConfigError::Invalid {
            file: file.to_owned(),
            path: path.into(),
            message: format!("{v} is out of range (1 to 86400 seconds)"),
        }));
    }
    Duration::from_secs(v)
}

/// Whether `id` has the form of a Kazoo account id: 32 lowercase hex digits (Kazoo makes ids
/// with `kz_binary:rand_hex/1`, whose hex digits are lowercase).
pub fn is_account_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl KazooSection {
    /// Validates the section and builds the source options, reading secrets with `env`;
    /// relative paths are resolved against `file`'s directory. Every problem is added to `out`
    /// (a secret variable that is not set as [`Problem::MissingSecret`]).
    pub(crate) fn checked(
        &self,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        out: &mut Vec<Problem>,
    ) -> Option<KazooOptions> {
        let before = out.len();
        let invalid = |out: &mut Vec<Problem>, path: &str, message: String| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("kazoo.{path}"),
                message,
            }));
        };
        let url = self.websocket_url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            invalid(
                out,
                "websocket_url",
                "must start with ws:// or wss://".into(),
            );
        }
        if let Some(cb) = &self.crossbar_url {
            if !(cb.starts_with("http://") || cb.starts_with("https://")) {
                invalid(
                    out,
                    "crossbar_url",
                    "must start with http:// or https://".into(),
                );
            }
        }
        if self.accounts.is_empty() {
            invalid(out, "accounts", "list at least one account id".into());
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if !is_account_id(a) {
                invalid(
                    out,
                    &format!("accounts[{i}]"),
                    format!("{a:?} is not a Kazoo account id (32 lowercase hex digits)"),
                );
            }
        }
        let bindings = self
            .bindings
            .clone()
            .unwrap_or_else(|| vec!["call.*.*".into()]);
        for (i, b) in bindings.iter().enumerate() {
            if b.split('.').count() != 3 || !b.starts_with("call.") {
                invalid(
                    out,
                    &format!("bindings[{i}]"),
                    format!("{b:?} is not a call binding (call.EVENT.CALL_ID)"),
                );
            }
        }
        // `Ok(None)`: not configured; `Err(())`: configured but unusable (reported).
        let mut from =
            |inline: &Option<String>, var: &Option<String>, name: &str| match (inline, var) {
                (Some(_), Some(_)) => {
                    invalid(out, name, format!("give {name} or {name}_env, not both"));
                    Err(())
                }
                (Some(v), None) => Ok(Some(Secret::new(v.clone()))),
                (None, Some(var)) => match env(var).filter(|v| !v.is_empty()) {
                    Some(v) => Ok(Some(Secret::new(v))),
                    None => {
                        out.push(Problem::MissingSecret {
                            file: file.to_owned(),
                            path: format!("kazoo.{name}_env"),
                            var: var.clone(),
                        });
                        Err(())
                    }
                },
                (None, None) => Ok(None),
            };
        let token = from(&self.auth_token, &self.auth_token_env, "auth_token");
        let key = from(&self.api_key, &self.api_key_env, "api_key");
        let has_token = self.auth_token.is_some() || self.auth_token_env.is_some();
        let has_key = self.api_key.is_some() || self.api_key_env.is_some();
        if has_token == has_key {
            invalid(
                out,
                "auth_token",
                "give exactly one of auth_token(_env) and api_key(_env)".into(),
            );
        }
        if has_key && self.crossbar_url.is_none() {
            invalid(
                out,
                "api_key",
                "an api key is exchanged at Crossbar: set kazoo.crossbar_url".into(),
            );
        }
        if self.discover_descendants && self.crossbar_url.is_none() {
            invalid(
                out,
                "discover_descendants",
                "needs kazoo.crossbar_url".into(),
            );
        }
        let ca_file = self.ca_file.as_deref().map(|p| super::resolve(file, p));
        let directory_refresh = match self.directory_refresh_secs {
            Some(0) => None,
            v => Some(secs("kazoo.directory_refresh_secs", v, 900, file, out)),
        };
        let ping_interval = secs("kazoo.ping_secs", self.ping_secs, 30, file, out);
        let pong_timeout = secs(
            "kazoo.pong_timeout_secs",
            self.pong_timeout_secs,
            10,
            file,
            out,
        );
        let max_backoff = secs(
            "kazoo.max_backoff_secs",
            self.max_backoff_secs,
            60,
            file,
            out,
        );
        if out.len() > before {
            return None;
        }
        let credentials = match (token, key) {
            (Ok(Some(t)), Ok(None)) => Credentials::Token(t),
            (Ok(None), Ok(Some(k))) => Credentials::ApiKey(k),
            _ => return None,
        };
        let mut o = KazooOptions::new(url, credentials, self.accounts.clone());
        o.crossbar_url = self.crossbar_url.clone();
        o.discover_descendants = self.discover_descendants;
        o.bindings = bindings;
        o.ca_file = ca_file;
        o.directory_refresh = directory_refresh;
        o.ping_interval = ping_interval;
        o.pong_timeout = pong_timeout;
        o.backoff = Backoff {
            max: max_backoff,
            ..Backoff::default()
        };
        Some(o)
    }

    /// Validates the section and builds the source options, reading secrets with `env`;
    /// relative paths are resolved against `file`'s directory.
    ///
    /// # Errors
    /// The first invalid field, with its path.
    pub fn options(
        &self,
        file: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<KazooOptions, ConfigError> {
        let mut out = Vec::new();
        self.checked(file, &env, &mut out)
            .ok_or_else(|| super::first_error(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";

    fn section(extra: &str) -> KazooSection {
        toml::from_str(&format!(
            "websocket_url = \"ws://pbx:5555/\"\naccounts = [\"{ACCT}\"]\n{extra}"
        ))
        .unwrap()
    }

    fn opts(extra: &str) -> Result<KazooOptions, String> {
        section(extra)
            .options(Path::new("p.toml"), |v| {
                (v == "KAZOO_KEY").then(|| "k".repeat(64))
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn credentials_rules() {
        assert!(matches!(
            opts("auth_token = \"t\"").unwrap().credentials,
            Credentials::Token(_)
        ));
        let o = opts("api_key_env = \"KAZOO_KEY\"\ncrossbar_url = \"http://pbx:8000\"").unwrap();
        assert!(matches!(o.credentials, Credentials::ApiKey(_)));
        assert_eq!(
            opts("api_key_env = \"KAZOO_KEY\"").unwrap_err(),
            "p.toml: kazoo.api_key: an api key is exchanged at Crossbar: set kazoo.crossbar_url"
        );
        assert_eq!(
            opts("api_key_env = \"NOPE\"\ncrossbar_url = \"http://pbx:8000\"").unwrap_err(),
            "p.toml: kazoo.api_key_env: environment variable NOPE is not set"
        );
        assert!(opts("").unwrap_err().contains("exactly one"));
        assert!(opts("auth_token = \"t\"\napi_key = \"k\"")
            .unwrap_err()
            .contains("exactly one"));
    }

    #[test]
    fn values_are_checked_with_their_path() {
        assert!(opts("auth_token = \"t\"\nbindings = [\"call.*\"]")
            .unwrap_err()
            .contains("kazoo.bindings[0]"));
        assert!(opts("auth_token = \"t\"\nping_secs = 0")
            .unwrap_err()
            .contains("kazoo.ping_secs"));
        let bad: KazooSection = toml::from_str(
            "websocket_url = \"http://pbx\"\naccounts = [\"x\"]\nauth_token = \"t\"",
        )
        .unwrap();
        let e = bad.options(Path::new("p.toml"), |_| None).unwrap_err();
        assert!(e.to_string().contains("kazoo.websocket_url"), "{e}");
        let secret: KazooSection = toml::from_str(&format!(
            "websocket_url = \"ws://pbx\"\naccounts = [\"{ACCT}\"]\nauth_token = \"TOPSECRET\""
        ))
        .unwrap();
        assert!(!format!("{secret:?}").contains("TOPSECRET"));
        let o = opts("auth_token = \"t\"\ndirectory_refresh_secs = 0").unwrap();
        assert_eq!(o.directory_refresh, None);
    }
}

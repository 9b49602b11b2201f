//! `[triggers]`: where trigger documents come from and how often they are re-read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Problem};
use crate::net::{HttpClient, TlsError};
use crate::trigger::reload::{TriggerSources, DEFAULT_REFRESH, DEFAULT_RETRY, DEFAULT_WATCH};
use crate::trigger::remote::HttpFetcher;
use crate::trigger::BuildOptions;

/// Deadline of one remote fetch.
const FETCH_DEADLINE: Duration = Duration::from_secs(30);

/// `[triggers]` as written. `Debug` leaves out the remote URL's query (it may hold a token).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggersSection {
    /// Trigger files (TOML), relative to the configuration file's directory.
    pub files: Vec<PathBuf>,
    /// Optional HTTPS URL returning a trigger document (TOML, or JSON by content type).
    pub remote_url: Option<String>,
    /// Seconds between remote polls (default 600, the seed's 10 minutes).
    pub refresh_secs: u64,
    /// Seconds before retrying a failed remote poll (default 30, at most `refresh_secs`).
    pub retry_secs: u64,
    /// Milliseconds between checks of the trigger files; 0 turns watching off (default 2000).
    pub watch_ms: u64,
    /// Accept `http://` webhook and remote URLs for every trigger (tests; default false).
    pub allow_http: bool,
    /// Extra CA certificate (PEM) trusted for the remote source.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for TriggersSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remote = self.remote_url.as_deref().map(|u| match u.split_once('?') {
            Some((base, _)) => format!("{base}?[redacted]"),
            None => u.to_owned(),
        });
        f.debug_struct("TriggersSection")
            .field("files", &self.files)
            .field("remote_url", &remote)
            .field("refresh_secs", &self.refresh_secs)
            .field("retry_secs", &self.retry_secs)
            .field("watch_ms", &self.watch_ms)
            .field("allow_http", &self.allow_http)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &crate::trigger::model::redacted_url(&self.url))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for TriggersSection {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            remote_url: None,
            refresh_secs: DEFAULT_REFRESH.as_secs(),
            retry_secs: DEFAULT_RETRY.as_secs(),
            watch_ms: u64::try_from(DEFAULT_WATCH.as_millis()).unwrap_or(2000),
            allow_http: false,
            ca_file: None,
        }
    }
}

/// The remote source, validated. `Debug` leaves out the URL's query.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The URL (never logged with its query string).
    pub url: hyper::Uri,
    /// Extra CA to trust.
    pub ca_file: Option<PathBuf>,
}

impl RemoteConfig {
    /// A fetcher over a new HTTPS client trusting the webpki roots and `ca_file`.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no certificate.
    pub fn fetcher(&self) -> Result<HttpFetcher, TlsError> {
        let tls = crate::net::tls::client_config(self.ca_file.as_deref())?;
        let client = HttpClient::new(tls, &crate::net::http::HttpOptions::default());
        Ok(HttpFetcher::new(client, self.url.clone(), FETCH_DEADLINE))
    }
}

/// `[triggers]`, validated.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Files and intervals for the reloader.
    pub sources: TriggerSources,
    /// The remote source, if any.
    pub remote: Option<RemoteConfig>,
}

impl TriggersSection {
    /// Validates the section; relative paths are taken from `file`'s directory. Every problem
    /// is added to `out`.
    pub(crate) fn checked(&self, file: &Path, out: &mut Vec<Problem>) -> Option<TriggerConfig> {
        let before = out.len();
        let mut invalid = |path: &str, message: String| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("triggers.{path}"),
                message,
            }));
        };
        let resolve = |p: &PathBuf| super::resolve(file, p);
        if !(1..=86_400).contains(&self.refresh_secs) {
            invalid(
                "refresh_secs",
                format!("{} is out of range (1 to 86400 seconds)", self.refresh_secs),
            );
        }
        if !(1..=86_400).contains(&self.retry_secs) {
            invalid(
                "retry_secs",
                format!("{} is out of range (1 to 86400 seconds)", self.retry_secs),
            );
        }
        if self.watch_ms > 3_600_000 {
            invalid(
                "watch_ms",
                format!("{} is out of range (0 to 3600000 ms)", self.watch_ms),
            );
        }
        let remote = match &self.remote_url {
            None => None,
            Some(u) => match crate::trigger::file::parse_url(u, self.allow_http) {
                Ok(url) => Some(RemoteConfig {
                    url,
                    ca_file: self.ca_file.as_ref().map(resolve),
                }),
                Err(m) => {
                    invalid("remote_url", m);
                    None
                }
            },
        };
        if out.len() > before {
            return None;
        }
        Some(TriggerConfig {
            sources: TriggerSources {
                files: self.files.iter().map(resolve).collect(),
                build: BuildOptions {
                    allow_http: self.allow_http,
                },
                watch: (self.watch_ms > 0).then(|| Duration::from_millis(self.watch_ms)),
                refresh: Duration::from_secs(self.refresh_secs),
                retry: Duration::from_secs(self.retry_secs),
                sighup: true,
            },
            remote,
        })
    }

    /// Validates the section; relative paths are taken from `file`'s directory.
    ///
    /// # Errors
    /// The first invalid field, with its path.
    pub fn options(&self, file: &Path) -> Result<TriggerConfig, ConfigError> {
        let mut out = Vec::new();
        self.checked(file, &mut out)
            .ok_or_else(|| super::first_error(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> TriggersSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = section("files = [\"t.toml\", \"/abs/u.toml\"]")
            .options(Path::new("/etc/postcall/plugin.toml"))
            .unwrap();
        assert_eq!(
            c.sources.files,
            [
                PathBuf::from("/etc/postcall/t.toml"),
                PathBuf::from("/abs/u.toml")
            ]
        );
        assert_eq!(c.sources.refresh, Duration::from_secs(600));
        assert_eq!(c.sources.watch, Some(Duration::from_secs(2)));
        assert!(c.remote.is_none());
    }

    #[test]
    fn remote_url_rules_never_echo_the_url() {
        let p = Path::new("p.toml");
        let e = section("remote_url = \"http://h.example/t?token=SECRET\"")
            .options(p)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.toml: triggers.remote_url: must be https://"),
            "{e}"
        );
        assert!(!e.contains("SECRET"), "{e}");
        let with_token = section("remote_url = \"https://h.example/t?token=SECRET\"");
        let cfg = with_token.options(p).unwrap();
        let dbg = format!("{with_token:?} {cfg:?}");
        assert!(
            !dbg.contains("SECRET") && dbg.contains("h.example/t?[redacted]"),
            "{dbg}"
        );
        let ok = section("remote_url = \"http://h.example/t\"\nallow_http = true")
            .options(p)
            .unwrap();
        assert_eq!(ok.remote.unwrap().url.host(), Some("h.example"));
        let e = section("refresh_secs = 0")
            .options(p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("triggers.refresh_secs"), "{e}");
        assert_eq!(
            section("watch_ms = 0").options(p).unwrap().sources.watch,
            None
        );
    }
}

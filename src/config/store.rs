//! `[store]`: where deliveries, the journal and saved sessions live. Without it (or without a
//! PostgreSQL URL) the embedded outbox in `delivery.data_dir` is used; with one, a PostgreSQL
//! database several instances share (see [`crate::delivery::pg`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Problem};
use crate::delivery::pg::PgOptions;
use crate::net::Secret;

/// `[store]` as written.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// PostgreSQL URL (`postgres://user:password@host:port/db?sslmode=require`). Prefer
    /// `postgres_url_env`: a password in the file is a secret in the file.
    pub postgres_url: Option<Secret>,
    /// Environment variable holding the URL.
    pub postgres_url_env: Option<String>,
    /// Extra CA certificate (PEM) trusted for the PostgreSQL server.
    pub ca_file: Option<PathBuf>,
    /// This instance's name (default: the host name): claims carry it and saved sessions are
    /// kept under it. Two instances on one host need different names.
    pub instance: Option<String>,
    /// Seconds a claimed delivery stays with its instance (default 30; at least the attempt
    /// deadline plus 5).
    pub lease_secs: u64,
    /// Milliseconds between looks for work other instances made due (default 1000).
    pub poll_ms: u64,
    /// Connections to the database (default 8).
    pub pool_size: usize,
    /// Deadline of one database operation, seconds (default 10).
    pub op_timeout_secs: u64,
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field(
                "postgres_url",
                &self.postgres_url.as_ref().map(|_| "[redacted]"),
            )
            .field("postgres_url_env", &self.postgres_url_env)
            .field("ca_file", &self.ca_file)
            .field("instance", &self.instance)
            .field("lease_secs", &self.lease_secs)
            .field("poll_ms", &self.poll_ms)
            .field("pool_size", &self.pool_size)
            .field("op_timeout_secs", &self.op_timeout_secs)
            .finish()
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            postgres_url: None,
            postgres_url_env: None,
            ca_file: None,
            instance: None,
            lease_secs: 30,
            poll_ms: 1000,
            pool_size: 8,
            op_timeout_secs: 10,
        }
    }
}

/// The host name, for the default instance name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "postcall".into())
}

impl StoreSection {
    /// The PostgreSQL options, `None` for the embedded store; every problem is added to `out`.
    /// `attempt_timeout` is the delivery deadline the lease must outlast.
    pub(crate) fn checked(
        &self,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        attempt_timeout: Duration,
        out: &mut Vec<Problem>,
    ) -> Option<PgOptions> {
        let mut invalid = |path: &str, message: String| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("store.{path}"),
                message,
            }));
        };
        let url = match (&self.postgres_url, &self.postgres_url_env) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                invalid(
                    "postgres_url",
                    "set postgres_url or postgres_url_env, not both".into(),
                );
                return None;
            }
            (Some(u), None) => u.clone(),
            (None, Some(var)) => match env(var).filter(|v| !v.is_empty()) {
                Some(v) => Secret::new(v),
                None => {
                    invalid(
                        "postgres_url_env",
                        format!("environment variable {var} is not set"),
                    );
                    return None;
                }
            },
        };
        let before = out.len();
        let mut invalid = |path: &str, message: String| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("store.{path}"),
                message,
            }));
        };
        if let Err(e) = url.expose().parse::<tokio_postgres::Config>() {
            // The parser's message never repeats the URL.
            invalid("postgres_url", format!("not a PostgreSQL URL: {e}"));
        }
        let ca_file = self.ca_file.as_deref().map(|p| super::resolve(file, p));
        if let Some(ca) = &ca_file {
            if let Err(e) = crate::net::tls::client_config(Some(ca)) {
                invalid("ca_file", e.to_string());
            }
        }
        let min_lease = attempt_timeout.as_secs() + 5;
        if !(min_lease..=3600).contains(&self.lease_secs) {
            invalid(
                "lease_secs",
                format!("must be {min_lease} (the attempt deadline plus 5) to 3600"),
            );
        }
        if !(50..=60_000).contains(&self.poll_ms) {
            invalid("poll_ms", "must be 50 to 60000".into());
        }
        if !(1..=256).contains(&self.pool_size) {
            invalid("pool_size", "must be 1 to 256".into());
        }
        if !(1..=300).contains(&self.op_timeout_secs) {
            invalid("op_timeout_secs", "must be 1 to 300".into());
        }
        let instance = self.instance.clone().unwrap_or_else(host_name);
        if instance.is_empty() || instance.contains('/') || instance.len() > 200 {
            invalid("instance", "must be 1 to 200 characters without '/'".into());
        }
        (out.len() == before).then(|| PgOptions {
            url,
            ca_file,
            instance,
            lease: Duration::from_secs(self.lease_secs),
            poll: Duration::from_millis(self.poll_ms),
            pool_size: self.pool_size,
            op_timeout: Duration::from_secs(self.op_timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &StoreSection, env: &[(&str, &str)]) -> (Option<PgOptions>, Vec<String>) {
        let mut out = Vec::new();
        let env = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let o = s.checked(
            Path::new("plugin.toml"),
            &env,
            Duration::from_secs(10),
            &mut out,
        );
        (o, out.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn embedded_unless_a_url_is_given() {
        let (o, problems) = check(&StoreSection::default(), &[]);
        assert!(o.is_none() && problems.is_empty());
        let s = StoreSection {
            postgres_url_env: Some("PG".into()),
            instance: Some("a".into()),
            ..StoreSection::default()
        };
        let (o, problems) = check(&s, &[("PG", "postgres://u:pw@db/x")]);
        let o = o.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (o.instance.as_str(), o.lease),
            ("a", Duration::from_secs(30))
        );
        assert!(
            !format!("{o:?}").contains("pw"),
            "the URL's password is never printed"
        );
        let (o, problems) = check(&s, &[]);
        assert!(o.is_none());
        assert_eq!(
            problems,
            ["plugin.toml: store.postgres_url_env: environment variable PG is not set"]
        );
    }

    #[test]
    fn bad_values_are_named_without_the_password() {
        let s = StoreSection {
            postgres_url: Some(Secret::new("postgres://u:hunter22@db/x?sslmode=bogus")),
            instance: Some("a/b".into()),
            lease_secs: 14,
            poll_ms: 10,
            ..StoreSection::default()
        };
        let (o, problems) = check(&s, &[]);
        assert!(o.is_none());
        let text = problems.join("\n");
        assert!(
            text.contains("store.postgres_url: not a PostgreSQL URL"),
            "{text}"
        );
        assert!(text.contains("store.lease_secs: must be 15"), "{text}");
        assert!(text.contains("store.poll_ms"), "{text}");
        assert!(text.contains("store.instance"), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!format!("{s:?}").contains("hunter22"));
        let both = StoreSection {
            postgres_url: Some(Secret::new("postgres://db/x")),
            postgres_url_env: Some("PG".into()),
            ..StoreSection::default()
        };
        assert_eq!(
            check(&both, &[]).1,
            ["plugin.toml: store.postgres_url: set postgres_url or postgres_url_env, not both"]
        );
    }
}

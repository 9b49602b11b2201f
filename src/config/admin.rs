//! `[admin]`: who may use the admin listener and how much of postcall it may take.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::net::Secret;
use crate::run::admin::AdminOptions;

/// `[admin]` as written. The listen address is the `--admin` option of `postcall run`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Environment variable holding the bearer token (preferred).
    pub token_env: Option<String>,
    /// The bearer token itself (prefer `token_env`).
    pub token: Option<String>,
    /// Host names, besides the bound address, that requests may carry in `Host`.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once (default 32).
    pub max_connections: usize,
    /// Seconds a client has to send its request headers (default 5).
    pub header_timeout_secs: u64,
    /// Seconds after which any admin connection is closed (default 30).
    pub connection_timeout_secs: u64,
}

impl std::fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSection")
            .field("token_env", &self.token_env)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        let d = AdminOptions::default();
        Self {
            token_env: None,
            token: None,
            allowed_hosts: Vec::new(),
            max_connections: d.max_connections,
            header_timeout_secs: d.header_timeout.as_secs(),
            connection_timeout_secs: d.connection_timeout.as_secs(),
        }
    }
}

impl AdminSection {
    /// Validated listener options for `addr`, the token read with `env`. A non-loopback
    /// `addr` without a token is refused.
    ///
    /// # Errors
    /// An out-of-range value, an unset token variable, or a non-loopback bind without token.
    pub fn options(
        &self,
        file: &Path,
        addr: SocketAddr,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AdminOptions, ConfigError> {
        let invalid = |path: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            path: format!("admin.{path}"),
            message,
        };
        if !(1..=256).contains(&self.max_connections) {
            return Err(invalid("max_connections", "must be 1 to 256".into()));
        }
        if !(1..=60).contains(&self.header_timeout_secs) {
            return Err(invalid("header_timeout_secs", "must be 1 to 60".into()));
        }
        if !(1..=600).contains(&self.connection_timeout_secs) {
            return Err(invalid(
                "connection_timeout_secs",
                "must be 1 to 600".into(),
            ));
        }
        let token = match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => {
                return Err(invalid("token", "give token or token_env, not both".into()))
            }
            (Some(t), None) => Some(Secret::new(t.clone())),
            (None, Some(var)) => Some(Secret::new(env(var).ok_or_else(|| {
                invalid(
                    "token_env",
                    format!("environment variable {var} is not set"),
                )
            })?)),
            (None, None) => None,
        };
        let opts = AdminOptions {
            addr,
            token,
            allowed_hosts: self.allowed_hosts.clone(),
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            connection_timeout: Duration::from_secs(self.connection_timeout_secs),
        };
        opts.validate().map_err(|e| {
            let path = if opts.token.is_some() {
                "token"
            } else {
                "token_env"
            };
            invalid(path, e.to_string())
        })?;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let f = Path::new("p.toml");
        let lo: SocketAddr = "127.0.0.1:9646".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9646".parse().unwrap();
        let none = |_: &str| None;
        let d = AdminSection::default();
        assert!(d.options(f, lo, none).unwrap().token.is_none());
        let e = d.options(f, any, none).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "p.toml: admin.token_env: the admin listener 0.0.0.0:9646 is not on loopback"
            ),
            "{e}"
        );
        let env = AdminSection {
            token_env: Some("ADMIN_TOKEN".into()),
            ..AdminSection::default()
        };
        let e = env.options(f, any, none).unwrap_err().to_string();
        assert_eq!(
            e,
            "p.toml: admin.token_env: environment variable ADMIN_TOKEN is not set"
        );
        let o = env
            .options(f, any, |v| {
                (v == "ADMIN_TOKEN").then(|| "s3cret-s3cret-s3cret".into())
            })
            .unwrap();
        assert_eq!(o.token.unwrap().expose(), "s3cret-s3cret-s3cret");
        let short = AdminSection {
            token: Some("short-token".into()),
            ..AdminSection::default()
        };
        let e = short.options(f, lo, none).unwrap_err().to_string();
        assert!(
            !e.contains("short-token") && e.contains("16 characters"),
            "{e}"
        );
        assert!(!format!("{short:?}").contains("short-token"));
    }
}

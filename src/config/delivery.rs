//! `[delivery]`: where the outbox lives and how hard delivery may push.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Problem};
use crate::delivery::DeliveryOptions;
use crate::net::guard::AddressGuard;

/// `[delivery]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySection {
    /// Directory of the outbox (`outbox.redb`); relative paths are relative to the
    /// configuration file (default `postcall-data`).
    pub data_dir: PathBuf,
    /// Attempts in flight overall (default 64).
    pub max_in_flight: usize,
    /// Attempts in flight per endpoint (scheme, host, port) (default 4).
    pub max_in_flight_per_endpoint: usize,
    /// Per-attempt deadline in seconds (default 10).
    pub attempt_timeout_secs: u64,
    /// Non-public CIDRs webhooks may reach anyway (default none).
    pub allow_private: Vec<String>,
    /// Extra CA certificate (PEM) trusted for receivers.
    pub ca_file: Option<PathBuf>,
    /// Disk kept in reserve beside the outbox for a full disk, KiB (default 8192; 0 = none).
    pub disk_reserve_kib: u64,
}

impl Default for DeliverySection {
    fn default() -> Self {
        Self {
            data_dir: "postcall-data".into(),
            max_in_flight: 64,
            max_in_flight_per_endpoint: 4,
            attempt_timeout_secs: 10,
            allow_private: Vec::new(),
            ca_file: None,
            disk_reserve_kib: 8192,
        }
    }
}

impl DeliverySection {
    /// The outbox's directory, resolved against the configuration file's directory.
    pub fn data_dir(&self, config_file: &Path) -> PathBuf {
        super::resolve(config_file, &self.data_dir)
    }

    /// The outbox file, resolved against the configuration file's directory.
    pub fn outbox_path(&self, config_file: &Path) -> PathBuf {
        self.data_dir(config_file).join("outbox.redb")
    }

    /// The receivers' extra CA file, resolved against the configuration file's directory.
    pub fn ca_path(&self, config_file: &Path) -> Option<PathBuf> {
        self.ca_file
            .as_deref()
            .map(|p| super::resolve(config_file, p))
    }

    /// Validated engine options and SSRF guard; every problem is added to `out`.
    pub(crate) fn checked(
        &self,
        file: &Path,
        out: &mut Vec<Problem>,
    ) -> Option<(DeliveryOptions, AddressGuard)> {
        let before = out.len();
        let mut invalid = |path: &str, message: String| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("delivery.{path}"),
                message,
            }));
        };
        if !(1..=10_000).contains(&self.max_in_flight) {
            invalid("max_in_flight", "must be 1 to 10000".into());
        }
        if !(1..=self.max_in_flight).contains(&self.max_in_flight_per_endpoint) {
            invalid(
                "max_in_flight_per_endpoint",
                "must be 1 to max_in_flight".into(),
            );
        }
        if !(1..=120).contains(&self.attempt_timeout_secs) {
            invalid("attempt_timeout_secs", "must be 1 to 120 seconds".into());
        }
        let mut allow = Vec::new();
        for (i, c) in self.allow_private.iter().enumerate() {
            match c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => allow.push(net),
                Err(_) => invalid(
                    &format!("allow_private[{i}]"),
                    format!("{c:?} is not a CIDR"),
                ),
            }
        }
        if out.len() > before {
            return None;
        }
        Some((
            DeliveryOptions {
                attempt_timeout: Duration::from_secs(self.attempt_timeout_secs),
                max_in_flight: self.max_in_flight,
                max_in_flight_per_endpoint: self.max_in_flight_per_endpoint,
                ..DeliveryOptions::default()
            },
            AddressGuard::strict(allow),
        ))
    }

    /// Validated engine options and SSRF guard.
    ///
    /// # Errors
    /// The first out-of-range value or CIDR that does not parse, with its path.
    pub fn options(&self, file: &Path) -> Result<(DeliveryOptions, AddressGuard), ConfigError> {
        let mut out = Vec::new();
        self.checked(file, &mut out)
            .ok_or_else(|| super::first_error(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let d = DeliverySection::default();
        let (o, g) = d.options(Path::new("p.toml")).unwrap();
        assert_eq!(o.attempt_timeout, Duration::from_secs(10));
        assert!(!g.permissive && g.allow.is_empty());
        assert_eq!(
            d.outbox_path(Path::new("/etc/postcall/plugin.toml")),
            Path::new("/etc/postcall/postcall-data/outbox.redb")
        );
        let bad = DeliverySection {
            allow_private: vec!["10.0.0.0/8".into(), "nope".into()],
            ..DeliverySection::default()
        };
        let e = bad.options(Path::new("p.toml")).unwrap_err().to_string();
        assert_eq!(
            e,
            "p.toml: delivery.allow_private[1]: \"nope\" is not a CIDR"
        );
        let one = DeliverySection {
            allow_private: vec!["127.0.0.1".into()],
            ..DeliverySection::default()
        };
        assert_eq!(one.options(Path::new("p")).unwrap().1.allow.len(), 1);
    }
}

//! `[journal]`: how long and how much of the CDR journal is kept.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Problem};
use crate::delivery::JournalPolicy;

/// `[journal]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// Days a CDR is kept, counted from the session's start (default 7; 1 to 3650).
    pub retention_days: u64,
    /// Stored bytes of the journal's entries, MiB: over it the oldest entries are pruned
    /// (default 1024; 1 to 1048576).
    pub max_mib: u64,
    /// Seconds between prune runs (default 60; 1 to 86400).
    pub prune_interval_secs: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            retention_days: 7,
            max_mib: 1024,
            prune_interval_secs: 60,
        }
    }
}

/// The journal's validated settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalSettings {
    /// Retention and size cap.
    pub policy: JournalPolicy,
    /// Time between prune runs.
    pub prune_interval: Duration,
}

impl JournalSection {
    /// The validated settings; every problem is added to `out`.
    pub(crate) fn checked(&self, file: &Path, out: &mut Vec<Problem>) -> Option<JournalSettings> {
        let before = out.len();
        let mut invalid = |path: &str, message: &str| {
            out.push(Problem::Config(ConfigError::Invalid {
                file: file.to_owned(),
                path: format!("journal.{path}"),
                message: message.to_owned(),
            }));
        };
        if !(1..=3650).contains(&self.retention_days) {
            invalid("retention_days", "must be 1 to 3650 days");
        }
        if !(1..=1_048_576).contains(&self.max_mib) {
            invalid("max_mib", "must be 1 to 1048576 MiB");
        }
        if !(1..=86_400).contains(&self.prune_interval_secs) {
            invalid("prune_interval_secs", "must be 1 to 86400 seconds");
        }
        (out.len() == before).then(|| self.settings())
    }

    /// The settings as written (unchecked).
    pub fn settings(&self) -> JournalSettings {
        JournalSettings {
            policy: JournalPolicy {
                retention_us: i64::try_from(self.retention_days)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(86_400_000_000),
                max_bytes: self.max_mib.saturating_mul(1 << 20),
                ..JournalPolicy::default()
            },
            prune_interval: Duration::from_secs(self.prune_interval_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let mut out = Vec::new();
        let s = JournalSection::default()
            .checked(Path::new("p.toml"), &mut out)
            .unwrap();
        assert_eq!(s.policy.retention_us, 7 * 86_400 * 1_000_000);
        assert_eq!(s.policy.max_bytes, 1 << 30);
        assert_eq!(s.prune_interval, Duration::from_secs(60));
        let bad = JournalSection {
            retention_days: 0,
            max_mib: 0,
            prune_interval_secs: 0,
        };
        assert!(bad.checked(Path::new("p.toml"), &mut out).is_none());
        let shown: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "p.toml: journal.retention_days: must be 1 to 3650 days",
                "p.toml: journal.max_mib: must be 1 to 1048576 MiB",
                "p.toml: journal.prune_interval_secs: must be 1 to 86400 seconds"
            ]
        );
    }
}

//! Configuration: `plugin.toml` as inert data, and its validation into runtime [`Settings`].
//!
//! Parsing is strict (`deny_unknown_fields`, so a misspelt key is an error, not a silent
//! default) and every error names the file and the field path. [`PluginConfig::settings`]
//! checks values (time zones, regions, thresholds) and builds the assembler's settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::session::{Settings, TenantSettings};

mod admin;
mod delivery;
mod kazoo;
mod limits;
pub mod parse_error;
pub use admin::AdminSection;
pub use delivery::DeliverySection;
pub use kazoo::KazooSection;
pub use limits::LimitsSection;

// Triggers (issue 4).
mod triggers;
pub use triggers::{RemoteConfig, TriggerConfig, TriggersSection};

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// Line, column, key and the parser's message, without any value.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{file}: {path}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Dotted path of the field, e.g. `tenants.acme.timezone`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// `[pbx]`: the platform the CDRs come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbxSection {
    /// `pbxId` of every CDR (omitted when unset).
    pub id: Option<String>,
    /// `pbxName` of every CDR (omitted when unset).
    pub name: Option<String>,
}

/// `[cdr]`: how sessions are assembled and classified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrSection {
    /// IANA time zone of CDR timestamps (default `UTC`).
    pub timezone: String,
    /// Region (ISO 3166 alpha-2) for numbers not in international form (default `US`).
    pub region: String,
    /// Unanswered external calls that rang at most this many seconds are `aban` (default 6).
    pub short_ring_secs: u64,
    /// Answered calls with talk + hold below this many seconds are `short` (default 20).
    pub short_call_secs: u64,
    /// Quiet seconds after the last leg is destroyed before a session closes (default 5).
    pub grace_secs: u64,
    /// Quiet seconds after which a session with legs still up is force-closed (default 14400).
    pub idle_timeout_secs: u64,
    /// Age in seconds at which a session is force-closed regardless (default 86400).
    pub max_session_secs: u64,
    /// Seconds during which events for a closed session's legs are dropped as late
    /// (default 300).
    pub late_window_secs: u64,
}

impl Default for CdrSection {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            region: "US".into(),
            short_ring_secs: 6,
            short_call_secs: 20,
            grace_secs: 5,
            idle_timeout_secs: 4 * 3600,
            max_session_secs: 24 * 3600,
            late_window_secs: 300,
        }
    }
}

/// `[tenants.<account_id>]`: per-tenant overrides of `[cdr]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// Time zone for this tenant's CDRs.
    pub timezone: Option<String>,
    /// Default region for this tenant's numbers.
    pub region: Option<String>,
    /// Short-ring threshold for this tenant.
    pub short_ring_secs: Option<u64>,
    /// Short-call threshold for this tenant.
    pub short_call_secs: Option<u64>,
}

/// The whole `plugin.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// `[pbx]`.
    #[serde(default)]
    pub pbx: PbxSection,
    /// `[cdr]`.
    #[serde(default)]
    pub cdr: CdrSection,
    /// `[tenants.<account_id>]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSection>,
    /// `[kazoo]`: the live source (needed by `run` and `record`).
    pub kazoo: Option<KazooSection>,
    /// `[triggers]`: trigger files, remote source, reload intervals.
    #[serde(default)]
    pub triggers: TriggersSection,
    /// `[delivery]`: outbox and delivery limits.
    #[serde(default)]
    pub delivery: DeliverySection,
    /// `[limits]`: what the PBX may make postcall hold.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[admin]`: the admin listener's token, allowed host names and limits.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[enrich]`: location, contact directories, rate decks. No enrichment when absent.
    #[serde(default)]
    pub enrich: Option<crate::enrich::EnrichSection>,
    /// Where the configuration was read from (for error messages).
    #[serde(skip)]
    pub file: PathBuf,
}

impl PluginConfig {
    /// Parses TOML text; `file` is only used to name the source in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the parser's line and column.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: parse_error::toml_message(text, &e),
        })?;
        cfg.file = file.to_owned();
        Ok(cfg)
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Read {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text, file)
    }

    fn invalid(&self, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// The live source options from `[kazoo]`, secrets read from the environment.
    ///
    /// # Errors
    /// No `[kazoo]` section, or an invalid value in it.
    pub fn kazoo_options(&self) -> Result<crate::source::live::KazooOptions, ConfigError> {
        self.kazoo
            .as_ref()
            .ok_or_else(|| {
                self.invalid("kazoo", "missing: the live source needs a [kazoo] section")
            })?
            .options(&self.file, |var| std::env::var(var).ok())
            .map(|mut o| {
                o.max_frame_bytes = self.limits.max_frame_bytes();
                o
            })
    }

    /// The trigger sources from `[triggers]`, paths resolved against this file's directory.
    ///
    /// # Errors
    /// An invalid value in `[triggers]`.
    pub fn trigger_config(&self) -> Result<TriggerConfig, ConfigError> {
        self.triggers.options(&self.file)
    }

    /// Validates the values and builds the assembler's settings.
    ///
    /// # Errors
    /// The first invalid value, as [`ConfigError::Invalid`] with its field path.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let c = &self.cdr;
        let tz = |path: &str, name: &str| {
            name.parse::<chrono_tz::Tz>()
                .map_err(|_| self.invalid(path, format!("unknown time zone {name:?}")))
        };
        let region = |path: &str, code: &str| {
            code.parse::<phonenumber::country::Id>().map_err(|_| {
                self.invalid(path, format!("unknown region {code:?} (ISO 3166 alpha-2)"))
            })
        };
        let positive = |path: &str, v: u64| {
            if v == 0 || v > 366 * 86_400 {
                Err(self.invalid(path, format!("{v} is out of range (1 s to 366 days)")))
            } else {
                Ok(i64::try_from(v).unwrap_or(i64::MAX) * 1_000_000)
            }
        };
        let default_tenant = TenantSettings {
            tz: tz("cdr.timezone", &c.timezone)?,
            region: region("cdr.region", &c.region)?,
            short_ring_secs: c.short_ring_secs,
            short_call_secs: c.short_call_secs,
        };
        let mut tenants = std::collections::HashMap::new();
        for (id, t) in &self.tenants {
            let path = |f: &str| format!("tenants.{id}.{f}");
            let settings = TenantSettings {
                tz: match &t.timezone {
                    Some(name) => tz(&path("timezone"), name)?,
                    None => default_tenant.tz,
                },
                region: match &t.region {
                    Some(code) => region(&path("region"), code)?,
                    None => default_tenant.region,
                },
                short_ring_secs: t.short_ring_secs.unwrap_or(c.short_ring_secs),
                short_call_secs: t.short_call_secs.unwrap_or(c.short_call_secs),
            };
            tenants.insert(id.clone(), settings);
        }
        Ok(Settings {
            pbx_id: self.pbx.id.clone(),
            pbx_name: self.pbx.name.clone(),
            default_tenant,
            tenants,
            grace_us: positive("cdr.grace_secs", c.grace_secs)?,
            idle_timeout_us: positive("cdr.idle_timeout_secs", c.idle_timeout_secs)?,
            max_session_us: positive("cdr.max_session_secs", c.max_session_secs)?,
            late_window_us: positive("cdr.late_window_secs", c.late_window_secs)?,
            directory: Default::default(),
        })
    }
}

// --- enrichment (issue 6) ---
impl PluginConfig {
    /// The enrichment files named by `[enrich]`, resolved against the config file's directory;
    /// `None` when the section is absent.
    ///
    /// # Errors
    /// The settings' validation errors (regions are needed to read contact numbers).
    pub fn enrich_sources(&self) -> Result<Option<crate::enrich::EnrichSources>, ConfigError> {
        let Some(section) = &self.enrich else {
            return Ok(None);
        };
        let settings = self.settings()?;
        let base = self.file.parent().unwrap_or(Path::new(""));
        Ok(Some(crate::enrich::EnrichSources::new(
            section, base, &settings,
        )))
    }
}
// --- end enrichment ---

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        PluginConfig::from_toml_str(text, Path::new("t.toml"))?.settings()
    }

    #[test]
    fn empty_config_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse("[tenants.acme]\ntimezone = \"Europe/Londn\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: tenants.acme.timezone: unknown time zone \"Europe/Londn\""
        );
        let e = parse("[cdr]\ngrace_secs = 0\n").unwrap_err();
        assert!(e.to_string().starts_with("t.toml: cdr.grace_secs:"), "{e}");
        let e = parse("[cdr]\ntimezon = \"UTC\"\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("timezon"), "{e}");
    }

    /// The commented `[enrich]` example in the shipped `plugin.toml`, uncommented, is valid.
    #[test]
    fn shipped_enrich_example_parses() {
        let shipped = include_str!("../../plugin.toml");
        let block: String = shipped
            .lines()
            .skip_while(|l| !l.starts_with("# [enrich]"))
            .take_while(|l| !l.starts_with("# --- end enrichment"))
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = PluginConfig::from_toml_str(&block, Path::new("/etc/postcall/plugin.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
        let src = cfg.enrich_sources().unwrap().expect("[enrich] present");
        assert!(src.location);
        assert_eq!(
            src.shared.rate_deck.as_deref(),
            Some(Path::new("/etc/postcall/rates/default.csv"))
        );
        let acme = &src.tenants["3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"];
        assert!(acme.last7 && !src.shared.last7);
        assert!(acme.contacts.is_some());
    }

    #[test]
    fn tenant_overrides() {
        let s = parse(
            "[cdr]\nshort_ring_secs = 4\n[tenants.a]\ntimezone = \"Europe/London\"\nregion = \"GB\"\n",
        )
        .unwrap();
        let a = s.tenant(Some("a"));
        assert_eq!(a.tz, chrono_tz::Europe::London);
        assert_eq!(a.region, phonenumber::country::Id::GB);
        assert_eq!(a.short_ring_secs, 4);
        assert_eq!(s.tenant(Some("b")).tz, chrono_tz::UTC);
    }
}

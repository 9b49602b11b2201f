//! Configuration: `plugin.toml` as inert data, and its validation into runtime [`Settings`].
//!
//! Parsing is strict (`deny_unknown_fields`, so a misspelt key is an error, not a silent
//! default) and every error names the file and the field path. [`PluginConfig::settings`]
//! checks values (time zones, regions, thresholds) and builds the assembler's settings;
//! [`validate`] checks everything `run` needs (files, directories, secrets, triggers) and
//! reports every problem: `postcall check` and `postcall run` both call it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::session::{Settings, TenantSettings};

mod admin;
mod backfill;
mod delivery;
mod journal;
mod kazoo;
mod limits;
pub mod parse_error;
mod store;
pub use admin::AdminSection;
pub use backfill::BackfillSection;
pub use delivery::DeliverySection;
pub use journal::{JournalSection, JournalSettings};
pub use kazoo::{is_account_id, KazooSection};
pub use limits::LimitsSection;
pub use store::StoreSection;

// Triggers.
mod triggers;
// One validation for `check` and `run`.
mod validate;
pub use triggers::{RemoteConfig, TriggerConfig, TriggersSection};
pub use validate::{trigger_files, validate, validate_source, Problem, Validated};

/// A configuration problem, with where it is.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    /// Legs one session may hold; events of further legs are refused and counted, and the
    /// CDR is tagged `truncated` (default 1000).
    pub max_legs_per_session: u64,
    /// Events one session may take; further events are refused and counted, and the CDR is
    /// tagged `truncated` (default 20000).
    pub max_events_per_session: u64,
    /// An event whose time is more than this many seconds ahead of the processing clock is
    /// clamped to the clock and counted (default 300).
    pub max_clock_skew_secs: u64,
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
            max_legs_per_session: 1000,
            max_events_per_session: 20_000,
            max_clock_skew_secs: 300,
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
    /// `[journal]`: retention and size of the CDR journal.
    #[serde(default)]
    pub journal: JournalSection,
    /// `[store]`: the embedded outbox (default) or a shared PostgreSQL database.
    #[serde(default)]
    pub store: StoreSection,
    /// `[limits]`: what the PBX may make postcall hold.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[backfill]`: reading Kazoo's stored CDRs for gaps in the event stream.
    #[serde(default)]
    pub backfill: BackfillSection,
    /// `[admin]`: the admin listener's token, allowed host names and limits.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[enrich]`: location, contact directories, rate decks. Location alone when absent.
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

    /// The directory relative paths in this file are resolved against (`""` for a file named
    /// without a directory, i.e. the working directory).
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }

    /// The live source options from `[kazoo]`, secrets read from the environment.
    ///
    /// # Errors
    /// No `[kazoo]` section, or the first invalid value in it (a secret variable that is not
    /// set included). [`validate`] reports every problem.
    pub fn kazoo_options(&self) -> Result<crate::run::live::KazooOptions, ConfigError> {
        let mut problems = Vec::new();
        let env = |var: &str| std::env::var(var).ok();
        match self.kazoo_checked(&env, &mut problems) {
            Some(o) => Ok(o),
            None => Err(first_error(problems)),
        }
    }

    /// `[kazoo]` checked, every problem added to `out`.
    pub(crate) fn kazoo_checked(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        out: &mut Vec<Problem>,
    ) -> Option<crate::run::live::KazooOptions> {
        match &self.kazoo {
            Some(k) => k.checked(&self.file, env, out).map(|mut o| {
                o.max_frame_bytes = self.limits.max_frame_bytes();
                o
            }),
            None => {
                out.push(Problem::Config(self.invalid(
                    "kazoo",
                    "missing: run needs a [kazoo] section (the Blackhole websocket to listen to)",
                )));
                None
            }
        }
    }

    /// The trigger sources from `[triggers]`, paths resolved against this file's directory.
    ///
    /// # Errors
    /// The first invalid value in `[triggers]`.
    pub fn trigger_config(&self) -> Result<TriggerConfig, ConfigError> {
        let mut problems = Vec::new();
        self.triggers
            .checked(&self.file, &mut problems)
            .ok_or_else(|| first_error(problems))
    }

    /// Validates the values and builds the assembler's settings.
    ///
    /// # Errors
    /// The first invalid value, as [`ConfigError::Invalid`] with its field path.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        self.settings_checked(&mut problems)
            .ok_or_else(|| first_error(problems))
    }

    /// The assembler's settings, every invalid value added to `out`.
    pub(crate) fn settings_checked(&self, out: &mut Vec<Problem>) -> Option<Settings> {
        let before = out.len();
        let c = &self.cdr;
        let mut err = |e: ConfigError| out.push(Problem::Config(e));
        let tz = |path: &str, name: &str, err: &mut dyn FnMut(ConfigError)| {
            name.parse::<chrono_tz::Tz>()
                .map_err(|_| err(self.invalid(path, format!("unknown time zone {name:?}"))))
                .ok()
        };
        let region = |path: &str, code: &str, err: &mut dyn FnMut(ConfigError)| {
            let r = crate::session::numbers::region(code);
            if r.is_none() {
                err(self.invalid(
                    path,
                    format!(
                        "unknown region {code:?} (an ISO 3166 alpha-2 code libphonenumber knows)"
                    ),
                ));
            }
            r
        };
        let positive = |path: &str, v: u64, err: &mut dyn FnMut(ConfigError)| {
            if v == 0 || v > 366 * 86_400 {
                err(self.invalid(path, format!("{v} is out of range (1 s to 366 days)")));
                0
            } else {
                i64::try_from(v).unwrap_or(i64::MAX) * 1_000_000
            }
        };
        let limit = |path: &str, v: u64, max: u64, err: &mut dyn FnMut(ConfigError)| {
            if v == 0 || v > max {
                err(self.invalid(path, format!("{v} is out of range (1 to {max})")));
            }
            v
        };
        let default_tz = tz("cdr.timezone", &c.timezone, &mut err);
        let default_region = region("cdr.region", &c.region, &mut err);
        let mut tenants = std::collections::HashMap::new();
        for (id, t) in &self.tenants {
            let path = |f: &str| format!("tenants.{id}.{f}");
            let tz = match &t.timezone {
                Some(name) => tz(&path("timezone"), name, &mut err),
                None => default_tz,
            };
            let region = match &t.region {
                Some(code) => region(&path("region"), code, &mut err),
                None => default_region,
            };
            if let (Some(tz), Some(region)) = (tz, region) {
                let settings = TenantSettings {
                    tz,
                    region,
                    short_ring_secs: t.short_ring_secs.unwrap_or(c.short_ring_secs),
                    short_call_secs: t.short_call_secs.unwrap_or(c.short_call_secs),
                };
                tenants.insert(id.clone(), settings);
            }
        }
        let grace_us = positive("cdr.grace_secs", c.grace_secs, &mut err);
        let idle_timeout_us = positive("cdr.idle_timeout_secs", c.idle_timeout_secs, &mut err);
        let max_session_us = positive("cdr.max_session_secs", c.max_session_secs, &mut err);
        let late_window_us = positive("cdr.late_window_secs", c.late_window_secs, &mut err);
        let max_legs = limit(
            "cdr.max_legs_per_session",
            c.max_legs_per_session,
            100_000,
            &mut err,
        );
        let max_events = limit(
            "cdr.max_events_per_session",
            c.max_events_per_session,
            1_000_000,
            &mut err,
        );
        let max_clock_skew_us =
            positive("cdr.max_clock_skew_secs", c.max_clock_skew_secs, &mut err);
        if out.len() > before {
            return None;
        }
        Some(Settings {
            pbx_id: self.pbx.id.clone(),
            pbx_name: self.pbx.name.clone(),
            default_tenant: TenantSettings {
                tz: default_tz?,
                region: default_region?,
                short_ring_secs: c.short_ring_secs,
                short_call_secs: c.short_call_secs,
            },
            tenants,
            grace_us,
            idle_timeout_us,
            max_session_us,
            late_window_us,
            max_legs_per_session: usize::try_from(max_legs).unwrap_or(usize::MAX),
            max_events_per_session: u32::try_from(max_events).unwrap_or(u32::MAX),
            max_clock_skew_us,
            directory: Default::default(),
        })
    }
}

/// Resolves `path` against the directory of the configuration file `file`.
pub(crate) fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        file.parent().unwrap_or(Path::new("")).join(path)
    }
}

/// The first problem of a non-empty list, as a [`ConfigError`] (for the single-error APIs).
fn first_error(problems: Vec<Problem>) -> ConfigError {
    match problems.into_iter().next() {
        Some(Problem::Config(e)) => e,
        Some(Problem::MissingSecret { file, path, var }) => ConfigError::Invalid {
            file,
            path,
            message: format!("environment variable {var} is not set"),
        },
        Some(other) => ConfigError::Invalid {
            file: PathBuf::new(),
            path: String::new(),
            message: other.to_string(),
        },
        None => ConfigError::Invalid {
            file: PathBuf::new(),
            path: String::new(),
            message: "invalid".into(),
        },
    }
}

// --- enrichment ---
impl PluginConfig {
    /// The enrichment files named by `[enrich]`, resolved against the config file's directory;
    /// location alone when the section is absent.
    ///
    /// # Errors
    /// The settings' validation errors (regions are needed to read contact numbers).
    pub fn enrich_sources(&self) -> Result<crate::enrich::EnrichSources, ConfigError> {
        let section = self.enrich.clone().unwrap_or_default();
        let settings = self.settings()?;
        let base = self.file.parent().unwrap_or(Path::new(""));
        Ok(crate::enrich::EnrichSources::new(&section, base, &settings))
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
        let src = cfg.enrich_sources().unwrap();
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
        assert_eq!(a.region, crate::session::numbers::Region::GB);
        assert_eq!(a.short_ring_secs, 4);
        assert_eq!(s.tenant(Some("b")).tz, chrono_tz::UTC);
    }
}

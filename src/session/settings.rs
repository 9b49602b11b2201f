//! Runtime settings of the assembler and CDR builder: validated, ready-to-use values.
//!
//! Built by [`crate::config`] from `plugin.toml`, or [`Settings::default`] for a replay with no
//! configuration (time zone UTC, region US, default thresholds).

use std::collections::HashMap;

use super::numbers::Region;
use chrono_tz::Tz;

use crate::source::names::PbxDirectory;

/// Per-tenant values (a tenant is a Kazoo account).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    /// Time zone of the CDR's timestamps.
    pub tz: Tz,
    /// Region used to read numbers that are not in international form.
    pub region: Region,
    /// An unanswered external call that rang at most this many whole seconds is `aban`,
    /// else `lost`.
    pub short_ring_secs: u64,
    /// An answered call whose talk + hold is below this many seconds is `short`.
    pub short_call_secs: u64,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            tz: Tz::UTC,
            region: Region::US,
            short_ring_secs: 6,
            short_call_secs: 20,
        }
    }
}

/// Everything the assembler needs besides events and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `pbxId` of every CDR.
    pub pbx_id: Option<String>,
    /// `pbxName` of every CDR.
    pub pbx_name: Option<String>,
    /// Tenants without their own entry.
    pub default_tenant: TenantSettings,
    /// Per-account overrides.
    pub tenants: HashMap<String, TenantSettings>,
    /// A session whose legs are all destroyed closes after this much quiet (µs).
    pub grace_us: i64,
    /// A session with legs still up is force-closed after this much quiet (µs).
    pub idle_timeout_us: i64,
    /// A session is force-closed at this age whatever happens (µs).
    pub max_session_us: i64,
    /// Events for a closed session's legs arriving within this window are dropped as late (µs).
    pub late_window_us: i64,
    /// Legs one session may hold; events of further legs are refused (tag `truncated`).
    pub max_legs_per_session: usize,
    /// Events one session may take; further events are refused (tag `truncated`).
    pub max_events_per_session: u32,
    /// An event time further than this ahead of the processing clock is clamped to it (µs).
    pub max_clock_skew_us: i64,
    /// Names of devices, users, queues and numbers (empty until a directory is loaded).
    pub directory: PbxDirectory,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pbx_id: None,
            pbx_name: None,
            default_tenant: TenantSettings::default(),
            tenants: HashMap::new(),
            grace_us: 5_000_000,
            idle_timeout_us: 4 * 3600 * 1_000_000,
            max_session_us: 24 * 3600 * 1_000_000,
            late_window_us: 300 * 1_000_000,
            max_legs_per_session: 1000,
            max_events_per_session: 20_000,
            max_clock_skew_us: 300 * 1_000_000,
            directory: PbxDirectory::default(),
        }
    }
}

impl Settings {
    /// The settings of a tenant (its own entry, else the defaults).
    pub fn tenant(&self, account_id: Option<&str>) -> &TenantSettings {
        account_id
            .and_then(|a| self.tenants.get(a))
            .unwrap_or(&self.default_tenant)
    }
}

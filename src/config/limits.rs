//! `[limits]`: what the PBX can make postcall hold. Over a limit a value is cut or
//! an event refused, counted in metrics and logged; nothing over it is accepted whole.

use serde::Deserialize;

use crate::source::limits::IngestLimits;

/// `[limits]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest websocket message from Blackhole, KiB (default 1024); a larger one drops the
    /// connection (it reconnects).
    pub max_frame_kib: usize,
    /// Characters kept of a text field: caller and callee names and numbers, ids (default 256).
    pub max_field_chars: usize,
    /// Custom application variables (CDR tags) kept per event (default 64).
    pub max_tags: usize,
    /// Characters kept of a tag's name or value (default 256).
    pub max_tag_chars: usize,
    /// Open legs per tenant; events that would open more are refused (default 20000). This
    /// bounds the tenant's open sessions too.
    pub max_open_legs_per_tenant: usize,
    /// Open legs over all tenants (default 200000).
    pub max_open_legs: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = IngestLimits::default();
        Self {
            max_frame_kib: 1024,
            max_field_chars: d.max_field_chars,
            max_tags: d.max_vars,
            max_tag_chars: d.max_var_chars,
            max_open_legs_per_tenant: d.max_open_legs_per_tenant,
            max_open_legs: d.max_open_legs,
        }
    }
}

impl LimitsSection {
    /// The ingest limits (values of 0 are raised to 1).
    pub fn ingest(&self) -> IngestLimits {
        IngestLimits {
            max_field_chars: self.max_field_chars.max(1),
            max_vars: self.max_tags,
            max_var_chars: self.max_tag_chars.max(1),
            max_open_legs_per_tenant: self.max_open_legs_per_tenant.max(1),
            max_open_legs: self.max_open_legs.max(1),
            ..IngestLimits::default()
        }
    }

    /// The websocket message limit in bytes (at least 64 KiB).
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_kib.clamp(64, 1 << 20) * 1024
    }
}

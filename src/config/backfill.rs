//! `[backfill]`: reading Kazoo's stored leg CDRs for the stretches the event stream missed
//! (needs `kazoo.crossbar_url`).

use std::time::Duration;

use serde::Deserialize;

use crate::backfill::BackfillOptions;

/// `[backfill]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillSection {
    /// Backfill gaps (default true; without `kazoo.crossbar_url` there is nothing to read and
    /// `check` warns).
    pub enabled: bool,
    /// Widening of every gap on both sides, seconds (default 120).
    pub margin_secs: u64,
    /// Wait after a gap before reading, seconds (default 10: Kazoo stores a leg's CDR just
    /// after its DESTROY).
    pub settle_secs: u64,
    /// Crossbar requests per second at most (default 10).
    pub requests_per_sec: u32,
    /// On a first start in a data directory, read this far back (default 0: a first start
    /// promises nothing about earlier calls).
    pub first_start_lookback_secs: u64,
    /// A gap whose reads keep failing this long is given up, logged and counted
    /// (default 3600).
    pub give_up_after_secs: u64,
    /// Interactions read per gap at most (default 100000).
    pub max_interactions: usize,
    /// A call quiet this long with a leg still up has its stored CDRs looked up, so a lost
    /// DESTROY ends it at its real time instead of the idle timeout (again after twice as long,
    /// and so on); seconds, default 600, 0 turns it off.
    pub lost_destroy_after_secs: u64,
}

impl Default for BackfillSection {
    fn default() -> Self {
        let d = BackfillOptions::default();
        Self {
            enabled: true,
            margin_secs: d.margin_secs.unsigned_abs(),
            settle_secs: d.settle.as_secs(),
            requests_per_sec: d.requests_per_sec,
            first_start_lookback_secs: 0,
            give_up_after_secs: d.give_up_after.as_secs(),
            max_interactions: d.max_interactions,
            lost_destroy_after_secs: d.lost_destroy_after.map_or(0, |t| t.as_secs()),
        }
    }
}

impl BackfillSection {
    /// The backfill's options (values of 0 raised where 0 cannot work).
    #[must_use]
    pub fn options(&self) -> BackfillOptions {
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 2_000_000);
        BackfillOptions {
            margin_secs: secs(self.margin_secs),
            settle: Duration::from_secs(self.settle_secs),
            requests_per_sec: self.requests_per_sec.max(1),
            first_lookback_secs: secs(self.first_start_lookback_secs),
            give_up_after: Duration::from_secs(self.give_up_after_secs.max(1)),
            max_interactions: self.max_interactions.max(1),
            lost_destroy_after: (self.lost_destroy_after_secs > 0)
                .then(|| Duration::from_secs(self.lost_destroy_after_secs)),
            ..BackfillOptions::default()
        }
    }
}

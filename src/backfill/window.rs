//! Which stretch of Kazoo's stored CDRs a gap in the event stream calls for (pure).
//!
//! A leg's CDR is stored when the leg ends (`pvt_created`, the listing's filter), so the calls
//! a gap can hide are exactly those with a leg that ended inside it. The window is widened by
//! a margin on both sides (clock skew between the PBX and this host, legs that ended just
//! before the drop whose sessions had not closed yet, CDRs written a moment after the
//! DESTROY) and cut into pieces no longer than Crossbar accepts in one listing.

use crate::clock::{StreamTime, WallTime};
use crate::source::crossbar::MAX_CDR_RANGE_SECS as MAX_RANGE_SECS;

/// A stretch of leg end times, Unix seconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    /// First second.
    pub from: i64,
    /// Last second.
    pub to: i64,
}

impl Window {
    /// The window for a stream lost at `lost` and regained at `regained`, widened by
    /// `margin_secs` on both sides. A regain before the loss (a clock step) gives the margin
    /// around the loss.
    #[must_use]
    pub fn for_gap(lost: StreamTime, regained: StreamTime, margin_secs: i64) -> Self {
        let lost = lost.as_secs();
        let regained = regained.as_secs().max(lost);
        Self {
            from: lost - margin_secs,
            to: regained + margin_secs,
        }
    }

    /// Seconds covered.
    #[must_use]
    pub fn secs(&self) -> i64 {
        self.to - self.from + 1
    }

    /// The window cut into consecutive pieces Crossbar accepts, oldest first.
    #[must_use]
    pub fn pieces(&self) -> Vec<Window> {
        let mut out = Vec::new();
        let mut from = self.from;
        while from <= self.to {
            let to = (from + MAX_RANGE_SECS - 1).min(self.to);
            out.push(Window { from, to });
            from = to + 1;
        }
        out
    }

    /// Whether `other` overlaps or touches this window (then [`Window::union`] is one window).
    #[must_use]
    pub fn touches(&self, other: &Window) -> bool {
        other.from <= self.to + 1 && self.from <= other.to + 1
    }

    /// The smallest window covering both.
    #[must_use]
    pub fn union(&self, other: &Window) -> Window {
        Window {
            from: self.from.min(other.from),
            to: self.to.max(other.to),
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = |s: i64| {
            chrono::DateTime::from_timestamp(s, 0).map_or_else(
                || s.to_string(),
                |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            )
        };
        write!(f, "{}..{}", t(self.from), t(self.to))
    }
}

/// Where the stream was last known to be whole when this process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Open sessions were saved by a clean stop: their stream time.
    Saved(StreamTime),
    /// No saved sessions, but the stream mark of a run that ended (a crash, `kill -9`, or a
    /// clean stop with nothing open).
    Marked(StreamTime),
    /// Nothing: the first start in this data directory.
    First,
}

/// The window to backfill at start (`now`), if any: from where the stream was last whole,
/// or `first_lookback_secs` back on a first start (0: none). This host's clock stands in for
/// the PBX's at the regained end; the margin covers the skew between them.
#[must_use]
pub fn at_start(
    resume: Resume,
    now: WallTime,
    margin_secs: i64,
    first_lookback_secs: i64,
) -> Option<Window> {
    let now = now.standing_in_for_stream();
    let lookback = std::time::Duration::from_secs(first_lookback_secs.try_into().unwrap_or(0));
    match resume {
        Resume::Saved(t) | Resume::Marked(t) => Some(Window::for_gap(t, now, margin_secs)),
        Resume::First if first_lookback_secs > 0 => {
            Some(Window::for_gap(now.minus(lookback), now, margin_secs))
        }
        Resume::First => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn st(us: i64) -> StreamTime {
        StreamTime::from_us(us)
    }

    #[test]
    fn a_gap_is_widened_by_the_margin_on_both_sides() {
        let cases = [
            // lost, regained (s), margin → from, to
            (1_000, 1_060, 120, 880, 1_180),
            (1_000, 1_000, 0, 1_000, 1_000),
            // A clock step backwards: only the margin around the loss.
            (1_000, 900, 30, 970, 1_030),
        ];
        for (lost, regained, margin, from, to) in cases {
            assert_eq!(
                Window::for_gap(st(lost * S), st(regained * S), margin),
                Window { from, to },
                "{lost} {regained} {margin}"
            );
        }
        // Sub-second times fall to their second.
        assert_eq!(
            Window::for_gap(st(1_000 * S + 999_999), st(1_001 * S + 1), 0),
            Window {
                from: 1_000,
                to: 1_001
            }
        );
    }

    #[test]
    fn windows_longer_than_crossbar_accepts_are_cut_into_consecutive_pieces() {
        let w = Window {
            from: 0,
            to: 2 * MAX_RANGE_SECS + 9,
        };
        let p = w.pieces();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            Window {
                from: 0,
                to: MAX_RANGE_SECS - 1
            }
        );
        assert_eq!(p[1].from, MAX_RANGE_SECS);
        assert_eq!(
            p[2],
            Window {
                from: 2 * MAX_RANGE_SECS,
                to: 2 * MAX_RANGE_SECS + 9
            }
        );
        assert!(p.iter().all(|x| x.secs() <= MAX_RANGE_SECS));
        assert_eq!(p.iter().map(Window::secs).sum::<i64>(), w.secs());
        assert_eq!(
            Window { from: 5, to: 5 }.pieces(),
            vec![Window { from: 5, to: 5 }]
        );
    }

    #[test]
    fn touching_windows_unite() {
        let a = Window { from: 0, to: 10 };
        assert!(a.touches(&Window { from: 11, to: 20 }));
        assert!(a.touches(&Window { from: -5, to: 0 }));
        assert!(!a.touches(&Window { from: 12, to: 20 }));
        assert_eq!(
            a.union(&Window { from: 5, to: 30 }),
            Window { from: 0, to: 30 }
        );
    }

    #[test]
    fn the_start_window_follows_what_the_last_run_left() {
        let now = WallTime::from_us(10_000 * S);
        assert_eq!(
            at_start(Resume::Saved(st(9_000 * S)), now, 60, 0),
            Some(Window {
                from: 8_940,
                to: 10_060
            })
        );
        assert_eq!(
            at_start(Resume::Marked(st(9_500 * S)), now, 60, 3_600),
            Some(Window {
                from: 9_440,
                to: 10_060
            })
        );
        assert_eq!(at_start(Resume::First, now, 60, 0), None);
        assert_eq!(
            at_start(Resume::First, now, 60, 600),
            Some(Window {
                from: 9_340,
                to: 10_060
            })
        );
    }
}

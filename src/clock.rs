//! Time in postcall: two clocks, two types, never mixed up by accident.
//!
//! - [`StreamTime`]: the PBX's clock, read from each event (`CallEvent::time`). Replay runs on
//!   it alone; the stream mark, saved sessions, backfill windows and stored CDRs are in it.
//! - [`WallTime`]: this host's clock, [`WallTime::now`]. The live shell hands it to the pure
//!   core as the processing time (when a session is quiet, when a retry is due, when a
//!   delivery was recorded). The pure core never reads a clock itself.
//!
//! Both are Unix microseconds underneath. Where one must stand in for the other, the code says
//! so with a named conversion: [`WallTime::standing_in_for_stream`] (no event has told the
//! PBX's clock yet) and [`StreamTime::as_processing_time`] (replay, where the stream's clock
//! is the only clock). Plain numbers enter and leave through `from_us` / `as_us` at storage
//! and wire boundaries.
//!
//! The compiler keeps them apart:
//!
//! ```compile_fail
//! use postcall::clock::{StreamTime, WallTime};
//! fn due(now: WallTime) -> bool { now.as_us() > 0 }
//! due(StreamTime::from_us(1)); // a PBX time is not this host's time
//! ```
//!
//! ```
//! use postcall::clock::{StreamTime, WallTime};
//! fn due(now: WallTime) -> bool { now.as_us() > 0 }
//! assert!(due(StreamTime::from_us(1).as_processing_time())); // replay says so by name
//! ```

use std::time::Duration;

macro_rules! time_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The moment `us` microseconds after the Unix epoch.
            #[must_use]
            pub const fn from_us(us: i64) -> Self {
                Self(us)
            }

            /// Microseconds since the Unix epoch.
            #[must_use]
            pub const fn as_us(self) -> i64 {
                self.0
            }

            /// Whole seconds since the Unix epoch (rounded towards the past).
            #[must_use]
            pub const fn as_secs(self) -> i64 {
                self.0.div_euclid(1_000_000)
            }

            /// `d` later, saturating at the end of time.
            #[must_use]
            pub fn plus(self, d: Duration) -> Self {
                Self(self.0.saturating_add(micros(d)))
            }

            /// `d` earlier, saturating at the start of time.
            #[must_use]
            pub fn minus(self, d: Duration) -> Self {
                Self(self.0.saturating_sub(micros(d)))
            }

            /// How long after `earlier` this is (zero when it is not after it).
            #[must_use]
            pub fn since(self, earlier: Self) -> Duration {
                Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
            }
        }
    };
}

time_type!(
    /// A moment on the PBX's clock (Unix µs), as its events tell it.
    StreamTime
);

time_type!(
    /// A moment on this host's clock (Unix µs).
    WallTime
);

impl WallTime {
    /// This host's clock now.
    #[must_use]
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_micros())
    }

    /// This host's clock standing in for the PBX's, where no event has told the PBX's clock
    /// yet (a frame without a timestamp before any with one, the start of a first backfill).
    #[must_use]
    pub const fn standing_in_for_stream(self) -> StreamTime {
        StreamTime(self.0)
    }
}

impl StreamTime {
    /// The stream's clock as the processing time: replay has no other clock, so a session is
    /// quiet, due or expired by the events' own times.
    #[must_use]
    pub const fn as_processing_time(self) -> WallTime {
        WallTime(self.0)
    }
}

/// A duration in whole microseconds, saturating.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = StreamTime::from_us(i64::MAX - 1);
        assert_eq!(t.plus(Duration::from_secs(1)).as_us(), i64::MAX);
        let w = WallTime::from_us(i64::MIN + 1);
        assert_eq!(w.minus(Duration::from_secs(1)).as_us(), i64::MIN);
        assert_eq!(w.since(WallTime::from_us(0)), Duration::ZERO);
        assert_eq!(
            WallTime::from_us(2_500_000).since(WallTime::from_us(1_000_000)),
            Duration::from_micros(1_500_000)
        );
        assert_eq!(
            StreamTime::from_us(-1).as_secs(),
            -1,
            "seconds round towards the past"
        );
        assert_eq!(StreamTime::from_us(1_999_999).as_secs(), 1);
    }

    #[test]
    fn they_serialise_as_plain_microseconds() {
        let t = StreamTime::from_us(1_764_322_800_123_456);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1764322800123456");
        let back: WallTime = serde_json::from_str("1764322800123456").unwrap();
        assert_eq!(back.as_us(), t.as_us());
    }

    #[test]
    fn the_host_clock_is_read_as_unix_time() {
        // 2020-01-01 and 2100-01-01: a wrong epoch or unit falls far outside.
        let now = WallTime::now().as_secs();
        assert!((1_577_836_800..4_102_444_800).contains(&now), "{now}");
    }
}

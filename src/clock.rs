//! Time in postcall, in Unix microseconds.
//!
//! Two clocks, never mixed up:
//! - **stream time**: the PBX's clock, read from each event (`CallEvent::time_us`); replay runs
//!   on it alone, and the stream mark, saved sessions and stored CDRs are in it;
//! - **wall time**: this host's clock, [`now_us`]; the live shell hands it to the pure core as
//!   the processing time (when a session is quiet, when a retry is due, when a delivery was
//!   recorded). The pure core never reads a clock itself.

/// Wall time: this host's clock, Unix µs.
#[must_use]
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

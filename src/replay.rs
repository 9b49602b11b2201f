//! Replay: recorded Blackhole frames (JSON Lines) through the assembler, with no network.
//!
//! The fixture format is one websocket text frame per line, byte-for-byte what Blackhole sent.
//! Blank lines are ignored, replies are ignored, anything else that does not decode is counted
//! under its reason and skipped. Several inputs are read as one stream, in the order given.
//!
//! Time is stream time: the processing clock is the latest event time seen, so grace periods
//! and timeouts elapse exactly as they did live, and the same input always gives the same
//! CDRs. At the end of input every open session is closed: sessions whose legs were all
//! destroyed close normally, the others are force-closed (tag `forced_close`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use crate::session::{Applied, Assembler, ClosedSession, Settings};
use crate::source::{decode_frame, Frame};

/// What a replay read and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Non-blank lines read.
    pub frames: u64,
    /// Call events folded into sessions.
    pub events: u64,
    /// Duplicate events ignored.
    pub duplicates: u64,
    /// Events for sessions already closed.
    pub late: u64,
    /// Reply frames (ignored).
    pub replies: u64,
    /// Frames skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

/// Runs a replay, one input after the other as a single stream.
pub struct Replay {
    assembler: Assembler,
    closed: Vec<ClosedSession>,
    stats: ReplayStats,
}

impl Replay {
    /// A replay with the given settings.
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            assembler: Assembler::new(settings),
            closed: Vec::new(),
            stats: ReplayStats::default(),
        }
    }

    /// Feeds one line (one frame).
    pub fn feed_line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        self.stats.frames += 1;
        match decode_frame(line) {
            Ok(Frame::Event(ev)) => {
                let now = ev
                    .time_us
                    .or(self.assembler.stream_time())
                    .unwrap_or_default();
                match self.assembler.apply(&ev, now) {
                    Applied::Accepted => self.stats.events += 1,
                    Applied::Duplicate => self.stats.duplicates += 1,
                    Applied::Late => self.stats.late += 1,
                }
                self.assembler.poll(now, &mut self.closed);
            }
            Ok(Frame::Reply(_)) => self.stats.replies += 1,
            Err(e) => *self.stats.skipped.entry(e.reason()).or_default() += 1,
        }
    }

    /// Feeds every line of a reader.
    ///
    /// # Errors
    /// An I/O error of the reader. Lines that are not UTF-8 are counted as `invalid_json`.
    pub fn feed_reader(&mut self, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            match std::str::from_utf8(&buf) {
                Ok(line) => self.feed_line(line),
                Err(_) => {
                    self.stats.frames += 1;
                    *self.stats.skipped.entry("invalid_json").or_default() += 1;
                }
            }
        }
    }

    /// Ends the input: closes every open session and returns all CDRs ordered by `end`, then
    /// `id`.
    pub fn finish(mut self) -> (Vec<ClosedSession>, ReplayStats) {
        self.assembler.flush(&mut self.closed);
        let mut closed = self.closed;
        closed.sort_by(|a, b| {
            (a.end_us.div_euclid(1_000_000), &a.cdr.id)
                .cmp(&(b.end_us.div_euclid(1_000_000), &b.cdr.id))
        });
        (closed, self.stats)
    }
}

/// Replays a whole text (one frame per line) and returns the CDRs in output order.
pub fn replay_str(text: &str, settings: Arc<Settings>) -> Vec<ClosedSession> {
    let mut r = Replay::new(settings);
    text.lines().for_each(|l| r.feed_line(l));
    r.finish().0
}

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
//!
//! **Clock jumps.** A frame stamped more than the allowed clock skew ahead of the clock is
//! either the stream moving on (a quiet night in a recording) or one node with a wrong clock.
//! Such frames are held (at most [`HOLD_MAX`]) until the stream tells which: an equally late
//! frame of another call confirms the jump, and the held frames are applied at their own
//! times; a frame back at the clock's time shows they were outliers, and they are applied at
//! the clock's time (counted as clamped) without moving it, so one bad frame cannot age every
//! call in progress.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::StreamTime;
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
    /// Events refused at a session's leg or event limit.
    pub refused: u64,
    /// Events stamped too far ahead of the clock, taken at the clock's time.
    pub clamped: u64,
    /// Frames skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

/// Frames held while a clock jump is unconfirmed.
pub const HOLD_MAX: usize = 16;

/// Runs a replay, one input after the other as a single stream.
pub struct Replay {
    assembler: Assembler,
    closed: Vec<ClosedSession>,
    stats: ReplayStats,
    /// Frames ahead of the clock, with their call ids, in arrival order.
    held: Vec<(String, String)>,
}

impl Replay {
    /// A replay with the given settings.
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            assembler: Assembler::new(settings),
            closed: Vec::new(),
            stats: ReplayStats::default(),
            held: Vec::new(),
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
                let skew = self.assembler.settings().max_clock_skew_us.unsigned_abs();
                let clock = self.assembler.stream_time();
                let ahead = matches!((ev.time, clock),
                    (Some(t), Some(c)) if t > c.plus(Duration::from_micros(skew)));
                let undecided = !self.held.is_empty() && ev.time.is_none();
                let confirms = ahead && self.held.iter().any(|(call, _)| *call != *ev.call_id);
                if (ahead && !confirms) || undecided {
                    self.held.push((ev.call_id.to_string(), line.to_owned()));
                    if self.held.len() >= HOLD_MAX {
                        // A long run of late frames: the stream itself moved on.
                        self.release(true);
                    }
                    return;
                }
                self.release(confirms);
                self.apply(&ev, ev.time.or(clock).unwrap_or_default());
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

    /// Applies the held frames: at their own times when the jump was real, else at the
    /// clock's time (the assembler clamps them).
    fn release(&mut self, real: bool) {
        for (_, line) in std::mem::take(&mut self.held) {
            if let Ok(Frame::Event(ev)) = decode_frame(&line) {
                let clock = self.assembler.stream_time();
                let now = if real { ev.time.or(clock) } else { clock };
                self.apply(&ev, now.unwrap_or_default());
            }
        }
    }

    /// Applies `ev` and closes what is due, with the stream's clock as the processing time.
    fn apply(&mut self, ev: &crate::source::CallEvent<'_>, now: StreamTime) {
        let now = now.as_processing_time();
        match self.assembler.apply(ev, now) {
            Applied::Accepted => self.stats.events += 1,
            Applied::Clamped => {
                self.stats.events += 1;
                self.stats.clamped += 1;
            }
            Applied::Duplicate => self.stats.duplicates += 1,
            Applied::Late => self.stats.late += 1,
            Applied::OverLimit { .. } => self.stats.refused += 1,
        }
        self.assembler.poll(now, &mut self.closed);
    }

    /// Ends the input: closes every open session and returns all CDRs ordered by `end`, then
    /// `id`.
    pub fn finish(mut self) -> (Vec<ClosedSession>, ReplayStats) {
        // Held frames at the end of input: nothing is left for them to disturb.
        self.release(true);
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

/// Builds the sessions of a set of Kazoo leg CDR documents (all legs of the interactions
/// wanted, e.g. every page of `/cdrs/legs/{interaction_id}`), through the same assembler and
/// builder as the stream. Every event is applied before any session is closed, so legs that
/// ended minutes apart still meet; the sessions are then closed (all their legs are
/// destroyed) and returned ordered by `end`, then `id`, with the documents that could not be
/// read.
pub fn replay_cdr_docs(
    docs: &[serde_json::Value],
    settings: Arc<Settings>,
) -> (Vec<ClosedSession>, Vec<crate::source::CdrDocError>) {
    let mut errors = Vec::new();
    let mut events: Vec<crate::source::CallEvent<'_>> = Vec::with_capacity(docs.len());
    for d in docs {
        match crate::source::leg_event(d) {
            Ok(ev) => events.push(ev),
            Err(e) => errors.push(e),
        }
    }
    events.sort_by_key(|e| e.time);
    let now = events
        .iter()
        .filter_map(|e| e.time)
        .max()
        .unwrap_or_default();
    let mut asm = Assembler::new(settings);
    for ev in &events {
        asm.apply(ev, now.as_processing_time());
    }
    let mut closed = Vec::new();
    asm.flush(&mut closed);
    closed.sort_by(|a, b| {
        (a.end_us.div_euclid(1_000_000), &a.cdr.id)
            .cmp(&(b.end_us.div_euclid(1_000_000), &b.cdr.id))
    });
    (closed, errors)
}

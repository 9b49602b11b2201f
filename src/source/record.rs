//! `postcall record`: live frames into a fixture file that `replay` reads.
//!
//! Only the frames Blackhole pushes are written, one per line, byte for byte; subscribe
//! requests and their replies (the only frames that can carry the auth token, which Kazoo
//! echoes in `failed to authenticate token …`) never reach the file.
//!
//! Recording gives up after a number of connection attempts in a row that ended without a
//! subscription (connection refused, TLS or upgrade failure, token or every subscription
//! refused): the client's own log lines say why each one failed.

use std::io::Write;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::blackhole::{SourceCounters, SourceMsg, SourceStatus};

/// When recording stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Stop after this many frames.
    pub frames: Option<u64>,
    /// Give up after this many connection attempts in a row without a subscription (at least 1).
    pub attempts: u64,
}

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEnd {
    /// The frame limit was reached.
    Frames,
    /// `stop` resolved (Ctrl-C, a timeout).
    Stopped,
    /// The source ended.
    SourceClosed,
    /// `attempts` connection attempts in a row ended without a subscription.
    GaveUp {
        /// Attempts in a row that failed.
        attempts: u64,
    },
}

/// What a recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Frames written.
    pub frames: u64,
    /// Connections that subscribed.
    pub connections: u64,
    /// Why it ended.
    pub end: RecordEnd,
}

/// Counts connection attempts in a row that ended without a subscription, from the client's
/// counters (so a missed status change only delays the count, never skews it).
struct FailedAttempts {
    connections_seen: u64,
    attempts_at_last_success: u64,
}

impl FailedAttempts {
    /// Attempts since the last one that subscribed, read when the client is backing off.
    fn in_a_row(&mut self, counters: &SourceCounters) -> u64 {
        let attempts = counters.connect_attempts.load(Ordering::Relaxed);
        let connections = counters.connections.load(Ordering::Relaxed);
        if connections > self.connections_seen {
            // The attempt that just ended had subscribed: it is not a failure.
            self.connections_seen = connections;
            self.attempts_at_last_success = attempts;
        }
        attempts.saturating_sub(self.attempts_at_last_success)
    }
}

/// Writes frames from `messages` to `out` until the frame limit, too many failed connection
/// attempts in a row, the end of the source, or `stop`.
///
/// # Errors
/// A write error.
pub async fn record(
    messages: &mut mpsc::Receiver<SourceMsg>,
    counters: &SourceCounters,
    out: &mut impl Write,
    limits: RecordLimits,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<Recorded> {
    let mut written = 0u64;
    let mut status = counters.status.subscribe();
    // The client started before us: look at where it is now, then at every change.
    status.mark_changed();
    let mut failed = FailedAttempts {
        connections_seen: 0,
        attempts_at_last_success: 0,
    };
    let attempts = limits.attempts.max(1);
    tokio::pin!(stop);
    let end = loop {
        if limits.frames.is_some_and(|l| written >= l) {
            break RecordEnd::Frames;
        }
        let msg = tokio::select! {
            m = messages.recv() => m,
            () = &mut stop => break RecordEnd::Stopped,
            changed = status.changed() => {
                if changed.is_err() {
                    break RecordEnd::SourceClosed;
                }
                let backing_off = *status.borrow_and_update() == SourceStatus::Backoff;
                if backing_off {
                    let n = failed.in_a_row(counters);
                    if n >= attempts {
                        break RecordEnd::GaveUp { attempts: n };
                    }
                }
                continue;
            }
        };
        match msg {
            None => break RecordEnd::SourceClosed,
            Some(SourceMsg::Frame { text, .. }) => {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()?;
                written += 1;
            }
            Some(SourceMsg::Connected {
                subscribed,
                refused,
                ..
            }) => {
                tracing::info!(subscribed, refused, "recording");
            }
            Some(SourceMsg::Disconnected { reason, .. }) => {
                tracing::warn!(%reason, "disconnected; frames until the reconnect are lost");
            }
        }
    };
    Ok(Recorded {
        frames: written,
        connections: counters.connections.load(Ordering::Relaxed),
        end,
    })
}

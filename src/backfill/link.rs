//! The driver's side of the backfill: which gap windows to ask for, when the resync after a
//! reconnect may run, and until when the event stream is known to be whole (the mark).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::fetch::{BackfillMsg, Request};
use super::window::{at_start, Resume, Window};
use crate::clock::{StreamTime, WallTime};

/// What connects the driver to the backfill task.
#[derive(Debug)]
pub struct BackfillLink {
    /// Gap windows and quiet sessions to read.
    pub requests: mpsc::Sender<Request>,
    /// What was read.
    pub results: mpsc::Receiver<BackfillMsg>,
    /// Widening of every gap, seconds.
    pub margin_secs: i64,
    /// Where the previous run left the stream when it saved no sessions (the stream mark);
    /// `None` on a first start.
    pub mark: Option<StreamTime>,
    /// On a first start, how far back to read (0: none).
    pub first_lookback_secs: i64,
    /// Until when the stream is known whole (Unix µs, stream time; the sidecar persists it).
    pub whole_until: Arc<AtomicI64>,
    /// A session quiet this long (µs) with a leg up is looked up in the stored CDRs.
    pub lost_destroy_after_us: Option<i64>,
}

/// The gaps being read (no I/O; the driver owns it).
#[derive(Debug)]
pub struct Gaps {
    link: BackfillLink,
    /// Windows asked for and not yet done.
    pending: usize,
    /// The stream is up.
    connected: bool,
    /// A resync (from this loss time) waits until the pending windows are read, so legs that
    /// ended in the gap get their real end from Kazoo's CDRs rather than the loss time.
    deferred_resync: Option<StreamTime>,
}

impl Gaps {
    /// Starts with the stream not yet connected: the mark stays where the last run left it.
    #[must_use]
    pub fn new(link: BackfillLink, now: WallTime) -> Self {
        let start = link.mark.unwrap_or(now.standing_in_for_stream());
        link.whole_until.store(start.as_us(), Ordering::Relaxed);
        Self {
            link,
            pending: 0,
            connected: false,
            deferred_resync: None,
        }
    }

    /// The stream was lost: the mark stops moving.
    pub fn lost(&mut self) {
        self.connected = false;
    }

    /// The stream is up again at `now` after a loss at `lost` (a reconnect, or a restart that
    /// saved sessions): asks for the gap's window. Returns true when the caller should defer
    /// its resync until [`Gaps::done`] says so.
    pub fn regained_after(&mut self, lost: StreamTime, now: WallTime) -> bool {
        self.connected = true;
        let w = Window::for_gap(lost, now.standing_in_for_stream(), self.link.margin_secs);
        if self.ask(w) {
            self.deferred_resync = Some(lost);
            true
        } else {
            false
        }
    }

    /// The first connection of a run that saved no open sessions: asks for the window since
    /// the mark (or the first-start lookback), if any.
    pub fn first_connected(&mut self, now: WallTime) {
        self.connected = true;
        let resume = self.link.mark.map_or(Resume::First, Resume::Marked);
        if let Some(w) = at_start(
            resume,
            now,
            self.link.margin_secs,
            self.link.first_lookback_secs,
        ) {
            self.ask(w);
        }
    }

    fn ask(&mut self, w: Window) -> bool {
        match self.link.requests.try_send(Request::Window(w)) {
            Ok(()) => {
                self.pending += 1;
                true
            }
            Err(e) => {
                tracing::error!(window = %w, error = %e, "backfill: cannot queue a gap window; it is not read (run `postcall reconcile` for it)");
                false
            }
        }
    }

    /// How long a session may stay quiet with a leg up before its stored CDRs are looked up.
    #[must_use]
    pub fn lost_destroy_after_us(&self) -> Option<i64> {
        self.link.lost_destroy_after_us
    }

    /// Asks for the stored legs of a quiet session's interaction; skipped (until the next
    /// look) when the task is busy.
    pub fn look_up(&self, account: String, interaction: String) {
        let _ = self.link.requests.try_send(Request::Interaction {
            account,
            interaction,
        });
    }

    /// Gap windows are being read.
    #[must_use]
    pub fn reading(&self) -> bool {
        self.pending > 0
    }

    /// A window is done: returns the loss time of a deferred resync once none is pending.
    pub fn done(&mut self) -> Option<StreamTime> {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 {
            self.deferred_resync.take()
        } else {
            None
        }
    }

    /// Moves the mark to `stream` (the latest event time seen: the PBX's clock, like the
    /// CDRs' times and a saved snapshot's) while the stream is up and no gap is being read.
    pub fn tick(&self, stream: StreamTime) {
        if self.connected && self.pending == 0 {
            self.link
                .whole_until
                .store(stream.as_us(), Ordering::Relaxed);
        }
    }

    /// The next message from the backfill task.
    pub async fn recv(&mut self) -> Option<BackfillMsg> {
        self.link.results.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn st(secs: i64) -> StreamTime {
        StreamTime::from_us(secs * S)
    }

    fn wt(secs: i64) -> WallTime {
        WallTime::from_us(secs * S)
    }

    fn gaps(
        mark: Option<StreamTime>,
        lookback: i64,
    ) -> (Gaps, mpsc::Receiver<Request>, Arc<AtomicI64>) {
        let (tx, rx) = mpsc::channel(4);
        let (_rtx, results) = mpsc::channel(1);
        let whole = Arc::new(AtomicI64::new(0));
        let link = BackfillLink {
            requests: tx,
            results,
            margin_secs: 10,
            mark,
            first_lookback_secs: lookback,
            whole_until: whole.clone(),
            lost_destroy_after_us: None,
        };
        (Gaps::new(link, wt(5_000)), rx, whole)
    }

    #[test]
    fn the_mark_holds_through_a_gap_until_its_window_is_read() {
        let (mut g, mut rx, whole) = gaps(Some(st(1_000)), 0);
        assert_eq!(
            whole.load(Ordering::Relaxed),
            1_000 * S,
            "starts where the last run left it"
        );
        g.tick(st(5_001));
        assert_eq!(
            whole.load(Ordering::Relaxed),
            1_000 * S,
            "not connected yet"
        );
        g.first_connected(wt(5_002));
        assert_eq!(
            rx.try_recv().unwrap(),
            Request::Window(Window {
                from: 990,
                to: 5_012
            })
        );
        g.tick(st(5_003));
        assert_eq!(
            whole.load(Ordering::Relaxed),
            1_000 * S,
            "the start window is being read"
        );
        assert_eq!(g.done(), None, "no resync was deferred");
        g.tick(st(5_004));
        assert_eq!(whole.load(Ordering::Relaxed), 5_004 * S);

        g.lost();
        g.tick(st(5_010));
        assert_eq!(
            whole.load(Ordering::Relaxed),
            5_004 * S,
            "frozen while down"
        );
        assert!(g.regained_after(st(5_005), wt(5_020)));
        assert_eq!(
            rx.try_recv().unwrap(),
            Request::Window(Window {
                from: 4_995,
                to: 5_030
            })
        );
        g.tick(st(5_021));
        assert_eq!(whole.load(Ordering::Relaxed), 5_004 * S);
        assert_eq!(
            g.done(),
            Some(st(5_005)),
            "the resync runs once the gap is read"
        );
        g.tick(st(5_022));
        assert_eq!(whole.load(Ordering::Relaxed), 5_022 * S);
    }

    #[test]
    fn a_first_start_reads_nothing_unless_a_lookback_is_set() {
        let (mut g, mut rx, _) = gaps(None, 0);
        g.first_connected(wt(5_000));
        assert!(rx.try_recv().is_err());
        let (mut g, mut rx, _) = gaps(None, 60);
        g.first_connected(wt(5_000));
        assert_eq!(
            rx.try_recv().unwrap(),
            Request::Window(Window {
                from: 4_930,
                to: 5_010
            })
        );
    }

    #[test]
    fn the_resync_waits_for_every_window_asked_for() {
        let (mut g, _rx, _) = gaps(Some(st(0)), 0);
        g.first_connected(wt(100));
        g.lost();
        assert!(g.regained_after(st(200), wt(210)));
        assert_eq!(g.done(), None, "one window still pending");
        assert_eq!(g.done(), Some(st(200)));
    }
}

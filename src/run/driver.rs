//! The async shell around the pure [`Assembler`]: live source messages in, closed sessions
//! out, on the wall clock.
//!
//! - Frames are decoded here; undecodable ones are skipped with one structured log event and
//!   counted per reason.
//! - Closing is driven by a timer tick as well as by events, so a quiet PBX still gets its
//!   CDRs after the grace period.
//! - After a reconnect the PBX's active channels are fetched (off the hot path) and the
//!   assembler is reconciled: sessions that spanned the gap get tag `gap`, legs that ended
//!   during it are ended at the moment the stream was lost.
//! - With a backfill ([`crate::backfill`]): every gap (reconnect, restart, crash mark) is
//!   asked for as a window; while it is read, sessions that may miss events are held and the
//!   resync waits; the stored leg CDRs that come back are folded in as DESTROYs. Sessions
//!   quiet with a leg up are looked up too (a lost DESTROY).
//! - New settings (directory refresh, reload) are picked up from a watch channel.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use tokio::sync::{mpsc, watch};

use crate::backfill::{BackfillLink, BackfillMsg, Gaps};
use crate::clock::{StreamTime, WallTime};
use crate::session::{Applied, Assembler, ClosedSession, Settings, Snapshot};
use crate::source::blackhole::SourceMsg;
use crate::source::limits::{clamp, Admit, IngestLimits, LegBudget};
use crate::source::{decode_frame, leg_event, Frame};

/// Fetches the call ids of the PBX's active channels for the resync after a reconnect.
pub type ChannelFetch = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<HashSet<String>, String>> + Send>> + Send + Sync,
>;

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct DriverCounters {
    /// Frames skipped, by reason.
    pub skipped: Mutex<BTreeMap<&'static str, u64>>,
    /// Latest assembler counters.
    pub assembler: Mutex<crate::session::AssemblerStats>,
    /// Legs ended by a resync.
    pub resync_ended_legs: std::sync::atomic::AtomicU64,
    /// Resyncs that could not fetch the channels.
    pub resync_failures: std::sync::atomic::AtomicU64,
    /// Open sessions (updated every tick).
    pub open_sessions: std::sync::atomic::AtomicU64,
    /// Open legs (updated every tick).
    pub open_legs: std::sync::atomic::AtomicU64,
    /// Event text fields and variable names/values cut to the limits.
    pub truncated_fields: std::sync::atomic::AtomicU64,
    /// Variables and list items dropped over the limits.
    pub dropped_values: std::sync::atomic::AtomicU64,
    /// Events refused: their tenant held its maximum of open legs.
    pub refused_events: std::sync::atomic::AtomicU64,
    /// Stored leg CDRs (backfill) folded in.
    pub stored_legs: std::sync::atomic::AtomicU64,
    /// Stored leg CDRs that could not be read as a leg.
    pub stored_skipped: std::sync::atomic::AtomicU64,
}

impl DriverCounters {
    /// Frames skipped for `reason` so far.
    pub fn skipped(&self, reason: &str) -> u64 {
        self.skipped
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// Tunables of [`drive`].
pub struct DriverOptions {
    /// How often due sessions are closed when no events arrive.
    pub tick: Duration,
    /// The tenants (accounts) the source subscribes; resyncs apply to them.
    pub tenants: HashSet<String>,
    /// Channel fetch for resyncs; `None` marks gaps without closing legs.
    pub channels: Option<ChannelFetch>,
    /// What one event may make the assembler hold.
    pub limits: IngestLimits,
    /// Gaps in the stream are read from Kazoo's stored CDRs (see [`crate::backfill`]).
    pub backfill: Option<BackfillLink>,
}

/// Cuts an event to the limits and decides whether its tenant may open it; counts and logs
/// what was cut or refused (logged at the first occurrence and then at every power of two,
/// so a hostile stream cannot flood the log). Whether to apply it.
fn admit(
    ev: &mut crate::source::CallEvent<'_>,
    t: StreamTime,
    limits: &IngestLimits,
    budget: &mut LegBudget,
    counters: &DriverCounters,
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let c = clamp(ev, limits);
    if c.truncated > 0 {
        let n = counters
            .truncated_fields
            .fetch_add(u64::from(c.truncated), Relaxed);
        if (n + 1).is_power_of_two() || n == 0 {
            tracing::warn!(call_id = %ev.call_id, truncated = c.truncated, total = n + u64::from(c.truncated), limit_chars = limits.max_field_chars, "event fields over the size limit truncated");
        }
    }
    if c.dropped > 0 {
        let n = counters
            .dropped_values
            .fetch_add(u64::from(c.dropped), Relaxed);
        if (n + 1).is_power_of_two() || n == 0 {
            tracing::warn!(call_id = %ev.call_id, dropped = c.dropped, total = n + u64::from(c.dropped), limit = limits.max_vars, "event variables or ids over the count limit dropped");
        }
    }
    let why = match budget.admit(ev, t, limits) {
        Admit::Yes => return true,
        Admit::TenantFull => "tenant at max_open_legs_per_tenant",
        Admit::Full => "max_open_legs reached",
    };
    let n = counters.refused_events.fetch_add(1, Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(tenant = ev.account_id.as_deref().unwrap_or(""), call_id = %ev.call_id, reason = why, refused = n, "open-leg limit: event refused");
    }
    false
}

/// How long a stopping driver keeps draining frames already received before it gives up on a
/// source that does not close its channel.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Runs until the source channel closes; then emits what is complete and returns the
/// assembler with its open sessions (the caller persists them).
///
/// Stopping cascades through the channel: when `shutdown` turns true the source stops reading
/// and drops its sender, and the driver goes on folding every frame already in the channel
/// until it is closed and empty ([`DRAIN_DEADLINE`] at most, should a source not close it).
///
/// `restored` carries the open sessions of a previous run: the first connection is then
/// treated as a reconnect (resync, tag `gap`), since events were missed while stopped.
pub async fn drive(
    restored: Option<Snapshot>,
    settings: watch::Receiver<Arc<Settings>>,
    mut source: mpsc::Receiver<SourceMsg>,
    out: mpsc::Sender<ClosedSession>,
    mut opts: DriverOptions,
    counters: Arc<DriverCounters>,
    shutdown: CancellationToken,
) -> Assembler {
    let mut gaps = opts.backfill.take().map(|l| Gaps::new(l, WallTime::now()));
    let mut first_connection = true;
    let mut settings = settings;
    let mut lost: Option<StreamTime> = None;
    let mut gap_pending = false;
    let mut asm = match restored {
        Some(snap) if snap.sessions() > 0 => {
            lost = snap.stream_time();
            gap_pending = true;
            tracing::info!(sessions = snap.sessions(), "open sessions restored");
            Assembler::restore(settings.borrow_and_update().clone(), snap)
        }
        _ => Assembler::new(settings.borrow_and_update().clone()),
    };
    let mut closed = Vec::new();
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (resync_tx, mut resync_rx) =
        mpsc::channel::<(StreamTime, Result<HashSet<String>, String>)>(4);
    let mut settings_open = true;
    let drain_deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain_deadline);
    let mut draining = false;
    let mut budget = LegBudget::default();
    // Quiet sessions with a leg up are looked up in the stored CDRs (a lost DESTROY?).
    let quiet_us = gaps.as_ref().and_then(Gaps::lost_destroy_after_us);
    let mut look = tokio::time::interval(
        Duration::from_micros(quiet_us.unwrap_or(0).unsigned_abs() / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(30)),
    );
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = Vec::new();
    let resync = |lost: StreamTime, asm: &mut Assembler| match &opts.channels {
        Some(fetch) => {
            let (fetch, tx) = (fetch.clone(), resync_tx.clone());
            tokio::spawn(async move {
                let _ = tx.send((lost, fetch().await)).await;
            });
        }
        None => asm.mark_gap(),
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_DEADLINE);
                tracing::info!(queued = source.len(), "stopping: folding the frames already received");
            }
            () = &mut drain_deadline, if draining => {
                let left = source.len() as u64;
                if let Ok(mut m) = counters.skipped.lock() {
                    *m.entry("dropped_at_stop").or_default() += left;
                }
                tracing::warn!(left, reason = "dropped_at_stop", "the source did not close its channel in time; frames still queued are dropped");
                break;
            }
            _ = tick.tick() => {
                if let Ok(mut s) = counters.assembler.lock() {
                    *s = asm.stats();
                }
                let relaxed = std::sync::atomic::Ordering::Relaxed;
                counters.open_sessions.store(asm.open_sessions() as u64, relaxed);
                counters.open_legs.store(asm.open_legs() as u64, relaxed);
                if let Some(t) = asm.stream_time() {
                    let idle = Duration::from_micros(settings.borrow().idle_timeout_us.unsigned_abs());
                    budget.expire(t.minus(idle));
                }
                if let (Some(g), Some(t)) = (&gaps, asm.stream_time()) {
                    g.tick(t);
                }
            }
            _ = look.tick(), if quiet_us.is_some() => {
                if let (Some(g), Some(q)) = (&gaps, quiet_us) {
                    asm.quiet_sessions(WallTime::now(), q, &mut quiet);
                    for (account, interaction) in quiet.drain(..) {
                        g.look_up(account, interaction);
                    }
                }
            }
            Some(msg) = async {
                match gaps.as_mut() {
                    Some(g) => g.recv().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                BackfillMsg::Legs(docs) => {
                    for doc in &docs {
                        fold_stored(&mut asm, doc, &opts.limits, &mut budget, &counters);
                    }
                }
                BackfillMsg::Done { .. } => {
                    if let Some(lost) = gaps.as_mut().and_then(Gaps::done) {
                        resync(lost, &mut asm);
                    }
                    asm.hold_incomplete(gaps.as_ref().is_some_and(Gaps::reading));
                }
            },
            changed = settings.changed(), if settings_open => {
                // A closed channel means no more updates (no directory configured).
                match changed {
                    Ok(()) => asm.set_settings(settings.borrow_and_update().clone()),
                    Err(_) => settings_open = false,
                }
            }
            Some((lost, fetched)) = resync_rx.recv() => match fetched {
                Ok(active) => {
                    let n = asm.resync(&opts.tenants, &active, lost);
                    counters.resync_ended_legs.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(ended_legs = n, active = active.len(), "resynced after reconnect");
                }
                Err(e) => {
                    counters.resync_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    asm.mark_gap();
                    tracing::warn!(error = %e, "resync: channels unavailable; open sessions marked gap, legs left to the idle timeout");
                }
            },
            msg = source.recv() => match msg {
                None => break,
                Some(SourceMsg::Frame { text, at }) => match decode_frame(&text) {
                    Ok(Frame::Event(mut ev)) => {
                        let t = stream_time_of(&ev, &asm, at);
                        if admit(&mut ev, t, &opts.limits, &mut budget, &counters) {
                            let applied = asm.apply(&ev, at);
                            log_applied(&asm, &ev, applied);
                        }
                    }
                    Ok(Frame::Reply(_)) => {}
                    Err(e) => {
                        let reason = e.reason();
                        if let Ok(mut m) = counters.skipped.lock() {
                            *m.entry(reason).or_default() += 1;
                        }
                        tracing::warn!(reason, error = %e, "frame skipped");
                    }
                },
                Some(SourceMsg::Disconnected { at, reason }) => {
                    // In stream time, so legs ended by the resync line up with the PBX's
                    // clock whatever the skew between it and this host.
                    lost.get_or_insert(asm.stream_time().unwrap_or(at.standing_in_for_stream()));
                    if let Some(g) = gaps.as_mut() {
                        g.lost();
                    }
                    tracing::warn!(%reason, "event stream lost");
                }
                Some(SourceMsg::Connected { reconnect, .. }) => {
                    let first = std::mem::take(&mut first_connection);
                    if reconnect || std::mem::take(&mut gap_pending) {
                        let now = WallTime::now();
                        let lost = lost.take().or(asm.stream_time()).unwrap_or(now.standing_in_for_stream());
                        // With a backfill, the resync waits until the gap's CDRs are in.
                        let deferred = gaps.as_mut().is_some_and(|g| g.regained_after(lost, now));
                        if !deferred {
                            resync(lost, &mut asm);
                        }
                    } else if let (true, Some(g)) = (first, gaps.as_mut()) {
                        g.first_connected(WallTime::now());
                    }
                    // Sessions that may miss events wait for the gap's CDRs.
                    asm.hold_incomplete(gaps.as_ref().is_some_and(Gaps::reading));
                }
            },
        }
        if !emit(&mut asm, &mut closed, &out).await {
            return asm;
        }
    }
    // Stopping: what is complete goes out; the rest stays open for the caller to persist.
    emit(&mut asm, &mut closed, &out).await;
    asm
}

/// Folds one stored leg CDR (backfill) into the assembler as the DESTROY it was stored from:
/// a leg seen live is a duplicate, a leg whose DESTROY was lost ends at its real time, a leg
/// never seen joins its session (or makes one) by the same grouping rules.
fn fold_stored(
    asm: &mut Assembler,
    doc: &serde_json::Value,
    limits: &IngestLimits,
    budget: &mut LegBudget,
    counters: &DriverCounters,
) {
    use std::sync::atomic::Ordering::Relaxed;
    match leg_event(doc) {
        Ok(mut ev) => {
            let now = WallTime::now();
            let t = stream_time_of(&ev, asm, now);
            if admit(&mut ev, t, limits, budget, counters) {
                counters.stored_legs.fetch_add(1, Relaxed);
                let applied = asm.apply(&ev, now);
                log_applied(asm, &ev, applied);
            }
        }
        Err(e) => {
            let n = counters.stored_skipped.fetch_add(1, Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(reason = e.reason(), error = %e, skipped = n, "stored leg CDR skipped");
            }
        }
    }
}

/// When `ev` happened on the PBX's clock: its own time, else the latest the stream told,
/// else (nothing told yet) this host's clock at `received`.
fn stream_time_of(
    ev: &crate::source::CallEvent<'_>,
    asm: &Assembler,
    received: WallTime,
) -> StreamTime {
    ev.time
        .or(asm.stream_time())
        .unwrap_or(received.standing_in_for_stream())
}

/// Logs what the assembler did with an event where something was left out: a late event
/// (debug), a session's first refusal at its limit, clamped times (1st, 2nd, 4th, … time).
fn log_applied(asm: &Assembler, ev: &crate::source::CallEvent<'_>, applied: Applied) {
    match applied {
        Applied::Late => {
            tracing::debug!(call_id = %ev.call_id, "late event for a closed session dropped");
        }
        Applied::OverLimit { first: true } => {
            let s = asm.settings();
            tracing::warn!(
                call_id = %ev.call_id,
                max_legs = s.max_legs_per_session,
                max_events = s.max_events_per_session,
                "session at its limit: further events of it are refused (counted in postcall_events_refused_total), its CDR is tagged truncated"
            );
        }
        Applied::Clamped if asm.stats().clamped.is_power_of_two() => {
            tracing::warn!(
                call_id = %ev.call_id,
                event_time_us = ev.time.map(StreamTime::as_us),
                clamped_so_far = asm.stats().clamped,
                "event stamped too far ahead of this host's clock: taken at the clock's time (is a PBX node's clock wrong?)"
            );
        }
        _ => {}
    }
}

/// Closes what is due and hands it on; false when the receiver is gone.
async fn emit(
    asm: &mut Assembler,
    closed: &mut Vec<ClosedSession>,
    out: &mpsc::Sender<ClosedSession>,
) -> bool {
    asm.poll(WallTime::now(), closed);
    for c in closed.drain(..) {
        if out.send(c).await.is_err() {
            return false;
        }
    }
    true
}

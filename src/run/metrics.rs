//! Prometheus text exposition of the counters every part keeps.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::delivery::Engine;
use crate::run::driver::DriverCounters;
use crate::source::blackhole::{SourceCounters, SourceStatus};

/// Counters of the run shell itself.
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Closed sessions that matched no trigger.
    pub unmatched_sessions: AtomicU64,
    /// (session, trigger) matches.
    pub matches: AtomicU64,
    /// Sessions that could not be written to the outbox (each also logged).
    pub enqueue_errors: AtomicU64,
    /// Trigger set reloads that were applied.
    pub trigger_reloads: AtomicU64,
    /// Trigger set reloads refused (the previous set stayed).
    pub trigger_reload_errors: AtomicU64,
}

/// What `/metrics` reports.
#[derive(Clone, Default)]
pub struct Registry {
    /// Live source, when running live.
    pub source: Option<Arc<SourceCounters>>,
    /// The assembler shell.
    pub driver: Option<Arc<DriverCounters>>,
    /// Delivery.
    pub engine: Option<Arc<Engine>>,
    /// The run shell.
    pub run: Option<Arc<RunCounters>>,
    /// The admin listener (set by [`super::admin::serve`]).
    pub admin: Option<Arc<super::admin::AdminCounters>>,
    /// The backfill, when it runs.
    pub backfill: Option<Arc<crate::backfill::BackfillCounters>>,
    /// The CDR journal (kept in the engine's outbox).
    pub journal: Option<Arc<crate::delivery::journal::JournalCounters>>,
    /// The running trigger set (the admin listener's journal re-sends match against it).
    pub triggers: Option<crate::trigger::SharedTriggers>,
}

/// The backfill's counters.
fn backfill(o: &mut String, b: &crate::backfill::BackfillCounters) {
    let retrying = u64::from(matches!(
        b.state(),
        crate::backfill::BackfillState::Retrying { .. }
    ));
    let rows: [(&str, &str, &str, u64); 9] = [
        (
            "postcall_backfill_lookups_total",
            "counter",
            "Quiet sessions with a leg up looked up in the stored CDRs (a lost DESTROY?).",
            get(&b.lookups),
        ),
        (
            "postcall_backfill_windows_total",
            "counter",
            "Gap windows read from Kazoo's stored CDRs to the end.",
            get(&b.windows),
        ),
        (
            "postcall_backfill_given_up_total",
            "counter",
            "Gap windows given up (a refused request, or failures past give_up_after).",
            get(&b.given_up),
        ),
        (
            "postcall_backfill_requests_total",
            "counter",
            "Crossbar requests made by the backfill.",
            get(&b.requests),
        ),
        (
            "postcall_backfill_errors_total",
            "counter",
            "Backfill requests that failed (each retry counts).",
            get(&b.errors),
        ),
        (
            "postcall_backfill_interactions_total",
            "counter",
            "Interactions read from stored CDRs.",
            get(&b.interactions),
        ),
        (
            "postcall_backfill_legs_total",
            "counter",
            "Stored leg CDRs read.",
            get(&b.legs),
        ),
        (
            "postcall_backfill_truncated_total",
            "counter",
            "Interactions left out over backfill.max_interactions.",
            get(&b.truncated),
        ),
        (
            "postcall_backfill_retrying",
            "gauge",
            "1 while a backfill request keeps failing and is being retried.",
            retrying,
        ),
    ];
    for (name, kind, help, v) in rows {
        metric(o, name, kind, help, &[("", v)]);
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &crate::delivery::engine::Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, b) in h.buckets.iter().enumerate() {
        cumulative += get(b);
        let le = h.bounds.get(i).map_or("+Inf".to_owned(), |v| v.to_string());
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum {}", get(&h.sum_us) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", get(&h.count));
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Registry {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        if let Some(b) = &self.backfill {
            backfill(&mut o, b);
        }
        if let Some(a) = &self.admin {
            metric(
                &mut o,
                "postcall_admin_open_connections",
                "gauge",
                "Admin connections being served.",
                &[("", get(&a.open_connections))],
            );
            metric(
                &mut o,
                "postcall_admin_accept_errors_total",
                "counter",
                "Failed accepts on the admin listener (each followed by a pause).",
                &[("", get(&a.accept_errors))],
            );
            metric(
                &mut o,
                "postcall_admin_refused_total",
                "counter",
                "Admin requests refused: Host not allowed, token missing or wrong, cross-origin.",
                &[("", get(&a.refused))],
            );
        }
        if let Some(s) = &self.source {
            let up = u64::from(*s.status.borrow() == SourceStatus::Subscribed);
            metric(
                &mut o,
                "postcall_source_subscribed",
                "gauge",
                "1 while the Blackhole socket is subscribed.",
                &[("", up)],
            );
            metric(
                &mut o,
                "postcall_source_connect_attempts_total",
                "counter",
                "Blackhole connection attempts.",
                &[("", get(&s.connect_attempts))],
            );
            metric(
                &mut o,
                "postcall_source_connections_total",
                "counter",
                "Blackhole connections that subscribed.",
                &[("", get(&s.connections))],
            );
            metric(
                &mut o,
                "postcall_source_disconnects_total",
                "counter",
                "Subscribed connections lost.",
                &[("", get(&s.disconnects))],
            );
            metric(
                &mut o,
                "postcall_source_frames_total",
                "counter",
                "Frames received from Blackhole.",
                &[("", get(&s.frames))],
            );
            metric(
                &mut o,
                "postcall_source_subscribe_errors_total",
                "counter",
                "Subscriptions refused by Blackhole.",
                &[("", get(&s.subscribe_errors))],
            );
            metric(
                &mut o,
                "postcall_source_keepalive_timeouts_total",
                "counter",
                "Connections dropped for a missing pong.",
                &[("", get(&s.keepalive_timeouts))],
            );
            metric(
                &mut o,
                "postcall_source_oversize_frames_total",
                "counter",
                "Connections dropped for a message over [limits] max_frame_kib.",
                &[("", get(&s.oversize_frames))],
            );
            metric(
                &mut o,
                "postcall_source_pings_skipped_total",
                "counter",
                "Pings not sent because the socket was not taking writes.",
                &[("", get(&s.pings_skipped))],
            );
        }
        if let Some(d) = &self.driver {
            let skipped: Vec<(String, u64)> = d
                .skipped
                .lock()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (format!("reason=\"{k}\""), *v))
                        .collect()
                })
                .unwrap_or_default();
            let skipped: Vec<(&str, u64)> = skipped.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            metric(
                &mut o,
                "postcall_frames_skipped_total",
                "counter",
                "Frames that did not decode, by reason.",
                &skipped,
            );
            let a = d.assembler.lock().map(|a| *a).unwrap_or_default();
            metric(
                &mut o,
                "postcall_events_total",
                "counter",
                "Call events folded into sessions.",
                &[("", a.events)],
            );
            metric(
                &mut o,
                "postcall_events_duplicate_total",
                "counter",
                "Duplicate call events ignored.",
                &[("", a.duplicates)],
            );
            metric(
                &mut o,
                "postcall_events_late_total",
                "counter",
                "Events for already closed sessions dropped.",
                &[("", a.late)],
            );
            metric(
                &mut o,
                "postcall_events_refused_total",
                "counter",
                "Events refused at a session's leg or event limit (CDR tagged truncated).",
                &[("", a.refused)],
            );
            metric(
                &mut o,
                "postcall_events_clamped_total",
                "counter",
                "Events stamped too far ahead of the clock, taken at the clock's time.",
                &[("", a.clamped)],
            );
            metric(
                &mut o,
                "postcall_sessions_closed_total",
                "counter",
                "Sessions closed.",
                &[("how=\"normal\"", a.closed), ("how=\"forced\"", a.forced)],
            );
            metric(
                &mut o,
                "postcall_open_sessions",
                "gauge",
                "Sessions in progress.",
                &[("", get(&d.open_sessions))],
            );
            metric(
                &mut o,
                "postcall_open_legs",
                "gauge",
                "Legs in progress.",
                &[("", get(&d.open_legs))],
            );
            metric(
                &mut o,
                "postcall_resync_ended_legs_total",
                "counter",
                "Legs ended by a resync after a reconnect.",
                &[("", get(&d.resync_ended_legs))],
            );
            metric(
                &mut o,
                "postcall_resync_failures_total",
                "counter",
                "Resyncs whose channel list was unavailable.",
                &[("", get(&d.resync_failures))],
            );
            metric(
                &mut o,
                "postcall_ingest_truncated_total",
                "counter",
                "Event text fields and variables cut to the [limits] lengths.",
                &[("", get(&d.truncated_fields))],
            );
            metric(
                &mut o,
                "postcall_ingest_dropped_values_total",
                "counter",
                "Custom variables and list items dropped over the [limits] counts.",
                &[("", get(&d.dropped_values))],
            );
            metric(
                &mut o,
                "postcall_ingest_refused_events_total",
                "counter",
                "Events refused because their tenant held max_open_legs_per_tenant open legs.",
                &[("", get(&d.refused_events))],
            );
            metric(
                &mut o,
                "postcall_backfill_legs_folded_total",
                "counter",
                "Stored leg CDRs folded into the assembler (a leg seen live counts as a duplicate event).",
                &[("", get(&d.stored_legs))],
            );
            metric(
                &mut o,
                "postcall_backfill_legs_skipped_total",
                "counter",
                "Stored leg CDRs that could not be read as a leg (logged with the reason).",
                &[("", get(&d.stored_skipped))],
            );
        }
        if let Some(r) = &self.run {
            metric(
                &mut o,
                "postcall_trigger_matches_total",
                "counter",
                "(session, trigger) matches.",
                &[("", get(&r.matches))],
            );
            metric(
                &mut o,
                "postcall_sessions_unmatched_total",
                "counter",
                "Sessions no trigger matched.",
                &[("", get(&r.unmatched_sessions))],
            );
            metric(
                &mut o,
                "postcall_enqueue_errors_total",
                "counter",
                "Sessions whose deliveries could not be written to the outbox.",
                &[("", get(&r.enqueue_errors))],
            );
            metric(
                &mut o,
                "postcall_trigger_reloads_total",
                "counter",
                "Trigger set reloads.",
                &[
                    ("result=\"applied\"", get(&r.trigger_reloads)),
                    ("result=\"refused\"", get(&r.trigger_reload_errors)),
                ],
            );
        }
        if let Some(e) = &self.engine {
            let c = &e.counters;
            metric(
                &mut o,
                "postcall_deliveries_enqueued_total",
                "counter",
                "Deliveries written to the outbox.",
                &[("", get(&c.enqueued))],
            );
            metric(
                &mut o,
                "postcall_delivery_attempts_total",
                "counter",
                "Delivery attempts.",
                &[("", get(&c.attempts))],
            );
            metric(
                &mut o,
                "postcall_deliveries_total",
                "counter",
                "Deliveries finished, by outcome.",
                &[
                    ("outcome=\"delivered\"", get(&c.delivered)),
                    ("outcome=\"dead\"", get(&c.dead)),
                ],
            );
            metric(
                &mut o,
                "postcall_delivery_retries_total",
                "counter",
                "Attempts that will be retried.",
                &[("", get(&c.retried))],
            );
            metric(
                &mut o,
                "postcall_outbox_errors_total",
                "counter",
                "Outbox storage errors.",
                &[("", get(&c.store_errors))],
            );
            histogram(
                &mut o,
                "postcall_first_attempt_latency_seconds",
                "From session close (outbox write) to the first delivery attempt.",
                &c.first_attempt_latency,
            );
            histogram(
                &mut o,
                "postcall_delivery_attempt_seconds",
                "Duration of delivery attempts.",
                &c.attempt_duration,
            );
            // As of the outbox's last request: reading the store here would wait on it.
            let pending = e.outbox().pending_gauge();
            let dead = e.outbox().dead_gauge();
            metric(
                &mut o,
                "postcall_outbox_pending",
                "gauge",
                "Deliveries waiting in the outbox.",
                &[("", pending)],
            );
            metric(
                &mut o,
                "postcall_outbox_dead",
                "gauge",
                "Dead letters.",
                &[("", dead)],
            );
        }
        if let Some(j) = &self.journal {
            metric(
                &mut o,
                "postcall_journal_entries",
                "gauge",
                "CDRs in the journal (as of the last prune run).",
                &[("", get(&j.entries))],
            );
            metric(
                &mut o,
                "postcall_journal_bytes",
                "gauge",
                "Stored bytes of the journal's entries (as of the last prune run).",
                &[("", get(&j.bytes))],
            );
            metric(
                &mut o,
                "postcall_journal_pruned_total",
                "counter",
                "CDRs pruned from the journal, by reason.",
                &[
                    ("reason=\"age\"", get(&j.pruned_age)),
                    ("reason=\"size\"", get(&j.pruned_size)),
                ],
            );
            metric(
                &mut o,
                "postcall_journal_prune_errors_total",
                "counter",
                "Journal prune runs that failed (storage errors; retried at the next interval).",
                &[("", get(&j.prune_errors))],
            );
        }
        o
    }
}

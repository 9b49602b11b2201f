//! The `/metrics` exposition (OpenMetrics text, encoded by `prometheus-client`) of the
//! counters every part keeps.
//!
//! The parts keep their counters as plain atomics on their own structs (no part depends on the
//! metrics crate); a [`Collector`] reads them at scrape time and hands them to the crate's
//! encoder as constant counters and gauges. The two latency histograms are the crate's own.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

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
    /// The operator's console, served by the admin listener under `/console/`.
    pub console: Option<Arc<crate::console::Console>>,
}

/// The `/metrics` content type: the OpenMetrics text `prometheus-client` encodes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metric families written into the crate's encoder. Counter names leave out `_total`: the
/// encoder appends it to the samples.
struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    fn counter(&mut self, name: &str, help: &str, v: u64) -> fmt::Result {
        let m = ConstCounter::new(v);
        m.encode(
            self.0
                .encode_descriptor(name, help, None, m.metric_type())?,
        )
    }

    fn gauge(&mut self, name: &str, help: &str, v: u64) -> fmt::Result {
        let m = ConstGauge::new(v);
        m.encode(
            self.0
                .encode_descriptor(name, help, None, m.metric_type())?,
        )
    }

    /// One counter family with one label (`key`), a sample per value.
    fn counters(&mut self, name: &str, help: &str, key: &str, rows: &[(&str, u64)]) -> fmt::Result {
        let mut family = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value, v) in rows {
            let labels = [(key, *value)];
            ConstCounter::new(*v).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A latency histogram; `name` leaves out the unit (`_seconds`), the encoder appends it.
    fn seconds(
        &mut self,
        name: &str,
        help: &str,
        h: &crate::delivery::engine::Histogram,
    ) -> fmt::Result {
        let h = h.inner();
        h.encode(
            self.0
                .encode_descriptor(name, help, Some(&Unit::Seconds), h.metric_type())?,
        )
    }
}

/// The backfill's counters.
fn backfill(o: &mut Out<'_>, b: &crate::backfill::BackfillCounters) -> fmt::Result {
    let retrying = u64::from(matches!(
        b.state(),
        crate::backfill::BackfillState::Retrying { .. }
    ));
    let counters: [(&str, &str, &AtomicU64); 8] = [
        (
            "postcall_backfill_lookups",
            "Quiet sessions with a leg up looked up in the stored CDRs (a lost DESTROY?).",
            &b.lookups,
        ),
        (
            "postcall_backfill_windows",
            "Gap windows read from Kazoo's stored CDRs to the end.",
            &b.windows,
        ),
        (
            "postcall_backfill_given_up",
            "Gap windows given up (a refused request, or failures past give_up_after).",
            &b.given_up,
        ),
        (
            "postcall_backfill_requests",
            "Crossbar requests made by the backfill.",
            &b.requests,
        ),
        (
            "postcall_backfill_errors",
            "Backfill requests that failed (each retry counts).",
            &b.errors,
        ),
        (
            "postcall_backfill_interactions",
            "Interactions read from stored CDRs.",
            &b.interactions,
        ),
        ("postcall_backfill_legs", "Stored leg CDRs read.", &b.legs),
        (
            "postcall_backfill_truncated",
            "Interactions left out over backfill.max_interactions.",
            &b.truncated,
        ),
    ];
    for (name, help, v) in counters {
        o.counter(name, help, get(v))?;
    }
    o.gauge(
        "postcall_backfill_retrying",
        "1 while a backfill request keeps failing and is being retried.",
        retrying,
    )
}

fn admin(o: &mut Out<'_>, a: &super::admin::AdminCounters) -> fmt::Result {
    o.gauge(
        "postcall_admin_open_connections",
        "Admin connections being served.",
        get(&a.open_connections),
    )?;
    o.counter(
        "postcall_admin_accept_errors",
        "Failed accepts on the admin listener (each followed by a pause).",
        get(&a.accept_errors),
    )?;
    o.counter(
        "postcall_admin_refused",
        "Admin requests refused: Host not allowed, token missing or wrong, cross-origin.",
        get(&a.refused),
    )
}

fn source(o: &mut Out<'_>, s: &SourceCounters) -> fmt::Result {
    let up = u64::from(*s.status.borrow() == SourceStatus::Subscribed);
    o.gauge(
        "postcall_source_subscribed",
        "1 while the Blackhole socket is subscribed.",
        up,
    )?;
    let counters: [(&str, &str, &AtomicU64); 8] = [
        (
            "postcall_source_connect_attempts",
            "Blackhole connection attempts.",
            &s.connect_attempts,
        ),
        (
            "postcall_source_connections",
            "Blackhole connections that subscribed.",
            &s.connections,
        ),
        (
            "postcall_source_disconnects",
            "Subscribed connections lost.",
            &s.disconnects,
        ),
        (
            "postcall_source_frames",
            "Frames received from Blackhole.",
            &s.frames,
        ),
        (
            "postcall_source_subscribe_errors",
            "Subscriptions refused by Blackhole.",
            &s.subscribe_errors,
        ),
        (
            "postcall_source_keepalive_timeouts",
            "Connections dropped for a missing pong.",
            &s.keepalive_timeouts,
        ),
        (
            "postcall_source_oversize_frames",
            "Connections dropped for a message over [limits] max_frame_kib.",
            &s.oversize_frames,
        ),
        (
            "postcall_source_pings_skipped",
            "Pings not sent because the socket was not taking writes.",
            &s.pings_skipped,
        ),
    ];
    for (name, help, v) in counters {
        o.counter(name, help, get(v))?;
    }
    Ok(())
}

fn driver(o: &mut Out<'_>, d: &DriverCounters) -> fmt::Result {
    let skipped: Vec<(&str, u64)> = d
        .skipped
        .lock()
        .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default();
    o.counters(
        "postcall_frames_skipped",
        "Frames that did not decode, by reason.",
        "reason",
        &skipped,
    )?;
    let a = d.assembler.lock().map(|a| *a).unwrap_or_default();
    let events: [(&str, &str, u64); 5] = [
        (
            "postcall_events",
            "Call events folded into sessions.",
            a.events,
        ),
        (
            "postcall_events_duplicate",
            "Duplicate call events ignored.",
            a.duplicates,
        ),
        (
            "postcall_events_late",
            "Events for already closed sessions dropped.",
            a.late,
        ),
        (
            "postcall_events_refused",
            "Events refused at a session's leg or event limit (CDR tagged truncated).",
            a.refused,
        ),
        (
            "postcall_events_clamped",
            "Events stamped too far ahead of the clock, taken at the clock's time.",
            a.clamped,
        ),
    ];
    for (name, help, v) in events {
        o.counter(name, help, v)?;
    }
    o.counters(
        "postcall_sessions_closed",
        "Sessions closed.",
        "how",
        &[("normal", a.closed), ("forced", a.forced)],
    )?;
    o.gauge(
        "postcall_open_sessions",
        "Sessions in progress.",
        get(&d.open_sessions),
    )?;
    o.gauge("postcall_open_legs", "Legs in progress.", get(&d.open_legs))?;
    let counters: [(&str, &str, &AtomicU64); 7] = [
        (
            "postcall_resync_ended_legs",
            "Legs ended by a resync after a reconnect.",
            &d.resync_ended_legs,
        ),
        (
            "postcall_resync_failures",
            "Resyncs whose channel list was unavailable.",
            &d.resync_failures,
        ),
        (
            "postcall_ingest_truncated",
            "Event text fields and variables cut to the [limits] lengths.",
            &d.truncated_fields,
        ),
        (
            "postcall_ingest_dropped_values",
            "Custom variables and list items dropped over the [limits] counts.",
            &d.dropped_values,
        ),
        (
            "postcall_ingest_refused_events",
            "Events refused because their tenant held max_open_legs_per_tenant open legs.",
            &d.refused_events,
        ),
        (
            "postcall_backfill_legs_folded",
            "Stored leg CDRs folded into the assembler (a leg seen live counts as a duplicate event).",
            &d.stored_legs,
        ),
        (
            "postcall_backfill_legs_skipped",
            "Stored leg CDRs that could not be read as a leg (logged with the reason).",
            &d.stored_skipped,
        ),
    ];
    for (name, help, v) in counters {
        o.counter(name, help, get(v))?;
    }
    Ok(())
}

fn run(o: &mut Out<'_>, r: &RunCounters) -> fmt::Result {
    o.counter(
        "postcall_trigger_matches",
        "(session, trigger) matches.",
        get(&r.matches),
    )?;
    o.counter(
        "postcall_sessions_unmatched",
        "Sessions no trigger matched.",
        get(&r.unmatched_sessions),
    )?;
    o.counter(
        "postcall_enqueue_errors",
        "Sessions whose deliveries could not be written to the outbox.",
        get(&r.enqueue_errors),
    )?;
    o.counters(
        "postcall_trigger_reloads",
        "Trigger set reloads.",
        "result",
        &[
            ("applied", get(&r.trigger_reloads)),
            ("refused", get(&r.trigger_reload_errors)),
        ],
    )
}

fn engine(o: &mut Out<'_>, e: &Engine) -> fmt::Result {
    let c = &e.counters;
    o.counter(
        "postcall_deliveries_enqueued",
        "Deliveries written to the outbox.",
        get(&c.enqueued),
    )?;
    o.counter(
        "postcall_delivery_attempts",
        "Delivery attempts.",
        get(&c.attempts),
    )?;
    o.counters(
        "postcall_deliveries",
        "Deliveries finished, by outcome.",
        "outcome",
        &[("delivered", get(&c.delivered)), ("dead", get(&c.dead))],
    )?;
    o.counter(
        "postcall_delivery_retries",
        "Attempts that will be retried.",
        get(&c.retried),
    )?;
    o.counter(
        "postcall_outbox_errors",
        "Outbox storage errors.",
        get(&c.store_errors),
    )?;
    o.counter(
        "postcall_delivery_attempts_lost",
        "Attempts that ended without an outcome (a bug); the job stays pending and is attempted again.",
        get(&c.lost_attempts),
    )?;
    o.seconds(
        "postcall_first_attempt_latency",
        "From session close (outbox write) to the first delivery attempt.",
        &c.first_attempt_latency,
    )?;
    o.seconds(
        "postcall_delivery_attempt",
        "Duration of delivery attempts.",
        &c.attempt_duration,
    )?;
    o.gauge(
        "postcall_attempt_log_entries",
        "Recent delivery attempts kept for the console's delivery log.",
        e.attempts.len() as u64,
    )?;
    o.counter(
        "postcall_attempt_log_pruned",
        "Attempts removed from the console's delivery log (over its count or age bound).",
        e.attempts.pruned(),
    )?;
    // As of the outbox's last request: reading the store here would wait on it.
    o.gauge(
        "postcall_outbox_pending",
        "Deliveries waiting in the outbox.",
        e.outbox().pending_gauge(),
    )?;
    o.gauge(
        "postcall_outbox_dead",
        "Dead letters.",
        e.outbox().dead_gauge(),
    )?;
    match e.outbox().postgres() {
        Some(p) => claims(o, &p.counters),
        None => Ok(()),
    }
}

/// Claims and leases of this instance on the shared PostgreSQL outbox.
fn claims(o: &mut Out<'_>, c: &crate::delivery::pg::ClaimCounters) -> fmt::Result {
    o.counter(
        "postcall_store_claims",
        "Deliveries this instance claimed from the shared outbox.",
        get(&c.claims),
    )?;
    o.counter(
        "postcall_store_lease_expiries",
        "Deliveries claimed after an earlier claim's lease ran out.",
        get(&c.lease_expiries),
    )?;
    o.counter(
        "postcall_store_takeovers",
        "Deliveries taken over from another instance whose lease ran out.",
        get(&c.takeovers),
    )?;
    o.counter(
        "postcall_store_lost_completions",
        "Outcomes not recorded because another instance held the delivery by then.",
        get(&c.lost_completions),
    )
}

fn journal(o: &mut Out<'_>, j: &crate::delivery::journal::JournalCounters) -> fmt::Result {
    o.gauge(
        "postcall_journal_entries",
        "CDRs in the journal (as of the last prune run).",
        get(&j.entries),
    )?;
    o.gauge(
        "postcall_journal_bytes",
        "Stored bytes of the journal's entries (as of the last prune run).",
        get(&j.bytes),
    )?;
    o.counters(
        "postcall_journal_pruned",
        "CDRs pruned from the journal, by reason.",
        "reason",
        &[("age", get(&j.pruned_age)), ("size", get(&j.pruned_size))],
    )?;
    o.counter(
        "postcall_journal_prune_errors",
        "Journal prune runs that failed (storage errors; retried at the next interval).",
        get(&j.prune_errors),
    )
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The parts' counters as a `prometheus-client` collector, read at each scrape.
struct Scrape(Registry);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl Collector for Scrape {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let r = &self.0;
        let o = &mut Out(encoder);
        if let Some(b) = &r.backfill {
            backfill(o, b)?;
        }
        if let Some(a) = &r.admin {
            admin(o, a)?;
        }
        if let Some(s) = &r.source {
            source(o, s)?;
        }
        if let Some(d) = &r.driver {
            driver(o, d)?;
        }
        if let Some(c) = &r.run {
            run(o, c)?;
        }
        if let Some(e) = &r.engine {
            engine(o, e)?;
        }
        if let Some(j) = &r.journal {
            journal(o, j)?;
        }
        Ok(())
    }
}

impl Registry {
    /// The exposition text (OpenMetrics, ending in `# EOF`; served as [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut o = String::new();
        // Writing into a String cannot fail, and no part above returns an error of its own.
        let _ = prometheus_client::encoding::text::encode(&mut o, &registry);
        o
    }
}

//! `postcall run`: the parts wired into one process.
//!
//! ```text
//! Blackhole ─► source ─(frames, bounded)─► driver/assembler ─(closed, bounded)─► sink ─► outbox ─► engine ─► HTTP
//!                                                                                 enrich, match  + journal
//! ```
//!
//! The sink writes each batch of closed sessions' deliveries and journal entries in one outbox
//! transaction; a background task prunes the journal (retention, size cap).
//!
//! Stopping (SIGTERM/SIGINT, the caller's `shutdown` token, or the outbox failing for good): the source stops reading, the driver
//! emits every session that is complete, the sink writes their deliveries to the outbox, open
//! sessions (and any closed session the outbox could not take) are saved to `sessions.json`
//! next to the outbox, attempts in flight finish. The next start restores all of it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use super::admin;
use super::metrics::{Registry, RunCounters};
use super::state::SavedState;
use crate::backfill::{mark, BackfillCounters, BackfillLink, CrossbarCdrs};
use crate::clock::{StreamTime, WallTime};
use crate::config::{PluginConfig, Validated};
use crate::delivery::journal::{Encoded, JournalCounters};
use crate::delivery::pg::PgStore;
use crate::delivery::{Engine, Job, Journal, Outbox, OutboxOptions, Storage};
use crate::enrich::{FileError, SharedEnricher};
use crate::net::http::HttpOptions;
use crate::net::HttpClient;
use crate::run::driver::{drive, DriverCounters, DriverOptions};
use crate::run::live;
use crate::session::{ClosedSession, Snapshot};
use crate::trigger::{Reloader, SharedTriggers};

/// Where the admin listener ended up and what it reports (for tests and the demo).
#[derive(Clone)]
pub struct Started {
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Metrics of the running process.
    pub registry: Registry,
}

/// Options of [`run`] that are not in the configuration file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Admin listener (`127.0.0.1:9646`; port 0 picks one).
    pub admin: SocketAddr,
    /// The retry unit of deliveries (2 s in production; the demo and tests shorten it).
    pub retry_unit: Option<Duration>,
    /// How long attempts in flight may take to finish when stopping.
    pub stop_deadline: Duration,
    /// Faults injected into the outbox's storage layer (tests); healthy by default.
    pub outbox_faults: crate::delivery::Faults,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            admin: SocketAddr::from(([127, 0, 0, 1], 9646)),
            retry_unit: None,
            stop_deadline: Duration::from_secs(15),
            outbox_faults: crate::delivery::Faults::default(),
        }
    }
}

/// What a run did, for the final log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Open sessions saved for the next start.
    pub saved_open: usize,
    /// Closed sessions saved because the outbox could not take them.
    pub saved_closed: usize,
}

/// Closed sessions written to the outbox in one transaction at most: every session waiting
/// when the previous write ends, up to this many (group commit under load).
pub const SESSIONS_PER_WRITE: usize = 512;

/// Writes a session's deliveries to the outbox: enrichment, then every matching trigger.
struct Sink {
    triggers: SharedTriggers,
    enricher: Arc<SharedEnricher>,
    engine: Arc<Engine>,
    counters: Arc<RunCounters>,
}

impl Sink {
    fn jobs(&self, session: &mut ClosedSession) -> Vec<Job> {
        self.enricher.enrich_session(session);
        let set = self.triggers.load();
        let cdr = match serde_json::value::to_raw_value(&session.cdr) {
            Ok(c) => c,
            Err(e) => {
                // Cannot happen for a CDR (plain strings and numbers); logged and counted if it does.
                self.counters.enqueue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(session = %session.cdr.id, error = %e, "CDR not serialisable; session dropped");
                return Vec::new();
            }
        };
        let now = WallTime::now();
        let jobs: Vec<Job> = set
            .matches(session)
            .map(|m| m.job(session, &cdr, now))
            .collect();
        if jobs.is_empty() {
            self.counters
                .unmatched_sessions
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(session = %session.cdr.id, "no trigger matched");
        }
        self.counters
            .matches
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        jobs
    }

    /// The journal entry of `session` (matched or not) with the deliveries of `jobs`.
    fn entry(&self, session: &ClosedSession, jobs: &[Job]) -> Option<Encoded> {
        match Encoded::of(session, jobs) {
            Ok(e) => Some(e),
            Err(e) => {
                // Cannot happen for a CDR (plain strings and numbers); logged and counted if it does.
                self.counters.enqueue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(session = %session.cdr.id, error = %e, "session not serialisable; not journaled");
                None
            }
        }
    }

    /// Enqueues the deliveries of a batch of sessions, and writes the sessions' journal
    /// entries, in one outbox transaction (group commit: under load, every session waiting is
    /// written with one disk sync). When that fails (a full disk, say) the sessions are
    /// written one by one, so whatever fits gets in; the rest are held and retried every
    /// second until `stopping`, then returned.
    async fn put(
        &self,
        mut sessions: Vec<ClosedSession>,
        stopping: &CancellationToken,
    ) -> Vec<ClosedSession> {
        let mut jobs: Vec<Vec<Job>> = sessions.iter_mut().map(|s| self.jobs(s)).collect();
        let mut entries: Vec<Option<Encoded>> = sessions
            .iter()
            .zip(&jobs)
            .map(|(s, j)| self.entry(s, j))
            .collect();
        let all: Vec<Job> = jobs.iter().flatten().cloned().collect();
        let all_entries: Vec<Encoded> = entries.iter().flatten().cloned().collect();
        if self
            .engine
            .enqueue_journaled(&all, all_entries)
            .await
            .is_ok()
        {
            return Vec::new();
        }
        loop {
            let mut held = Vec::new();
            let mut held_jobs = Vec::new();
            let mut held_entries = Vec::new();
            let mut last_error = None;
            for ((s, j), e) in sessions.into_iter().zip(jobs).zip(entries) {
                let one: Vec<Encoded> = e.iter().cloned().collect();
                if let Err(err) = self.engine.enqueue_journaled(&j, one).await {
                    self.counters.enqueue_errors.fetch_add(1, Ordering::Relaxed);
                    last_error = Some(err);
                    held.push(s);
                    held_jobs.push(j);
                    held_entries.push(e);
                }
            }
            let Some(e) = last_error else {
                return Vec::new();
            };
            tracing::error!(
                sessions = held.len(),
                error = %e,
                "cannot write deliveries to the outbox; holding the sessions and retrying"
            );
            if stopping.is_cancelled() {
                return held;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            sessions = held;
            jobs = held_jobs;
            entries = held_entries;
        }
    }
}

/// The problems that keep a configuration from running, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct InvalidConfig(pub Vec<crate::config::Problem>);

/// Runs the sidecar until `shutdown` turns true: [`crate::config::validate`] (secrets from the
/// process environment), then [`run_validated`].
///
/// # Errors
/// Every configuration problem ([`InvalidConfig`]), an outbox that cannot be opened, or an
/// admin address in use.
pub async fn run(
    cfg: PluginConfig,
    opts: RunOptions,
    shutdown: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> anyhow::Result<RunReport> {
    let valid = tokio::task::spawn_blocking(move || {
        crate::config::validate(&cfg, &|var: &str| std::env::var(var).ok())
    })
    .await
    .context("configuration check")?
    .map_err(InvalidConfig)?;
    run_validated(valid, opts, shutdown, started).await
}

/// Runs the sidecar with a configuration [`crate::config::validate`] accepted, until
/// `shutdown` turns true.
///
/// # Errors
/// An outbox that cannot be opened, a remote trigger source whose client cannot be built, or
/// an admin address in use.
#[allow(clippy::too_many_lines)]
pub async fn run_validated(
    cfg: Validated,
    opts: RunOptions,
    shutdown: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> anyhow::Result<RunReport> {
    for w in &cfg.warnings {
        tracing::warn!(problem = %w, "configuration warning");
    }
    // A non-loopback listener without a token is refused before anything is opened.
    let admin_opts = cfg
        .admin
        .options(&cfg.file, opts.admin, |var| std::env::var(var).ok())?;
    // Every task of this run stops on this token: the caller's `shutdown`, or the outbox
    // failing in a way waiting cannot fix (then the run ends with [`OutboxFailed`]).
    let stop = shutdown.child_token();
    let base = Arc::new(cfg.settings);
    let kazoo = cfg.kazoo;
    let (mut dopts, guard) = (cfg.delivery, cfg.guard);
    if let Some(u) = opts.retry_unit {
        dopts.retry_unit = u;
    }
    let outbox_path = cfg.outbox_path;
    let data_dir: PathBuf = cfg.data_dir;
    let journal_settings = cfg.journal;

    // Every fallible step comes first, before any saved state is touched: the outbox (nothing
    // is accepted before it is open), triggers, the source, the admin listener (the rest was
    // checked by the validation). A failure here leaves sessions.json as the last stop wrote it.
    let storage = match cfg.store {
        None => {
            let path = outbox_path.clone();
            let oopts = OutboxOptions {
                reserve_bytes: cfg.disk_reserve_bytes,
                faults: opts.outbox_faults.clone(),
            };
            let outbox = tokio::task::spawn_blocking(move || Outbox::open_with(&path, oopts))
                .await
                .context("opening the outbox")?
                .with_context(|| format!("{}: cannot open the outbox", outbox_path.display()))?;
            Storage::Embedded(Arc::new(outbox))
        }
        Some(pg) => PgStore::connect(pg)
            .await
            .context("cannot open the PostgreSQL outbox")?
            .into_storage(),
    };
    let journal = Journal::in_storage(storage.clone(), journal_settings.policy);
    let journal_counters = Arc::new(JournalCounters::default());
    let http = HttpClient::with_guard(cfg.receivers_tls, &HttpOptions::default(), guard);
    let engine = Engine::with_storage(storage.clone(), http, dopts);
    let tcfg = cfg.triggers;
    let reloader = Reloader::new(tcfg.sources.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    engine.use_keys(Arc::new(TriggerKeys {
        shared: reloader.shared(),
        status: reloader.status(),
        remote: tcfg.remote.is_some(),
    }));
    let fetcher = match &tcfg.remote {
        Some(r) => Some(r.fetcher()?),
        None => None,
    };
    let enricher = Arc::new(cfg.enricher);
    let src = live::start(kazoo, base, stop.clone()).await?;
    let counters = Arc::new(RunCounters::default());
    let driver_counters = Arc::new(DriverCounters::default());
    let backfill_counters = Arc::new(BackfillCounters::default());
    // Console-managed triggers join the set before any delivery is attempted.
    let console = crate::console::Console::start(
        crate::console::store::for_storage(&storage),
        reloader.clone(),
        engine.clone(),
        Some(driver_counters.clone()),
    )
    .await?;
    let registry = Registry {
        backfill: (cfg.backfill.is_some() && src.crossbar.is_some())
            .then(|| backfill_counters.clone()),
        source: Some(src.counters.clone()),
        driver: Some(driver_counters.clone()),
        engine: Some(engine.clone()),
        run: Some(counters.clone()),
        admin: Some(Arc::default()),
        journal: Some(journal_counters.clone()),
        triggers: Some(reloader.shared()),
        console: Some(console.clone()),
    };
    let (admin_addr, admin_task) = admin::serve(admin_opts, registry.clone(), stop.clone())
        .await
        .with_context(|| format!("admin listener {}", opts.admin))?;

    // What the previous run left: read now, removed once the driver holds it.
    let saved = timed_load(&storage, &data_dir).await;
    let (restored, carried): (Option<Snapshot>, Vec<ClosedSession>) = match saved {
        Some(s) => (Some(s.open), s.closed),
        None => (None, Vec::new()),
    };

    // Tasks, all tracked and joined when stopping.
    let tracker = TaskTracker::new();
    tracker.spawn(stop_when_the_outbox_fails(engine.clone(), stop.clone()));
    // The engine stops last, after the sink has written what the driver closed.
    let engine_stop = CancellationToken::new();
    let engine_task = tracker.spawn(engine.clone().run(engine_stop.clone()));
    let (_reload_requests, reload_rx) = mpsc::channel(1);
    tracker.spawn(reloader.clone().run(fetcher, reload_rx, stop.clone()));
    tracker.spawn(watch_reload_status(
        reloader.status(),
        counters.clone(),
        stop.clone(),
    ));
    tracker.spawn(prune_journal(
        journal,
        journal_counters,
        journal_settings.prune_interval,
        stop.clone(),
    ));
    tracker.spawn(reload_enrichment_on_hangup(enricher.clone(), stop.clone()));
    // Instances sharing PostgreSQL apply each other's console trigger changes (polled).
    if let Some(every) = storage.poll_interval() {
        tracker.spawn(console.clone().follow(every, stop.clone()));
    }
    let (closed_tx, mut closed_rx) = mpsc::channel::<ClosedSession>(1024);
    let backfill = match (cfg.backfill, src.crossbar.clone()) {
        (Some(bopts), Some((cb, auth))) => Some(
            start_backfill(
                bopts,
                backfill_counters.clone(),
                CrossbarCdrs::new(cb, auth),
                src.accounts.clone(),
                &data_dir,
                &tracker,
                &stop,
            )
            .await,
        ),
        _ => None,
    };
    let whole_until = backfill.as_ref().map(|b| b.whole_until.clone());
    let driver_opts = DriverOptions {
        tick: Duration::from_millis(250),
        tenants: src.accounts.iter().cloned().collect::<HashSet<_>>(),
        channels: src.channels.clone(),
        limits: cfg.limits.ingest(),
        backfill,
    };
    let driver = tracker.spawn(drive(
        restored,
        src.settings,
        src.messages,
        closed_tx,
        driver_opts,
        driver_counters,
        stop.clone(),
    ));
    if let Err(e) = storage.remove_sessions(&data_dir).await {
        tracing::error!(error = %e, "saved sessions restored but cannot be removed from the store");
    }
    match &storage {
        Storage::Embedded(_) => {
            tracing::info!(admin = %admin_addr, outbox = %outbox_path.display(), "postcall running");
        }
        Storage::Postgres(p) => {
            tracing::info!(admin = %admin_addr, outbox = %p.describe(), instance = %p.claimer(), "postcall running (PostgreSQL outbox)");
        }
    }
    if let Some(tx) = started {
        let _ = tx.send(Started {
            admin: admin_addr,
            registry,
        });
    }

    // The sink: until the driver is done (it stops once the source has closed its channel and
    // every frame already received is folded in), every closed session goes to the outbox.
    let sink = Sink {
        triggers: reloader.shared(),
        enricher,
        engine: engine.clone(),
        counters,
    };
    let mut unsent = sink.put(carried, &stop).await;
    while let Some(first) = closed_rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < SESSIONS_PER_WRITE {
            match closed_rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        unsent.extend(sink.put(batch, &stop).await);
    }
    let mut asm = driver.await.context("assembler task")?;
    if let Some(w) = whole_until {
        let (path, t) = (mark::path(&data_dir), w.load(Ordering::Relaxed));
        let t = StreamTime::from_us(t);
        if let Err(e) = tokio::task::spawn_blocking(move || mark::write(&path, t)).await? {
            tracing::error!(error = %e, "cannot write the stream mark; the next start may backfill less");
        }
    }
    let report = RunReport {
        saved_open: asm.open_sessions(),
        saved_closed: unsent.len(),
    };
    if report.saved_open + report.saved_closed > 0 {
        let saved = SavedState {
            open: asm.snapshot(),
            closed: unsent,
        };
        timed_save(&storage, &data_dir, saved).await?;
    }
    // Attempts in flight get a deadline; anything not delivered stays in the outbox.
    engine_stop.cancel();
    if tokio::time::timeout(opts.stop_deadline, engine_task)
        .await
        .is_err()
    {
        tracing::warn!("attempts still in flight at the stop deadline; they stay in the outbox");
    }
    tracker.close();
    let joined = async {
        tracker.wait().await;
        for t in src.tasks {
            let _ = t.await;
        }
        let _ = admin_task.await;
    };
    if tokio::time::timeout(TASK_JOIN_DEADLINE, joined)
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not finish within the stop deadline");
    }
    match engine.outbox().failure() {
        Some(error) => Err(OutboxFailed {
            error: error.to_owned(),
            path: outbox_path,
            report,
        }
        .into()),
        None => Ok(report),
    }
}

/// The run stopped because the outbox failed in a way waiting cannot fix (a corrupted file):
/// what it held is saved in `sessions.json`; the operator moves the outbox aside (or restores
/// it) and starts again.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped: the outbox {} cannot be used ({error}); {} open and {} closed sessions saved for the next start; move the file aside (or restore it) and start again",
    path.display(), report.saved_open, report.saved_closed
)]
pub struct OutboxFailed {
    /// The storage error.
    pub error: String,
    /// The outbox file.
    pub path: PathBuf,
    /// What was saved.
    pub report: RunReport,
}

/// Stops the run when the outbox fails for good: nothing more can be written to it, so the
/// sessions it would have taken are saved with the open ones instead of being held forever.
async fn stop_when_the_outbox_fails(engine: Arc<Engine>, stop: CancellationToken) {
    let failed = engine.outbox().failed();
    tokio::select! {
        () = failed.cancelled() => {
            tracing::error!(
                error = engine.outbox().failure().unwrap_or_default(),
                "stopping: the outbox cannot be used; sessions are saved for the next start"
            );
            stop.cancel();
        }
        () = stop.cancelled() => {}
    }
}

/// Starts the backfill task and the stream mark's writer; returns the driver's end of the
/// link.
async fn start_backfill(
    opts: crate::backfill::BackfillOptions,
    counters: Arc<BackfillCounters>,
    cdrs: CrossbarCdrs,
    accounts: Vec<String>,
    data_dir: &std::path::Path,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> BackfillLink {
    let path = mark::path(data_dir);
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || mark::read(&path)).await
    };
    let mark = match read {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::error!(error = %e, file = %path.display(), "stream mark unreadable: calls while postcall was down are not backfilled (run `postcall reconcile`)");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "stream mark not read");
            None
        }
    };
    let (req_tx, req_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(64);
    let whole_until = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let link = BackfillLink {
        requests: req_tx,
        results: out_rx,
        margin_secs: opts.margin_secs,
        mark,
        first_lookback_secs: opts.first_lookback_secs,
        whole_until: whole_until.clone(),
        lost_destroy_after_us: opts
            .lost_destroy_after
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    };
    tracker.spawn(crate::backfill::fetch::run(
        Arc::new(cdrs),
        accounts,
        opts,
        req_rx,
        out_tx,
        counters,
        stop.clone(),
    ));
    tracker.spawn(write_marks(path, whole_until, stop.clone()));
    link
}

/// Writes the stream mark every few seconds while it moves (the final one is written when
/// the driver has stopped).
async fn write_marks(
    path: PathBuf,
    whole_until: Arc<std::sync::atomic::AtomicI64>,
    stop: CancellationToken,
) {
    let mut written = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(MARK_EVERY) => {}
            () = stop.cancelled() => return,
        }
        let t = whole_until.load(Ordering::Relaxed);
        if t == written || t == 0 {
            continue;
        }
        let p = path.clone();
        match tokio::task::spawn_blocking(move || mark::write(&p, StreamTime::from_us(t))).await {
            Ok(Ok(())) => written = t,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the stream mark; trying again"),
            Err(e) => tracing::warn!(error = %e, "stream mark writer failed"),
        }
    }
}

/// How often the stream mark is written.
const MARK_EVERY: Duration = Duration::from_secs(5);

/// How long stopping waits for the remaining tasks (reloaders, source, admin) to return.
const TASK_JOIN_DEADLINE: Duration = Duration::from_secs(5);

/// [`Storage::load_sessions`], logging what it found and how long it took.
async fn timed_load(storage: &Storage, data_dir: &std::path::Path) -> Option<SavedState> {
    let t = std::time::Instant::now();
    match storage.load_sessions(data_dir).await {
        Ok(Some(s)) => {
            tracing::info!(
                open = s.open.sessions(),
                closed = s.closed.len(),
                ms = t.elapsed().as_millis(),
                "saved sessions read"
            );
            Some(s)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "saved sessions unreadable; starting without them");
            None
        }
    }
}

/// [`Storage::save_sessions`], logging before and after (a large save takes a moment).
async fn timed_save(
    storage: &Storage,
    data_dir: &std::path::Path,
    saved: SavedState,
) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    tracing::info!(
        open = saved.open.sessions(),
        closed = saved.closed.len(),
        "saving sessions for the next start"
    );
    storage
        .save_sessions(data_dir, saved)
        .await
        .with_context(|| match storage {
            Storage::Embedded(_) => format!(
                "{}: cannot save open sessions",
                super::state::state_path(data_dir).display()
            ),
            Storage::Postgres(p) => format!("{}: cannot save open sessions", p.describe()),
        })?;
    tracing::info!(ms = t.elapsed().as_millis(), "sessions saved");
    Ok(())
}

/// Prunes the journal every `interval` until stopping: batches (one transaction each, on the
/// outbox's thread) until nothing is past the retention or over the size cap. The ingest path
/// never prunes. What is dropped is counted and logged.
async fn prune_journal(
    journal: Journal,
    counters: Arc<JournalCounters>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let (mut age, mut size) = (0, 0);
        loop {
            match journal.prune(WallTime::now()).await {
                Ok(p) => {
                    age += p.by_age;
                    size += p.by_size;
                    counters.pruned_age.fetch_add(p.by_age, Ordering::Relaxed);
                    counters.pruned_size.fetch_add(p.by_size, Ordering::Relaxed);
                    counters.entries.store(p.entries, Ordering::Relaxed);
                    counters.bytes.store(p.bytes, Ordering::Relaxed);
                    if !p.more || shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    counters.prune_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "journal prune failed; trying again at the next interval");
                    break;
                }
            }
        }
        if age + size > 0 {
            let p = journal.policy();
            tracing::info!(
                pruned_age = age,
                pruned_size = size,
                retention_days = p.retention_us / 86_400_000_000,
                max_bytes = p.max_bytes,
                entries = counters.entries.load(Ordering::Relaxed),
                bytes = counters.bytes.load(Ordering::Relaxed),
                "CDR journal pruned"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Keeps the reload counters current until stopping.
async fn watch_reload_status(
    mut status: watch::Receiver<crate::trigger::reload::ReloadStatus>,
    counters: Arc<RunCounters>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = status.borrow().clone();
                counters
                    .trigger_reloads
                    .store(s.generation.saturating_sub(1), Ordering::Relaxed);
                counters
                    .trigger_reload_errors
                    .store(s.rejected, Ordering::Relaxed);
            }
            () = shutdown.cancelled() => return,
        }
    }
}

/// Logs what loading the reference files found: a file that failed keeps its last good data
/// (none on the first load); a warning leaves the file in use.
fn log_reference_file_problems(errors: &[FileError]) {
    for err in errors {
        if err.is_warning() {
            tracing::warn!(problem = %err, "reference file used with a warning");
        } else {
            tracing::error!(error = %err, "reference file skipped; its last good data stays");
        }
    }
}

/// Signing keys from the running trigger set: a signed job is signed with its trigger's
/// current key; a trigger that is gone dead-letters its signed jobs, except while a remote
/// trigger source has not been fetched yet (its triggers may still come).
struct TriggerKeys {
    shared: SharedTriggers,
    status: watch::Receiver<crate::trigger::ReloadStatus>,
    remote: bool,
}

impl crate::delivery::KeySource for TriggerKeys {
    fn key(&self, trigger_id: &str) -> crate::delivery::KeyLookup {
        use crate::delivery::KeyLookup;
        match self.shared.load().get(trigger_id) {
            Some(t) => t.action.secret.as_ref().map_or(KeyLookup::Unsigned, |s| {
                KeyLookup::Key(s.signing_key().clone())
            }),
            None if self.remote && self.status.borrow().remote_polls == 0 => KeyLookup::NotReady,
            None => KeyLookup::Removed,
        }
    }
}

/// Reloads contact directories and rate decks on SIGHUP (triggers reload themselves).
async fn reload_enrichment_on_hangup(e: Arc<SharedEnricher>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    log_reference_file_problems(&e.reload());
                    tracing::info!("reference data reloaded");
                }
                () = shutdown.cancelled() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (e, shutdown.changed().await);
    }
}

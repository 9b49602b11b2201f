//! The delivery engine: takes due jobs lane by lane from the outbox and attempts them, with a
//! concurrency limit per endpoint lane (scheme, host, port) and overall.
//!
//! Every attempt's outcome is written back to the outbox before the job can be handed out
//! again, so the outbox is always the truth: a restart resumes exactly the jobs not known
//! delivered. The attempt's concurrency slot is freed as soon as the answer is in; outcomes
//! wait for a commit (batched, and sharing the outbox's transaction with the other writes
//! queued there), bounded by [`MAX_UNRECORDED`]. Fresh jobs, and jobs read ahead from the
//! outbox, are attempted from memory ([`super::ready`]).
//! A slow or dead endpoint fills only its own lane, and a quarter of the global slots is held
//! for lanes with nothing in flight, so stalled endpoints together never take every slot;
//! lanes are served in turn. Only the status and the first KiB of a response are read.
//! Ingest never waits on delivery (enqueueing is one local write).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::Notify;

use super::backend::Storage;
use super::job::Job;
use super::outbox::{Completion, Outbox, OutboxError};
use super::payload::{encode, Method};
use super::ready::Ready;
use super::retry::{classify, next_delay, Outcome, Verdict};
use super::sign::SigningKey;
use crate::clock::WallTime;
use crate::net::{HttpClient, HttpError};

/// Tunables.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// The unit of the retry schedule: the wait before retry `n` is `n × unit` (2 s).
    pub retry_unit: Duration,
    /// Deadline of one attempt (10 s).
    pub attempt_timeout: Duration,
    /// Attempts in flight overall.
    pub max_in_flight: usize,
    /// Attempts in flight per endpoint lane.
    pub max_in_flight_per_endpoint: usize,
}

/// Bytes of a response body read (for the log); the rest is never read.
const KEEP_BODY_BYTES: usize = 1024;

/// Finished attempts whose outcome is not stored yet; at this many no attempt starts until
/// the next commit (each holds its job).
pub const MAX_UNRECORDED: usize = 1024;

/// Jobs held in memory for their attempt (fresh ones, and those a read returned beyond the
/// free slots); more are read back from the outbox.
pub const HELD_IN_MEMORY: usize = 1024;

/// Writes of outcomes waiting for the outbox at once (each a batch of finished attempts).
const OUTCOME_WRITES: usize = 4;

/// At most this many jobs beyond the free slots are read ahead per outbox read.
const READ_AHEAD: usize = 256;

/// How many attempts a lane may start now. A quarter of the global slots is kept for lanes
/// with nothing in flight, so endpoints that stall (each holding its slots for the whole
/// attempt deadline) can never take every slot: another endpoint always gets its first
/// attempt at once.
fn lane_room(opts: &DeliveryOptions, global_busy: usize, lane_busy: usize) -> usize {
    let global_free = opts.max_in_flight.saturating_sub(global_busy);
    let reserve = opts.max_in_flight / 4;
    let shared = global_free.saturating_sub(reserve);
    let allowed = if lane_busy == 0 {
        shared.max(global_free.min(1))
    } else {
        shared
    };
    opts.max_in_flight_per_endpoint
        .saturating_sub(lane_busy)
        .min(allowed)
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            retry_unit: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            max_in_flight_per_endpoint: 4,
        }
    }
}

/// A latency histogram (seconds) with fixed buckets, kept by `prometheus-client`.
#[derive(Debug, Clone)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Self(prometheus_client::metrics::histogram::Histogram::new(
            LATENCY_BOUNDS.iter().copied(),
        ))
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }

    /// The histogram, for the exposition.
    pub fn inner(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.0
    }
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// From a job's creation (the session's close) to its first attempt.
    pub first_attempt_latency: Histogram,
    /// Duration of attempts.
    pub attempt_duration: Histogram,
    /// Jobs written to the outbox.
    pub enqueued: AtomicU64,
    /// Attempts made.
    pub attempts: AtomicU64,
    /// Jobs delivered.
    pub delivered: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Jobs moved to the dead letters.
    pub dead: AtomicU64,
    /// Outbox errors (the job stays pending).
    pub store_errors: AtomicU64,
    /// Attempts that ended without an outcome (the task panicked): the job stays pending and
    /// is attempted again after the retry unit.
    pub lost_attempts: AtomicU64,
}

/// The start of a receiver's answer for the log: at most 200 characters, control
/// characters escaped (no forged log lines).
fn body_excerpt(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The start of a receiver's answer for the attempt log (shown as HTML-escaped text, not
/// logged): at most 200 characters, control characters other than line breaks and tabs
/// replaced.
fn printable(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .chars()
        .take(200)
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// The URL without user name and password, and those as a `Basic` authorization value.
fn split_userinfo(url: &str) -> (String, Option<String>) {
    use base64::Engine as _;
    // Without an `@` there is no user name or password (the usual case: nothing to parse).
    if !url.contains('@') {
        return (url.to_owned(), None);
    }
    let Ok(mut u) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    if u.username().is_empty() && u.password().is_none() {
        return (url.to_owned(), None);
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let pair = format!(
        "{}:{}",
        decode(u.username()),
        decode(u.password().unwrap_or(""))
    );
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let basic = base64::engine::general_purpose::STANDARD.encode(pair);
    (u.to_string(), Some(format!("Basic {basic}")))
}

/// `text` without the URL's query values, user name and password (a receiver may echo the
/// request it got).
fn scrub_url_secrets(text: &str, url: &str) -> String {
    // Without a query or an `@` the URL carries nothing to scrub (the usual case).
    if text.is_empty() || !url.contains(['?', '@']) {
        return text.to_owned();
    }
    let Ok(u) = url::Url::parse(url) else {
        return text.to_owned();
    };
    let mut parts: Vec<String> = u.query_pairs().map(|(_, v)| v.into_owned()).collect();
    parts.extend(u.query().map(str::to_owned));
    parts.extend(
        u.query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_owned()),
    );
    parts.push(u.username().to_owned());
    parts.extend(u.password().map(str::to_owned));
    // Longest first, so a value inside another is not left half-replaced.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_owned();
    for p in parts.iter().filter(|p| p.len() >= 4) {
        out = out.replace(p.as_str(), "[redacted]");
    }
    out
}

/// A finished attempt, waiting to be recorded.
struct Done {
    job: Job,
    lane: String,
    completion: Completion,
    detail: String,
    elapsed: Duration,
    /// The answer's status and first bytes, when there was one.
    answer: Option<(u16, String)>,
}

/// The dispatcher's bookkeeping, under one lock.
struct Slots {
    /// Lanes with work and fresh jobs.
    ready: Ready,
    /// Jobs attempted whose outcome is not stored yet (never handed out again meanwhile).
    busy: BTreeSet<String>,
    /// Attempts running (HTTP), overall and per lane.
    running: usize,
    per_lane: BTreeMap<String, usize>,
    /// Per lane, the jobs in `busy` (the lane is kept while it has any).
    open: BTreeMap<String, usize>,
    /// The running attempt tasks' jobs (webhook id, lane), to free them if a task ends
    /// without an outcome.
    tasks: HashMap<tokio::task::Id, (String, String)>,
}

impl Slots {
    fn new() -> Self {
        Self {
            ready: Ready::new(HELD_IN_MEMORY),
            busy: BTreeSet::new(),
            running: 0,
            per_lane: BTreeMap::new(),
            open: BTreeMap::new(),
            tasks: HashMap::new(),
        }
    }

    fn started(&mut self, id: &str, lane: &str) {
        self.busy.insert(id.to_owned());
        self.running += 1;
        *self.per_lane.entry(lane.to_owned()).or_default() += 1;
        *self.open.entry(lane.to_owned()).or_default() += 1;
    }

    /// The attempt's answer is in: its slot is free, its job stays busy until recorded.
    fn answered(&mut self, lane: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.per_lane.get_mut(lane) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_lane.remove(lane);
            }
        }
    }

    /// The outcome is stored (or could not be: `stored_at` is then when it is due again).
    fn recorded(&mut self, id: &str, lane: &str, stored_at: Option<i64>) {
        self.busy.remove(id);
        if let Some(n) = self.open.get_mut(lane) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(lane);
            }
        }
        if let Some(at) = stored_at {
            self.ready.mark(lane, at);
        }
    }

    fn unrecorded(&self) -> usize {
        self.busy.len().saturating_sub(self.running)
    }
}

/// A read of a lane's stored part: at most `limit` due jobs, none of those in `skip` (the
/// jobs being attempted).
struct Read {
    limit: usize,
    skip: BTreeSet<String>,
}

/// The engine. Cheap to share.
pub struct Engine {
    storage: Storage,
    keys: std::sync::OnceLock<Arc<dyn super::keys::KeySource>>,
    http: HttpClient,
    opts: DeliveryOptions,
    slots: Mutex<Slots>,
    wake: Notify,
    /// Counters.
    pub counters: DeliveryCounters,
    /// Recent attempts, for the console's delivery log.
    pub attempts: super::attempts::AttemptLog,
}

/// The attempt log's entry for a finished attempt.
fn logged(d: &Done, now: WallTime) -> super::attempts::Attempt {
    let (outcome, error) = match &d.completion {
        Completion::Delivered => ("delivered", None),
        Completion::RetryAt(..) => ("retry", Some(d.detail.clone())),
        Completion::Dead(_) => ("dead", Some(d.detail.clone())),
    };
    super::attempts::Attempt {
        at_us: now.as_us(),
        webhook_id: d.job.webhook_id.clone(),
        trigger_id: d.job.trigger_id.clone(),
        attempt: d.job.attempts,
        status: d.answer.as_ref().map(|(s, _)| *s),
        latency_ms: u64::try_from(d.elapsed.as_millis()).unwrap_or(u64::MAX),
        outcome,
        error,
        response: d
            .answer
            .as_ref()
            .map(|(_, h)| h.clone())
            .unwrap_or_default(),
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over the embedded `outbox`, sending with `http`. It reads nothing yet: the
    /// lanes that have pending jobs are read when [`Engine::run`] starts.
    #[must_use]
    pub fn new(outbox: Arc<Outbox>, http: HttpClient, opts: DeliveryOptions) -> Arc<Self> {
        Self::with_storage(Storage::Embedded(outbox), http, opts)
    }

    /// An engine over `storage` (embedded or PostgreSQL), sending with `http`.
    #[must_use]
    pub fn with_storage(storage: Storage, http: HttpClient, opts: DeliveryOptions) -> Arc<Self> {
        Arc::new(Self {
            storage,
            keys: std::sync::OnceLock::new(),
            http,
            opts,
            slots: Mutex::new(Slots::new()),
            wake: Notify::new(),
            counters: DeliveryCounters::default(),
            attempts: super::attempts::AttemptLog::default(),
        })
    }

    /// Where signed jobs find their trigger's current key (set once, before [`Engine::run`]).
    /// Without it, signed jobs are dead-lettered as having no trigger.
    pub fn use_keys(&self, keys: Arc<dyn super::keys::KeySource>) {
        let _ = self.keys.set(keys);
    }

    fn lookup(&self, job: &Job) -> super::keys::KeyLookup {
        use super::keys::KeyLookup;
        if !job.endpoint.signed {
            return KeyLookup::Unsigned;
        }
        self.keys
            .get()
            .map_or(KeyLookup::Removed, |k| k.key(&job.trigger_id))
    }

    /// Where deliveries are stored (the outbox: embedded or PostgreSQL).
    pub fn outbox(&self) -> &Storage {
        &self.storage
    }

    /// Writes jobs durably and wakes the dispatcher. When this returns `Ok`, the jobs survive
    /// a crash.
    ///
    /// # Errors
    /// The outbox write failed; nothing was written.
    pub async fn enqueue(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        self.enqueue_journaled(jobs, Vec::new()).await
    }

    /// [`Engine::enqueue`] with the sessions' journal entries written in the same outbox
    /// transaction (see [`Store::enqueue_journaled`]).
    ///
    /// # Errors
    /// The outbox write failed; nothing was written (neither jobs nor entries).
    pub async fn enqueue_journaled(
        &self,
        jobs: &[Job],
        entries: Vec<super::journal::Encoded>,
    ) -> Result<usize, OutboxError> {
        let reads_before = self.slots.lock().map_or(0, |s| s.ready.reads());
        let written = self.storage.enqueue_handed(jobs.to_vec(), entries).await;
        let (n, handed) = match written {
            Ok(w) => w,
            Err(e) => {
                // Nothing is attempted from memory; but a write whose sync failed may still be
                // in the file, so those lanes are read again.
                if let Ok(mut s) = self.slots.lock() {
                    for job in jobs {
                        s.ready.mark(&job.endpoint.lane(), job.next_attempt_us);
                    }
                }
                // A mark due now with nothing in flight is seen only by a dispatch: without
                // this wake-up the engine slept until its next stored job (an hour, with none).
                self.wake.notify_one();
                return Err(e);
            }
        };
        self.counters
            .enqueued
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Ok(mut s) = self.slots.lock() {
            if self.storage.embedded().is_some() {
                let mut by_lane: BTreeMap<String, Vec<Job>> = BTreeMap::new();
                for job in handed {
                    by_lane.entry(job.endpoint.lane()).or_default().push(job);
                }
                for (lane, jobs) in by_lane {
                    s.ready.hand_over(&lane, jobs, reads_before);
                }
            } else {
                for job in jobs {
                    s.ready.mark(&job.endpoint.lane(), job.next_attempt_us);
                }
            }
        }
        self.wake.notify_one();
        Ok(n)
    }

    /// Tells the dispatcher that jobs were written to these lanes by other means (a journal
    /// re-send) and wakes it.
    pub fn queued(&self, lanes: impl IntoIterator<Item = String>) {
        if let Ok(mut s) = self.slots.lock() {
            for lane in lanes {
                s.ready.mark(&lane, i64::MIN);
            }
        }
        self.wake.notify_one();
    }

    /// Moves a dead letter back to pending (same webhook id, fresh attempts) and wakes the
    /// dispatcher.
    ///
    /// # Errors
    /// No such dead letter, or a storage error.
    pub async fn resend(&self, webhook_id: &str) -> Result<Job, OutboxError> {
        let job = self.storage.resend(webhook_id, WallTime::now()).await?;
        if let Ok(mut s) = self.slots.lock() {
            s.ready.mark(&job.endpoint.lane(), i64::MIN);
        }
        self.wake.notify_one();
        Ok(job)
    }

    /// Dispatches until `shutdown`; attempts in flight finish (their outcome is recorded)
    /// before it returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        // Finished attempts wait here for the next commit; a few commits may wait for the
        // outbox's thread at once, so outcomes share a transaction with the other writes
        // queued there (group commit) while new attempts keep going.
        let mut finished: Vec<Done> = Vec::new();
        let mut commits = tokio::task::JoinSet::new();
        // The lanes that already have pending jobs (read again until that succeeds).
        let mut lanes_read = self.read_lanes().await;
        // Shared storage: other instances make work due here (re-sends, expired leases), so
        // the lanes are read again and the sleep is capped at the poll interval.
        let poll = self.storage.poll_interval();
        let mut polled = std::time::Instant::now();
        loop {
            if let Some(p) = poll {
                if polled.elapsed() >= p {
                    polled = std::time::Instant::now();
                    lanes_read = false;
                    if let Ok(mut s) = self.slots.lock() {
                        s.ready.mark_all(i64::MIN);
                    }
                }
            }
            if commits.len() < OUTCOME_WRITES && !finished.is_empty() {
                let (me, batch) = (self.clone(), std::mem::take(&mut finished));
                commits.spawn(async move { me.record(batch).await });
            }
            if !lanes_read {
                lanes_read = self.read_lanes().await;
            }
            let next = self.dispatch(&mut tasks).await;
            let sleep = match next {
                Some(at) => WallTime::from_us(at).since(WallTime::now()),
                None => Duration::from_secs(3600),
            };
            let sleep = if lanes_read {
                sleep
            } else {
                sleep.min(Duration::from_secs(1))
            };
            let sleep = poll.map_or(sleep, |p| sleep.min(p));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                Some(first) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.answered(&mut finished, first);
                    while let Some(more) = tasks.try_join_next_with_id() {
                        self.answered(&mut finished, more);
                    }
                }
                Some(_) = commits.join_next(), if !commits.is_empty() => {}
            }
        }
        while commits.join_next().await.is_some() {}
        while let Some(d) = tasks.join_next_with_id().await {
            self.answered(&mut finished, d);
        }
        self.record(finished).await;
    }

    /// A finished attempt: its slot is freed and its outcome waits for the next commit. An
    /// attempt that ended without one (its task panicked) frees its slot and its job, which
    /// stays pending in the outbox and is read back after the retry unit.
    fn answered(
        &self,
        finished: &mut Vec<Done>,
        d: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) {
        match d {
            Ok((id, d)) => {
                if let Ok(mut s) = self.slots.lock() {
                    s.tasks.remove(&id);
                    s.answered(&d.lane);
                }
                finished.push(d);
            }
            Err(e) => {
                let Ok(mut s) = self.slots.lock() else { return };
                let Some((webhook_id, lane)) = s.tasks.remove(&e.id()) else {
                    return;
                };
                s.answered(&lane);
                let again = WallTime::now().plus(self.opts.retry_unit).as_us();
                s.recorded(&webhook_id, &lane, Some(again));
                drop(s);
                self.counters.lost_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::error!(webhook_id = %webhook_id, error = %e, "delivery attempt ended without an outcome (a bug); the job stays pending and is attempted again");
            }
        }
    }

    /// Adds the lanes that have pending jobs to the known ones; false when the outbox could
    /// not be read.
    async fn read_lanes(&self) -> bool {
        match self.storage.lanes().await {
            Ok(known) => {
                if let Ok(mut s) = self.slots.lock() {
                    for lane in known {
                        s.ready.mark(&lane, i64::MIN);
                    }
                }
                true
            }
            Err(e) => {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "outbox read failed; trying again in a second");
                false
            }
        }
    }

    /// Starts every due job there is room for (stored ones due first, then fresh ones from
    /// memory); returns when the next stored job is due.
    async fn dispatch(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<Done>) -> Option<i64> {
        let now = WallTime::now().as_us();
        let mut soon: Option<i64> = None;
        let Ok(lanes) = self.slots.lock().map(|mut s| s.ready.lanes()) else {
            return None;
        };
        for lane in lanes {
            let Some((room, read)) = self.plan(&lane, now) else {
                break;
            };
            if room == 0 {
                continue;
            }
            if let Some(Read { limit, skip }) = read {
                match self.storage.due(lane.clone(), now, limit, skip).await {
                    Ok((due, next)) => {
                        let held = self
                            .slots
                            .lock()
                            .map(|mut s| s.ready.read_done(&lane, next, due));
                        if matches!(held, Ok(false)) {
                            // Let go for a mark made during the read: read again at once.
                            soon = Some(now);
                        }
                    }
                    Err(e) => {
                        self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "outbox read failed; trying again in a second");
                        if let Ok(mut s) = self.slots.lock() {
                            s.ready.read_failed(&lane);
                        }
                        soon = Some(now + 1_000_000);
                    }
                }
            }
            let Ok(mut guard) = self.slots.lock() else {
                return None;
            };
            let s = &mut *guard;
            let jobs = s.ready.take(&lane, room, &s.busy);
            for job in &jobs {
                s.started(&job.webhook_id, &lane);
            }
            s.ready
                .settle(&lane, s.open.get(&lane).copied().unwrap_or(0));
            drop(guard);
            let mut spawned = Vec::with_capacity(jobs.len());
            for job in jobs {
                let (me, lane) = (self.clone(), lane.clone());
                let key = (job.webhook_id.clone(), lane.clone());
                spawned.push((
                    tasks.spawn(async move { me.attempt(job, lane).await }).id(),
                    key,
                ));
            }
            if let Ok(mut s) = self.slots.lock() {
                s.tasks.extend(spawned);
            }
        }
        let next = self.slots.lock().ok()?.ready.next_stored(now);
        match (next, soon) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many attempts `lane` may start now, and whether its stored part must be read
    /// first: how many jobs that read returns (the free slots, plus what may be held in
    /// memory when the storage allows reading ahead) and the ids it skips (those being
    /// attempted). `None` when no attempt may start anywhere (too many outcomes wait to be
    /// stored).
    fn plan(&self, lane: &str, now: i64) -> Option<(usize, Option<Read>)> {
        let mut s = self.slots.lock().ok()?;
        if s.unrecorded() >= MAX_UNRECORDED {
            return None;
        }
        let here = s.per_lane.get(lane).copied().unwrap_or(0);
        let room = lane_room(&self.opts, s.running, here);
        if room == 0 || !s.ready.begin_read(lane, now) {
            return Some((room, None));
        }
        let ahead = if self.storage.reads_ahead() {
            s.ready.spare().min(READ_AHEAD)
        } else {
            0
        };
        let read = Read {
            limit: room + ahead,
            skip: s.busy.clone(),
        };
        Some((room, Some(read)))
    }

    /// One attempt; its outcome is recorded by [`Engine::record`].
    async fn attempt(&self, mut job: Job, lane: String) -> Done {
        use super::keys::KeyLookup;
        let key = match self.lookup(&job) {
            KeyLookup::Key(k) => Some(k),
            KeyLookup::Unsigned => None,
            KeyLookup::Removed => {
                let why = format!(
                    "trigger {} was removed: the delivery cannot be signed",
                    job.trigger_id
                );
                // Logged (WARN, with this reason) when recorded, like every dead letter.
                return Done {
                    completion: Completion::Dead(why.clone()),
                    detail: why,
                    job,
                    lane,
                    elapsed: Duration::ZERO,
                    answer: None,
                };
            }
            KeyLookup::NotReady => {
                // Not an attempt: the trigger set is still loading.
                let at = WallTime::now().plus(self.opts.retry_unit).as_us();
                let why = "waiting for the trigger set to load".to_owned();
                return Done {
                    completion: Completion::RetryAt(at, why.clone()),
                    detail: why,
                    job,
                    lane,
                    elapsed: Duration::ZERO,
                    answer: None,
                };
            }
        };
        if job.attempts == 0 {
            let waited = WallTime::now().since(WallTime::from_us(job.created_us));
            self.counters.first_attempt_latency.observe(waited);
        }
        job.attempts += 1;
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let mut answer = None;
        let (outcome, detail) = match self.send(&job, key.as_ref()).await {
            Ok((status, head)) => {
                let url = &job.endpoint.url;
                let detail = if (200..300).contains(&status) || head.is_empty() {
                    format!("HTTP {status}")
                } else {
                    let excerpt = scrub_url_secrets(&body_excerpt(&head), url);
                    format!("HTTP {status}: {excerpt}")
                };
                answer = Some((status, scrub_url_secrets(&printable(&head), url)));
                (Outcome::Status(status), detail)
            }
            Err(HttpError::Timeout(d)) => (Outcome::Timeout, format!("timed out after {d:?}")),
            Err(HttpError::Forbidden(m)) => {
                // Neither retrying nor waiting can make a forbidden address allowed.
                return Done {
                    completion: Completion::Dead(m.clone()),
                    detail: m,
                    job,
                    lane,
                    elapsed: started.elapsed(),
                    answer: None,
                };
            }
            Err(e) => (Outcome::ConnectError, e.to_string()),
        };
        let completion = match classify(outcome) {
            Verdict::Success => Completion::Delivered,
            Verdict::Final => Completion::Dead(detail.clone()),
            Verdict::Retry => {
                match next_delay(job.attempts, job.endpoint.retries, self.opts.retry_unit) {
                    Some(wait) => {
                        Completion::RetryAt(WallTime::now().plus(wait).as_us(), detail.clone())
                    }
                    None => Completion::Dead(detail.clone()),
                }
            }
        };
        Done {
            job,
            lane,
            completion,
            detail,
            elapsed: started.elapsed(),
            answer,
        }
    }

    /// Records finished attempts: one outbox transaction for all of them, then their slots
    /// are freed (a job is never handed out again before its outcome is stored).
    async fn record(&self, done: Vec<Done>) {
        if done.is_empty() {
            return;
        }
        let c = &self.counters;
        for d in &done {
            c.attempt_duration.observe(d.elapsed);
            let outcome = match &d.completion {
                Completion::Delivered => {
                    c.delivered.fetch_add(1, Ordering::Relaxed);
                    "delivered"
                }
                Completion::RetryAt(..) => {
                    c.retried.fetch_add(1, Ordering::Relaxed);
                    "retry"
                }
                Completion::Dead(_) => {
                    c.dead.fetch_add(1, Ordering::Relaxed);
                    "dead"
                }
            };
            tracing::info!(
                webhook_id = %d.job.webhook_id,
                trigger_id = %d.job.trigger_id,
                lane = %d.lane,
                attempt = d.job.attempts,
                outcome,
                detail = %d.detail,
                ms = d.elapsed.as_millis() as u64,
                "delivery attempt"
            );
            if let Completion::Dead(reason) = &d.completion {
                // A webhook given up for good: an operator must see it at the default level.
                tracing::warn!(
                    webhook_id = %d.job.webhook_id,
                    trigger_id = %d.job.trigger_id,
                    attempts = d.job.attempts,
                    reason = %reason,
                    "delivery dead-lettered"
                );
            }
        }
        let now = WallTime::now();
        self.attempts
            .record(done.iter().map(|d| logged(d, now)), now);
        // Per job: its id, lane, and when it is due again in the outbox if it stays there.
        let mut slots = Vec::with_capacity(done.len());
        let mut batch = Vec::with_capacity(done.len());
        for d in done {
            let again = match &d.completion {
                Completion::RetryAt(at, _) => Some(*at),
                Completion::Delivered | Completion::Dead(_) => None,
            };
            slots.push((d.job.webhook_id.clone(), d.lane, again));
            batch.push((d.job, d.completion));
        }
        let jobs = batch.len();
        let stored = self.storage.complete_many(batch).await;
        if let Err(e) = &stored {
            c.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(jobs, error = %e, "outbox update failed; the jobs stay pending and are attempted again");
        }
        if let Ok(mut s) = self.slots.lock() {
            for (id, lane, again) in slots {
                // Not stored: the job is still pending as it was, due now.
                let again = if stored.is_ok() {
                    again
                } else {
                    Some(i64::MIN)
                };
                s.recorded(&id, &lane, again);
            }
        }
        self.wake.notify_one();
    }

    /// Builds, signs and sends the request; returns the status and the first bytes of the
    /// body.
    async fn send(&self, job: &Job, key: Option<&SigningKey>) -> Result<(u16, Bytes), HttpError> {
        let req = request(job, key, WallTime::now().as_secs())?;
        self.http
            .send_for_status(req, self.opts.attempt_timeout, KEEP_BODY_BYTES)
            .await
            .map(|(status, head)| (status.as_u16(), head))
    }

    /// Sends `job` once, as an attempt would (same request, same signature), outside the
    /// outbox: nothing is recorded or retried. Returns the whole answer (status, headers, the
    /// first [`KEEP_BODY_BYTES`] of the body). For the console's test webhook.
    ///
    /// # Errors
    /// No answer in time, or the request cannot be made.
    pub async fn send_once(
        &self,
        job: &Job,
        key: Option<&SigningKey>,
    ) -> Result<crate::net::http::HttpResponse, HttpError> {
        let req = request(job, key, WallTime::now().as_secs())?;
        let (parts, head) = self
            .http
            .send_head(req, self.opts.attempt_timeout, KEEP_BODY_BYTES)
            .await?;
        Ok(crate::net::http::HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: head,
        })
    }
}

/// The request of one attempt of `job` at unix time `ts` (seconds), signed with `key`.
fn request(
    job: &Job,
    key: Option<&SigningKey>,
    ts: i64,
) -> Result<hyper::Request<Full<Bytes>>, HttpError> {
    let ep = &job.endpoint;
    let enc = encode(&ep.url, ep.method, ep.format, &job.payload)
        .map_err(|e| HttpError::Forbidden(e.to_string()))?;
    let method = match ep.method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
        Method::Put => hyper::Method::PUT,
    };
    // Credentials in the URL become an Authorization header: the request line and
    // everything hyper logs (its pool keys print the authority) never carry them.
    let (target, basic) = split_userinfo(&enc.url);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(&target)
        .header(
            "user-agent",
            concat!("postcall/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &job.webhook_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-attempt", job.attempts.to_string());
    if let Some(b) = basic {
        req = req.header("authorization", b);
    }
    if let Some(ct) = enc.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(key) = key {
        // For GET the signed content is the query string the payload became.
        let signed: &[u8] = if enc.body.is_empty() {
            enc.url
                .split_once('?')
                .map_or(&[][..], |(_, q)| q.as_bytes())
        } else {
            &enc.body
        };
        req = req.header("webhook-signature", key.sign(&job.webhook_id, ts, signed));
    }
    req.body(Full::new(Bytes::from(enc.body)))
        .map_err(|_| HttpError::Forbidden("the URL is not a valid request target".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_lanes_leave_room_for_others() {
        let o = DeliveryOptions::default(); // 64 overall, 4 per endpoint
                                            // Endpoints that already have attempts stop growing at 48 busy slots...
        assert_eq!(lane_room(&o, 47, 3), 1);
        assert_eq!(lane_room(&o, 48, 3), 0);
        assert_eq!(lane_room(&o, 48, 1), 0);
        // ...while an endpoint with nothing in flight still gets a first attempt.
        assert_eq!(lane_room(&o, 48, 0), 1);
        assert_eq!(lane_room(&o, 63, 0), 1);
        assert_eq!(lane_room(&o, 64, 0), 0);
        assert_eq!(lane_room(&o, 0, 0), 4);
        assert_eq!(lane_room(&o, 0, 4), 0);
        let (url, basic) = split_userinfo("https://al%40x:p+w%3A@h.example/p?sig=1");
        assert_eq!(url, "https://h.example/p?sig=1");
        // base64("al@x:p+w:")
        assert_eq!(basic.as_deref(), Some("Basic YWxAeDpwK3c6"));
        assert_eq!(split_userinfo("https://h.example/").1, None);
        assert_eq!(
            scrub_url_secrets(
                "echo /h?sig=Ab%2Bcd&api=2 Ab+cd user1 pass1",
                "https://user1:pass1@h/h?sig=Ab%2Bcd&api=2"
            ),
            "echo /h?[redacted] [redacted] [redacted] [redacted]"
        );
        let one = DeliveryOptions {
            max_in_flight: 1,
            max_in_flight_per_endpoint: 1,
            ..o
        };
        assert_eq!(lane_room(&one, 0, 0), 1);
        assert_eq!(
            body_excerpt(b"line\nforged=1 \x1b[31m"),
            "line\\nforged=1 \\u{1b}[31m"
        );
        assert_eq!(
            printable(b"{\"ok\":1}\n\x1b[31m"),
            "{\"ok\":1}\n\u{fffd}[31m"
        );
    }
}

//! The PostgreSQL backend of [`super::backend::Storage`]: the outbox, dead letters, CDR
//! journal and saved sessions in one database that several postcall instances share
//! (active-active).
//!
//! - Deliveries are inserted once, keyed by `webhook-id` (`ON CONFLICT`); a complete copy
//!   replaces a gapped one only while nobody has claimed it
//!   ([`super::backend::delivery_replaceable`], mirrored in the `ON CONFLICT … WHERE`).
//! - Due jobs are **claimed**: `FOR UPDATE SKIP LOCKED` picks rows no other instance is
//!   claiming, and the claim writes `claimed_by` (this run) and `lease_until_us`. A row whose
//!   lease has run out is due again for anyone (its holder died, or lost the database). The
//!   lease outlasts an attempt (`lease_secs` is checked against the attempt deadline), so a
//!   live holder never loses a row it is attempting.
//! - An outcome is recorded only by the lease holder (`WHERE claimed_by = me`); an outcome
//!   for a row someone else holds now is dropped and counted (`lost_completions`): that row
//!   was (or will be) attempted again — a duplicate the receiver dedupes on `webhook-id`.
//! - Schema migrations are embedded ([`MIGRATIONS`]) and applied at start in one transaction
//!   under an advisory lock, so two instances starting at once apply each version once.
//! - Every operation has a deadline (`op_timeout`); a connection that missed it is dropped
//!   from the pool, never reused. Errors are [`OutboxError::Database`]: the caller waits and
//!   retries, as with a failing disk.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use super::backend::{CopyKind, Storage};
use super::job::Job;
use super::journal::{
    DeliveryState, DeliveryStatus, Encoded, JournalEntry, JournalPolicy, JournalRecord, ListFilter,
    Page, Pruned, ResendMode, ResendPlan, ResendReport, ResendTarget,
};
use super::outbox::{Completion, OutboxError};
use crate::clock::WallTime;
use crate::net::Secret;
use crate::run::state::SavedState;

/// The schema, one migration per version (applied in order, each once).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE postcall_outbox (
        webhook_id text PRIMARY KEY,
        lane text NOT NULL,
        due_us bigint NOT NULL,
        created_us bigint NOT NULL,
        copy smallint NOT NULL,
        claims integer NOT NULL DEFAULT 0,
        job text NOT NULL,
        claimed_by text,
        lease_until_us bigint
    );
    CREATE INDEX postcall_outbox_due ON postcall_outbox (lane, due_us);
    CREATE INDEX postcall_outbox_leases ON postcall_outbox (lane, lease_until_us)
        WHERE claimed_by IS NOT NULL;
    CREATE TABLE postcall_dead (
        webhook_id text PRIMARY KEY,
        created_us bigint NOT NULL,
        job text NOT NULL
    );
    CREATE TABLE postcall_journal (
        session_id text PRIMARY KEY,
        tenant text,
        start_us bigint NOT NULL,
        copy smallint NOT NULL,
        bytes bigint NOT NULL,
        entry text NOT NULL
    );
    CREATE INDEX postcall_journal_time ON postcall_journal (start_us, session_id);
    CREATE INDEX postcall_journal_tenant ON postcall_journal (tenant, start_us, session_id);
    CREATE TABLE postcall_hooks (
        webhook_id text PRIMARY KEY,
        session_id text NOT NULL,
        state smallint NOT NULL,
        at_us bigint NOT NULL
    );
    CREATE INDEX postcall_hooks_session ON postcall_hooks (session_id);
    CREATE TABLE postcall_sessions (
        instance text PRIMARY KEY,
        saved_us bigint NOT NULL,
        state text NOT NULL
    );",
    ),
    (
        2,
        "CREATE TABLE postcall_console_triggers (
        id text PRIMARY KEY,
        tenant text NOT NULL,
        updated_us bigint NOT NULL,
        stored text NOT NULL
    );",
    ),
];

/// The advisory lock key under which migrations run ("postcall" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7374_6361_6c6c;

/// How to reach the database and share its work.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://…` or `host=… user=…` (may hold a password: never logged).
    pub url: Secret,
    /// Extra CA certificate (PEM) trusted for the server (`sslmode=require`/`prefer`).
    pub ca_file: Option<std::path::PathBuf>,
    /// This instance's name: saved sessions are kept under it, claims carry it.
    pub instance: String,
    /// How long a claim holds a job.
    pub lease: Duration,
    /// How often the engine looks for work other instances made due.
    pub poll: Duration,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Deadline of one database operation.
    pub op_timeout: Duration,
}

/// Counters of claims and leases (metrics, per instance).
#[derive(Debug, Default)]
pub struct ClaimCounters {
    /// Jobs claimed.
    pub claims: AtomicU64,
    /// Jobs claimed whose earlier claim's lease had run out.
    pub lease_expiries: AtomicU64,
    /// Of those, jobs an instance with another name had claimed (it died or lost the
    /// database): taken over.
    pub takeovers: AtomicU64,
    /// Outcomes not recorded because the lease was no longer this run's.
    pub lost_completions: AtomicU64,
}

/// `e` and the errors under it as one line, so an operator sees why a connection failed (the
/// server's refusal, the certificate check), not only "db error". The sources never hold
/// the connection string.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

impl From<tokio_postgres::Error> for OutboxError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The message names the failing statement's error, never the connection string.
        Self::Database(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    opts: PgOptions,
    /// `instance/pid-start`: what `claimed_by` holds for this run.
    me: String,
    described: String,
    failing: AtomicBool,
    pending: AtomicU64,
    dead: AtomicU64,
    never: tokio_util::sync::CancellationToken,
    /// Claims and leases.
    pub counters: ClaimCounters,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.described)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn copy_code(c: CopyKind) -> i16 {
    match c {
        CopyKind::Backfilled => 0,
        CopyKind::Gapped => 1,
        CopyKind::Complete => 2,
    }
}

fn copy_of(code: i16) -> CopyKind {
    match code {
        0 => CopyKind::Backfilled,
        1 => CopyKind::Gapped,
        _ => CopyKind::Complete,
    }
}

/// Where a delivery stands, from what the database holds about it (as the embedded journal
/// decides: the outbox first, then the dead letters, then the recorded final state).
fn state_of(
    pending: bool,
    dead: bool,
    hook: Option<(DeliveryState, i64)>,
) -> (DeliveryState, Option<i64>) {
    if pending {
        (DeliveryState::Pending, None)
    } else if dead {
        (DeliveryState::Dead, hook.map(|h| h.1))
    } else {
        match hook {
            Some((s @ (DeliveryState::Delivered | DeliveryState::Purged), at)) => (s, Some(at)),
            _ => (DeliveryState::Unknown, None),
        }
    }
}

impl PgStore {
    /// Connects, applies the migrations this database lacks and returns the store.
    ///
    /// # Errors
    /// The URL is invalid, the CA file unusable, the database unreachable, or a migration
    /// failed.
    pub async fn connect(opts: PgOptions) -> Result<Self, OutboxError> {
        let mut cfg = tokio_postgres::Config::from_str(opts.url.expose())
            .map_err(|e| OutboxError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(opts.op_timeout);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("postcall");
        }
        cfg.keepalives_idle(Duration::from_secs(30));
        let described = describe(&cfg);
        let tls = crate::net::tls::client_config(opts.ca_file.as_deref())
            .map_err(|e| OutboxError::Database(e.to_string()))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
        let mgr = Manager::from_config(
            cfg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.op_timeout))
            .create_timeout(Some(opts.op_timeout))
            .recycle_timeout(Some(opts.op_timeout))
            .build()
            .map_err(|e| OutboxError::Database(e.to_string()))?;
        let me = format!(
            "{}/{}-{}",
            opts.instance,
            std::process::id(),
            WallTime::now().as_us()
        );
        let store = Self {
            pool,
            opts,
            me,
            described,
            failing: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            never: tokio_util::sync::CancellationToken::new(),
            counters: ClaimCounters::default(),
        };
        let applied = store.migrate().await?;
        if applied > 0 {
            tracing::info!(versions = applied, db = %store.described, "PostgreSQL schema migrated");
        }
        Ok(store)
    }

    /// The store as a [`Storage`].
    #[must_use]
    pub fn into_storage(self) -> Storage {
        Storage::Postgres(std::sync::Arc::new(self))
    }

    /// Host, port and database (never the password).
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// What `claimed_by` holds for this run.
    #[must_use]
    pub fn claimer(&self) -> &str {
        &self.me
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.opts.poll
    }

    pub(crate) fn failed(&self) -> tokio_util::sync::CancellationToken {
        self.never.clone()
    }

    pub(crate) fn gauges(&self) -> (u64, u64) {
        (
            self.pending.load(Ordering::Relaxed),
            self.dead.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    async fn client(&self) -> Result<Object, OutboxError> {
        match self.pool.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                Err(OutboxError::Database(format!(
                    "no connection: {}",
                    with_sources(&e)
                )))
            }
        }
    }

    /// Runs `op` on a pooled connection within the operation timeout.
    async fn op<T>(
        &self,
        op: impl AsyncFnOnce(&mut Object) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        self.op_within(self.opts.op_timeout, op).await
    }

    /// Runs `op` on a pooled connection within `limit`. A connection that missed it is
    /// dropped, not pooled again (it may be stuck on a dead network path); a database error
    /// marks the store failing until an operation succeeds.
    async fn op_within<T>(
        &self,
        limit: Duration,
        op: impl AsyncFnOnce(&mut Object) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        let mut c = self.client().await?;
        let r = match tokio::time::timeout(limit, op(&mut c)).await {
            Ok(r) => r,
            Err(_) => {
                drop(Object::take(c));
                Err(OutboxError::Database(format!("no answer within {limit:?}")))
            }
        };
        let failing = matches!(r, Err(OutboxError::Database(_)));
        self.failing.store(failing, Ordering::Relaxed);
        r
    }

    async fn migrate(&self) -> Result<usize, OutboxError> {
        self.op_within(self.opts.op_timeout * 3, async |c| {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS postcall_migrations (
                    version integer PRIMARY KEY, applied_us bigint NOT NULL)",
            )
            .await?;
            let have: i32 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM postcall_migrations",
                    &[],
                )
                .await?
                .get(0);
            let mut applied = 0;
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO postcall_migrations (version, applied_us) VALUES ($1, $2)",
                    &[version, &WallTime::now().as_us()],
                )
                .await?;
                applied += 1;
            }
            tx.commit().await?;
            Ok(applied)
        })
        .await
    }

    /// Writes jobs and journal entries in one transaction. See the module doc for which copy
    /// wins; returns how many jobs were inserted.
    pub(crate) async fn enqueue(
        &self,
        jobs: &[Job],
        entries: &[Encoded],
    ) -> Result<usize, OutboxError> {
        // The copy of each delivery, from its session's entry (a job without an entry is
        // taken as complete).
        let mut copy: BTreeMap<&str, CopyKind> = BTreeMap::new();
        for e in entries {
            for d in e.deliveries() {
                copy.insert(d.webhook_id.as_str(), e.copy());
            }
        }
        // One row per id, in key order (two instances writing the same batch lock rows in
        // the same order: no deadlock).
        let mut rows: BTreeMap<&str, &Job> = BTreeMap::new();
        for j in jobs {
            rows.entry(j.webhook_id.as_str()).or_insert(j);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let (mut lanes, mut due, mut created, mut copies, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, j) in &rows {
            ids.push(*id);
            lanes.push(j.endpoint.lane());
            due.push(j.next_attempt_us);
            created.push(j.created_us);
            copies.push(copy_code(
                copy.get(id).copied().unwrap_or(CopyKind::Complete),
            ));
            bodies.push(serde_json::to_string(j)?);
        }
        let mut by_id: BTreeMap<&str, &Encoded> = BTreeMap::new();
        for e in entries {
            by_id.insert(e.id(), e);
        }
        let now = WallTime::now().as_us();
        self.op(async |c| {
            let tx = c.transaction().await?;
            let mut added = 0;
            if !ids.is_empty() {
                let inserted = tx
                    .query(
                        "INSERT INTO postcall_outbox AS o
                             (webhook_id, lane, due_us, created_us, copy, job)
                         SELECT u.id, u.lane, u.due, u.created, u.copy, u.job
                         FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[],
                                     $5::int2[], $6::text[])
                              AS u(id, lane, due, created, copy, job)
                         WHERE NOT EXISTS (SELECT 1 FROM postcall_hooks h
                                           WHERE h.webhook_id = u.id AND h.state <> 0)
                         ORDER BY u.id
                         ON CONFLICT (webhook_id) DO UPDATE
                             SET job = EXCLUDED.job, copy = EXCLUDED.copy
                             WHERE EXCLUDED.copy = 2 AND o.copy < 2 AND o.claims = 0
                               AND (o.claimed_by IS NULL OR o.lease_until_us <= $7)
                         RETURNING (xmax = 0) AS inserted",
                        &[&ids, &lanes, &due, &created, &copies, &bodies, &now],
                    )
                    .await?;
                added = inserted.iter().filter(|r| r.get::<_, bool>(0)).count();
            }
            for e in by_id.values() {
                put_entry(&tx, e, now).await?;
            }
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    /// Claims up to `limit` due jobs of `lane` for this run (see the module doc).
    pub(crate) async fn claim(
        &self,
        lane: &str,
        now: i64,
        limit: usize,
        busy: &BTreeSet<String>,
    ) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
        let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
        let lease_until = now.saturating_add(micros(self.opts.lease));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let prefix = format!("{}/", self.opts.instance);
        let (jobs, next, expired, taken) = self
            .op(async |c| {
                let rows = c
                    .query(
                        "WITH c AS (
                         SELECT webhook_id, claimed_by AS prev FROM postcall_outbox
                         WHERE lane = $1 AND due_us <= $2
                           AND (claimed_by IS NULL OR lease_until_us <= $2)
                           AND webhook_id <> ALL($3::text[])
                         ORDER BY due_us LIMIT $4
                         FOR UPDATE SKIP LOCKED)
                     UPDATE postcall_outbox o
                     SET claimed_by = $5, lease_until_us = $6, claims = o.claims + 1
                     FROM c WHERE o.webhook_id = c.webhook_id
                     RETURNING o.job, c.prev",
                        &[&lane, &now, &busy, &limit, &self.me, &lease_until],
                    )
                    .await?;
                let mut jobs = Vec::with_capacity(rows.len());
                let (mut expired, mut taken) = (0, 0);
                for row in &rows {
                    let body: &str = row.get(0);
                    let prev: Option<&str> = row.get(1);
                    if let Some(p) = prev {
                        expired += 1;
                        if !p.starts_with(&prefix) {
                            taken += 1;
                        }
                    }
                    jobs.push(serde_json::from_str::<Job>(body)?);
                }
                let mut skip = busy.clone();
                skip.extend(jobs.iter().map(|j| j.webhook_id.as_str()));
                let next = c
                    .query_one(
                        "SELECT
                       (SELECT due_us FROM postcall_outbox
                        WHERE lane = $1 AND webhook_id <> ALL($3::text[])
                          AND (claimed_by IS NULL OR lease_until_us <= $2)
                        ORDER BY due_us LIMIT 1),
                       (SELECT min(greatest(due_us, lease_until_us)) FROM postcall_outbox
                        WHERE lane = $1 AND claimed_by IS NOT NULL AND lease_until_us > $2
                          AND claimed_by <> $4)",
                        &[&lane, &now, &skip, &self.me],
                    )
                    .await?;
                let a: Option<i64> = next.get(0);
                let b: Option<i64> = next.get(1);
                let next = match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok((jobs, next, expired, taken))
            })
            .await?;
        let k = &self.counters;
        k.claims.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        k.lease_expiries.fetch_add(expired, Ordering::Relaxed);
        k.takeovers.fetch_add(taken, Ordering::Relaxed);
        if taken > 0 {
            tracing::warn!(
                lane,
                jobs = taken,
                "took over deliveries whose claim's lease ran out (their instance stopped or lost the database)"
            );
        }
        Ok((jobs, next))
    }

    /// The lanes with pending jobs (and the gauges, refreshed).
    pub(crate) async fn lanes(&self) -> Result<BTreeSet<String>, OutboxError> {
        let (lanes, (p, d)) = self
            .op(async |c| {
                let rows = c
                    .query("SELECT DISTINCT lane FROM postcall_outbox", &[])
                    .await?;
                let counts = counts(&*c).await?;
                Ok((rows.iter().map(|r| r.get::<_, String>(0)).collect(), counts))
            })
            .await?;
        self.pending.store(p, Ordering::Relaxed);
        self.dead.store(d, Ordering::Relaxed);
        Ok(lanes)
    }

    /// Pending jobs and dead letters.
    pub(crate) async fn counts(&self) -> Result<(u64, u64), OutboxError> {
        let (p, d) = self.op(async |c| counts(&*c).await).await?;
        self.pending.store(p, Ordering::Relaxed);
        self.dead.store(d, Ordering::Relaxed);
        Ok((p, d))
    }

    /// Records outcomes, as the lease holder only.
    pub(crate) async fn complete_many(
        &self,
        done: &[(Job, Completion)],
    ) -> Result<(), OutboxError> {
        let now = WallTime::now().as_us();
        let mut delivered: Vec<&str> = Vec::new();
        let (mut retry_ids, mut retry_jobs, mut retry_at) = (Vec::new(), Vec::new(), Vec::new());
        let (mut dead_ids, mut dead_jobs) = (Vec::new(), Vec::new());
        for (job, outcome) in done {
            match outcome {
                Completion::Delivered => delivered.push(job.webhook_id.as_str()),
                Completion::RetryAt(at, error) => {
                    let mut j = job.clone();
                    j.next_attempt_us = *at;
                    j.last_error = Some(error.clone());
                    retry_ids.push(job.webhook_id.as_str());
                    retry_jobs.push(serde_json::to_string(&j)?);
                    retry_at.push(*at);
                }
                Completion::Dead(error) => {
                    let mut j = job.clone();
                    j.last_error = Some(error.clone());
                    dead_ids.push(job.webhook_id.as_str());
                    dead_jobs.push(serde_json::to_string(&j)?);
                }
            }
        }
        let held = self
            .op(async |c| {
                let tx = c.transaction().await?;
                let mut held = 0;
                if !delivered.is_empty() {
                    let gone = tx
                        .query(
                            "DELETE FROM postcall_outbox WHERE webhook_id = ANY($1::text[])
                         AND claimed_by = $2 RETURNING webhook_id",
                            &[&delivered, &self.me],
                        )
                        .await?;
                    let gone: Vec<String> = gone.iter().map(|r| r.get(0)).collect();
                    held += gone.len();
                    set_hooks(&tx, &gone, DeliveryState::Delivered, now).await?;
                }
                if !retry_ids.is_empty() {
                    let n = tx
                        .query(
                            "UPDATE postcall_outbox o
                         SET job = u.job, due_us = u.at, claimed_by = NULL, lease_until_us = NULL
                         FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(id, job, at)
                         WHERE o.webhook_id = u.id AND o.claimed_by = $4
                         RETURNING o.webhook_id",
                            &[&retry_ids, &retry_jobs, &retry_at, &self.me],
                        )
                        .await?;
                    held += n.len();
                }
                if !dead_ids.is_empty() {
                    let gone = tx
                        .query(
                            "WITH g AS (DELETE FROM postcall_outbox
                                    WHERE webhook_id = ANY($1::text[]) AND claimed_by = $3
                                    RETURNING webhook_id, created_us)
                         INSERT INTO postcall_dead (webhook_id, created_us, job)
                         SELECT g.webhook_id, g.created_us, u.job
                         FROM g JOIN unnest($1::text[], $2::text[]) AS u(id, job)
                              ON u.id = g.webhook_id
                         ON CONFLICT (webhook_id) DO UPDATE SET job = EXCLUDED.job
                         RETURNING webhook_id",
                            &[&dead_ids, &dead_jobs, &self.me],
                        )
                        .await?;
                    let gone: Vec<String> = gone.iter().map(|r| r.get(0)).collect();
                    held += gone.len();
                    set_hooks(&tx, &gone, DeliveryState::Dead, now).await?;
                }
                tx.commit().await?;
                Ok(held)
            })
            .await?;
        let lost = done.len().saturating_sub(held);
        if lost > 0 {
            self.counters
                .lost_completions
                .fetch_add(lost as u64, Ordering::Relaxed);
            tracing::warn!(
                jobs = lost,
                "outcomes not recorded: the lease had run out and another instance holds the deliveries"
            );
        }
        Ok(())
    }

    /// Dead letters, oldest first.
    pub(crate) async fn dead(&self) -> Result<Vec<Job>, OutboxError> {
        self.op(async |c| {
            let rows = c
                .query(
                    "SELECT job FROM postcall_dead ORDER BY created_us, webhook_id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(serde_json::from_str(r.get::<_, &str>(0))?))
                .collect()
        })
        .await
    }

    /// One dead letter.
    pub(crate) async fn dead_one(&self, id: &str) -> Result<Job, OutboxError> {
        self.op(async |c| {
            let row = c
                .query_opt(
                    "SELECT job FROM postcall_dead WHERE webhook_id = $1",
                    &[&id],
                )
                .await?
                .ok_or_else(|| OutboxError::NotFound(id.into()))?;
            Ok(serde_json::from_str(row.get::<_, &str>(0))?)
        })
        .await
    }

    /// Moves a dead letter back to pending, due at `now` with a fresh attempt budget.
    pub(crate) async fn resend(&self, id: &str, now: i64) -> Result<Job, OutboxError> {
        self.op(async |c| {
            let tx = c.transaction().await?;
            let row = tx
                .query_opt(
                    "DELETE FROM postcall_dead WHERE webhook_id = $1 RETURNING job",
                    &[&id],
                )
                .await?
                .ok_or_else(|| OutboxError::NotFound(id.into()))?;
            let mut job: Job = serde_json::from_str(row.get::<_, &str>(0))?;
            job.attempts = 0;
            job.next_attempt_us = now;
            insert_again(&tx, &job).await?;
            set_hooks(&tx, &[id.to_owned()], DeliveryState::Pending, now).await?;
            tx.commit().await?;
            Ok(job)
        })
        .await
    }

    /// Deletes one dead letter, or all.
    pub(crate) async fn purge(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        self.op(async |c| {
            let tx = c.transaction().await?;
            let rows = match id {
                Some(id) => {
                    tx.query(
                        "DELETE FROM postcall_dead WHERE webhook_id = $1 RETURNING webhook_id",
                        &[&id],
                    )
                    .await?
                }
                None => {
                    tx.query("DELETE FROM postcall_dead RETURNING webhook_id", &[])
                        .await?
                }
            };
            if let (Some(id), true) = (id, rows.is_empty()) {
                return Err(OutboxError::NotFound(id.into()));
            }
            let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            set_hooks(&tx, &ids, DeliveryState::Purged, WallTime::now().as_us()).await?;
            tx.commit().await?;
            Ok(ids.len())
        })
        .await
    }

    /// A journal entry with the state of each delivery.
    pub(crate) async fn journal_get(&self, id: &str) -> Result<Option<JournalRecord>, OutboxError> {
        self.op(async |c| {
            let Some(row) = c
                .query_opt(
                    "SELECT entry FROM postcall_journal WHERE session_id = $1",
                    &[&id],
                )
                .await?
            else {
                return Ok(None);
            };
            let entry: JournalEntry = serde_json::from_str(row.get::<_, &str>(0))?;
            let ids: Vec<&str> = entry
                .deliveries
                .iter()
                .map(|d| d.webhook_id.as_str())
                .collect();
            let rows = c
                .query(
                    "SELECT d.id,
                            EXISTS (SELECT 1 FROM postcall_outbox o WHERE o.webhook_id = d.id),
                            EXISTS (SELECT 1 FROM postcall_dead x WHERE x.webhook_id = d.id),
                            h.state, h.at_us
                     FROM unnest($1::text[]) AS d(id)
                     LEFT JOIN postcall_hooks h ON h.webhook_id = d.id",
                    &[&ids],
                )
                .await?;
            let mut found: BTreeMap<String, (DeliveryState, Option<i64>)> = BTreeMap::new();
            for r in &rows {
                let state: Option<i16> = r.get(3);
                let at: Option<i64> = r.get(4);
                let hook = state
                    .zip(at)
                    .map(|(s, at)| (DeliveryState::from_code(s as u8), at));
                found.insert(r.get(0), state_of(r.get(1), r.get(2), hook));
            }
            let deliveries = entry
                .deliveries
                .iter()
                .map(|d| {
                    let (state, at_us) = found
                        .get(&d.webhook_id)
                        .copied()
                        .unwrap_or((DeliveryState::Unknown, None));
                    DeliveryStatus {
                        webhook_id: d.webhook_id.clone(),
                        trigger_id: d.trigger_id.clone(),
                        state,
                        at_us,
                    }
                })
                .collect();
            Ok(Some(JournalRecord { entry, deliveries }))
        })
        .await
    }

    /// One page of journal entries, oldest first.
    pub(crate) async fn journal_list(&self, f: &ListFilter) -> Result<Page, OutboxError> {
        let limit = i64::try_from(f.limit.max(1)).unwrap_or(i64::MAX);
        let (after_at, after_id) = match &f.after {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        self.op(async |c| {
            let rows = c
                .query(
                    "SELECT start_us, session_id, entry FROM postcall_journal
                     WHERE ($1::text IS NULL OR tenant = $1)
                       AND ($2::int8 IS NULL OR start_us >= $2)
                       AND ($3::int8 IS NULL OR start_us < $3)
                       AND ($4::int8 IS NULL OR (start_us, session_id) > ($4, $5::text))
                     ORDER BY start_us, session_id LIMIT $6",
                    &[
                        &f.tenant,
                        &f.from_us,
                        &f.to_us,
                        &after_at,
                        &after_id,
                        &(limit + 1),
                    ],
                )
                .await?;
            let mut page = Page::default();
            for r in rows.iter().take(f.limit.max(1)) {
                page.entries
                    .push(serde_json::from_str(r.get::<_, &str>(2))?);
                page.next = Some((r.get(0), r.get(1)));
            }
            if rows.len() <= f.limit.max(1) {
                page.next = None;
            }
            Ok(page)
        })
        .await
    }

    /// The `n` most recent journal entries of `tenant` (by session start), newest first.
    pub(crate) async fn journal_latest(
        &self,
        tenant: &str,
        n: usize,
    ) -> Result<Vec<JournalEntry>, OutboxError> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.op(async |c| {
            let rows = c
                .query(
                    "SELECT entry FROM postcall_journal WHERE tenant = $1
                     ORDER BY start_us DESC, session_id DESC LIMIT $2",
                    &[&tenant, &limit],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(serde_json::from_str(r.get::<_, &str>(0))?))
                .collect()
        })
        .await
    }

    /// Every console-managed trigger: its id and the stored document (the console's
    /// `StoredTrigger` as JSON), by id. One statement (one transaction).
    pub async fn console_triggers(&self) -> Result<Vec<(String, String)>, OutboxError> {
        self.op(async |c| {
            let rows = c
                .query(
                    "SELECT id, stored FROM postcall_console_triggers ORDER BY id COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .await
    }

    /// Creates or replaces one console-managed trigger (one statement).
    pub async fn console_put(
        &self,
        id: &str,
        tenant: &str,
        updated_us: i64,
        stored: &str,
    ) -> Result<(), OutboxError> {
        self.op(async |c| {
            c.execute(
                "INSERT INTO postcall_console_triggers (id, tenant, updated_us, stored)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant,
                     updated_us = EXCLUDED.updated_us, stored = EXCLUDED.stored",
                &[&id, &tenant, &updated_us, &stored],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Removes one console-managed trigger; whether it existed.
    pub async fn console_delete(&self, id: &str) -> Result<bool, OutboxError> {
        self.op(async |c| {
            let n = c
                .execute(
                    "DELETE FROM postcall_console_triggers WHERE id = $1",
                    &[&id],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Removes one batch of entries past the retention, then the oldest over the size cap.
    pub(crate) async fn journal_prune(
        &self,
        now_us: i64,
        policy: &JournalPolicy,
    ) -> Result<Pruned, OutboxError> {
        let batch = i64::try_from(policy.batch.max(1)).unwrap_or(i64::MAX);
        let cutoff = now_us.saturating_sub(policy.retention_us);
        let max = i64::try_from(policy.max_bytes).unwrap_or(i64::MAX);
        self.op(async |c| {
            let tx = c.transaction().await?;
            let old = tx
                .query(
                    "DELETE FROM postcall_journal WHERE session_id IN (
                         SELECT session_id FROM postcall_journal WHERE start_us < $1
                         ORDER BY start_us, session_id LIMIT $2)
                     RETURNING session_id",
                    &[&cutoff, &batch],
                )
                .await?;
            let mut gone: Vec<String> = old.iter().map(|r| r.get(0)).collect();
            let by_age = gone.len() as u64;
            let left = batch - by_age as i64;
            let mut by_size = 0;
            if left > 0 {
                // The oldest entries while the bytes kept before each exceed the cap.
                let sized = tx
                    .query(
                        "WITH t AS (SELECT coalesce(sum(bytes), 0)::int8 AS total
                                    FROM postcall_journal),
                              r AS (SELECT session_id,
                                           (sum(bytes) OVER (ORDER BY start_us, session_id))::int8
                                             - bytes AS before
                                    FROM postcall_journal)
                         DELETE FROM postcall_journal WHERE session_id IN (
                             SELECT r.session_id FROM r, t
                             WHERE t.total - r.before > $1::int8
                             ORDER BY r.before LIMIT $2::int8)
                         RETURNING session_id",
                        &[&max, &left],
                    )
                    .await?;
                by_size = sized.len() as u64;
                gone.extend(sized.iter().map(|r| r.get::<_, String>(0)));
            }
            if !gone.is_empty() {
                tx.execute(
                    "DELETE FROM postcall_hooks WHERE session_id = ANY($1::text[])",
                    &[&gone],
                )
                .await?;
            }
            let stats = tx
                .query_one(
                    "SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM postcall_journal",
                    &[],
                )
                .await?;
            tx.commit().await?;
            Ok(Pruned {
                by_age,
                by_size,
                more: by_age + by_size >= batch as u64,
                entries: u64::try_from(stats.get::<_, i64>(0)).unwrap_or(0),
                bytes: u64::try_from(stats.get::<_, i64>(1)).unwrap_or(0),
            })
        })
        .await
    }

    /// Builds journal entries' deliveries again through `set` and enqueues them (one
    /// transaction), as the embedded journal does ([`ResendMode`]).
    pub(crate) async fn journal_resend(
        &self,
        target: &ResendTarget,
        set: &crate::trigger::TriggerSet,
        only_trigger: Option<&str>,
        now_us: i64,
    ) -> Result<ResendReport, OutboxError> {
        let page = match target.window() {
            Some(f) => Some(self.journal_list(f).await?),
            None => None,
        };
        let (ids, next, mode) = target.resolve(page);
        let mut report = self
            .op(async |c| {
                let tx = c.transaction().await?;
                let mut report = ResendReport::default();
                for id in &ids {
                    resend_one(&tx, id, set, only_trigger, mode, now_us, &mut report).await?;
                }
                tx.commit().await?;
                Ok(report)
            })
            .await?;
        report.next = next;
        Ok(report)
    }

    /// Saves this instance's open sessions.
    pub(crate) async fn save_sessions(&self, state: &SavedState) -> Result<(), OutboxError> {
        let text = serde_json::to_string(state)?;
        self.op(async |c| {
            c.execute(
                "INSERT INTO postcall_sessions (instance, saved_us, state) VALUES ($1, $2, $3)
                 ON CONFLICT (instance) DO UPDATE
                     SET saved_us = EXCLUDED.saved_us, state = EXCLUDED.state",
                &[&self.opts.instance, &WallTime::now().as_us(), &text],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// This instance's saved sessions.
    pub(crate) async fn load_sessions(&self) -> Result<Option<SavedState>, OutboxError> {
        self.op(async |c| {
            let row = c
                .query_opt(
                    "SELECT state FROM postcall_sessions WHERE instance = $1",
                    &[&self.opts.instance],
                )
                .await?;
            match row {
                Some(r) => Ok(Some(serde_json::from_str(r.get::<_, &str>(0))?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Removes this instance's saved sessions.
    pub(crate) async fn remove_sessions(&self) -> Result<(), OutboxError> {
        self.op(async |c| {
            c.execute(
                "DELETE FROM postcall_sessions WHERE instance = $1",
                &[&self.opts.instance],
            )
            .await?;
            Ok(())
        })
        .await
    }
}

/// Host(s), port(s) and database of a configuration, for the log.
fn describe(cfg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{} port {} database {}",
        hosts.join(","),
        ports.join(","),
        cfg.get_dbname().unwrap_or("(default)")
    )
}

async fn counts(c: &impl GenericClient) -> Result<(u64, u64), OutboxError> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM postcall_outbox), (SELECT count(*) FROM postcall_dead)",
            &[],
        )
        .await?;
    Ok((
        u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
    ))
}

/// Records the state of deliveries the journal knows (others are left alone).
async fn set_hooks(
    tx: &impl GenericClient,
    ids: &[String],
    state: DeliveryState,
    at_us: i64,
) -> Result<(), OutboxError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE postcall_hooks SET state = $2, at_us = $3 WHERE webhook_id = ANY($1::text[])",
        &[&ids, &i16::from(state.code()), &at_us],
    )
    .await?;
    Ok(())
}

/// Writes `job` as pending and unclaimed (a re-send), replacing any pending copy.
async fn insert_again(tx: &impl GenericClient, job: &Job) -> Result<(), OutboxError> {
    let body = serde_json::to_string(job)?;
    tx.execute(
        "INSERT INTO postcall_outbox (webhook_id, lane, due_us, created_us, copy, job)
         VALUES ($1, $2, $3, $4, 2, $5)
         ON CONFLICT (webhook_id) DO NOTHING",
        &[
            &job.webhook_id,
            &job.endpoint.lane(),
            &job.next_attempt_us,
            &job.created_us,
            &body,
        ],
    )
    .await?;
    Ok(())
}

/// Writes (upserts) one journal entry and its deliveries' hooks; which copy is kept is
/// [`CopyKind::replaces`], and the deliveries of both copies are kept.
async fn put_entry(tx: &impl GenericClient, e: &Encoded, now_us: i64) -> Result<(), OutboxError> {
    let (tenant, start_us, bytes) = e.parts();
    let text = std::str::from_utf8(bytes)
        .map_err(|err| OutboxError::Store(format!("journal entry not UTF-8: {err}")))?;
    let copy = copy_code(e.copy());
    let inserted = tx
        .execute(
            "INSERT INTO postcall_journal (session_id, tenant, start_us, copy, bytes, entry)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
            &[
                &e.id(),
                &tenant,
                &start_us,
                &copy,
                &(bytes.len() as i64),
                &text,
            ],
        )
        .await?;
    if inserted == 0 {
        let old = tx
            .query_one(
                "SELECT copy, entry FROM postcall_journal WHERE session_id = $1 FOR UPDATE",
                &[&e.id()],
            )
            .await?;
        if !e.copy().replaces(copy_of(old.get(0))) {
            return Ok(());
        }
        let mut new: JournalEntry = serde_json::from_slice(bytes)?;
        if let Ok(old) = serde_json::from_str::<JournalEntry>(old.get::<_, &str>(1)) {
            new.deliveries.extend(old.deliveries);
            new.deliveries.sort();
            new.deliveries.dedup();
        }
        let merged = serde_json::to_string(&new)?;
        tx.execute(
            "UPDATE postcall_journal SET tenant = $2, start_us = $3, copy = $4, bytes = $5,
                 entry = $6 WHERE session_id = $1",
            &[
                &e.id(),
                &tenant,
                &start_us,
                &copy,
                &(merged.len() as i64),
                &merged,
            ],
        )
        .await?;
    }
    let ids: Vec<&str> = e
        .deliveries()
        .iter()
        .map(|d| d.webhook_id.as_str())
        .collect();
    if !ids.is_empty() {
        tx.execute(
            "INSERT INTO postcall_hooks (webhook_id, session_id, state, at_us)
             SELECT u.id, $2, 0, $3 FROM unnest($1::text[]) AS u(id) ORDER BY u.id
             ON CONFLICT (webhook_id) DO NOTHING",
            &[&ids, &e.id(), &now_us],
        )
        .await?;
    }
    Ok(())
}

async fn resend_one(
    tx: &impl GenericClient,
    id: &str,
    set: &crate::trigger::TriggerSet,
    only_trigger: Option<&str>,
    mode: ResendMode,
    now_us: i64,
    report: &mut ResendReport,
) -> Result<(), OutboxError> {
    let row = tx
        .query_opt(
            "SELECT entry FROM postcall_journal WHERE session_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or_else(|| OutboxError::NotFound(id.to_owned()))?;
    let entry: JournalEntry = serde_json::from_str(row.get::<_, &str>(0))?;
    let mut plan = ResendPlan::new(entry, mode, report);
    for job in plan.jobs(set, only_trigger, now_us)? {
        let pending = tx
            .query_opt(
                "SELECT 1 FROM postcall_outbox WHERE webhook_id = $1",
                &[&job.webhook_id],
            )
            .await?
            .is_some();
        if plan.leaves(&job, pending, report) {
            continue;
        }
        let dead = tx
            .execute(
                "DELETE FROM postcall_dead WHERE webhook_id = $1",
                &[&job.webhook_id],
            )
            .await?
            > 0;
        insert_again(tx, &job).await?;
        tx.execute(
            "INSERT INTO postcall_hooks (webhook_id, session_id, state, at_us)
             VALUES ($1, $2, 0, $3)
             ON CONFLICT (webhook_id) DO UPDATE SET state = 0, at_us = $3, session_id = $2",
            &[&job.webhook_id, &id, &now_us],
        )
        .await?;
        plan.queued(&job, dead, report);
    }
    if let Some(entry) = plan.changed_entry() {
        let new = serde_json::to_string(&entry)?;
        tx.execute(
            "UPDATE postcall_journal SET entry = $2, bytes = $3 WHERE session_id = $1",
            &[&id, &new, &(new.len() as i64)],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_the_embedded_journal_reads_them() {
        let hook = |s, at| Some((s, at));
        assert_eq!(
            state_of(true, false, hook(DeliveryState::Pending, 5)),
            (DeliveryState::Pending, None)
        );
        assert_eq!(
            state_of(false, true, hook(DeliveryState::Dead, 7)),
            (DeliveryState::Dead, Some(7))
        );
        assert_eq!(
            state_of(false, false, hook(DeliveryState::Delivered, 9)),
            (DeliveryState::Delivered, Some(9))
        );
        assert_eq!(
            state_of(false, false, hook(DeliveryState::Pending, 9)),
            (DeliveryState::Unknown, None)
        );
        assert_eq!(state_of(false, false, None), (DeliveryState::Unknown, None));
        for c in [CopyKind::Backfilled, CopyKind::Gapped, CopyKind::Complete] {
            assert_eq!(copy_of(copy_code(c)), c);
        }
    }

    #[test]
    fn the_description_has_no_password() {
        let cfg = tokio_postgres::Config::from_str("postgres://u:hunter22@db.example:5433/calls")
            .unwrap();
        let d = describe(&cfg);
        assert_eq!(d, "db.example port 5433 database calls");
        assert!(!d.contains("hunter22"));
    }
}

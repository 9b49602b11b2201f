//! The CDR journal: every session CDR postcall builds (matched by a trigger or not), kept in the
//! outbox's redb file for a retention period and a size cap, with the deliveries it caused.
//!
//! It lives in the same database as the outbox and is served by the outbox's owner thread
//! ([`super::Outbox::call`]), so a closed session's journal entry and its delivery jobs are
//! written in **one transaction** ([`Store::enqueue_journaled`]): after a crash either both
//! are there or neither is.
//!
//! Tables (keys are bytes so ranges scan in order):
//! - `journal`: session id → entry ([`JournalEntry`] as JSON);
//! - `journal_by_time`: `start_us(8, big-endian, sign-flipped) id` → (): list by time window
//!   and prune by age are range scans from the oldest;
//! - `journal_by_tenant`: `tenant \0 start_us(8) id` → (): list by tenant and window;
//! - `journal_hooks`: webhook id → `state(1) at_us(8) session id`: the final state of each
//!   delivery the journal knows (delivered, dead, purged), recorded in the outbox's own
//!   transactions, so `cdrs show` never guesses;
//! - `journal_stats`: `bytes`, `entries`: what the size cap is checked against.
//!
//! The API the rest of postcall uses is small: [`Journal::put`] (an upsert by session id: a
//! session built again — a complete copy replacing a gapped one — replaces its entry and keeps
//! the deliveries of both), [`Journal::get`], [`Journal::list`] and [`Journal::prune`].
//! Pruning runs in bounded batches from a background task; the ingest path never prunes.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::job::Job;
use super::outbox::{Outbox, OutboxError, Store};
use crate::clock::WallTime;
use crate::session::ClosedSession;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("journal");
const BY_TIME: TableDefinition<&[u8], ()> = TableDefinition::new("journal_by_time");
const BY_TENANT: TableDefinition<&[u8], ()> = TableDefinition::new("journal_by_tenant");
pub(crate) const HOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("journal_hooks");
const STATS: TableDefinition<&str, u64> = TableDefinition::new("journal_stats");

/// One delivery a session caused: the trigger that matched and the stable `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeliveryRef {
    /// The trigger (first: deliveries sort by trigger).
    pub trigger_id: String,
    /// `webhook-id` ([`super::webhook_id`] of session and trigger).
    pub webhook_id: String,
}

/// A journal entry: the closed session (CDR, tenant, users, start and end) and its deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The session as delivered (enriched).
    pub session: ClosedSession,
    /// Deliveries it caused, by webhook id.
    pub deliveries: Vec<DeliveryRef>,
}

impl DeliveryRef {
    /// The deliveries of `jobs`, sorted, each once.
    fn of(jobs: &[Job]) -> Vec<Self> {
        let mut deliveries: Vec<Self> = jobs
            .iter()
            .map(|j| Self {
                webhook_id: j.webhook_id.clone(),
                trigger_id: j.trigger_id.clone(),
            })
            .collect();
        deliveries.sort();
        deliveries.dedup();
        deliveries
    }
}

impl JournalEntry {
    /// The entry of `session` with the deliveries of `jobs`.
    pub fn new(session: ClosedSession, jobs: &[Job]) -> Self {
        let deliveries = DeliveryRef::of(jobs);
        Self {
            session,
            deliveries,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.session.cdr.id
    }
}

/// An entry encoded for the store (serialised off the owner thread).
#[derive(Debug, Clone)]
pub struct Encoded {
    id: String,
    tenant: Option<String>,
    start_us: i64,
    deliveries: Vec<DeliveryRef>,
    bytes: Vec<u8>,
    /// Built (partly) from Kazoo's stored CDRs: it never replaces an entry already kept
    /// (which was built from more: live events).
    backfilled: bool,
    /// Built from a stream with a gap (or from stored CDRs): see [`super::backend::CopyKind`].
    gapped: bool,
}

impl Encoded {
    /// The entry of `session` with the deliveries of `jobs`, serialised without copying the
    /// session (what the sidecar's sink writes with the jobs).
    ///
    /// # Errors
    /// The entry cannot be written as JSON.
    pub fn of(session: &ClosedSession, jobs: &[Job]) -> Result<Self, OutboxError> {
        #[derive(Serialize)]
        struct EntryRef<'a> {
            session: &'a ClosedSession,
            deliveries: &'a [DeliveryRef],
        }
        let deliveries = DeliveryRef::of(jobs);
        let bytes = serde_json::to_vec(&EntryRef {
            session,
            deliveries: &deliveries,
        })?;
        Ok(Self {
            id: session.cdr.id.clone(),
            tenant: session.tenant_id.clone(),
            start_us: session.start_us,
            deliveries,
            bytes,
            backfilled: session.cdr.tags.contains_key("backfilled"),
            gapped: is_gapped(session),
        })
    }

    /// Serialises `entry`.
    ///
    /// # Errors
    /// The entry cannot be written as JSON.
    pub fn new(entry: &JournalEntry) -> Result<Self, OutboxError> {
        Ok(Self {
            id: entry.id().to_owned(),
            tenant: entry.session.tenant_id.clone(),
            start_us: entry.session.start_us,
            deliveries: entry.deliveries.clone(),
            bytes: serde_json::to_vec(entry)?,
            backfilled: entry.session.cdr.tags.contains_key("backfilled"),
            gapped: is_gapped(&entry.session),
        })
    }

    /// The session id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Tenant, start and the stored JSON (for a backend that keeps its own indexes).
    pub(crate) fn parts(&self) -> (Option<&str>, i64, &[u8]) {
        (self.tenant.as_deref(), self.start_us, &self.bytes)
    }

    /// The deliveries it names.
    pub(crate) fn deliveries(&self) -> &[DeliveryRef] {
        &self.deliveries
    }

    /// Which kind of copy of its session this entry is.
    pub(crate) fn copy(&self) -> super::backend::CopyKind {
        super::backend::CopyKind::of(self.backfilled, self.gapped)
    }
}

/// Built from a stream with a gap, or (partly) from Kazoo's stored CDRs.
fn is_gapped(session: &ClosedSession) -> bool {
    let tags = &session.cdr.tags;
    tags.contains_key("gap") || tags.contains_key("backfilled")
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// In the outbox, waiting for an attempt or a retry.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Failed for good: a dead letter (`deliveries resend` sends it again).
    Dead,
    /// It was a dead letter and was purged.
    Purged,
    /// Not known to the outbox (written before the journal recorded outcomes).
    Unknown,
}

impl DeliveryState {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Delivered => 1,
            Self::Dead => 2,
            Self::Purged => 3,
            Self::Unknown => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Pending,
            1 => Self::Delivered,
            2 => Self::Dead,
            3 => Self::Purged,
            _ => Self::Unknown,
        }
    }

    /// The name shown by `cdrs show` and the admin endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Purged => "purged",
            Self::Unknown => "unknown",
        }
    }
}

/// A delivery with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// `webhook-id`.
    pub webhook_id: String,
    /// The trigger.
    pub trigger_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// When it reached that state (unix µs; absent while pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_us: Option<i64>,
}

/// An entry with the state of each delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRecord {
    /// The entry.
    pub entry: JournalEntry,
    /// Its deliveries, in the entry's order.
    pub deliveries: Vec<DeliveryStatus>,
}

/// Which entries [`Journal::list`] returns: sessions that started in `[from_us, to_us)`, of
/// `tenant` if given, oldest first, at most `limit`, after `after` (the `next` of the previous
/// page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Tenant (Kazoo account id).
    pub tenant: Option<String>,
    /// Start of the window (unix µs, inclusive).
    pub from_us: Option<i64>,
    /// End of the window (unix µs, exclusive).
    pub to_us: Option<i64>,
    /// Entries per page (at least 1).
    pub limit: usize,
    /// Continue after this entry (start time and id).
    pub after: Option<(i64, String)>,
}

/// One page of [`Journal::list`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Entries, oldest first.
    pub entries: Vec<JournalEntry>,
    /// Where the next page starts, when there may be more.
    pub next: Option<(i64, String)>,
}

/// How long and how much the journal keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalPolicy {
    /// Entries whose session started longer ago than this are pruned (µs).
    pub retention_us: i64,
    /// The oldest entries are pruned while the entries' stored bytes exceed this.
    pub max_bytes: u64,
    /// Entries removed per prune transaction.
    pub batch: usize,
}

impl Default for JournalPolicy {
    fn default() -> Self {
        Self {
            retention_us: 7 * 86_400 * 1_000_000,
            max_bytes: 1024 * 1024 * 1024,
            batch: 1000,
        }
    }
}

/// What one [`Journal::prune`] call removed, and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries older than the retention.
    pub by_age: u64,
    /// Oldest entries removed for the size cap.
    pub by_size: u64,
    /// The batch was full: call again.
    pub more: bool,
    /// Entries left.
    pub entries: u64,
    /// Stored bytes left.
    pub bytes: u64,
}

/// Counters of the journal (metrics).
#[derive(Debug, Default)]
pub struct JournalCounters {
    /// Entries pruned for age.
    pub pruned_age: AtomicU64,
    /// Entries pruned for size.
    pub pruned_size: AtomicU64,
    /// Entries in the journal (after the last prune).
    pub entries: AtomicU64,
    /// Stored bytes of the entries (after the last prune).
    pub bytes: AtomicU64,
    /// Prune runs that failed (storage error; retried at the next interval).
    pub prune_errors: AtomicU64,
}

/// Time key: big-endian with the sign bit flipped, so negative times sort first.
fn ts(us: i64) -> [u8; 8] {
    (us as u64 ^ (1 << 63)).to_be_bytes()
}

fn from_ts(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

fn time_key(start_us: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&ts(start_us));
    k.extend_from_slice(id.as_bytes());
    k
}

fn tenant_prefix(tenant: Option<&str>) -> Vec<u8> {
    let mut k = tenant.unwrap_or("").as_bytes().to_vec();
    k.push(0);
    k
}

fn tenant_key(tenant: Option<&str>, start_us: i64, id: &str) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(&time_key(start_us, id));
    k
}

fn hook_value(state: DeliveryState, at_us: i64, session: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + session.len());
    v.push(state.code());
    v.extend_from_slice(&at_us.to_be_bytes());
    v.extend_from_slice(session.as_bytes());
    v
}

fn parse_hook(v: &[u8]) -> Option<(DeliveryState, i64, &str)> {
    let state = DeliveryState::from_code(*v.first()?);
    let at = i64::from_be_bytes(v.get(1..9)?.try_into().ok()?);
    let session = std::str::from_utf8(v.get(9..)?).ok()?;
    Some((state, at, session))
}

/// What removing an entry needs to know, read back from its JSON.
#[derive(Deserialize)]
struct StoredKeys {
    session: SessionKeys,
    deliveries: Vec<DeliveryRef>,
}

#[derive(Deserialize)]
struct SessionKeys {
    tenant_id: Option<String>,
    start_us: i64,
}

/// Creates the journal's tables (in the outbox's opening transaction).
pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), OutboxError> {
    tx.open_table(ENTRIES)?;
    tx.open_table(BY_TIME)?;
    tx.open_table(BY_TENANT)?;
    tx.open_table(HOOKS)?;
    tx.open_table(STATS)?;
    Ok(())
}

/// Records the final state of deliveries the journal knows (others are left alone), in the
/// outbox's transaction that records the outcome.
pub(crate) fn record_states(
    tx: &WriteTransaction,
    states: &[(&str, DeliveryState)],
    now_us: i64,
) -> Result<(), OutboxError> {
    let mut hooks = tx.open_table(HOOKS)?;
    for (id, state) in states {
        let session = match hooks.get(*id)? {
            Some(v) => parse_hook(v.value()).map(|(_, _, s)| s.to_owned()),
            None => None,
        };
        if let Some(session) = session {
            hooks.insert(*id, hook_value(*state, now_us, &session).as_slice())?;
        }
    }
    Ok(())
}

fn add_stat(tx: &WriteTransaction, bytes: i64, entries: i64) -> Result<(), OutboxError> {
    let mut stats = tx.open_table(STATS)?;
    for (name, delta) in [("bytes", bytes), ("entries", entries)] {
        let old = stats.get(name)?.map_or(0, |v| v.value());
        stats.insert(name, old.saturating_add_signed(delta))?;
    }
    Ok(())
}

fn stats(tx: &impl TablesRead) -> Result<(u64, u64), OutboxError> {
    tx.stat("entries").and_then(|e| Ok((e, tx.stat("bytes")?)))
}

/// Reading the stats from a read or a write transaction.
trait TablesRead {
    fn stat(&self, name: &str) -> Result<u64, OutboxError>;
}

impl TablesRead for WriteTransaction {
    fn stat(&self, name: &str) -> Result<u64, OutboxError> {
        Ok(self.open_table(STATS)?.get(name)?.map_or(0, |v| v.value()))
    }
}

impl TablesRead for redb::ReadTransaction {
    fn stat(&self, name: &str) -> Result<u64, OutboxError> {
        Ok(self.open_table(STATS)?.get(name)?.map_or(0, |v| v.value()))
    }
}

/// Removes entry `id` with its index keys and hooks; returns its stored bytes (0 if absent).
fn remove_entry(tx: &WriteTransaction, id: &str, hooks_too: bool) -> Result<u64, OutboxError> {
    let old = match tx.open_table(ENTRIES)?.remove(id)? {
        Some(v) => v.value().to_vec(),
        None => return Ok(0),
    };
    let size = old.len() as u64;
    add_stat(tx, -(size as i64), -1)?;
    let Ok(keys) = serde_json::from_slice::<StoredKeys>(&old) else {
        // Unreadable (written by another version?): it goes, and so do the index keys its
        // caller came from; it must never block ingest or pruning.
        tracing::warn!(session = %id, "unreadable journal entry removed");
        return Ok(size);
    };
    let tenant = keys.session.tenant_id.as_deref();
    tx.open_table(BY_TIME)?
        .remove(time_key(keys.session.start_us, id).as_slice())?;
    tx.open_table(BY_TENANT)?
        .remove(tenant_key(tenant, keys.session.start_us, id).as_slice())?;
    if hooks_too {
        let mut hooks = tx.open_table(HOOKS)?;
        for d in &keys.deliveries {
            hooks.remove(d.webhook_id.as_str())?;
        }
    }
    Ok(size)
}

/// Writes (upserts) entries in `tx`. An entry whose session id is already there replaces it;
/// the deliveries of both are kept. Every delivery gets a hook (state pending) unless it has
/// one. Each table is opened once (replacements, which are rare, first).
pub(crate) fn put_in(
    tx: &WriteTransaction,
    entries: &[Encoded],
    now_us: i64,
) -> Result<(), OutboxError> {
    let existing: Vec<Option<Vec<u8>>> = {
        let t = tx.open_table(ENTRIES)?;
        entries
            .iter()
            .map(|e| Ok(t.get(e.id.as_str())?.map(|v| v.value().to_vec())))
            .collect::<Result<_, OutboxError>>()?
    };
    // A copy built from stored CDRs never replaces what is kept (built from live events).
    let (entries, existing): (Vec<&Encoded>, Vec<Option<Vec<u8>>>) = entries
        .iter()
        .zip(existing)
        .filter(|(e, old)| !(e.backfilled && old.is_some()))
        .unzip();
    let mut merged: Vec<Option<Vec<u8>>> = Vec::with_capacity(entries.len());
    for (e, old) in entries.iter().zip(existing) {
        let Some(old) = old else {
            merged.push(None);
            continue;
        };
        let old_deliveries = serde_json::from_slice::<StoredKeys>(&old)
            .map(|k| k.deliveries)
            .unwrap_or_default();
        let missing: Vec<DeliveryRef> = old_deliveries
            .into_iter()
            .filter(|d| !e.deliveries.contains(d))
            .collect();
        remove_entry(tx, &e.id, false)?;
        if missing.is_empty() {
            merged.push(None);
        } else {
            let mut new: JournalEntry = serde_json::from_slice(&e.bytes)?;
            new.deliveries.extend(missing);
            new.deliveries.sort();
            new.deliveries.dedup();
            merged.push(Some(serde_json::to_vec(&new)?));
        }
    }
    let mut table = tx.open_table(ENTRIES)?;
    let mut by_time = tx.open_table(BY_TIME)?;
    let mut by_tenant = tx.open_table(BY_TENANT)?;
    let mut hooks = tx.open_table(HOOKS)?;
    let mut added = 0i64;
    for (e, m) in entries.iter().zip(&merged) {
        let bytes = m.as_deref().unwrap_or(&e.bytes);
        table.insert(e.id.as_str(), bytes)?;
        by_time.insert(time_key(e.start_us, &e.id).as_slice(), ())?;
        by_tenant.insert(
            tenant_key(e.tenant.as_deref(), e.start_us, &e.id).as_slice(),
            (),
        )?;
        for d in &e.deliveries {
            if hooks.get(d.webhook_id.as_str())?.is_none() {
                let v = hook_value(DeliveryState::Pending, now_us, &e.id);
                hooks.insert(d.webhook_id.as_str(), v.as_slice())?;
            }
        }
        added += bytes.len() as i64;
    }
    drop((table, by_time, by_tenant, hooks));
    add_stat(tx, added, entries.len() as i64)
}

fn states_of(
    tx: &redb::ReadTransaction,
    deliveries: &[DeliveryRef],
) -> Result<Vec<DeliveryStatus>, OutboxError> {
    let pending = tx.open_table(super::outbox::PENDING)?;
    let dead = tx.open_table(super::outbox::DEAD)?;
    let hooks = tx.open_table(HOOKS)?;
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let id = d.webhook_id.as_str();
        let hook = hooks
            .get(id)?
            .and_then(|v| parse_hook(v.value()).map(|(s, at, _)| (s, at)));
        let (state, at_us) = if pending.get(id)?.is_some() {
            (DeliveryState::Pending, None)
        } else if dead.get(id)?.is_some() {
            (DeliveryState::Dead, hook.map(|h| h.1))
        } else {
            match hook {
                Some((s @ (DeliveryState::Delivered | DeliveryState::Purged), at)) => (s, Some(at)),
                _ => (DeliveryState::Unknown, None),
            }
        };
        out.push(DeliveryStatus {
            webhook_id: d.webhook_id.clone(),
            trigger_id: d.trigger_id.clone(),
            state,
            at_us,
        });
    }
    Ok(out)
}

/// The first key after every key starting with `prefix` (a tenant prefix, which ends in 0).
fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl Store {
    /// Writes jobs and journal entries in one transaction (durable on return): the deliveries
    /// of a batch of closed sessions and the sessions' journal entries. A job already pending,
    /// or whose webhook id the journal already knows (delivered, dead or purged), is not
    /// written again. Returns how many jobs were written.
    ///
    /// # Errors
    /// As [`Store::enqueue`]; nothing was written.
    pub fn enqueue_journaled(
        &self,
        jobs: &[Job],
        entries: &[Encoded],
    ) -> Result<usize, OutboxError> {
        self.enqueue_with(jobs, entries).map(|w| w.len())
    }

    /// [`Journal::put`] on the owner thread.
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub fn journal_put(&self, entries: &[Encoded]) -> Result<(), OutboxError> {
        self.write(|tx| put_in(tx, entries, WallTime::now().as_us()))
    }

    /// [`Journal::get`] on the owner thread.
    ///
    /// # Errors
    /// A storage error, or an entry that cannot be read.
    pub fn journal_get(&self, id: &str) -> Result<Option<JournalRecord>, OutboxError> {
        self.read(|tx| {
            let Some(v) = tx.open_table(ENTRIES)?.get(id)?.map(|v| v.value().to_vec()) else {
                return Ok(None);
            };
            let entry: JournalEntry = serde_json::from_slice(&v)?;
            let deliveries = states_of(tx, &entry.deliveries)?;
            Ok(Some(JournalRecord { entry, deliveries }))
        })
    }

    /// [`Journal::list`] on the owner thread: a range scan of the time index (or of the
    /// tenant's part of the tenant index).
    ///
    /// # Errors
    /// A storage error, or an entry that cannot be read.
    pub fn journal_list(&self, filter: &ListFilter) -> Result<Page, OutboxError> {
        self.read(|tx| list(tx, filter))
    }

    /// The `n` most recent entries of `tenant` (by session start), newest first: a reverse
    /// scan of the tenant's part of the tenant index.
    ///
    /// # Errors
    /// A storage error, or an entry that cannot be read.
    pub fn journal_latest(&self, tenant: &str, n: usize) -> Result<Vec<JournalEntry>, OutboxError> {
        self.read(|tx| {
            let prefix = tenant_prefix(Some(tenant));
            let end = after_prefix(&prefix);
            let entries = tx.open_table(ENTRIES)?;
            let index = tx.open_table(BY_TENANT)?;
            let mut out = Vec::new();
            for k in index
                .range::<&[u8]>(prefix.as_slice()..end.as_slice())?
                .rev()
            {
                if out.len() >= n {
                    break;
                }
                let key = k?.0.value().to_vec();
                let Some(tk) = key.get(prefix.len() + 8..) else {
                    continue;
                };
                let id = String::from_utf8_lossy(tk).into_owned();
                if let Some(v) = entries.get(id.as_str())? {
                    out.push(serde_json::from_slice(v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Entries and stored bytes.
    ///
    /// # Errors
    /// A storage error.
    pub fn journal_stats(&self) -> Result<(u64, u64), OutboxError> {
        self.read(stats)
    }

    /// [`Journal::prune`] on the owner thread: one transaction removing at most
    /// `policy.batch` entries, first those older than the retention, then the oldest while the
    /// stored bytes exceed the cap.
    ///
    /// # Errors
    /// A storage error; nothing was removed.
    pub fn journal_prune(
        &self,
        now_us: i64,
        policy: &JournalPolicy,
    ) -> Result<Pruned, OutboxError> {
        self.write(|tx| prune(tx, now_us, policy))
    }

    /// Builds the deliveries of journal entries again through `set` (the running trigger
    /// set: the same matching as live delivery) and enqueues them with the same webhook ids,
    /// in one transaction. See [`ResendMode`] for what happens to a delivery that exists.
    ///
    /// # Errors
    /// No such entry (for [`ResendTarget::One`]), or a storage error.
    pub fn journal_resend(
        &self,
        target: &ResendTarget,
        set: &crate::trigger::TriggerSet,
        only_trigger: Option<&str>,
        now_us: i64,
    ) -> Result<ResendReport, OutboxError> {
        let page = target.window().map(|f| self.journal_list(f)).transpose()?;
        let (ids, next, mode) = target.resolve(page);
        let mut report = self.write(|tx| {
            let mut report = ResendReport::default();
            for id in &ids {
                resend_one(tx, id, set, only_trigger, mode, now_us, &mut report)?;
            }
            Ok(report)
        })?;
        report.next = next;
        Ok(report)
    }
}

/// Which journal entries to re-send.
#[derive(Debug, Clone)]
pub enum ResendTarget {
    /// One session, by id: its deliveries are sent again ([`ResendMode::Again`]).
    One(String),
    /// One page of a window ([`ResendMode::Missing`]): only deliveries that never existed are
    /// created (a trigger added later catches up; nothing is sent twice). Call again with
    /// `after` set to the report's `next` until it is `None`.
    Window(ListFilter),
}

impl ResendTarget {
    /// The window whose page must be read first, if this is one.
    #[must_use]
    pub fn window(&self) -> Option<&ListFilter> {
        match self {
            Self::One(_) => None,
            Self::Window(filter) => Some(filter),
        }
    }

    /// The entries to re-send, where the next page starts and the mode, given the page of
    /// [`ResendTarget::window`] (`None` for one session).
    #[must_use]
    pub fn resolve(&self, page: Option<Page>) -> (Vec<String>, Option<(i64, String)>, ResendMode) {
        match (self, page) {
            (Self::One(id), _) => (vec![id.clone()], None, ResendMode::Again),
            (Self::Window(_), page) => {
                let page = page.unwrap_or_default();
                let ids = page.entries.iter().map(|e| e.id().to_owned()).collect();
                (ids, page.next, ResendMode::Missing)
            }
        }
    }
}

/// What re-sending does with a delivery that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendMode {
    /// Explicit re-send of one session: a pending delivery is left as it is, a dead one goes
    /// back to pending with a fresh attempt budget, a delivered (or purged) one is sent again
    /// with the same `webhook-id` (receivers dedupe on it).
    Again,
    /// Catch-up over a window: only (session, trigger) pairs without a delivery get one.
    Missing,
}

/// What a re-send did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResendReport {
    /// Journal entries looked at.
    pub sessions: u64,
    /// Deliveries enqueued (new, or sent again).
    pub queued: u64,
    /// Dead letters moved back to pending.
    pub revived: u64,
    /// Deliveries left as they were (already pending, or existing in catch-up mode).
    pub unchanged: u64,
    /// Lanes of the jobs enqueued (to wake the engine).
    #[serde(skip)]
    pub lanes: BTreeSet<String>,
    /// Where the next page of a window starts.
    #[serde(skip)]
    pub next: Option<(i64, String)>,
}

impl ResendReport {
    /// Adds the counts of `other`.
    pub fn add(&mut self, other: &ResendReport) {
        self.sessions += other.sessions;
        self.queued += other.queued;
        self.revived += other.revived;
        self.unchanged += other.unchanged;
        self.lanes.extend(other.lanes.iter().cloned());
    }
}

/// The part of re-sending one journal entry both stores share (they do only the reads and
/// writes): the deliveries the current triggers build, which of them are left as they are,
/// the counts, and the entry's delivery list afterwards.
pub(crate) struct ResendPlan {
    entry: JournalEntry,
    mode: ResendMode,
    added: Vec<DeliveryRef>,
}

impl ResendPlan {
    /// Re-sending `entry` (counted as one session of `report`).
    pub(crate) fn new(entry: JournalEntry, mode: ResendMode, report: &mut ResendReport) -> Self {
        report.sessions += 1;
        Self {
            entry,
            mode,
            added: Vec::new(),
        }
    }

    /// The deliveries the entry's session gets through `set` now (only `only_trigger`'s when
    /// given), made at `now_us`.
    pub(crate) fn jobs(
        &self,
        set: &crate::trigger::TriggerSet,
        only_trigger: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<Job>, OutboxError> {
        let session = &self.entry.session;
        let cdr = serde_json::value::to_raw_value(&session.cdr)?;
        Ok(set
            .matches(session)
            .filter(|m| only_trigger.is_none_or(|t| m.trigger.id == t))
            .map(|m| m.job(session, &cdr, WallTime::from_us(now_us)))
            .collect())
    }

    fn knows(&self, job: &Job) -> bool {
        self.entry
            .deliveries
            .iter()
            .any(|d| d.webhook_id == job.webhook_id)
    }

    /// Whether `job` is left as it is: still `pending` in the outbox, or already a delivery of
    /// the entry when only missing ones are re-sent. Counted as unchanged.
    pub(crate) fn leaves(&self, job: &Job, pending: bool, report: &mut ResendReport) -> bool {
        let leave = pending || (self.knows(job) && self.mode == ResendMode::Missing);
        if leave {
            report.unchanged += 1;
        }
        leave
    }

    /// `job` was queued again (`was_dead`: taken from the dead letters): counted, and listed
    /// among the entry's deliveries if it is new there.
    pub(crate) fn queued(&mut self, job: &Job, was_dead: bool, report: &mut ResendReport) {
        report.lanes.insert(job.endpoint.lane());
        if was_dead {
            report.revived += 1;
        } else {
            report.queued += 1;
        }
        if !self.knows(job) && !self.added.iter().any(|d| d.webhook_id == job.webhook_id) {
            self.added.push(DeliveryRef {
                webhook_id: job.webhook_id.clone(),
                trigger_id: job.trigger_id.clone(),
            });
        }
    }

    /// The entry with its new deliveries, when it gained any (to be written back).
    pub(crate) fn changed_entry(mut self) -> Option<JournalEntry> {
        if self.added.is_empty() {
            return None;
        }
        self.entry.deliveries.append(&mut self.added);
        self.entry.deliveries.sort();
        Some(self.entry)
    }
}

fn resend_one(
    tx: &WriteTransaction,
    id: &str,
    set: &crate::trigger::TriggerSet,
    only_trigger: Option<&str>,
    mode: ResendMode,
    now_us: i64,
    report: &mut ResendReport,
) -> Result<(), OutboxError> {
    let bytes = tx
        .open_table(ENTRIES)?
        .get(id)?
        .map(|v| v.value().to_vec())
        .ok_or_else(|| OutboxError::NotFound(id.to_owned()))?;
    let entry: JournalEntry = serde_json::from_slice(&bytes)?;
    let mut plan = ResendPlan::new(entry, mode, report);
    for job in plan.jobs(set, only_trigger, now_us)? {
        let pending = tx
            .open_table(super::outbox::PENDING)?
            .get(job.webhook_id.as_str())?
            .is_some();
        if plan.leaves(&job, pending, report) {
            continue;
        }
        let dead = tx
            .open_table(super::outbox::DEAD)?
            .remove(job.webhook_id.as_str())?
            .is_some();
        super::outbox::insert_pending(tx, &job)?;
        let v = hook_value(DeliveryState::Pending, now_us, id);
        tx.open_table(HOOKS)?
            .insert(job.webhook_id.as_str(), v.as_slice())?;
        plan.queued(&job, dead, report);
    }
    if let Some(entry) = plan.changed_entry() {
        let new = serde_json::to_vec(&entry)?;
        tx.open_table(ENTRIES)?.insert(id, new.as_slice())?;
        add_stat(tx, new.len() as i64 - bytes.len() as i64, 0)?;
    }
    Ok(())
}

fn list(tx: &redb::ReadTransaction, filter: &ListFilter) -> Result<Page, OutboxError> {
    let limit = filter.limit.max(1);
    let prefix = match &filter.tenant {
        Some(t) => tenant_prefix(Some(t)),
        None => Vec::new(),
    };
    let mut start = prefix.clone();
    match &filter.after {
        Some((at, id)) => {
            start.extend_from_slice(&time_key(*at, id));
            start.push(0); // just after that key
        }
        None => start.extend_from_slice(&ts(filter.from_us.unwrap_or(i64::MIN))),
    }
    let end = match (filter.to_us, prefix.is_empty()) {
        (Some(to), _) => {
            let mut e = prefix.clone();
            e.extend_from_slice(&ts(to));
            Some(e)
        }
        (None, false) => Some(after_prefix(&prefix)),
        (None, true) => None,
    };
    let mut page = Page::default();
    if end.as_ref().is_some_and(|e| start >= *e) {
        return Ok(page);
    }
    let bounds = (
        Bound::Included(start.as_slice()),
        end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    );
    let entries = tx.open_table(ENTRIES)?;
    let index = if filter.tenant.is_some() {
        BY_TENANT
    } else {
        BY_TIME
    };
    let keys: Vec<Vec<u8>> = {
        let t = tx.open_table(index)?;
        let r = t.range::<&[u8]>(bounds)?;
        r.take(limit + 1)
            .map(|k| k.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()?
    };
    for key in keys.iter().take(limit) {
        let tk = &key[prefix.len()..];
        let Some(at) = from_ts(tk) else { continue };
        let id = String::from_utf8_lossy(&tk[8..]).into_owned();
        if let Some(v) = entries.get(id.as_str())? {
            page.entries.push(serde_json::from_slice(v.value())?);
        }
        page.next = Some((at, id));
    }
    if keys.len() <= limit {
        page.next = None;
    }
    Ok(page)
}

fn prune(
    tx: &WriteTransaction,
    now_us: i64,
    policy: &JournalPolicy,
) -> Result<Pruned, OutboxError> {
    let mut out = Pruned::default();
    let batch = policy.batch.max(1);
    let cutoff = ts(now_us.saturating_sub(policy.retention_us));
    let old: Vec<Vec<u8>> = {
        let t = tx.open_table(BY_TIME)?;
        let r = t.range(..cutoff.as_slice())?;
        r.take(batch)
            .map(|k| k.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()?
    };
    for k in &old {
        let id = String::from_utf8_lossy(&k[8..]).into_owned();
        remove_entry(tx, &id, true)?;
        // Gone already if the entry was readable; an index key without (a readable) entry
        // must go too, or the next prune would find it again.
        tx.open_table(BY_TIME)?.remove(k.as_slice())?;
        out.by_age += 1;
    }
    let mut left = batch - old.len();
    while left > 0 && tx.stat("bytes")? > policy.max_bytes {
        let first = {
            let t = tx.open_table(BY_TIME)?;
            let mut r = t.range::<&[u8]>(..)?;
            let first = r.next().transpose()?.map(|(k, _)| k.value().to_vec());
            match first {
                Some(k) => k,
                None => break,
            }
        };
        let id = String::from_utf8_lossy(&first[8..]).into_owned();
        remove_entry(tx, &id, true)?;
        // As above: the key goes whatever the entry was.
        tx.open_table(BY_TIME)?.remove(first.as_slice())?;
        out.by_size += 1;
        left -= 1;
    }
    out.more = left == 0;
    (out.entries, out.bytes) = stats(tx)?;
    Ok(out)
}

/// The journal as the rest of postcall uses it: async, through the outbox's owner thread.
#[derive(Debug, Clone)]
pub struct Journal {
    storage: super::backend::Storage,
    policy: JournalPolicy,
}

impl Journal {
    /// The journal in `outbox`'s database, kept as `policy` says.
    #[must_use]
    pub fn new(outbox: Arc<Outbox>, policy: JournalPolicy) -> Self {
        Self::in_storage(outbox.into(), policy)
    }

    /// The journal in `storage` (embedded or PostgreSQL), kept as `policy` says.
    #[must_use]
    pub fn in_storage(storage: super::backend::Storage, policy: JournalPolicy) -> Self {
        Self { storage, policy }
    }

    /// The retention and size policy.
    #[must_use]
    pub fn policy(&self) -> &JournalPolicy {
        &self.policy
    }

    /// Writes `entry`, replacing any entry with the same session id (the deliveries of both
    /// are kept). Durable on return. Its deliveries are not enqueued: that is
    /// [`Store::enqueue_journaled`]'s job (one transaction for both).
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub async fn put(&self, entry: JournalEntry) -> Result<(), OutboxError> {
        let e = Encoded::new(&entry)?;
        self.storage.journal_put(vec![e]).await
    }

    /// The entry of session `id`, with the state of each delivery.
    ///
    /// # Errors
    /// A storage error.
    pub async fn get(&self, id: &str) -> Result<Option<JournalRecord>, OutboxError> {
        self.storage.journal_get(id).await
    }

    /// One page of entries (see [`ListFilter`]).
    ///
    /// # Errors
    /// A storage error.
    pub async fn list(&self, filter: ListFilter) -> Result<Page, OutboxError> {
        self.storage.journal_list(filter).await
    }

    /// Removes one batch of entries past the retention or over the size cap.
    ///
    /// # Errors
    /// A storage error; nothing was removed.
    pub async fn prune(&self, now: WallTime) -> Result<Pruned, OutboxError> {
        self.storage.journal_prune(now, self.policy).await
    }
}

impl JournalEntry {
    /// The entry as `cdrs list`/`show` and the admin endpoints print it (`deliveries` with
    /// their states when `states` is given).
    pub fn to_json(&self, states: Option<&[DeliveryStatus]>) -> serde_json::Value {
        let s = &self.session;
        let deliveries = match states {
            Some(st) => serde_json::to_value(st).unwrap_or_default(),
            None => serde_json::Value::Array(
                self.deliveries
                    .iter()
                    .map(|d| serde_json::json!({"webhookId": d.webhook_id, "triggerId": d.trigger_id}))
                    .collect(),
            ),
        };
        serde_json::json!({
            "id": s.cdr.id,
            "tenantId": s.tenant_id,
            "userIds": s.user_ids,
            "startUs": s.start_us,
            "endUs": s.end_us,
            "cdr": s.cdr,
            "deliveries": deliveries,
        })
    }
}

impl JournalRecord {
    /// [`JournalEntry::to_json`] with the delivery states.
    pub fn to_json(&self) -> serde_json::Value {
        self.entry.to_json(Some(&self.deliveries))
    }
}

/// A page cursor as text (`start_us:id`), for the admin listener's `after` parameter.
pub fn cursor_text(c: &(i64, String)) -> String {
    format!("{}:{}", c.0, c.1)
}

/// Parses [`cursor_text`].
pub fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Parses a time argument: RFC 3339 (`2026-11-28T09:00:00Z`), or a duration before `now_us`
/// (`90s`, `15m`, `2h`, `7d`). Returns unix µs.
///
/// # Errors
/// Neither form.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_micros());
    }
    let unit = t.chars().last().unwrap_or(' ');
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 0,
    };
    let n = t[..t.len() - unit.len_utf8().min(t.len())]
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0 && secs > 0);
    match n {
        Some(n) => Ok(now_us.saturating_sub(n.saturating_mul(secs).saturating_mul(1_000_000))),
        None => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-11-28T09:00:00Z) nor a duration ago (90s, 15m, 2h, 7d)"
        )),
    }
}

/// The one-line summary of an entry `cdrs list` prints: start, id, tenant, caller → callee,
/// outcome, deliveries.
pub fn summary(e: &JournalEntry) -> String {
    use crate::cdr::Direction;
    let c = &e.session.cdr;
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let ours = c
        .ddi_num
        .clone()
        .or_else(|| c.answering.party.usr_num.clone())
        .or_else(|| c.first_rang.party.usr_num.clone())
        .or_else(|| c.first_rang.party.dev_num.clone());
    let (from, to) = if c.dir == Direction::Outgoing {
        (dash(&ours), dash(&c.cli_num))
    } else {
        (dash(&c.cli_num), dash(&ours))
    };
    let outcome = if c.ans == 1 {
        "answered"
    } else if c.lostin_park == 1 {
        "lost-in-park"
    } else if c.lost == 1 {
        "lost"
    } else if c.aban == 1 {
        "abandoned"
    } else {
        "unanswered"
    };
    format!(
        "{}\t{}\t{}\t{from} → {to}\t{outcome}\tdeliveries={}",
        c.start,
        c.id,
        e.session.tenant_id.as_deref().unwrap_or("-"),
        e.deliveries.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000_000));
        assert_eq!(
            parse_time("2026-11-28T09:00:00Z", now),
            Ok(1_795_856_400_000_000)
        );
        assert_eq!(
            parse_time("2026-11-28T10:00:00+01:00", now),
            Ok(1_795_856_400_000_000)
        );
        for bad in ["", "h", "-2h", "2w", "yesterday", "2026-11-28"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    /// Re-sending decides the same way whatever store runs it: with two triggers matching,
    /// an explicit re-send queues both again (one revived from the dead letters), a catch-up
    /// leaves the delivery the entry already has, a pending one is never queued twice, and the
    /// entry gains exactly the deliveries it did not list.
    #[test]
    fn a_resend_plan_queues_what_each_mode_asks() {
        use crate::trigger::file::{build_set, parse_document};
        use crate::trigger::{BuildOptions, DocFormat};
        let text = include_str!("../../fixtures/pstn_answered.jsonl");
        let session = crate::replay::replay_str(text, Arc::new(Default::default())).remove(0);
        let tenant = session.tenant_id.clone().unwrap();
        let doc = ["a", "b"]
            .iter()
            .map(|id| {
                format!(
                    "[[trigger]]\nid = \"{id}\"\ntenant = \"{tenant}\"\n\
                     [trigger.action]\nurl = \"https://crm.example/{id}\"\nmethod = \"POST\"\n"
                )
            })
            .collect::<String>();
        let set = build_set(vec![parse_document(
            &doc,
            "t.toml",
            DocFormat::Toml,
            BuildOptions::default(),
        )
        .unwrap()])
        .unwrap();
        let jobs = |plan: &ResendPlan| plan.jobs(&set, None, 7).unwrap();
        let fresh = ResendPlan::new(
            JournalEntry::new(session.clone(), &[]),
            ResendMode::Again,
            &mut ResendReport::default(),
        );
        let first = JournalEntry::new(session.clone(), &jobs(&fresh)[..1]);
        assert_eq!(first.deliveries.len(), 1, "the entry knows trigger a only");

        // Catch-up: a's delivery is known and left; b's is missing and queued.
        let mut report = ResendReport::default();
        let mut plan = ResendPlan::new(first.clone(), ResendMode::Missing, &mut report);
        let all = jobs(&plan);
        assert_eq!(all.len(), 2);
        for job in &all {
            if !plan.leaves(job, false, &mut report) {
                plan.queued(job, false, &mut report);
            }
        }
        assert_eq!(
            (report.sessions, report.queued, report.unchanged),
            (1, 1, 1)
        );
        let entry = plan.changed_entry().expect("b is added");
        assert_eq!(entry.deliveries.len(), 2);

        // Explicit re-send: a was dead (revived), b is still pending (left as it is); the
        // entry already lists both, so it does not change.
        let mut report = ResendReport::default();
        let mut plan = ResendPlan::new(entry, ResendMode::Again, &mut report);
        for job in jobs(&plan) {
            let pending = job.trigger_id == "b";
            if !plan.leaves(&job, pending, &mut report) {
                plan.queued(&job, true, &mut report);
            }
        }
        assert_eq!((report.revived, report.queued, report.unchanged), (1, 0, 1));
        assert_eq!(report.lanes.len(), 1);
        assert!(plan.changed_entry().is_none());
    }

    /// An entry that cannot be read (another version wrote it) never blocks pruning or a
    /// rebuilt session's write: it is replaced or removed, with its index keys.
    #[test]
    fn unreadable_entries_are_replaced_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let o = super::super::Outbox::open(&dir.path().join("outbox.redb")).unwrap();
        let text = include_str!("../../fixtures/pstn_answered.jsonl");
        let mut s = crate::replay::replay_str(text, Arc::new(Default::default())).remove(0);
        let garbage = |id: &'static str, start: i64| {
            move |st: &Store| {
                st.write(|tx| {
                    tx.open_table(ENTRIES)?
                        .insert(id, b"{not json".as_slice())?;
                    tx.open_table(BY_TIME)?
                        .insert(time_key(start, id).as_slice(), ())?;
                    add_stat(tx, 9, 1)
                })
            }
        };
        o.call_blocking(garbage("old", 0)).unwrap();
        o.call_blocking(garbage("x", 5)).unwrap();
        s.cdr.id = "x".into();
        s.start_us = 5;
        let e = Encoded::of(&s, &[]).unwrap();
        o.call_blocking(move |st| st.journal_put(&[e])).unwrap();
        let got = o.call_blocking(|st| st.journal_get("x")).unwrap().unwrap();
        assert_eq!(got.entry.session, s);
        let policy = JournalPolicy {
            retention_us: 1,
            ..JournalPolicy::default()
        };
        let p = o
            .call_blocking(move |st| st.journal_prune(3, &policy))
            .unwrap();
        assert_eq!((p.by_age, p.entries), (1, 1), "{p:?}");
        let p = o
            .call_blocking(move |st| st.journal_prune(3, &policy))
            .unwrap();
        assert_eq!((p.by_age, p.more), (0, false), "{p:?}");
        assert!(o
            .call_blocking(|st| st.journal_get("old"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn keys_sort_by_time_then_id() {
        assert!(time_key(-5, "z") < time_key(3, "a"));
        assert!(time_key(3, "a") < time_key(3, "b"));
        assert_eq!(from_ts(&time_key(-5, "z")), Some(-5));
        assert!(tenant_key(Some("a"), i64::MAX, "z") < tenant_key(Some("b"), i64::MIN, ""));
        assert!(tenant_key(Some("a"), i64::MAX, "zzzz") < after_prefix(&tenant_prefix(Some("a"))));
        let h = hook_value(DeliveryState::Dead, -7, "s-1");
        assert_eq!(parse_hook(&h), Some((DeliveryState::Dead, -7, "s-1")));
    }
}

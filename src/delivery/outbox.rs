//! The durable outbox: every delivery is written here before its first attempt and leaves
//! only when it succeeds (or moves to the dead-letter table when it fails for good).
//!
//! Storage is one redb file under the data directory, three tables:
//! - `pending`: webhook id → job (JSON);
//! - `schedule`: `lane \0 due_us(8 bytes, big-endian) id` → (), so each endpoint lane's due
//!   jobs are a range scan in time order, read from disk a few at a time (a backlog of any
//!   size costs disk, not memory);
//! - `dead`: webhook id → job with its last error.
//!
//! A job is never removed before its outcome is known: a crash (even `kill -9`) mid-attempt
//! leaves it pending and due, so it is attempted again after the restart (at least once).

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::job::Job;

const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const SCHEDULE: TableDefinition<&[u8], ()> = TableDefinition::new("schedule");
const DEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("dead");

/// An outbox failure.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened, read or written.
    #[error("outbox: {0}")]
    Store(String),
    /// No such job.
    #[error("no delivery {0}")]
    NotFound(String),
}

fn store<E: std::fmt::Display>(e: E) -> OutboxError {
    OutboxError::Store(e.to_string())
}

fn schedule_key(lane: &str, due_us: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(lane.len() + 9 + id.len());
    k.extend_from_slice(lane.as_bytes());
    k.push(0);
    // Offset so negative times still sort correctly as unsigned big-endian.
    k.extend_from_slice(&(due_us as u64 ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn parse_schedule_key(k: &[u8]) -> Option<(&str, i64, &str)> {
    let z = k.iter().position(|&b| b == 0)?;
    let lane = std::str::from_utf8(&k[..z]).ok()?;
    let ts: [u8; 8] = k.get(z + 1..z + 9)?.try_into().ok()?;
    let due = (u64::from_be_bytes(ts) ^ (1 << 63)) as i64;
    let id = std::str::from_utf8(&k[z + 9..]).ok()?;
    Some((lane, due, id))
}

/// Rewrites jobs stored by versions that kept the signing secret inside each job: the row is
/// read (as `signed`) and written back without it. Returns how many were rewritten.
fn drop_stored_secrets(db: &Database) -> Result<usize, Box<redb::Error>> {
    let holds_secret = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.pointer("/endpoint/secret").is_some())
    };
    let boxed = |e: redb::Error| Box::new(e);
    let tx = db.begin_write().map_err(|e| boxed(e.into()))?;
    let mut n = 0;
    for table in [PENDING, DEAD] {
        let mut t = tx.open_table(table).map_err(|e| boxed(e.into()))?;
        let mut old = Vec::new();
        for row in t.iter().map_err(|e| boxed(e.into()))? {
            let (k, v) = row.map_err(|e| boxed(e.into()))?;
            if holds_secret(v.value()) {
                old.push((k.value().to_owned(), v.value().to_vec()));
            }
        }
        for (id, bytes) in old {
            // Unreadable rows are left for the normal error paths to report.
            if let Ok(job) = serde_json::from_slice::<Job>(&bytes) {
                if let Ok(clean) = serde_json::to_vec(&job) {
                    t.insert(id.as_str(), clean.as_slice())
                        .map_err(|e| boxed(e.into()))?;
                    n += 1;
                }
            }
        }
    }
    tx.commit().map_err(|e| boxed(e.into()))?;
    Ok(n)
}

/// The embedded store.
pub struct Outbox {
    /// `None` only while being reopened (or if reopening failed).
    db: std::sync::RwLock<Option<Database>>,
    path: std::path::PathBuf,
    /// A storage I/O error happened: redb refuses further work until the database is
    /// reopened (`PreviousIo`), which the next operation does.
    failed: std::sync::atomic::AtomicBool,
    /// Disk space held back for a full disk: see [`Outbox::open_with_reserve`].
    reserve: Reserve,
}

/// A file of zeros next to the outbox, deleted when the disk fills up so that recording
/// outcomes — which frees outbox space, but needs a little to do so (copy-on-write) — can
/// still proceed. Recreated once the outbox has drained.
struct Reserve {
    path: std::path::PathBuf,
    bytes: u64,
}

impl Reserve {
    fn exists(&self) -> bool {
        self.bytes > 0 && self.path.exists()
    }

    fn create(&self) {
        if self.bytes == 0 || self.exists() {
            return;
        }
        let made = super::files::private_file(&self.path, true).and_then(|f| {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(f);
            let block = vec![0u8; 64 * 1024];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                w.write_all(&block[..n])?;
                left -= n as u64;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&self.path);
            tracing::warn!(file = %self.path.display(), error = %e, "cannot create the disk reserve");
        }
    }

    /// Released and not yet recreated: the disk was full.
    fn released(&self) -> bool {
        self.bytes > 0 && !self.path.exists()
    }

    fn release(&self) -> bool {
        if !self.exists() {
            return false;
        }
        let ok = std::fs::remove_file(&self.path).is_ok();
        if ok {
            tracing::error!(
                file = %self.path.display(),
                bytes = self.bytes,
                "outbox disk full: released the disk reserve so deliveries can still be recorded"
            );
        }
        ok
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// A read guard on the open database.
struct Live<'a>(std::sync::RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Live<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("live() checked the database is open")
    }
}

/// What [`Outbox::complete`] should record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Delivered: remove.
    Delivered,
    /// Try again at this time.
    RetryAt(i64, String),
    /// Failed for good: move to the dead letters.
    Dead(String),
}

impl Outbox {
    /// Opens (creating) the outbox file.
    ///
    /// # Errors
    /// The file cannot be created or is not a redb database.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        Self::open_with_reserve(path, 0)
    }

    /// Opens the outbox and keeps `reserve_bytes` of disk in a file beside it
    /// (`outbox.redb.reserve`), released when the disk is full so outcomes can still be
    /// recorded (which is what frees space), and recreated once the outbox is empty.
    ///
    /// # Errors
    /// The file cannot be created or is not a redb database.
    pub fn open_with_reserve(path: &Path, reserve_bytes: u64) -> Result<Self, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::files::private_dir(dir).map_err(store)?;
        }
        // Created 0600 before redb opens it (redb would create it with the umask's mode).
        drop(super::files::private_file(path, false).map_err(store)?);
        let mut db = Database::create(path).map_err(store)?;
        let tx = db.begin_write().map_err(store)?;
        tx.open_table(PENDING).map_err(store)?;
        tx.open_table(SCHEDULE).map_err(store)?;
        tx.open_table(DEAD).map_err(store)?;
        tx.commit().map_err(store)?;
        let migrated = drop_stored_secrets(&db).map_err(store)?;
        if migrated > 0 {
            // The old rows' pages are freed; compaction returns them to the file system.
            let _ = db.compact();
            tracing::info!(jobs = migrated, "outbox: signing secrets removed from stored jobs (they are signed with their trigger's current key)");
        }
        let reserve = Reserve {
            path: path.with_extension("redb.reserve"),
            bytes: reserve_bytes,
        };
        reserve.create();
        Ok(Self {
            db: std::sync::RwLock::new(Some(db)),
            path: path.to_owned(),
            failed: std::sync::atomic::AtomicBool::new(false),
            reserve,
        })
    }

    /// Records a storage error; an I/O error makes the next operation reopen the database.
    fn fail<E: std::fmt::Display>(&self, e: E) -> OutboxError {
        let m = e.to_string();
        if m.contains("I/O error") {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        OutboxError::Store(m)
    }

    /// Makes the next operation reopen the database (after a failure seen by a caller).
    pub fn mark_failed(&self) {
        self.failed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The database, reopened first if an I/O error poisoned it.
    fn live(&self) -> Result<Live<'_>, OutboxError> {
        use std::sync::atomic::Ordering;
        if self.failed.swap(false, Ordering::AcqRel) {
            let mut g = self
                .db
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *g = None; // the file lock goes with the old handle
            match Database::create(&self.path) {
                Ok(db) => {
                    tracing::error!(file = %self.path.display(), "outbox reopened after an I/O error");
                    *g = Some(db);
                }
                Err(e) => {
                    self.failed.store(true, Ordering::Release);
                    return Err(OutboxError::Store(format!(
                        "reopening after an I/O error: {e}"
                    )));
                }
            }
        }
        let g = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.is_none() {
            self.failed.store(true, Ordering::Release);
            return Err(OutboxError::Store("outbox unavailable".into()));
        }
        Ok(Live(g))
    }

    /// Writes new jobs (one transaction, durable on return). A job whose webhook id is
    /// already pending is left as it is (the same CDR for the same trigger is delivered once).
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub fn enqueue(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        if self.reserve.released() {
            // The disk filled up: what space there is goes to recording outcomes (which frees
            // space) until the backlog has drained and the reserve is back.
            if self.pending_len()? == 0 {
                self.reserve.create();
            }
            if self.reserve.released() && self.pending_len()? > 0 {
                return Err(OutboxError::Store(
                    "disk full: new deliveries wait until pending ones have freed space".into(),
                ));
            }
        }
        match self.try_enqueue(jobs) {
            // Nothing pending could free space: the reserve is all there is to give.
            Err(_) if self.pending_len().is_ok_and(|n| n == 0) && self.reserve.release() => {
                self.try_enqueue(jobs)
            }
            r => r,
        }
    }

    fn try_enqueue_unshielded(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        // The guard outlives the transaction: a reopen waits for it.
        let db = self.live()?;
        let tx = db.begin_write().map_err(|e| self.fail(e))?;
        let mut added = 0;
        {
            let mut pending = tx.open_table(PENDING).map_err(|e| self.fail(e))?;
            let mut sched = tx.open_table(SCHEDULE).map_err(|e| self.fail(e))?;
            for j in jobs {
                if pending
                    .get(j.webhook_id.as_str())
                    .map_err(|e| self.fail(e))?
                    .is_some()
                {
                    continue;
                }
                let bytes = serde_json::to_vec(j).map_err(|e| self.fail(e))?;
                pending
                    .insert(j.webhook_id.as_str(), bytes.as_slice())
                    .map_err(|e| self.fail(e))?;
                let key = schedule_key(&j.endpoint.lane(), j.next_attempt_us, &j.webhook_id);
                sched.insert(key.as_slice(), ()).map_err(|e| self.fail(e))?;
                added += 1;
            }
        }
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(added)
    }

    /// Up to `limit` jobs of `lane` due at `now`, skipping ids in `busy`, plus the due time
    /// of the lane's next job that is not returned (if any).
    ///
    /// # Errors
    /// A storage error.
    fn due_unshielded(
        &self,
        lane: &str,
        now: i64,
        limit: usize,
        busy: &BTreeSet<String>,
    ) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        let sched = tx.open_table(SCHEDULE).map_err(|e| self.fail(e))?;
        let pending = tx.open_table(PENDING).map_err(|e| self.fail(e))?;
        let start = schedule_key(lane, i64::MIN, "");
        let mut end = lane.as_bytes().to_vec();
        end.push(1);
        let mut out = Vec::new();
        let mut next = None;
        for entry in sched
            .range(start.as_slice()..end.as_slice())
            .map_err(|e| self.fail(e))?
        {
            let (k, _) = entry.map_err(|e| self.fail(e))?;
            let Some((_, due, id)) = parse_schedule_key(k.value()) else {
                continue;
            };
            if busy.contains(id) {
                continue;
            }
            if due > now || out.len() >= limit {
                next = Some(due);
                break;
            }
            if let Some(v) = pending.get(id).map_err(|e| self.fail(e))? {
                out.push(serde_json::from_slice(v.value()).map_err(|e| self.fail(e))?);
            }
        }
        Ok((out, next))
    }

    /// The lanes that have pending jobs.
    ///
    /// # Errors
    /// A storage error.
    fn lanes_unshielded(&self) -> Result<BTreeSet<String>, OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        let sched = tx.open_table(SCHEDULE).map_err(|e| self.fail(e))?;
        let mut lanes = BTreeSet::new();
        let mut from: Vec<u8> = Vec::new();
        // Skip from lane to lane instead of walking every job.
        loop {
            let mut it = sched.range(from.as_slice()..).map_err(|e| self.fail(e))?;
            let Some(entry) = it.next() else { break };
            let (k, _) = entry.map_err(|e| self.fail(e))?;
            let Some((lane, _, _)) = parse_schedule_key(k.value()) else {
                break;
            };
            lanes.insert(lane.to_owned());
            from = lane.as_bytes().to_vec();
            from.push(1);
        }
        Ok(lanes)
    }

    /// Records the outcome of an attempt on `job` (whose `attempts` already counts it).
    ///
    /// # Errors
    /// A storage error; the job stays as it was (and is attempted again).
    pub fn complete(&self, job: &Job, outcome: Completion) -> Result<(), OutboxError> {
        self.complete_many(&[(job.clone(), outcome)])
    }

    /// Records several outcomes in one transaction (one disk sync for all: group commit).
    /// Each job is as read from the outbox, with `attempts` counting the attempt made.
    ///
    /// # Errors
    /// A storage error; then none of them is recorded.
    pub fn complete_many(&self, done: &[(Job, Completion)]) -> Result<(), OutboxError> {
        match self.try_complete_many(done) {
            Err(_) if self.reserve.release() => self.try_complete_many(done),
            r => {
                if r.is_ok() && !self.reserve.exists() && self.pending_len().is_ok_and(|n| n == 0) {
                    self.reserve.create();
                }
                r
            }
        }
    }

    fn try_complete_many_unshielded(&self, done: &[(Job, Completion)]) -> Result<(), OutboxError> {
        // The guard outlives the transaction: a reopen waits for it.
        let db = self.live()?;
        let tx = db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut pending = tx.open_table(PENDING).map_err(|e| self.fail(e))?;
            let mut sched = tx.open_table(SCHEDULE).map_err(|e| self.fail(e))?;
            let mut dead = tx.open_table(DEAD).map_err(|e| self.fail(e))?;
            for (job, outcome) in done {
                let lane = job.endpoint.lane();
                let id = job.webhook_id.as_str();
                // The schedule entry is keyed by the stored due time (the caller's copy may be
                // older); only that field is read back.
                #[derive(serde::Deserialize)]
                struct Due {
                    next_attempt_us: i64,
                }
                let due = match pending.get(id).map_err(|e| self.fail(e))? {
                    Some(v) => serde_json::from_slice::<Due>(v.value())
                        .map_or(job.next_attempt_us, |d| d.next_attempt_us),
                    None => job.next_attempt_us,
                };
                sched
                    .remove(schedule_key(&lane, due, id).as_slice())
                    .map_err(|e| self.fail(e))?;
                match outcome {
                    Completion::Delivered => {
                        pending.remove(id).map_err(|e| self.fail(e))?;
                    }
                    Completion::RetryAt(at, error) => {
                        let mut j = job.clone();
                        j.next_attempt_us = *at;
                        j.last_error = Some(error.clone());
                        let bytes = serde_json::to_vec(&j).map_err(|e| self.fail(e))?;
                        pending
                            .insert(id, bytes.as_slice())
                            .map_err(|e| self.fail(e))?;
                        sched
                            .insert(schedule_key(&lane, *at, id).as_slice(), ())
                            .map_err(|e| self.fail(e))?;
                    }
                    Completion::Dead(error) => {
                        pending.remove(id).map_err(|e| self.fail(e))?;
                        let mut j = job.clone();
                        j.last_error = Some(error.clone());
                        let bytes = serde_json::to_vec(&j).map_err(|e| self.fail(e))?;
                        dead.insert(id, bytes.as_slice())
                            .map_err(|e| self.fail(e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Number of pending jobs.
    ///
    /// # Errors
    /// A storage error.
    fn pending_len_unshielded(&self) -> Result<u64, OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        tx.open_table(PENDING)
            .map_err(|e| self.fail(e))?
            .len()
            .map_err(|e| self.fail(e))
    }

    /// Number of dead letters.
    ///
    /// # Errors
    /// A storage error.
    fn dead_len_unshielded(&self) -> Result<u64, OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        tx.open_table(DEAD)
            .map_err(|e| self.fail(e))?
            .len()
            .map_err(|e| self.fail(e))
    }

    /// Dead letters, oldest first by creation.
    ///
    /// # Errors
    /// A storage error.
    fn dead_unshielded(&self) -> Result<Vec<Job>, OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        let dead = tx.open_table(DEAD).map_err(|e| self.fail(e))?;
        let mut out: Vec<Job> = Vec::new();
        for e in dead.iter().map_err(|e| self.fail(e))? {
            let (_, v) = e.map_err(|e| self.fail(e))?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| self.fail(e))?);
        }
        out.sort_by(|a, b| (a.created_us, &a.webhook_id).cmp(&(b.created_us, &b.webhook_id)));
        Ok(out)
    }

    /// One dead letter.
    ///
    /// # Errors
    /// Not found, or a storage error.
    fn dead_one_unshielded(&self, id: &str) -> Result<Job, OutboxError> {
        let db = self.live()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        let dead = tx.open_table(DEAD).map_err(|e| self.fail(e))?;
        let v = dead
            .get(id)
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| OutboxError::NotFound(id.into()))?;
        serde_json::from_slice(v.value()).map_err(|e| self.fail(e))
    }

    /// Moves a dead letter back to pending, due at `now` with a fresh attempt budget and the
    /// same webhook id.
    ///
    /// # Errors
    /// Not found, or a storage error.
    fn resend_unshielded(&self, id: &str, now: i64) -> Result<Job, OutboxError> {
        // The guard outlives the transaction: a reopen waits for it.
        let db = self.live()?;
        let tx = db.begin_write().map_err(|e| self.fail(e))?;
        let job = {
            let mut dead = tx.open_table(DEAD).map_err(|e| self.fail(e))?;
            let mut job: Job = match dead.remove(id).map_err(|e| self.fail(e))? {
                Some(v) => serde_json::from_slice(v.value()).map_err(|e| self.fail(e))?,
                None => return Err(OutboxError::NotFound(id.into())),
            };
            job.attempts = 0;
            job.next_attempt_us = now;
            let mut pending = tx.open_table(PENDING).map_err(|e| self.fail(e))?;
            let bytes = serde_json::to_vec(&job).map_err(|e| self.fail(e))?;
            pending
                .insert(job.webhook_id.as_str(), bytes.as_slice())
                .map_err(|e| self.fail(e))?;
            let mut sched = tx.open_table(SCHEDULE).map_err(|e| self.fail(e))?;
            sched
                .insert(
                    schedule_key(&job.endpoint.lane(), now, &job.webhook_id).as_slice(),
                    (),
                )
                .map_err(|e| self.fail(e))?;
            job
        };
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(job)
    }

    /// Deletes one dead letter, or all of them; returns how many.
    ///
    /// # Errors
    /// Not found (for one id), or a storage error.
    fn purge_unshielded(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        // The guard outlives the transaction: a reopen waits for it.
        let db = self.live()?;
        let tx = db.begin_write().map_err(|e| self.fail(e))?;
        let n = {
            let mut dead = tx.open_table(DEAD).map_err(|e| self.fail(e))?;
            match id {
                Some(id) => {
                    if dead.remove(id).map_err(|e| self.fail(e))?.is_none() {
                        return Err(OutboxError::NotFound(id.into()));
                    }
                    1
                }
                None => {
                    let n = dead.len().map_err(|e| self.fail(e))? as usize;
                    dead.retain(|_, _| false).map_err(|e| self.fail(e))?;
                    n
                }
            }
        };
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(n)
    }
}

/// The storage-touching operations, each shielded: redb asserts (panics) instead of returning
/// an error when a database left inconsistent by an I/O error is used again. Such a panic
/// becomes an error here and the next operation reopens the database.
impl Outbox {
    fn shielded<T>(&self, f: impl FnOnce() -> Result<T, OutboxError>) -> Result<T, OutboxError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            self.mark_failed();
            Err(OutboxError::Store(
                "the storage engine failed after an I/O error; reopening".into(),
            ))
        })
    }

    fn try_enqueue(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        self.shielded(|| self.try_enqueue_unshielded(jobs))
    }

    fn try_complete_many(&self, done: &[(Job, Completion)]) -> Result<(), OutboxError> {
        self.shielded(|| self.try_complete_many_unshielded(done))
    }

    /// Up to `limit` jobs of `lane` due at `now`, skipping ids in `busy`, plus the due time
    /// of the lane's next job that is not returned (if any).
    ///
    /// # Errors
    /// A storage error.
    pub fn due(
        &self,
        lane: &str,
        now: i64,
        limit: usize,
        busy: &BTreeSet<String>,
    ) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
        self.shielded(|| self.due_unshielded(lane, now, limit, busy))
    }

    /// The lanes that have pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub fn lanes(&self) -> Result<BTreeSet<String>, OutboxError> {
        self.shielded(|| self.lanes_unshielded())
    }

    /// Number of pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub fn pending_len(&self) -> Result<u64, OutboxError> {
        self.shielded(|| self.pending_len_unshielded())
    }

    /// Number of dead letters.
    ///
    /// # Errors
    /// A storage error.
    pub fn dead_len(&self) -> Result<u64, OutboxError> {
        self.shielded(|| self.dead_len_unshielded())
    }

    /// Dead letters, oldest first by creation.
    ///
    /// # Errors
    /// A storage error.
    pub fn dead(&self) -> Result<Vec<Job>, OutboxError> {
        self.shielded(|| self.dead_unshielded())
    }

    /// One dead letter.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub fn dead_one(&self, id: &str) -> Result<Job, OutboxError> {
        self.shielded(|| self.dead_one_unshielded(id))
    }

    /// Moves a dead letter back to pending, due at `now` with a fresh attempt budget and the
    /// same webhook id.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub fn resend(&self, id: &str, now: i64) -> Result<Job, OutboxError> {
        self.shielded(|| self.resend_unshielded(id, now))
    }

    /// Deletes one dead letter, or all of them; returns how many.
    ///
    /// # Errors
    /// Not found (for one id), or a storage error.
    pub fn purge(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        self.shielded(|| self.purge_unshielded(id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::job::Endpoint;
    use super::super::payload::{Format, Method};
    use super::*;

    fn job(id: &str, url: &str, due: i64) -> Job {
        Job {
            webhook_id: id.into(),
            trigger_id: "t".into(),
            endpoint: Endpoint {
                url: url.into(),
                method: Method::Post,
                format: Format::Json,
                retries: 1,
                signed: false,
            },
            payload: serde_json::value::to_raw_value(&serde_json::json!({"id": id})).unwrap(),
            attempts: 0,
            next_attempt_us: due,
            created_us: due,
            last_error: None,
        }
    }

    /// Jobs written by earlier versions held the signing secret; opening the outbox rewrites
    /// them as `signed` without it, and the file no longer contains it.
    #[test]
    fn stored_secrets_are_migrated_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let old = |id: &str| {
            serde_json::json!({
                "webhook_id": id, "trigger_id": "t",
                "endpoint": {"url": "https://h.example/x", "method": "POST", "format": "json",
                             "retries": 1, "secret": secret},
                "payload": {"id": id}, "attempts": 0, "next_attempt_us": 0, "created_us": 0
            })
            .to_string()
        };
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut p = tx.open_table(PENDING).unwrap();
                p.insert("a", old("a").as_bytes()).unwrap();
                let mut s = tx.open_table(SCHEDULE).unwrap();
                s.insert(schedule_key("https://h.example:443", 0, "a").as_slice(), ())
                    .unwrap();
                let mut d = tx.open_table(DEAD).unwrap();
                d.insert("b", old("b").as_bytes()).unwrap();
            }
            tx.commit().unwrap();
        }
        let o = Outbox::open(&path).unwrap();
        let (due, _) = o
            .due("https://h.example:443", 1, 10, &BTreeSet::new())
            .unwrap();
        assert_eq!(due.len(), 1);
        assert!(due[0].endpoint.signed);
        assert!(o.dead_one("b").unwrap().endpoint.signed);
        let raw = {
            let db = o.live().unwrap();
            let tx = db.begin_read().unwrap();
            let t = tx.open_table(PENDING).unwrap();
            let v = t.get("a").unwrap().unwrap().value().to_vec();
            v
        };
        assert!(!String::from_utf8_lossy(&raw).contains("whsec_"));
        drop(o);
        let file = std::fs::read(&path).unwrap();
        assert!(
            !file.windows(20).any(|w| w == &secret.as_bytes()[6..26]),
            "the secret is gone from the file"
        );
    }

    #[test]
    fn schedule_keys_sort_by_lane_then_time() {
        let a = schedule_key("l", -5, "x");
        let b = schedule_key("l", 3, "a");
        assert!(a < b);
        assert_eq!(parse_schedule_key(&a), Some(("l", -5, "x")));
    }

    #[test]
    fn lifecycle_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let a = "https://a.test/h";
        let b = "https://b.test:8443/h";
        {
            let o = Outbox::open(&path).unwrap();
            assert_eq!(
                o.enqueue(&[job("1", a, 10), job("2", a, 5), job("3", b, 7)])
                    .unwrap(),
                3
            );
            assert_eq!(
                o.enqueue(&[job("1", a, 99)]).unwrap(),
                0,
                "same webhook id once"
            );
        }
        let o = Outbox::open(&path).unwrap();
        assert_eq!(o.pending_len().unwrap(), 3);
        let lanes: Vec<String> = o.lanes().unwrap().into_iter().collect();
        assert_eq!(lanes, ["https://a.test:443", "https://b.test:8443"]);
        let (due, next) = o
            .due("https://a.test:443", 6, 10, &BTreeSet::new())
            .unwrap();
        assert_eq!(
            due.iter()
                .map(|j| j.webhook_id.as_str())
                .collect::<Vec<_>>(),
            ["2"]
        );
        assert_eq!(next, Some(10));
        let busy = ["2".to_owned()].into();
        let (due, _) = o.due("https://a.test:443", 20, 10, &busy).unwrap();
        assert_eq!(
            due.iter()
                .map(|j| j.webhook_id.as_str())
                .collect::<Vec<_>>(),
            ["1"]
        );

        let mut j2 = due[0].clone();
        j2.attempts = 1;
        o.complete(&j2, Completion::RetryAt(30, "HTTP 503".into()))
            .unwrap();
        let (due, next) = o
            .due("https://a.test:443", 20, 10, &BTreeSet::new())
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(next, Some(30));
        o.complete(&due[0], Completion::Delivered).unwrap();
        let (_, _) = o
            .due("https://a.test:443", 40, 10, &BTreeSet::new())
            .unwrap();
        o.complete(&j2, Completion::Dead("HTTP 400".into()))
            .unwrap();
        assert_eq!(o.pending_len().unwrap(), 1);
        assert_eq!(o.dead().unwrap()[0].last_error.as_deref(), Some("HTTP 400"));
        let again = o.resend("1", 50).unwrap();
        assert_eq!((again.attempts, again.webhook_id.as_str()), (0, "1"));
        assert!(o.dead().unwrap().is_empty());
        let (due, _) = o
            .due("https://a.test:443", 50, 10, &BTreeSet::new())
            .unwrap();
        assert_eq!(due.len(), 1);
        o.complete(&due[0], Completion::Dead("x".into())).unwrap();
        assert!(matches!(
            o.purge(Some("nope")),
            Err(OutboxError::NotFound(_))
        ));
        assert_eq!(o.purge(None).unwrap(), 1);
    }
}

//! The durable outbox: every delivery is written here before its first attempt and leaves
//! only when it succeeds (or moves to the dead-letter table when it fails for good).
//!
//! Storage is one redb file under the data directory, three tables:
//! - `pending`: webhook id → job (JSON);
//! - `schedule`: `lane \0 due_us(8 bytes, big-endian) id` → (), so each endpoint lane's due
//!   jobs are a range scan in time order, read from disk a few at a time (a backlog of any
//!   size costs disk, not memory);
//! - `dead`: webhook id → job with its last error;
//! - the CDR journal's tables ([`super::journal`]), written in the same transactions.
//!
//! A job is never removed before its outcome is known: a crash (even `kill -9`) mid-attempt
//! leaves it pending and due, so it is attempted again after the restart (at least once).
//!
//! Storage errors are typed ([`OutboxError`]): an I/O error (or redb's `PreviousIo` after one)
//! makes the next operation reopen the database ([`OutboxError::needs_reopen`]); a corrupted
//! file or a file held by another process is reported as such and is not retried by reopening.
//! The file is reached through [`super::storage`], where tests inject faults.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::job::Job;
use super::journal::{DeliveryState, Encoded};
use super::storage::{Faults, FaultyFile};
use super::writer::Write;
use crate::clock::WallTime;

pub(crate) const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const SCHEDULE: TableDefinition<&[u8], ()> = TableDefinition::new("schedule");
pub(crate) const DEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("dead");

/// An outbox failure.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The storage device failed (a full disk is one: see [`OutboxError::is_disk_full`]).
    /// The database is reopened before the next operation.
    #[error("outbox I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// An earlier I/O error left the open database unusable; it is reopened before the next
    /// operation.
    #[error("outbox unusable after an earlier I/O error; reopening")]
    AfterIo,
    /// The storage engine failed (panicked) in the middle of an operation; the database is
    /// reopened before the next operation.
    #[error("outbox storage engine failed; reopening")]
    Crashed,
    /// The file is not a readable outbox. Reopening does not help: the operator must move it
    /// aside (or restore it).
    #[error("outbox file corrupted: {0}")]
    Corrupted(String),
    /// Another process has the outbox open.
    #[error("the outbox is open in another process")]
    InUse,
    /// The disk filled up and the reserve is spent: new deliveries wait until pending ones
    /// have freed space.
    #[error("disk full: new deliveries wait until pending ones have freed space")]
    DiskFull,
    /// A stored job cannot be read or a job cannot be written as JSON.
    #[error("outbox job encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// Any other storage error (an unexpected state of the store).
    #[error("outbox: {0}")]
    Store(String),
    /// No such job.
    #[error("no delivery {0}")]
    NotFound(String),
    /// The outbox's owner thread is gone (it stopped after a failure it could not survive).
    #[error("the outbox has stopped")]
    Closed,
    /// The PostgreSQL store failed (unreachable, restarting, a statement refused). Waiting
    /// fixes it: the operation is retried like any storage error.
    #[error("outbox database: {0}")]
    Database(String),
}

const ENOSPC: i32 = 28;

impl OutboxError {
    /// The database must be reopened before it can be used again.
    #[must_use]
    pub fn needs_reopen(&self) -> bool {
        matches!(self, Self::Io(_) | Self::AfterIo | Self::Crashed)
    }

    /// The disk (or the file system holding the outbox) is full.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull => true,
            Self::Io(e) => {
                e.raw_os_error() == Some(ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }

    /// Waiting cannot fix it: the outbox file must be repaired or released by the operator.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Corrupted(_) | Self::InUse | Self::Closed)
    }
}

impl From<redb::Error> for OutboxError {
    fn from(e: redb::Error) -> Self {
        match e {
            // redb reports a header it cannot parse (a bad magic number, say) as invalid data.
            redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Self::Corrupted(e.to_string())
            }
            redb::Error::Io(e) => Self::Io(e),
            redb::Error::PreviousIo => Self::AfterIo,
            redb::Error::Corrupted(m) => Self::Corrupted(m),
            redb::Error::DatabaseAlreadyOpen => Self::InUse,
            other => Self::Store(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for OutboxError {
            fn from(e: $t) -> Self {
                redb::Error::from(e).into()
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

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

/// Opens (creating) the redb database in `path` through the storage layer.
fn open_db(path: &Path, faults: &Faults) -> Result<Database, OutboxError> {
    let file = FaultyFile::open(path, faults.clone())?;
    Ok(redb::Builder::new().create_with_backend(file)?)
}

/// Rewrites jobs stored by versions that kept the signing secret inside each job: the row is
/// read (as `signed`) and written back without it. Returns how many were rewritten.
fn drop_stored_secrets(db: &Database) -> Result<usize, OutboxError> {
    let holds_secret = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.pointer("/endpoint/secret").is_some())
    };
    let tx = db.begin_write()?;
    let mut n = 0;
    for table in [PENDING, DEAD] {
        let mut t = tx.open_table(table)?;
        let mut old = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if holds_secret(v.value()) {
                old.push((k.value().to_owned(), v.value().to_vec()));
            }
        }
        for (id, bytes) in old {
            // Unreadable rows are left for the normal error paths to report.
            if let Ok(job) = serde_json::from_slice::<Job>(&bytes) {
                if let Ok(clean) = serde_json::to_vec(&job) {
                    t.insert(id.as_str(), clean.as_slice())?;
                    n += 1;
                }
            }
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Options of [`Outbox::open_with`].
#[derive(Debug, Clone, Default)]
pub struct OutboxOptions {
    /// Disk space kept in a file beside the outbox: see [`Outbox::open_with_reserve`].
    pub reserve_bytes: u64,
    /// Faults injected into the storage layer (tests); healthy by default.
    pub faults: Faults,
}

/// The storage side of the outbox: the open redb database and the disk reserve. It is
/// reached only through [`Outbox`]: every write on its owner thread (one at a time, in
/// order), reads of due jobs on its reader thread beside it (redb's read transactions see the
/// last commit and never wait for the writer).
pub struct Store {
    /// `None` only while being reopened (or if reopening failed).
    db: std::sync::RwLock<Option<Database>>,
    path: std::path::PathBuf,
    faults: Faults,
    /// An operation failed with an error that [needs a reopen](OutboxError::needs_reopen):
    /// the next operation reopens the database first.
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

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
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

impl Store {
    fn open_with(path: &Path, opts: OutboxOptions) -> Result<Self, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::files::private_dir(dir).map_err(OutboxError::Io)?;
        }
        // Created 0600 before redb opens it (redb would create it with the umask's mode).
        drop(super::files::private_file(path, false).map_err(OutboxError::Io)?);
        let mut db = open_db(path, &opts.faults)?;
        let tx = db.begin_write()?;
        tx.open_table(PENDING)?;
        tx.open_table(SCHEDULE)?;
        tx.open_table(DEAD)?;
        super::journal::create_tables(&tx)?;
        tx.commit()?;
        let migrated = drop_stored_secrets(&db)?;
        if migrated > 0 {
            // The old rows' pages are freed; compaction returns them to the file system.
            let _ = db.compact();
            tracing::info!(jobs = migrated, "outbox: signing secrets removed from stored jobs (they are signed with their trigger's current key)");
        }
        let reserve = Reserve {
            path: path.with_extension("redb.reserve"),
            bytes: opts.reserve_bytes,
        };
        reserve.create();
        Ok(Self {
            db: std::sync::RwLock::new(Some(db)),
            path: path.to_owned(),
            faults: opts.faults,
            failed: std::sync::atomic::AtomicBool::new(false),
            reserve,
        })
    }

    /// Makes the next operation reopen the database (after a failure seen by a caller).
    fn mark_failed(&self) {
        self.failed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Runs `op` on the open database — reopened first if an earlier error asked for it —
    /// and remembers whether its error asks for a reopen. This is the one place storage work
    /// runs: redb asserts (panics) instead of returning an error when a database left
    /// inconsistent by an I/O error is used again, so a panic here becomes
    /// [`OutboxError::Crashed`] (which reopens).
    pub(crate) fn with_db<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        use std::sync::atomic::Ordering;
        if self.failed.swap(false, Ordering::AcqRel) {
            self.reopen()?;
        }
        // The guard outlives the transaction: a reopen waits for it.
        let g = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(db) = g.as_ref() else {
            self.mark_failed();
            return Err(OutboxError::AfterIo);
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(db)))
            .unwrap_or(Err(OutboxError::Crashed));
        if let Err(e) = &r {
            if e.needs_reopen() {
                self.mark_failed();
            }
        }
        r
    }

    fn reopen(&self) -> Result<(), OutboxError> {
        let mut g = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = None; // the file lock goes with the old handle
        match open_db(&self.path, &self.faults) {
            Ok(db) => {
                tracing::error!(file = %self.path.display(), "outbox reopened after an I/O error");
                *g = Some(db);
                Ok(())
            }
            Err(e) => {
                if !e.is_fatal() {
                    self.mark_failed();
                }
                tracing::error!(file = %self.path.display(), error = %e, "cannot reopen the outbox");
                Err(e)
            }
        }
    }

    /// Writes new jobs (one transaction, durable on return). A job whose webhook id is
    /// already pending is left as it is (the same CDR for the same trigger is delivered once).
    ///
    /// # Errors
    /// A storage error; nothing was written. [`OutboxError::DiskFull`] while the disk reserve
    /// is spent and pending jobs are still to free space.
    pub fn enqueue(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        self.enqueue_with(jobs, &[]).map(|w| w.len())
    }

    /// [`Store::enqueue`] with journal entries written in the same transaction; returns the
    /// positions in `jobs` of those written (the others were pending or known already).
    pub(crate) fn enqueue_with(
        &self,
        jobs: &[Job],
        entries: &[Encoded],
    ) -> Result<Vec<usize>, OutboxError> {
        if self.reserve.released() {
            // The disk filled up: what space there is goes to recording outcomes (which frees
            // space) until the backlog has drained and the reserve is back.
            if self.pending_len()? == 0 {
                self.reserve.create();
            }
            if self.reserve.released() && self.pending_len()? > 0 {
                return Err(OutboxError::DiskFull);
            }
        }
        match self.with_db(|db| try_enqueue(db, jobs, entries)) {
            // Nothing pending could free space: the reserve is all there is to give.
            Err(e)
                if e.is_disk_full()
                    && self.pending_len().is_ok_and(|n| n == 0)
                    && self.reserve.release() =>
            {
                self.with_db(|db| try_enqueue(db, jobs, entries))
            }
            r => r,
        }
    }

    /// Runs `op` in one write transaction, committed when it succeeds.
    pub(crate) fn write<T>(
        &self,
        op: impl FnOnce(&WriteTransaction) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        self.with_db(|db| {
            let tx = db.begin_write()?;
            let r = op(&tx)?;
            tx.commit()?;
            Ok(r)
        })
    }

    /// Runs `op` in one read transaction.
    pub(crate) fn read<T>(
        &self,
        op: impl FnOnce(&redb::ReadTransaction) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        self.with_db(|db| op(&db.begin_read()?))
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
        self.with_db(|db| due(db, lane, now, limit, busy))
    }

    /// The lanes that have pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub fn lanes(&self) -> Result<BTreeSet<String>, OutboxError> {
        self.with_db(lanes)
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
        match self.with_db(|db| complete_many(db, done)) {
            Err(e) if e.is_disk_full() && self.reserve.release() => {
                self.with_db(|db| complete_many(db, done))
            }
            r => {
                if r.is_ok() {
                    self.outcomes_stored();
                }
                r
            }
        }
    }

    /// After outcomes were stored: the disk reserve is made again once nothing is pending.
    pub(crate) fn outcomes_stored(&self) {
        if !self.reserve.exists() && self.pending_len().is_ok_and(|n| n == 0) {
            self.reserve.create();
        }
    }

    /// The disk filled up and its reserve was given to outcomes: writes go one by one
    /// through [`Store::enqueue_with`] and [`Store::complete_many`], which handle that.
    pub(crate) fn reserve_spent(&self) -> bool {
        self.reserve.released()
    }

    /// Number of pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub fn pending_len(&self) -> Result<u64, OutboxError> {
        self.with_db(|db| Ok(db.begin_read()?.open_table(PENDING)?.len()?))
    }

    /// Number of dead letters.
    ///
    /// # Errors
    /// A storage error.
    pub fn dead_len(&self) -> Result<u64, OutboxError> {
        self.with_db(|db| Ok(db.begin_read()?.open_table(DEAD)?.len()?))
    }

    /// Dead letters, oldest first by creation.
    ///
    /// # Errors
    /// A storage error.
    pub fn dead(&self) -> Result<Vec<Job>, OutboxError> {
        self.with_db(dead)
    }

    /// One dead letter.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub fn dead_one(&self, id: &str) -> Result<Job, OutboxError> {
        self.with_db(|db| {
            let tx = db.begin_read()?;
            let dead = tx.open_table(DEAD)?;
            let v = dead
                .get(id)?
                .ok_or_else(|| OutboxError::NotFound(id.into()))?;
            Ok(serde_json::from_slice(v.value())?)
        })
    }

    /// Moves a dead letter back to pending, due at `now` with a fresh attempt budget and the
    /// same webhook id.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub fn resend(&self, id: &str, now: i64) -> Result<Job, OutboxError> {
        self.with_db(|db| resend(db, id, now))
    }

    /// Deletes one dead letter, or all of them; returns how many.
    ///
    /// # Errors
    /// Not found (for one id), or a storage error.
    pub fn purge(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        self.with_db(|db| purge(db, id))
    }
}

/// A request to the owner thread: any operation, or a write that may share its transaction
/// with the writes queued behind it ([`super::writer`]).
enum Request {
    Op(Box<dyn FnOnce(&Store) + Send>),
    Write(Write),
}

/// Requests waiting for the owner thread; a caller beyond this waits (backpressure).
const QUEUE: usize = 64;

/// What the owner thread last saw, readable without waiting for it (metrics, readiness).
#[derive(Debug, Default)]
struct Gauges {
    pending: std::sync::atomic::AtomicU64,
    dead: std::sync::atomic::AtomicU64,
    /// The last request failed with a storage error (cleared by the next success).
    failing: std::sync::atomic::AtomicBool,
    /// Cancelled at the first error waiting cannot fix ([`OutboxError::is_fatal`]).
    fatal: tokio_util::sync::CancellationToken,
    /// That error, for the operator.
    fatal_error: std::sync::OnceLock<String>,
}

impl Gauges {
    /// Notes `r`'s error when waiting cannot fix it (the first one is kept).
    fn note<T>(&self, r: &Result<T, OutboxError>) {
        if let Err(e) = r {
            if e.is_fatal() && !self.fatal.is_cancelled() {
                let _ = self.fatal_error.set(e.to_string());
                tracing::error!(error = %e, "the outbox failed and cannot recover by waiting");
                self.fatal.cancel();
            }
        }
    }
}

/// The durable outbox. One thread owns the database (a [`Store`]) and runs requests one at a
/// time from a bounded queue, so no storage or file work runs on the caller's thread: async
/// code awaits [`Outbox::call`]; the blocking methods ([`Outbox::enqueue`] and the others) are
/// for threads that may block (the CLI, tests, benchmarks' setup). The dispatcher's reads of
/// due jobs run on a second thread beside the owner, from their own bounded queue. Dropping
/// the outbox lets both finish what was queued, close the database and exit (joined).
pub struct Outbox {
    tx: Option<std::sync::mpsc::SyncSender<Request>>,
    owner: Option<std::thread::JoinHandle<()>>,
    /// Reads beside the owner: see [`Outbox::read_beside`].
    reads: Option<std::sync::mpsc::SyncSender<Request>>,
    reader: Option<std::thread::JoinHandle<()>>,
    gauges: std::sync::Arc<Gauges>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        drop(self.reads.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        drop(self.tx.take());
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

impl Outbox {
    /// Opens (creating) the outbox file.
    ///
    /// # Errors
    /// The file cannot be created or is not a redb database.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        Self::open_with(path, OutboxOptions::default())
    }

    /// Opens the outbox and keeps `reserve_bytes` of disk in a file beside it
    /// (`outbox.redb.reserve`), released when the disk is full so outcomes can still be
    /// recorded (which is what frees space), and recreated once the outbox is empty.
    ///
    /// # Errors
    /// The file cannot be created or is not a redb database.
    pub fn open_with_reserve(path: &Path, reserve_bytes: u64) -> Result<Self, OutboxError> {
        Self::open_with(
            path,
            OutboxOptions {
                reserve_bytes,
                ..OutboxOptions::default()
            },
        )
    }

    /// Opens the outbox with `opts` (blocking: call it where blocking is allowed) and starts
    /// its owner thread.
    ///
    /// # Errors
    /// The file cannot be created ([`OutboxError::Io`]), is not a readable outbox
    /// ([`OutboxError::Corrupted`]) or is open in another process ([`OutboxError::InUse`]).
    pub fn open_with(path: &Path, opts: OutboxOptions) -> Result<Self, OutboxError> {
        let store = std::sync::Arc::new(Store::open_with(path, opts)?);
        let (reads, read_rx) = std::sync::mpsc::sync_channel::<Request>(QUEUE);
        let beside = store.clone();
        let reader = std::thread::Builder::new()
            .name("postcall-reader".into())
            .spawn(move || {
                while let Ok(req) = read_rx.recv() {
                    if let Request::Op(op) = req {
                        op(&beside);
                    }
                }
            })
            .map_err(OutboxError::Io)?;
        let gauges = std::sync::Arc::new(Gauges::default());
        refresh(&store, &gauges);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Request>(QUEUE);
        let g = gauges.clone();
        let owner = std::thread::Builder::new()
            .name("postcall-outbox".into())
            .spawn(move || {
                let mut next = rx.recv().ok();
                while let Some(req) = next.take() {
                    match req {
                        Request::Op(op) => op(&store),
                        Request::Write(first) => {
                            // Every write queued behind this one joins its transaction.
                            let mut batch = vec![first];
                            while batch.len() < super::writer::MAX_BATCH {
                                match rx.try_recv() {
                                    Ok(Request::Write(w)) => batch.push(w),
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            super::writer::commit(&store, batch);
                        }
                    }
                    refresh(&store, &g);
                    if next.is_none() {
                        next = rx.recv().ok();
                    }
                }
            })
            .map_err(OutboxError::Io)?;
        Ok(Self {
            tx: Some(tx),
            owner: Some(owner),
            reads: Some(reads),
            reader: Some(reader),
            gauges,
        })
    }

    /// Runs `op` on the owner thread and awaits its result (never blocks the async worker:
    /// when the queue is full, the hand-over waits on the blocking pool).
    ///
    /// # Errors
    /// `op`'s error, or [`OutboxError::Closed`] when the owner thread is gone.
    pub async fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        self.run_on(self.tx.as_ref(), op).await
    }

    /// Runs the read `op` on the reader thread, beside the owner: it does not wait for the
    /// commits queued there, and sees the last one made. For the dispatcher's reads of due
    /// jobs, which would otherwise wait behind every disk sync while attempts run dry.
    ///
    /// # Errors
    /// `op`'s error, or [`OutboxError::Closed`] when the reader thread is gone.
    pub(crate) async fn read_beside<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        self.run_on(self.reads.as_ref(), op).await
    }

    /// Runs `op` on the thread behind `queue` and awaits its result.
    async fn run_on<T: Send + 'static>(
        &self,
        queue: Option<&std::sync::mpsc::SyncSender<Request>>,
        op: impl FnOnce(&Store) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let req = Request::Op(Box::new(move |s: &Store| {
            let _ = reply.send(op(s));
        }));
        Self::queue(queue, req).await?;
        let r = answer.await.unwrap_or(Err(OutboxError::Closed));
        self.gauges.note(&r);
        r
    }

    /// Writes jobs and journal entries like [`Store::enqueue_with`], in one transaction with
    /// the other writes waiting for the owner thread (one disk sync for all); returns the
    /// positions of the jobs written, and the jobs.
    ///
    /// # Errors
    /// As [`Store::enqueue_with`]; nothing was written.
    pub(crate) async fn enqueue_grouped(
        &self,
        jobs: Vec<Job>,
        entries: Vec<Encoded>,
    ) -> Result<(Vec<usize>, Vec<Job>), OutboxError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Request::Write(Write::Enqueue {
            jobs,
            entries,
            reply,
        }))
        .await?;
        let r = answer.await.unwrap_or(Err(OutboxError::Closed));
        self.gauges.note(&r);
        r
    }

    /// Records outcomes like [`Store::complete_many`], in one transaction with the other
    /// writes waiting for the owner thread.
    ///
    /// # Errors
    /// As [`Store::complete_many`]; none of them is recorded.
    pub(crate) async fn complete_grouped(
        &self,
        done: Vec<(Job, Completion)>,
    ) -> Result<(), OutboxError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Request::Write(Write::Complete { done, reply }))
            .await?;
        let r = answer.await.unwrap_or(Err(OutboxError::Closed));
        self.gauges.note(&r);
        r
    }

    /// Queues `req` for the owner thread without blocking the async worker.
    async fn send(&self, req: Request) -> Result<(), OutboxError> {
        Self::queue(self.tx.as_ref(), req).await
    }

    /// Queues `req` on `to` (the owner's or the reader's queue) without blocking the async
    /// worker.
    async fn queue(
        to: Option<&std::sync::mpsc::SyncSender<Request>>,
        req: Request,
    ) -> Result<(), OutboxError> {
        let tx = to.cloned().ok_or(OutboxError::Closed)?;
        match tx.try_send(req) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(req)) => {
                tokio::task::spawn_blocking(move || tx.send(req))
                    .await
                    .map_err(|_| OutboxError::Closed)?
                    .map_err(|_| OutboxError::Closed)?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(OutboxError::Closed),
        }
        Ok(())
    }

    /// Runs `op` on the owner thread and blocks the calling thread until it is done. Not for
    /// async workers: use [`Outbox::call`] there.
    ///
    /// # Errors
    /// `op`'s error, or [`OutboxError::Closed`] when the owner thread is gone.
    pub fn call_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let tx = self.tx.as_ref().ok_or(OutboxError::Closed)?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        tx.send(Request::Op(Box::new(move |s: &Store| {
            let _ = reply.send(op(s));
        })))
        .map_err(|_| OutboxError::Closed)?;
        let r = answer.recv().unwrap_or(Err(OutboxError::Closed));
        self.gauges.note(&r);
        r
    }

    /// Cancelled once the outbox has failed in a way waiting cannot fix (a corrupted file,
    /// its owner thread gone): the process should stop, keeping what it holds elsewhere.
    #[must_use]
    pub fn failed(&self) -> tokio_util::sync::CancellationToken {
        self.gauges.fatal.clone()
    }

    /// The error that made the outbox fail for good, if it has.
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        self.gauges.fatal_error.get().map(String::as_str)
    }

    /// Pending jobs as of the owner's last request (no waiting).
    #[must_use]
    pub fn pending_gauge(&self) -> u64 {
        self.gauges
            .pending
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Dead letters as of the owner's last request (no waiting).
    #[must_use]
    pub fn dead_gauge(&self) -> u64 {
        self.gauges.dead.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The owner thread is gone, or the storage failed at its last request.
    #[must_use]
    pub fn is_failing(&self) -> bool {
        self.owner
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
            || self
                .gauges
                .failing
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blocking [`Store::enqueue`].
    ///
    /// # Errors
    /// As [`Store::enqueue`].
    pub fn enqueue(&self, jobs: &[Job]) -> Result<usize, OutboxError> {
        let jobs = jobs.to_vec();
        self.call_blocking(move |s| s.enqueue(&jobs))
    }

    /// Blocking [`Store::due`].
    ///
    /// # Errors
    /// As [`Store::due`].
    pub fn due(
        &self,
        lane: &str,
        now: i64,
        limit: usize,
        busy: &BTreeSet<String>,
    ) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
        let (lane, busy) = (lane.to_owned(), busy.clone());
        self.call_blocking(move |s| s.due(&lane, now, limit, &busy))
    }

    /// Blocking [`Store::lanes`].
    ///
    /// # Errors
    /// As [`Store::lanes`].
    pub fn lanes(&self) -> Result<BTreeSet<String>, OutboxError> {
        self.call_blocking(Store::lanes)
    }

    /// Blocking [`Store::complete`].
    ///
    /// # Errors
    /// As [`Store::complete`].
    pub fn complete(&self, job: &Job, outcome: Completion) -> Result<(), OutboxError> {
        let job = job.clone();
        self.call_blocking(move |s| s.complete(&job, outcome))
    }

    /// Blocking [`Store::pending_len`].
    ///
    /// # Errors
    /// As [`Store::pending_len`].
    pub fn pending_len(&self) -> Result<u64, OutboxError> {
        self.call_blocking(Store::pending_len)
    }

    /// Blocking [`Store::dead_len`].
    ///
    /// # Errors
    /// As [`Store::dead_len`].
    pub fn dead_len(&self) -> Result<u64, OutboxError> {
        self.call_blocking(Store::dead_len)
    }

    /// Blocking [`Store::dead`].
    ///
    /// # Errors
    /// As [`Store::dead`].
    pub fn dead(&self) -> Result<Vec<Job>, OutboxError> {
        self.call_blocking(Store::dead)
    }

    /// Blocking [`Store::dead_one`].
    ///
    /// # Errors
    /// As [`Store::dead_one`].
    pub fn dead_one(&self, id: &str) -> Result<Job, OutboxError> {
        let id = id.to_owned();
        self.call_blocking(move |s| s.dead_one(&id))
    }

    /// Blocking [`Store::resend`].
    ///
    /// # Errors
    /// As [`Store::resend`].
    pub fn resend(&self, id: &str, now: i64) -> Result<Job, OutboxError> {
        let id = id.to_owned();
        self.call_blocking(move |s| s.resend(&id, now))
    }

    /// Blocking [`Store::purge`].
    ///
    /// # Errors
    /// As [`Store::purge`].
    pub fn purge(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        let id = id.map(str::to_owned);
        self.call_blocking(move |s| s.purge(id.as_deref()))
    }
}

/// Updates the gauges after a request (on the owner thread).
fn refresh(store: &Store, gauges: &Gauges) {
    use std::sync::atomic::Ordering;
    let counts = store.pending_len().and_then(|p| Ok((p, store.dead_len()?)));
    match counts {
        Ok((p, d)) => {
            gauges.pending.store(p, Ordering::Relaxed);
            gauges.dead.store(d, Ordering::Relaxed);
            gauges.failing.store(false, Ordering::Relaxed);
        }
        Err(e) => {
            gauges.failing.store(true, Ordering::Relaxed);
            gauges.note::<()>(&Err(e));
        }
    }
}

fn try_enqueue(
    db: &Database,
    jobs: &[Job],
    entries: &[Encoded],
) -> Result<Vec<usize>, OutboxError> {
    let tx = db.begin_write()?;
    let added = enqueue_in(&tx, jobs, entries)?;
    tx.commit()?;
    Ok(added)
}

/// Writes new jobs and journal entries in `tx`; the positions of the jobs written.
pub(crate) fn enqueue_in(
    tx: &WriteTransaction,
    jobs: &[Job],
    entries: &[Encoded],
) -> Result<Vec<usize>, OutboxError> {
    let mut added = Vec::new();
    {
        let mut pending = tx.open_table(PENDING)?;
        let mut sched = tx.open_table(SCHEDULE)?;
        // A webhook id the journal knows was enqueued once already (and may be delivered).
        let hooks = tx.open_table(super::journal::HOOKS)?;
        for (i, j) in jobs.iter().enumerate() {
            let id = j.webhook_id.as_str();
            if pending.get(id)?.is_some() || hooks.get(id)?.is_some() {
                continue;
            }
            write_pending(&mut pending, &mut sched, j)?;
            added.push(i);
        }
    }
    if !entries.is_empty() {
        let now = jobs
            .first()
            .map_or_else(|| WallTime::now().as_us(), |j| j.created_us);
        super::journal::put_in(tx, entries, now)?;
    }
    Ok(added)
}

type PendingTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;
type ScheduleTable<'t> = redb::Table<'t, &'static [u8], ()>;

fn write_pending(
    pending: &mut PendingTable<'_>,
    sched: &mut ScheduleTable<'_>,
    job: &Job,
) -> Result<(), OutboxError> {
    let bytes = serde_json::to_vec(job)?;
    pending.insert(job.webhook_id.as_str(), bytes.as_slice())?;
    let key = schedule_key(&job.endpoint.lane(), job.next_attempt_us, &job.webhook_id);
    sched.insert(key.as_slice(), ())?;
    Ok(())
}

/// Writes `job` as pending, due at its `next_attempt_us`.
pub(crate) fn insert_pending(tx: &WriteTransaction, job: &Job) -> Result<(), OutboxError> {
    write_pending(
        &mut tx.open_table(PENDING)?,
        &mut tx.open_table(SCHEDULE)?,
        job,
    )
}

fn due(
    db: &Database,
    lane: &str,
    now: i64,
    limit: usize,
    busy: &BTreeSet<String>,
) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
    let tx = db.begin_read()?;
    let sched = tx.open_table(SCHEDULE)?;
    let pending = tx.open_table(PENDING)?;
    let start = schedule_key(lane, i64::MIN, "");
    let mut end = lane.as_bytes().to_vec();
    end.push(1);
    let mut out = Vec::new();
    let mut next = None;
    for entry in sched.range(start.as_slice()..end.as_slice())? {
        let (k, _) = entry?;
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
        if let Some(v) = pending.get(id)? {
            out.push(serde_json::from_slice(v.value())?);
        }
    }
    Ok((out, next))
}

fn lanes(db: &Database) -> Result<BTreeSet<String>, OutboxError> {
    let tx = db.begin_read()?;
    let sched = tx.open_table(SCHEDULE)?;
    let mut lanes = BTreeSet::new();
    let mut from: Vec<u8> = Vec::new();
    // Skip from lane to lane instead of walking every job.
    loop {
        let mut it = sched.range(from.as_slice()..)?;
        let Some(entry) = it.next() else { break };
        let (k, _) = entry?;
        let Some((lane, _, _)) = parse_schedule_key(k.value()) else {
            break;
        };
        lanes.insert(lane.to_owned());
        from = lane.as_bytes().to_vec();
        from.push(1);
    }
    Ok(lanes)
}

fn complete_many(db: &Database, done: &[(Job, Completion)]) -> Result<(), OutboxError> {
    let tx = db.begin_write()?;
    complete_in(&tx, done)?;
    Ok(tx.commit()?)
}

/// Records outcomes in `tx`.
pub(crate) fn complete_in(
    tx: &WriteTransaction,
    done: &[(Job, Completion)],
) -> Result<(), OutboxError> {
    {
        let mut pending = tx.open_table(PENDING)?;
        let mut sched = tx.open_table(SCHEDULE)?;
        let mut dead = tx.open_table(DEAD)?;
        for (job, outcome) in done {
            let lane = job.endpoint.lane();
            let id = job.webhook_id.as_str();
            // The schedule entry is keyed by the stored due time. The caller's copy holds it
            // (it is the job as read or as written); should it be older, only that field is
            // read back from the stored job.
            let key = schedule_key(&lane, job.next_attempt_us, id);
            if sched.remove(key.as_slice())?.is_none() {
                #[derive(serde::Deserialize)]
                struct Due {
                    next_attempt_us: i64,
                }
                if let Some(v) = pending.get(id)? {
                    if let Ok(d) = serde_json::from_slice::<Due>(v.value()) {
                        sched.remove(schedule_key(&lane, d.next_attempt_us, id).as_slice())?;
                    }
                }
            }
            match outcome {
                Completion::Delivered => {
                    pending.remove(id)?;
                }
                Completion::RetryAt(at, error) => {
                    let mut j = job.clone();
                    j.next_attempt_us = *at;
                    j.last_error = Some(error.clone());
                    let bytes = serde_json::to_vec(&j)?;
                    pending.insert(id, bytes.as_slice())?;
                    sched.insert(schedule_key(&lane, *at, id).as_slice(), ())?;
                }
                Completion::Dead(error) => {
                    pending.remove(id)?;
                    let mut j = job.clone();
                    j.last_error = Some(error.clone());
                    let bytes = serde_json::to_vec(&j)?;
                    dead.insert(id, bytes.as_slice())?;
                }
            }
        }
    }
    let finals: Vec<(&str, DeliveryState)> = done
        .iter()
        .filter_map(|(j, c)| match c {
            Completion::Delivered => Some((j.webhook_id.as_str(), DeliveryState::Delivered)),
            Completion::Dead(_) => Some((j.webhook_id.as_str(), DeliveryState::Dead)),
            Completion::RetryAt(..) => None,
        })
        .collect();
    super::journal::record_states(tx, &finals, WallTime::now().as_us())
}

fn dead(db: &Database) -> Result<Vec<Job>, OutboxError> {
    let tx = db.begin_read()?;
    let dead = tx.open_table(DEAD)?;
    let mut out: Vec<Job> = Vec::new();
    for e in dead.iter()? {
        let (_, v) = e?;
        out.push(serde_json::from_slice(v.value())?);
    }
    out.sort_by(|a, b| (a.created_us, &a.webhook_id).cmp(&(b.created_us, &b.webhook_id)));
    Ok(out)
}

fn resend(db: &Database, id: &str, now: i64) -> Result<Job, OutboxError> {
    let tx = db.begin_write()?;
    let job = {
        let mut dead = tx.open_table(DEAD)?;
        let mut job: Job = match dead.remove(id)? {
            Some(v) => serde_json::from_slice(v.value())?,
            None => return Err(OutboxError::NotFound(id.into())),
        };
        job.attempts = 0;
        job.next_attempt_us = now;
        let mut pending = tx.open_table(PENDING)?;
        let bytes = serde_json::to_vec(&job)?;
        pending.insert(job.webhook_id.as_str(), bytes.as_slice())?;
        let mut sched = tx.open_table(SCHEDULE)?;
        sched.insert(
            schedule_key(&job.endpoint.lane(), now, &job.webhook_id).as_slice(),
            (),
        )?;
        job
    };
    super::journal::record_states(&tx, &[(id, DeliveryState::Pending)], now)?;
    tx.commit()?;
    Ok(job)
}

fn purge(db: &Database, id: Option<&str>) -> Result<usize, OutboxError> {
    let tx = db.begin_write()?;
    let ids: Vec<String> = {
        let mut dead = tx.open_table(DEAD)?;
        match id {
            Some(id) => {
                if dead.remove(id)?.is_none() {
                    return Err(OutboxError::NotFound(id.into()));
                }
                vec![id.to_owned()]
            }
            None => {
                let mut ids = Vec::new();
                for row in dead.iter()? {
                    ids.push(row?.0.value().to_owned());
                }
                dead.retain(|_, _| false)?;
                ids
            }
        }
    };
    let n = ids.len();
    let purged: Vec<(&str, DeliveryState)> = ids
        .iter()
        .map(|i| (i.as_str(), DeliveryState::Purged))
        .collect();
    super::journal::record_states(&tx, &purged, WallTime::now().as_us())?;
    tx.commit()?;
    Ok(n)
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
        let raw = o
            .call_blocking(|s| {
                s.with_db(|db| {
                    let tx = db.begin_read()?;
                    let t = tx.open_table(PENDING)?;
                    let v = t.get("a")?.map(|v| v.value().to_vec());
                    Ok(v.unwrap_or_default())
                })
            })
            .unwrap();
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

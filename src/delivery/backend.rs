//! The storage boundary: everything the sidecar persists — the outbox (enqueue with the CDR
//! journal in the same transaction, due jobs, outcomes, lanes), the dead letters, the CDR
//! journal and the saved open sessions — behind one type, [`Storage`], with two backends:
//!
//! - **embedded** ([`super::Outbox`]): one redb file on the local disk, the default; one
//!   process owns it. Its due scan hands out jobs without marking them (the engine's `busy`
//!   set keeps one process from attempting a job twice).
//! - **PostgreSQL** ([`super::pg::PgStore`]): shared by any number of instances
//!   (active-active). A due job is *claimed*: `FOR UPDATE SKIP LOCKED` plus a lease
//!   (`claimed_by`, `lease_until_us`); a claim whose holder died returns to the pool when its
//!   lease expires, and only the lease holder may record an outcome.
//!
//! Decision: an **enum** dispatching to the two backends, not a trait object. There are
//! exactly two backends, both in this crate; an enum needs no boxed futures or
//! `async_trait`, keeps each call a plain `match` a reviewer can follow, and lets the embedded
//! path stay exactly what it was (each arm forwards to the same [`super::Store`] method the
//! sidecar called before). The choices about copies of a delivery or a journal entry are pure
//! functions here ([`CopyKind::replaces`], [`delivery_replaceable`]); the backends are shells that
//! store and read.
//!
//! Saved sessions: the embedded backend keeps `sessions.json` in the data directory (as
//! before); PostgreSQL keeps them in a row named by the instance (`[store] instance`), so a
//! replacement machine with the same instance name picks them up.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::job::Job;
use super::journal::{
    Encoded, JournalEntry, JournalPolicy, JournalRecord, ListFilter, Page, Pruned,
};
use super::journal::{ResendReport, ResendTarget};
use super::outbox::{Completion, Outbox, OutboxError, Store};
use super::pg::PgStore;
use crate::clock::WallTime;
use crate::run::state::SavedState;

/// Which kind of copy of a session (or of its delivery) a stored item is. Instances that
/// saw the same call build the same session id and `webhook-id`; one of them may have had a
/// gap in its event stream, or built the session from Kazoo's stored CDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CopyKind {
    /// Built (partly) from Kazoo's stored CDRs.
    Backfilled,
    /// Built from a live stream that had a gap.
    Gapped,
    /// Built from a live stream without a gap.
    Complete,
}

impl CopyKind {
    /// The copy a session's tags describe.
    #[must_use]
    pub fn of(backfilled: bool, gapped: bool) -> Self {
        if backfilled {
            Self::Backfilled
        } else if gapped {
            Self::Gapped
        } else {
            Self::Complete
        }
    }

    /// Whether a journal entry built as `self` replaces the kept one built as `old`. As the
    /// embedded journal decides: a backfilled copy never replaces a kept entry; across
    /// instances, a gapped copy never replaces a complete one either. Otherwise the newer copy
    /// wins (the deliveries of both are kept).
    #[must_use]
    pub fn replaces(self, old: Self) -> bool {
        match self {
            Self::Backfilled => false,
            Self::Gapped => old != Self::Complete,
            Self::Complete => true,
        }
    }
}

/// Whether a delivery already stored (`old`, with `attempts` made and a live claim or not)
/// may be replaced by a new copy of the same `webhook-id` built as `new`: only a complete
/// copy replaces a gapped (or backfilled) one, and only before anyone attempted it — a
/// receiver never sees two different bodies under one `webhook-id`.
#[must_use]
pub fn delivery_replaceable(old: CopyKind, attempts: u32, claimed: bool, new: CopyKind) -> bool {
    new == CopyKind::Complete && old != CopyKind::Complete && attempts == 0 && !claimed
}

/// Where the deliveries, journal and saved sessions live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The embedded redb outbox (the default).
    Embedded(Arc<Outbox>),
    /// A PostgreSQL database shared by several instances.
    Postgres(Arc<PgStore>),
}

impl From<Arc<Outbox>> for Storage {
    fn from(o: Arc<Outbox>) -> Self {
        Self::Embedded(o)
    }
}

macro_rules! on_owner {
    ($outbox:expr, |$s:ident| $body:expr) => {
        $outbox.call(move |$s: &Store| $body).await
    };
}

impl Storage {
    /// The embedded outbox, if that is the backend.
    #[must_use]
    pub fn embedded(&self) -> Option<&Arc<Outbox>> {
        match self {
            Self::Embedded(o) => Some(o),
            Self::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, if that is the backend.
    #[must_use]
    pub fn postgres(&self) -> Option<&Arc<PgStore>> {
        match self {
            Self::Embedded(_) => None,
            Self::Postgres(p) => Some(p),
        }
    }

    /// How often the engine looks for work other instances made due (resends, expired
    /// leases); `None` when this process is the only writer.
    #[must_use]
    pub fn poll_interval(&self) -> Option<Duration> {
        match self {
            Self::Embedded(_) => None,
            Self::Postgres(p) => Some(p.poll_interval()),
        }
    }

    /// Whether jobs read beyond the free attempt slots may be held in memory until a slot
    /// frees. Not on PostgreSQL: a read claims its jobs for a lease, which a job waiting
    /// here behind a slow endpoint could outlive (another instance would then send it too).
    #[must_use]
    pub fn reads_ahead(&self) -> bool {
        matches!(self, Self::Embedded(_))
    }

    /// Writes jobs and the sessions' journal entries in one transaction.
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub async fn enqueue_journaled(
        &self,
        jobs: Vec<Job>,
        entries: Vec<Encoded>,
    ) -> Result<usize, OutboxError> {
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.enqueue_journaled(&jobs, &entries)),
            Self::Postgres(p) => p.enqueue(&jobs, &entries).await,
        }
    }

    /// [`Storage::enqueue_journaled`], also returning the jobs the engine may attempt from
    /// memory: on the embedded backend, those written (durable now, and this process is the
    /// only one attempting them); on PostgreSQL none, since a job is attempted only once
    /// claimed.
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub async fn enqueue_handed(
        &self,
        jobs: Vec<Job>,
        entries: Vec<Encoded>,
    ) -> Result<(usize, Vec<Job>), OutboxError> {
        match self {
            Self::Embedded(o) => {
                let (idx, mut jobs) = o.enqueue_grouped(jobs, entries).await?;
                let n = idx.len();
                if n < jobs.len() {
                    let keep: BTreeSet<usize> = idx.into_iter().collect();
                    let mut i = 0;
                    jobs.retain(|_| {
                        i += 1;
                        keep.contains(&(i - 1))
                    });
                }
                Ok((n, jobs))
            }
            Self::Postgres(p) => Ok((p.enqueue(&jobs, &entries).await?, Vec::new())),
        }
    }

    /// Up to `limit` jobs of `lane` due at `now` that this process may attempt now (claimed
    /// for it, on PostgreSQL), skipping `busy`; and when the lane's next job not returned is
    /// due (or its claim's lease ends).
    ///
    /// # Errors
    /// A storage error.
    pub async fn due(
        &self,
        lane: String,
        now: i64,
        limit: usize,
        busy: BTreeSet<String>,
    ) -> Result<(Vec<Job>, Option<i64>), OutboxError> {
        match self {
            Self::Embedded(o) => {
                o.read_beside(move |s| s.due(&lane, now, limit, &busy))
                    .await
            }
            Self::Postgres(p) => p.claim(&lane, now, limit, &busy).await,
        }
    }

    /// The lanes that have pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub async fn lanes(&self) -> Result<BTreeSet<String>, OutboxError> {
        match self {
            Self::Embedded(o) => o.call(Store::lanes).await,
            Self::Postgres(p) => p.lanes().await,
        }
    }

    /// Records outcomes (one transaction; on the embedded backend shared with the other
    /// writes waiting, see [`super::writer`]).
    ///
    /// # Errors
    /// A storage error; none of them is recorded.
    pub async fn complete_many(&self, done: Vec<(Job, Completion)>) -> Result<(), OutboxError> {
        match self {
            Self::Embedded(o) => o.complete_grouped(done).await,
            Self::Postgres(p) => p.complete_many(&done).await,
        }
    }

    /// Dead letters, oldest first.
    ///
    /// # Errors
    /// A storage error.
    pub async fn dead(&self) -> Result<Vec<Job>, OutboxError> {
        match self {
            Self::Embedded(o) => o.call(Store::dead).await,
            Self::Postgres(p) => p.dead().await,
        }
    }

    /// One dead letter.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub async fn dead_one(&self, id: &str) -> Result<Job, OutboxError> {
        let id = id.to_owned();
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.dead_one(&id)),
            Self::Postgres(p) => p.dead_one(&id).await,
        }
    }

    /// Moves a dead letter back to pending, due at `now`.
    ///
    /// # Errors
    /// Not found, or a storage error.
    pub async fn resend(&self, id: &str, now: WallTime) -> Result<Job, OutboxError> {
        let (id, now) = (id.to_owned(), now.as_us());
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.resend(&id, now)),
            Self::Postgres(p) => p.resend(&id, now).await,
        }
    }

    /// The `n` most recent journal entries of `tenant` (by session start), newest first.
    ///
    /// # Errors
    /// A storage error, or an entry that cannot be read.
    pub async fn journal_latest(
        &self,
        tenant: String,
        n: usize,
    ) -> Result<Vec<JournalEntry>, OutboxError> {
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_latest(&tenant, n)),
            Self::Postgres(p) => p.journal_latest(&tenant, n).await,
        }
    }

    /// Deletes one dead letter, or all of them.
    ///
    /// # Errors
    /// Not found (for one id), or a storage error.
    pub async fn purge(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        let id = id.map(str::to_owned);
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.purge(id.as_deref())),
            Self::Postgres(p) => p.purge(id.as_deref()).await,
        }
    }

    /// Pending jobs.
    ///
    /// # Errors
    /// A storage error.
    pub async fn pending_len(&self) -> Result<u64, OutboxError> {
        match self {
            Self::Embedded(o) => o.call(Store::pending_len).await,
            Self::Postgres(p) => p.counts().await.map(|c| c.0),
        }
    }

    /// Dead letters.
    ///
    /// # Errors
    /// A storage error.
    pub async fn dead_len(&self) -> Result<u64, OutboxError> {
        match self {
            Self::Embedded(o) => o.call(Store::dead_len).await,
            Self::Postgres(p) => p.counts().await.map(|c| c.1),
        }
    }

    /// Writes journal entries (an upsert by session id).
    ///
    /// # Errors
    /// A storage error; nothing was written.
    pub async fn journal_put(&self, entries: Vec<Encoded>) -> Result<(), OutboxError> {
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_put(&entries)),
            Self::Postgres(p) => p.enqueue(&[], &entries).await.map(|_| ()),
        }
    }

    /// A journal entry with the state of each delivery.
    ///
    /// # Errors
    /// A storage error.
    pub async fn journal_get(&self, id: &str) -> Result<Option<JournalRecord>, OutboxError> {
        let id = id.to_owned();
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_get(&id)),
            Self::Postgres(p) => p.journal_get(&id).await,
        }
    }

    /// One page of journal entries.
    ///
    /// # Errors
    /// A storage error.
    pub async fn journal_list(&self, filter: ListFilter) -> Result<Page, OutboxError> {
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_list(&filter)),
            Self::Postgres(p) => p.journal_list(&filter).await,
        }
    }

    /// Removes one batch of journal entries past the retention or over the size cap.
    ///
    /// # Errors
    /// A storage error; nothing was removed.
    pub async fn journal_prune(
        &self,
        now: WallTime,
        policy: JournalPolicy,
    ) -> Result<Pruned, OutboxError> {
        let now_us = now.as_us();
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_prune(now_us, &policy)),
            Self::Postgres(p) => p.journal_prune(now_us, &policy).await,
        }
    }

    /// Re-sends journal entries' deliveries through `set`.
    ///
    /// # Errors
    /// No such entry (for one session), or a storage error.
    pub async fn journal_resend(
        &self,
        target: ResendTarget,
        set: Arc<crate::trigger::TriggerSet>,
        only_trigger: Option<String>,
        now: WallTime,
    ) -> Result<ResendReport, OutboxError> {
        let now_us = now.as_us();
        match self {
            Self::Embedded(o) => on_owner!(o, |s| s.journal_resend(
                &target,
                &set,
                only_trigger.as_deref(),
                now_us
            )),
            Self::Postgres(p) => {
                p.journal_resend(&target, &set, only_trigger.as_deref(), now_us)
                    .await
            }
        }
    }

    /// Saves the open sessions for the next start (`data_dir` is where the embedded backend
    /// keeps them).
    ///
    /// # Errors
    /// The state cannot be written; the previous one is left as it was.
    pub async fn save_sessions(
        &self,
        data_dir: &Path,
        state: SavedState,
    ) -> Result<(), OutboxError> {
        match self {
            Self::Embedded(_) => {
                let path = crate::run::state::state_path(data_dir);
                tokio::task::spawn_blocking(move || crate::run::state::save(&path, &state))
                    .await
                    .map_err(|_| OutboxError::Closed)?
                    .map_err(OutboxError::Io)
            }
            Self::Postgres(p) => p.save_sessions(&state).await,
        }
    }

    /// The sessions the previous run saved (left in place: [`Storage::remove_sessions`] once
    /// they are held again).
    ///
    /// # Errors
    /// The saved state cannot be read.
    pub async fn load_sessions(&self, data_dir: &Path) -> Result<Option<SavedState>, OutboxError> {
        match self {
            Self::Embedded(_) => {
                let path = crate::run::state::state_path(data_dir);
                tokio::task::spawn_blocking(move || crate::run::state::load(&path))
                    .await
                    .map_err(|_| OutboxError::Closed)?
                    .map_err(OutboxError::Io)
            }
            Self::Postgres(p) => p.load_sessions().await,
        }
    }

    /// Removes the saved sessions once the running assembler holds them.
    ///
    /// # Errors
    /// A storage error.
    pub async fn remove_sessions(&self, data_dir: &Path) -> Result<(), OutboxError> {
        match self {
            Self::Embedded(_) => {
                let path = crate::run::state::state_path(data_dir);
                tokio::task::spawn_blocking(move || crate::run::state::remove(&path))
                    .await
                    .map_err(|_| OutboxError::Closed)?
                    .map_err(OutboxError::Io)
            }
            Self::Postgres(p) => p.remove_sessions().await,
        }
    }

    /// Cancelled once the store has failed in a way waiting cannot fix (never, on
    /// PostgreSQL: an unreachable database is waited out).
    #[must_use]
    pub fn failed(&self) -> tokio_util::sync::CancellationToken {
        match self {
            Self::Embedded(o) => o.failed(),
            Self::Postgres(p) => p.failed(),
        }
    }

    /// The error that made the store fail for good, if it has.
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        match self {
            Self::Embedded(o) => o.failure(),
            Self::Postgres(_) => None,
        }
    }

    /// Pending jobs as last seen (no waiting).
    #[must_use]
    pub fn pending_gauge(&self) -> u64 {
        match self {
            Self::Embedded(o) => o.pending_gauge(),
            Self::Postgres(p) => p.gauges().0,
        }
    }

    /// Dead letters as last seen (no waiting).
    #[must_use]
    pub fn dead_gauge(&self) -> u64 {
        match self {
            Self::Embedded(o) => o.dead_gauge(),
            Self::Postgres(p) => p.gauges().1,
        }
    }

    /// The last storage operation failed.
    #[must_use]
    pub fn is_failing(&self) -> bool {
        match self {
            Self::Embedded(o) => o.is_failing(),
            Self::Postgres(p) => p.is_failing(),
        }
    }

    /// What the backend is, for the log (never a password).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(_) => "embedded".into(),
            Self::Postgres(p) => format!("postgresql {}", p.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_rank_as_the_journal_decides() {
        use CopyKind::{Backfilled, Complete, Gapped};
        // What the embedded journal does: a backfilled copy never replaces a kept entry.
        for old in [Backfilled, Gapped, Complete] {
            assert!(!Backfilled.replaces(old));
            assert!(Complete.replaces(old));
        }
        assert!(!Gapped.replaces(Complete));
        assert!(Gapped.replaces(Gapped));
        assert!(Gapped.replaces(Backfilled));
        assert_eq!(CopyKind::of(true, true), Backfilled);
        assert_eq!(CopyKind::of(false, true), Gapped);
        assert_eq!(CopyKind::of(false, false), Complete);
    }

    #[test]
    fn only_an_unattempted_gapped_delivery_is_replaced() {
        use CopyKind::{Backfilled, Complete, Gapped};
        assert!(delivery_replaceable(Gapped, 0, false, Complete));
        assert!(delivery_replaceable(Backfilled, 0, false, Complete));
        assert!(!delivery_replaceable(Gapped, 1, false, Complete));
        assert!(!delivery_replaceable(Gapped, 0, true, Complete));
        assert!(!delivery_replaceable(Complete, 0, false, Complete));
        assert!(!delivery_replaceable(Complete, 0, false, Gapped));
        assert!(!delivery_replaceable(Gapped, 0, false, Gapped));
    }
}

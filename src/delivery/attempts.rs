//! The attempt log: every delivery attempt the engine made recently, with its time, status,
//! latency, error and the first bytes of the answer — what the console's delivery log shows.
//!
//! Kept in memory and bounded twice: at most [`AttemptLogOptions::capacity`] entries (the
//! oldest goes first) and none older than [`AttemptLogOptions::max_age`] (pruned on each
//! write and read). Each entry removed for either reason is counted
//! ([`AttemptLog::pruned`], exported as `postcall_attempt_log_pruned`). The log is not
//! durable on purpose: the outbox and the CDR journal hold each delivery's state and last
//! error across restarts; this is the recent history of attempts, which nothing depends on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::clock::WallTime;

/// Bounds of the log.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLogOptions {
    /// Entries kept at most (10 000; about 4 MB at most with full excerpts).
    pub capacity: usize,
    /// Entries older than this are removed (24 h).
    pub max_age: Duration,
}

impl Default for AttemptLogOptions {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// One attempt (or a decision without a request: a missing signing key).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// When it finished, µs since the epoch.
    pub at_us: i64,
    /// The delivery.
    pub webhook_id: String,
    /// The trigger that matched.
    pub trigger_id: String,
    /// Which attempt of the delivery (1 = first).
    pub attempt: u32,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// `delivered`, `retry` or `dead`.
    pub outcome: &'static str,
    /// What went wrong (connection error, timeout, status with excerpt), if anything.
    pub error: Option<String>,
    /// The first bytes of the answer's body (escaped, URL secrets removed).
    pub response: String,
}

/// The bounded log. Cheap to share behind the engine.
#[derive(Debug)]
pub struct AttemptLog {
    opts: AttemptLogOptions,
    entries: Mutex<VecDeque<Attempt>>,
    recorded: AtomicU64,
    pruned: AtomicU64,
}

impl Default for AttemptLog {
    fn default() -> Self {
        Self::new(AttemptLogOptions::default())
    }
}

/// Which attempts [`AttemptLog::list`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptQuery<'a> {
    /// Only this trigger's.
    pub trigger_id: Option<&'a str>,
    /// Only this delivery's.
    pub webhook_id: Option<&'a str>,
    /// At most this many, newest first (0 = no limit).
    pub limit: usize,
}

impl AttemptLog {
    /// An empty log with these bounds.
    pub fn new(opts: AttemptLogOptions) -> Self {
        Self {
            opts,
            entries: Mutex::new(VecDeque::new()),
            recorded: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Attempt>> {
        // Entries are pushed and popped whole: a panic elsewhere leaves the queue usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes what is over the bounds at `now`; returns how many.
    fn prune(&self, q: &mut VecDeque<Attempt>, now: WallTime) -> u64 {
        let oldest = now.minus(self.opts.max_age).as_us();
        let mut n = 0;
        while q.len() > self.opts.capacity || q.front().is_some_and(|a| a.at_us < oldest) {
            q.pop_front();
            n += 1;
        }
        if n > 0 {
            self.pruned.fetch_add(n, Ordering::Relaxed);
        }
        n
    }

    /// Adds attempts (in the order they finished), pruning at `now`.
    pub fn record(&self, attempts: impl IntoIterator<Item = Attempt>, now: WallTime) {
        let mut q = self.lock();
        for a in attempts {
            q.push_back(a);
            self.recorded.fetch_add(1, Ordering::Relaxed);
        }
        self.prune(&mut q, now);
    }

    /// The attempts that satisfy `query` at `now`, newest first.
    pub fn list(&self, query: AttemptQuery<'_>, now: WallTime) -> Vec<Attempt> {
        let mut q = self.lock();
        self.prune(&mut q, now);
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        q.iter()
            .rev()
            .filter(|a| query.trigger_id.is_none_or(|t| a.trigger_id == t))
            .filter(|a| query.webhook_id.is_none_or(|w| a.webhook_id == w))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the log holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Attempts recorded since start.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Entries removed for being over the count or too old.
    pub fn pruned(&self) -> u64 {
        self.pruned.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: i64) -> WallTime {
        WallTime::from_us(us)
    }

    fn attempt(at_us: i64, trigger: &str, webhook: &str) -> Attempt {
        Attempt {
            at_us,
            webhook_id: webhook.into(),
            trigger_id: trigger.into(),
            attempt: 1,
            status: Some(200),
            latency_ms: 3,
            outcome: "delivered",
            error: None,
            response: String::new(),
        }
    }

    #[test]
    fn bounded_by_count_and_age_and_counted() {
        let log = AttemptLog::new(AttemptLogOptions {
            capacity: 3,
            max_age: Duration::from_secs(10),
        });
        log.record((0..5).map(|i| attempt(i, "t", &format!("w{i}"))), at(5));
        assert_eq!(log.len(), 3);
        assert_eq!((log.recorded(), log.pruned()), (5, 2));
        let ids: Vec<String> = log
            .list(AttemptQuery::default(), at(5))
            .into_iter()
            .map(|a| a.webhook_id)
            .collect();
        assert_eq!(ids, ["w4", "w3", "w2"], "newest first");
        // 10 s later than w2 (at 2 µs): w2 is too old, the others are not yet.
        assert_eq!(log.list(AttemptQuery::default(), at(10_000_003)).len(), 2);
        assert_eq!(log.pruned(), 3);
        assert!(log.list(AttemptQuery::default(), at(20_000_000)).is_empty());
        assert_eq!(log.pruned(), 5);
    }

    #[test]
    fn filters_by_trigger_and_webhook() {
        let log = AttemptLog::default();
        log.record(
            [
                attempt(1, "a", "w1"),
                attempt(2, "b", "w2"),
                attempt(3, "a", "w3"),
            ],
            at(3),
        );
        let q = |t: Option<&str>, w: Option<&str>, limit| {
            log.list(
                AttemptQuery {
                    trigger_id: t,
                    webhook_id: w,
                    limit,
                },
                at(3),
            )
            .len()
        };
        assert_eq!(q(Some("a"), None, 0), 2);
        assert_eq!(q(Some("a"), None, 1), 1);
        assert_eq!(q(None, Some("w2"), 0), 1);
        assert_eq!(q(Some("b"), Some("w1"), 0), 0);
    }
}

//! Group commit on the outbox's owner thread: writes queued one behind the other — new
//! deliveries (with their journal entries) and attempt outcomes — share one write
//! transaction, so one disk sync makes all of them durable. Each caller is answered only
//! after that commit, with its own result.
//!
//! When anything in the shared transaction fails (one job that cannot be encoded, an I/O
//! error, a full disk), the transaction is dropped — nothing of it is written — and every
//! write is run again alone through [`Store::enqueue_with`] or [`Store::complete_many`],
//! which handle disk-full and reopening as before. So a caller's write is still all or
//! nothing, and one bad write never fails the others.

use tokio::sync::oneshot;

use super::job::Job;
use super::journal::Encoded;
use super::outbox::{complete_in, enqueue_in, Completion, OutboxError, Store};

/// Writes sharing one transaction at most (each holds its jobs until the commit).
pub(crate) const MAX_BATCH: usize = 256;

/// What an enqueue is answered with: the positions of the jobs written, and the jobs.
pub(crate) type Enqueued = Result<(Vec<usize>, Vec<Job>), OutboxError>;

/// A write waiting for the owner thread.
pub(crate) enum Write {
    /// [`Store::enqueue_with`]: answered with the positions of the jobs written, and the jobs.
    Enqueue {
        jobs: Vec<Job>,
        entries: Vec<Encoded>,
        reply: oneshot::Sender<Enqueued>,
    },
    /// [`Store::complete_many`].
    Complete {
        done: Vec<(Job, Completion)>,
        reply: oneshot::Sender<Result<(), OutboxError>>,
    },
}

/// What a write did inside the shared transaction, answered once it commits.
enum Staged {
    Enqueued(Vec<usize>),
    Completed,
}

impl Write {
    fn apply(&self, tx: &redb::WriteTransaction) -> Result<Staged, OutboxError> {
        match self {
            Self::Enqueue { jobs, entries, .. } => {
                enqueue_in(tx, jobs, entries).map(Staged::Enqueued)
            }
            Self::Complete { done, .. } => complete_in(tx, done).map(|()| Staged::Completed),
        }
    }

    fn answer(self, staged: Staged) {
        match (self, staged) {
            (Self::Enqueue { jobs, reply, .. }, Staged::Enqueued(written)) => {
                let _ = reply.send(Ok((written, jobs)));
            }
            (Self::Complete { reply, .. }, Staged::Completed) => {
                let _ = reply.send(Ok(()));
            }
            // `apply` stages the variant it was given; never reached.
            (w, _) => w.fail(OutboxError::Store("write staged as another kind".into())),
        }
    }

    /// Runs the write in its own transaction (through the store's full path) and answers.
    fn alone(self, store: &Store) {
        match self {
            Self::Enqueue {
                jobs,
                entries,
                reply,
            } => {
                let r = store.enqueue_with(&jobs, &entries).map(|w| (w, jobs));
                let _ = reply.send(r);
            }
            Self::Complete { done, reply } => {
                let _ = reply.send(store.complete_many(&done));
            }
        }
    }

    fn fail(self, e: OutboxError) {
        match self {
            Self::Enqueue { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Self::Complete { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn is_outcome(&self) -> bool {
        matches!(self, Self::Complete { .. })
    }
}

/// Commits `batch` in one transaction and answers each write; see the module docs for
/// what happens when that fails.
pub(crate) fn commit(store: &Store, batch: Vec<Write>) {
    if batch.len() == 1 || store.reserve_spent() {
        for w in batch {
            w.alone(store);
        }
        return;
    }
    let shared = store.with_db(|db| {
        let tx = db.begin_write()?;
        let staged = batch
            .iter()
            .map(|w| w.apply(&tx))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(staged)
    });
    match shared {
        Ok(staged) => {
            let outcomes = batch.iter().any(Write::is_outcome);
            for (w, s) in batch.into_iter().zip(staged) {
                w.answer(s);
            }
            if outcomes {
                store.outcomes_stored();
            }
        }
        Err(e) => {
            tracing::debug!(writes = batch.len(), error = %e, "shared outbox transaction failed; writing one by one");
            for w in batch {
                w.alone(store);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::job::Endpoint;
    use super::super::outbox::{Outbox, OutboxOptions};
    use super::super::payload::{Format, Method};
    use super::super::storage::{Fault, Faults};
    use super::*;
    use std::sync::Arc;

    fn job(id: &str) -> Job {
        Job {
            webhook_id: id.into(),
            trigger_id: "t".into(),
            endpoint: Endpoint {
                url: "http://127.0.0.1:9/h".into(),
                method: Method::Post,
                format: Format::Json,
                retries: 1,
                signed: false,
            },
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            attempts: 1,
            next_attempt_us: 0,
            created_us: 0,
            last_error: None,
        }
    }

    /// Holds the owner thread (once this returns) until the returned sender is dropped, so
    /// the writes queued meanwhile are committed as one batch.
    async fn hold(outbox: &Arc<Outbox>) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let o = outbox.clone();
        tokio::spawn(async move {
            o.call(move |_| {
                let _ = started.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
        });
        running.await.unwrap();
        release
    }

    /// Lets the held owner go once the writes `join!` polled first are queued.
    async fn release(r: std::sync::mpsc::Sender<()>) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(r);
    }

    async fn pending(outbox: &Outbox) -> Vec<String> {
        outbox
            .call(|s| {
                s.read(|tx| {
                    use redb::ReadableTable;
                    let t = tx.open_table(super::super::outbox::PENDING)?;
                    let mut ids = Vec::new();
                    for row in t.iter()? {
                        ids.push(row?.0.value().to_owned());
                    }
                    Ok(ids)
                })
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_a_commit_in_order_and_each_gets_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        let outbox = Arc::new(
            Outbox::open_with(
                &dir.path().join("o.redb"),
                OutboxOptions {
                    reserve_bytes: 0,
                    faults: faults.clone(),
                },
            )
            .unwrap(),
        );
        // One batch: the second enqueue sees the first's `b` (same transaction, in order), the
        // outcome removes the `a` written just before it.
        // `join!` polls in order, so the writes are queued in this order behind the hold.
        let held = hold(&outbox).await;
        let (first, second, third, ()) = tokio::join!(
            outbox.enqueue_grouped(vec![job("a"), job("b")], Vec::new()),
            outbox.enqueue_grouped(vec![job("b"), job("c")], Vec::new()),
            outbox.complete_grouped(vec![(job("a"), Completion::Delivered)]),
            release(held),
        );
        let (w1, _) = first.unwrap();
        let (w2, jobs2) = second.unwrap();
        third.unwrap();
        assert_eq!(w1, [0, 1]);
        assert_eq!(w2, [1], "b was written by the first write of the batch");
        assert_eq!(jobs2.len(), 2, "the caller gets its jobs back");
        assert_eq!(pending(&outbox).await, ["b", "c"]);

        // A batch whose transaction fails: every write is tried alone, each caller gets its
        // error, and nothing of any of them is written.
        faults.set(Fault::WriteError);
        let held = hold(&outbox).await;
        let (new, outcome, ()) = tokio::join!(
            outbox.enqueue_grouped(vec![job("d")], Vec::new()),
            outbox.complete_grouped(vec![(job("b"), Completion::Delivered)]),
            release(held),
        );
        assert!(new.is_err());
        assert!(outcome.is_err());
        faults.set(Fault::None);
        assert_eq!(
            pending(&outbox).await,
            ["b", "c"],
            "no attempt recorded, no job added"
        );
    }
}

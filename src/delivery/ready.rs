//! The dispatcher's view of the lanes (pure, no I/O): which lanes have work, the fresh jobs
//! handed over in memory right after they were written durably, and when a lane's part of
//! the outbox must be read.
//!
//! A job just written to the outbox is usually due at once; reading it back (a read
//! transaction and the whole job decoded from JSON) cost more than its attempt. So the
//! engine keeps such jobs here, up to a bound, and a lane's stored part is read only when it
//! may hold a due job that is not in memory: after a start (the backlog), a retry scheduled,
//! a hand-over that did not fit, a re-send, an outcome that could not be stored. The outbox
//! stays the truth: every job held here is pending there, and a crash loses only this copy.
//!
//! Per lane, jobs go in due order: a lane is served either from memory (nothing of it waits
//! in the outbox) or from the outbox (a mark lets go of its fresh jobs, which are read back
//! with the rest).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::job::Job;

/// One lane's state.
#[derive(Debug, Default)]
struct Lane {
    /// Jobs written durably and due, oldest first, not yet attempted.
    fresh: VecDeque<Job>,
    /// When the outbox may hold a due job of this lane that is neither here nor being
    /// attempted; `None` when every pending job of the lane is in memory.
    stored_due: Option<i64>,
    /// A read of the stored part is under way; marks made meanwhile are kept apart, since
    /// the read may not have seen what they mark.
    reading: Option<Option<i64>>,
}

fn earliest(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// The lanes with work and the fresh jobs held in memory.
#[derive(Debug)]
pub(crate) struct Ready {
    lanes: BTreeMap<String, Lane>,
    /// Fresh jobs held over all lanes (bounded by `cap`).
    held: usize,
    cap: usize,
    rotate: usize,
    /// Reads of the outbox finished so far (see [`Ready::hand_over`]).
    reads: u64,
}

impl Ready {
    /// Holds at most `cap` fresh jobs in memory; more are read back from the outbox.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            lanes: BTreeMap::new(),
            held: 0,
            cap,
            rotate: 0,
            reads: 0,
        }
    }

    /// The outbox may hold a job of `lane` due at `at` that is not in memory. The lane's
    /// fresh jobs are let go too (they are in the outbox as well): from now on the lane is
    /// served from the outbox, in due order, until a read finds nothing more there.
    pub(crate) fn mark(&mut self, lane: &str, at: i64) {
        let l = self.lanes.entry(lane.to_owned()).or_default();
        let fresh_due = l.fresh.iter().map(|j| j.next_attempt_us).min();
        self.held -= l.fresh.len();
        l.fresh.clear();
        let at = fresh_due.map_or(at, |f| f.min(at));
        l.stored_due = earliest(l.stored_due, at);
        if let Some(during) = l.reading.as_mut() {
            *during = earliest(*during, at);
        }
    }

    /// Outbox reads finished so far: taken before a write, passed to [`Ready::hand_over`].
    pub(crate) fn reads(&self) -> u64 {
        self.reads
    }

    /// Jobs of `lane` just written durably, by a write begun when [`Ready::reads`] was
    /// `reads_before`. Held in memory when the lane has no stored job waiting, no read
    /// finished while the write was under way (that read may have returned them already)
    /// and they fit; otherwise the lane is marked to be read.
    pub(crate) fn hand_over(&mut self, lane: &str, jobs: Vec<Job>, reads_before: u64) {
        let Some(first_due) = jobs.iter().map(|j| j.next_attempt_us).min() else {
            return;
        };
        let quiet = self.reads == reads_before;
        let l = self.lanes.entry(lane.to_owned()).or_default();
        if quiet && l.stored_due.is_none() && self.held + jobs.len() <= self.cap {
            self.held += jobs.len();
            l.fresh.extend(jobs);
        } else {
            self.mark(lane, first_due);
        }
    }

    /// The lanes with work, starting after the one served first last time (so scarce slots
    /// go round).
    pub(crate) fn lanes(&mut self) -> Vec<String> {
        let start = self.rotate % self.lanes.len().max(1);
        self.rotate = self.rotate.wrapping_add(1);
        let mut v: Vec<String> = self.lanes.keys().cloned().collect();
        v.rotate_left(start);
        v
    }

    /// Whether `lane`'s stored part must be read at `now`; if so, a read begins (end it with
    /// [`Ready::read_done`] or [`Ready::read_failed`]).
    pub(crate) fn begin_read(&mut self, lane: &str, now: i64) -> bool {
        match self.lanes.get_mut(lane) {
            Some(l) if l.stored_due.is_some_and(|t| t <= now) => {
                l.reading = Some(None);
                true
            }
            _ => false,
        }
    }

    /// The ids the outbox read must skip besides those in flight: the fresh jobs (they are
    /// attempted from memory).
    pub(crate) fn fresh_ids(&self, lane: &str) -> impl Iterator<Item = &str> {
        self.lanes
            .get(lane)
            .into_iter()
            .flat_map(|l| l.fresh.iter().map(|j| j.webhook_id.as_str()))
    }

    /// The read of `lane` returned; `next` is when its next stored job not returned is due.
    pub(crate) fn read_done(&mut self, lane: &str, next: Option<i64>) {
        self.reads += 1;
        if let Some(l) = self.lanes.get_mut(lane) {
            let during = l.reading.take().flatten();
            l.stored_due = match (next, during) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// The read of `lane` failed: the stored part stays to be read.
    pub(crate) fn read_failed(&mut self, lane: &str) {
        self.reads += 1;
        if let Some(l) = self.lanes.get_mut(lane) {
            if let Some(during) = l.reading.take().flatten() {
                l.stored_due = earliest(l.stored_due, during);
            }
        }
    }

    /// Up to `room` fresh jobs of `lane`, oldest first, leaving out any in `busy` (an id
    /// already being attempted is never attempted twice at once).
    pub(crate) fn take(&mut self, lane: &str, room: usize, busy: &BTreeSet<String>) -> Vec<Job> {
        let Some(l) = self.lanes.get_mut(lane) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut kept = VecDeque::new();
        while out.len() < room {
            let Some(job) = l.fresh.pop_front() else {
                break;
            };
            if busy.contains(&job.webhook_id) {
                kept.push_back(job);
            } else {
                out.push(job);
            }
        }
        self.held -= out.len();
        while let Some(job) = kept.pop_back() {
            l.fresh.push_front(job);
        }
        out
    }

    /// Forgets `lane` when it has nothing in memory, nothing stored and nothing `in_flight`
    /// (attempts and outcomes not yet stored).
    pub(crate) fn settle(&mut self, lane: &str, in_flight: usize) {
        let idle = self
            .lanes
            .get(lane)
            .is_some_and(|l| l.fresh.is_empty() && l.stored_due.is_none() && l.reading.is_none());
        if idle && in_flight == 0 {
            self.lanes.remove(lane);
        }
    }

    /// The earliest time after `now` a stored job is due, over every lane.
    pub(crate) fn next_stored(&self, now: i64) -> Option<i64> {
        self.lanes
            .values()
            .filter_map(|l| l.stored_due)
            .filter(|t| *t > now)
            .min()
    }

    /// Marks every lane to be read now (shared storage: other instances make work due).
    pub(crate) fn mark_all(&mut self, now: i64) {
        let lanes: Vec<String> = self.lanes.keys().cloned().collect();
        for lane in lanes {
            self.mark(&lane, now);
        }
    }

    /// Fresh jobs held in memory.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::super::job::Endpoint;
    use super::super::payload::{Format, Method};
    use super::*;

    fn job(id: &str, due: i64) -> Job {
        Job {
            webhook_id: id.into(),
            trigger_id: "t".into(),
            endpoint: Endpoint {
                url: "http://127.0.0.1:1/".into(),
                method: Method::Post,
                format: Format::Json,
                retries: 1,
                signed: false,
            },
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            attempts: 0,
            next_attempt_us: due,
            created_us: due,
            last_error: None,
        }
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.webhook_id.as_str()).collect()
    }

    #[test]
    fn fresh_jobs_are_taken_in_order_without_reading_the_outbox() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 2)], before);
        let before = r.reads();
        r.hand_over("L", vec![job("c", 3)], before);
        assert!(!r.begin_read("L", 10), "nothing stored to read");
        let none = BTreeSet::new();
        assert_eq!(ids(&r.take("L", 2, &none)), ["a", "b"]);
        assert_eq!(ids(&r.take("L", 5, &none)), ["c"]);
        assert_eq!(r.held(), 0);
        r.settle("L", 1);
        assert_eq!(r.lanes(), ["L"], "kept while an attempt is open");
        r.settle("L", 0);
        assert!(r.lanes().is_empty());
    }

    #[test]
    fn a_lane_with_stored_work_reads_the_outbox_first_and_holds_nothing_new() {
        let mut r = Ready::new(8);
        r.mark("L", 5); // a retry due at 5
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1)], before);
        assert_eq!(r.held(), 0, "held back: it would jump the stored job");
        assert!(!r.begin_read("L", 0), "nothing stored due yet at 0");
        assert!(r.begin_read("L", 1), "the spilled fresh job is due at 1");
        r.read_done("L", None);
        assert!(!r.begin_read("L", 100));
        let before = r.reads();
        r.hand_over("L", vec![job("b", 7)], before);
        assert_eq!(r.held(), 1, "held again once the stored part is read");
    }

    #[test]
    fn a_mark_lets_go_of_the_fresh_jobs_so_the_lane_keeps_due_order() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 2)], before);
        r.mark("L", 5); // e.g. the backlog found at start, or a retry
        assert_eq!(r.held(), 0);
        assert!(
            r.begin_read("L", 1),
            "a is read back, before the job due at 5"
        );
        assert_eq!(r.fresh_ids("L").count(), 0);
    }

    #[test]
    fn the_bound_spills_to_the_outbox() {
        let mut r = Ready::new(2);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 1)], before);
        let before = r.reads();
        r.hand_over("M", vec![job("c", 4)], before);
        assert_eq!(r.held(), 2);
        assert!(r.begin_read("M", 4), "over the bound: read back");
        assert!(!r.begin_read("L", 4));
    }

    #[test]
    fn a_mark_made_during_a_read_survives_the_read() {
        let mut r = Ready::new(8);
        r.mark("L", 1);
        assert!(r.begin_read("L", 1));
        r.mark("L", 3); // a retry recorded while the read ran
        let before = r.reads();
        r.hand_over("L", vec![job("x", 1)], before);
        assert_eq!(
            r.held(),
            0,
            "not held during a read: the read may return it too"
        );
        r.read_done("L", None);
        assert!(
            r.begin_read("L", 1),
            "the retry and the spilled job are not forgotten"
        );
        r.read_done("L", Some(9));
        assert_eq!(r.next_stored(3), Some(9));
        assert!(r.begin_read("L", 9));
        r.mark("L", 2);
        r.read_failed("L");
        assert!(r.begin_read("L", 2), "a failed read keeps what was marked");
    }

    #[test]
    fn jobs_a_read_may_have_returned_are_not_held() {
        let mut r = Ready::new(8);
        r.mark("L", 1);
        let before = r.reads(); // the write of `a` begins
        assert!(r.begin_read("L", 1)); // a read runs after `a` is durable and returns it
        r.read_done("L", None);
        r.hand_over("L", vec![job("a", 1)], before);
        assert_eq!(r.held(), 0, "not held: it may be in flight already");
        assert!(
            r.begin_read("L", 1),
            "read back instead (skipping what is busy)"
        );
    }

    #[test]
    fn busy_ids_are_left_in_place() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 1), job("c", 1)], before);
        let busy: BTreeSet<String> = ["a".to_owned()].into();
        assert_eq!(ids(&r.take("L", 1, &busy)), ["b"]);
        assert_eq!(
            r.fresh_ids("L").collect::<Vec<_>>(),
            ["a", "c"],
            "a is kept, in its place"
        );
        assert_eq!(r.held(), 2);
    }
}

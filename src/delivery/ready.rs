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
//! A read of the outbox also reads ahead: the due jobs beyond the free attempt slots are held
//! here too (within the same bound), so a backlog costs one read per batch, not one per slot.
//! Reads wait behind the owner thread's commits; one per slot would tie attempts to disk syncs.
//!
//! Per lane, jobs go in due order: every job held is due no later than anything of the lane
//! still waiting in the outbox, whose part is read only once the held jobs are gone. A mark
//! earlier than a held job lets go of the held ones (they are read back with the rest).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::job::Job;

/// The longest a lane already due waits to be looked at again (µs): see [`Ready::next_stored`].
const RECHECK_US: i64 = 1_000_000;

/// One lane's state.
#[derive(Debug, Default)]
struct Lane {
    /// Jobs written durably and due, oldest first, not yet attempted.
    fresh: VecDeque<Job>,
    /// The latest due time among `fresh`.
    fresh_last: i64,
    /// When the outbox may hold a due job of this lane that is neither here nor being
    /// attempted; `None` when every pending job of the lane is in memory.
    stored_due: Option<i64>,
    /// A read of the stored part is under way; marks made meanwhile are kept apart, since
    /// the read may not have seen what they mark.
    reading: Option<Option<i64>>,
}

impl Lane {
    fn hold(&mut self, jobs: Vec<Job>) {
        if self.fresh.is_empty() {
            self.fresh_last = i64::MIN;
        }
        for job in jobs {
            self.fresh_last = self.fresh_last.max(job.next_attempt_us);
            self.fresh.push_back(job);
        }
    }
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

    /// The outbox may hold a job of `lane` due at `at` that is not in memory. Held jobs due
    /// later than `at` are let go with the others of the lane (they are in the outbox as
    /// well); from now on the lane's outbox part is read, in due order, once its held jobs
    /// are gone, until a read finds nothing more there.
    pub(crate) fn mark(&mut self, lane: &str, at: i64) {
        let l = self.lanes.entry(lane.to_owned()).or_default();
        let mut at = at;
        if !l.fresh.is_empty() && at < l.fresh_last {
            // It would come before some held jobs: they are let go and read back in order.
            at = l.fresh.iter().map(|j| j.next_attempt_us).fold(at, i64::min);
            self.held -= l.fresh.len();
            l.fresh.clear();
        }
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
            l.hold(jobs);
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

    /// Whether `lane`'s stored part must be read at `now` (it has a due job there and none
    /// held); if so, a read begins (end it with [`Ready::read_done`] or
    /// [`Ready::read_failed`]). The read skips only the jobs being attempted.
    pub(crate) fn begin_read(&mut self, lane: &str, now: i64) -> bool {
        match self.lanes.get_mut(lane) {
            Some(l) if l.fresh.is_empty() && l.stored_due.is_some_and(|t| t <= now) => {
                l.reading = Some(None);
                true
            }
            _ => false,
        }
    }

    /// How many jobs may be held beyond those held now (a read reads ahead at most this).
    pub(crate) fn spare(&self) -> usize {
        self.cap.saturating_sub(self.held)
    }

    /// The read of `lane` returned `jobs` (due, oldest first; at most the free slots plus
    /// [`Ready::spare`]), which are held for [`Ready::take`]; `next` is when its next stored
    /// job not returned is due. Should a mark made during the read come before some of them,
    /// they are let go and read again (the answer is then `false`).
    pub(crate) fn read_done(&mut self, lane: &str, next: Option<i64>, jobs: Vec<Job>) -> bool {
        self.reads += 1;
        let Some(l) = self.lanes.get_mut(lane) else {
            return jobs.is_empty();
        };
        let during = l.reading.take().flatten();
        let last = jobs.iter().map(|j| j.next_attempt_us).max();
        l.stored_due = match (next, during) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (during, last) {
            (Some(d), Some(last)) if d < last => {
                let first = jobs.iter().map(|j| j.next_attempt_us).fold(d, i64::min);
                l.stored_due = earliest(l.stored_due, first);
                false
            }
            _ => {
                self.held += jobs.len();
                l.hold(jobs);
                true
            }
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

    /// The earliest time after `now` a stored job is due, over every lane. A lane due already
    /// was left by this dispatch (no free slot, too many outcomes waiting to be stored); what
    /// frees those wakes the dispatcher, and should a wake-up ever be missed, the lane is
    /// looked at again within [`RECHECK_US`] instead of at the next stored job (or in an hour).
    pub(crate) fn next_stored(&self, now: i64) -> Option<i64> {
        self.lanes
            .values()
            .filter_map(|l| l.stored_due)
            .map(|t| {
                if t > now {
                    t
                } else {
                    now.saturating_add(RECHECK_US)
                }
            })
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
        r.read_done("L", None, Vec::new());
        assert!(!r.begin_read("L", 100));
        let before = r.reads();
        r.hand_over("L", vec![job("b", 7)], before);
        assert_eq!(r.held(), 1, "held again once the stored part is read");
    }

    #[test]
    fn a_mark_before_a_held_job_lets_go_of_the_held_jobs_so_the_lane_keeps_due_order() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 3)], before);
        r.mark("L", 2); // e.g. a re-send, due before b
        assert_eq!(r.held(), 0);
        assert!(
            r.begin_read("L", 1),
            "a is read back, before the job due at 2"
        );
    }

    #[test]
    fn a_mark_after_the_held_jobs_keeps_them_and_the_outbox_is_read_once_they_are_gone() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 2)], before);
        r.mark("L", 5); // e.g. a hand-over that did not fit
        assert_eq!(r.held(), 2);
        assert!(!r.begin_read("L", 9), "the held jobs come first");
        let none = BTreeSet::new();
        assert_eq!(ids(&r.take("L", 1, &none)), ["a"]);
        assert!(!r.begin_read("L", 9));
        assert_eq!(ids(&r.take("L", 4, &none)), ["b"]);
        assert!(r.begin_read("L", 9), "then the stored part, due at 5");
    }

    #[test]
    fn a_read_holds_what_it_read_ahead_and_reads_again_only_once_it_is_taken() {
        let mut r = Ready::new(8);
        r.mark("L", 1); // the backlog found at start
        assert_eq!(r.spare(), 8);
        assert!(r.begin_read("L", 10));
        let read = vec![job("a", 1), job("b", 2), job("c", 3), job("d", 4)];
        r.read_done("L", Some(6), read);
        assert_eq!(r.held(), 4);
        assert_eq!(r.spare(), 4);
        let none = BTreeSet::new();
        assert_eq!(ids(&r.take("L", 2, &none)), ["a", "b"]);
        assert!(!r.begin_read("L", 10), "c and d are still held");
        assert_eq!(ids(&r.take("L", 2, &none)), ["c", "d"]);
        assert!(!r.begin_read("L", 5), "the next stored job is due at 6");
        assert!(r.begin_read("L", 6));
    }

    #[test]
    fn a_mark_during_a_read_before_what_it_read_lets_go_of_those_jobs() {
        let mut r = Ready::new(8);
        r.mark("L", 1);
        assert!(r.begin_read("L", 10));
        r.mark("L", 2); // a re-send made while the read ran, due before c
        assert!(!r.read_done("L", Some(8), vec![job("a", 1), job("c", 3)]));
        assert_eq!(r.held(), 0, "not held: the re-sent job comes before c");
        assert!(r.begin_read("L", 1), "read again from a, in due order");
        r.read_done("L", None, vec![job("a", 1), job("x", 2), job("c", 3)]);
        let none = BTreeSet::new();
        assert_eq!(ids(&r.take("L", 8, &none)), ["a", "x", "c"]);
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
        r.read_done("L", None, Vec::new());
        assert!(
            r.begin_read("L", 1),
            "the retry and the spilled job are not forgotten"
        );
        r.read_done("L", Some(9), Vec::new());
        assert_eq!(r.next_stored(3), Some(9));
        assert_eq!(
            r.next_stored(9),
            Some(9 + RECHECK_US),
            "a lane left due is looked at again soon, woken or not"
        );
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
        r.read_done("L", None, vec![job("a", 1)]);
        r.hand_over("L", vec![job("a", 1)], before);
        assert_eq!(r.held(), 1, "held once, as the read returned it");
        let none = BTreeSet::new();
        assert_eq!(ids(&r.take("L", 8, &none)), ["a"]);
        assert!(
            r.begin_read("L", 1),
            "the lane is read again (skipping what is busy) instead of holding the write's copy"
        );
    }

    #[test]
    fn busy_ids_are_left_in_place() {
        let mut r = Ready::new(8);
        let before = r.reads();
        r.hand_over("L", vec![job("a", 1), job("b", 1), job("c", 1)], before);
        let busy: BTreeSet<String> = ["a".to_owned()].into();
        assert_eq!(ids(&r.take("L", 1, &busy)), ["b"]);
        assert_eq!(r.held(), 2);
        let none = BTreeSet::new();
        assert_eq!(
            ids(&r.take("L", 8, &none)),
            ["a", "c"],
            "a is kept, in its place"
        );
    }
}

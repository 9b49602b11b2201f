//! The session assembler: a pure state machine from call events to finished sessions.
//!
//! Events and the processing clock (`now`, [`WallTime`]) come in; [`ClosedSession`]s come out of
//! [`Assembler::poll`] when a session ends. No I/O, no clock reads: replay feeds stream time,
//! the live pipeline feeds the wall clock, and both are deterministic for a given input.
//!
//! **Grouping.** Every event names keys: its own call id, its `call_interaction_id`, and the
//! call ids it points at (`other_leg_call_id`, `bridge_id`, the loopback partner, transfer
//! history, `replaced_by`, the ACDc member call). Keys live in one index per tenant; an event
//! whose keys reach several sessions merges them (so an attended transfer's consultation call,
//! a park retrieval or a pickup joins the call it acts on). Tenants never share a session.
//!
//! **Closing.** A session whose legs are all destroyed closes once it has been quiet for the
//! grace period; one with a leg still up is force-closed after the idle timeout or at the
//! maximum age (tag `forced_close`). Events for a closed session's legs that arrive within the
//! late window are dropped and counted, never turned into phantom sessions.
//!
//! **Bounds.** No input makes one session cost more than its limits: a session holds at most
//! `max_legs_per_session` legs and takes at most `max_events_per_session` events; events
//! beyond either are refused, counted, and the CDR is tagged `truncated`. A session indexes at
//! most [`KEYS_PER_LEG`] keys per allowed leg. An event stamped more than `max_clock_skew_us`
//! ahead of the processing clock is taken at the clock's time (counted), so a node with a
//! wrong clock cannot move time on for every other call.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use foldhash::HashMap;

use super::build::{build, ClosedSession, SessionFacts};
use super::leg::Leg;
use super::settings::Settings;
use crate::clock::{StreamTime, WallTime};
use crate::source::CallEvent;

/// What [`Assembler::apply`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Folded into a session.
    Accepted,
    /// Already seen (same leg, kind and `msg_id`); ignored.
    Duplicate,
    /// For a leg of a session that has already closed; dropped.
    Late,
    /// Refused: the session is at its leg or event limit. `first` is true for the session's
    /// first refusal (the shell logs that one).
    OverLimit {
        /// The session's first refused event.
        first: bool,
    },
    /// Folded into a session at the processing clock's time: the event's own time was
    /// further ahead than the allowed clock skew.
    Clamped,
}

/// Grouping keys a session may index per allowed leg (a leg names its call id, the
/// interaction, its peer, bridge and transfer partners).
pub const KEYS_PER_LEG: usize = 8;

/// Counters the shell exports as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Events folded into a session.
    pub events: u64,
    /// Duplicate events ignored.
    pub duplicates: u64,
    /// Events dropped because their session had closed.
    pub late: u64,
    /// Sessions closed normally.
    pub closed: u64,
    /// Sessions force-closed (idle timeout, maximum age, or end of input with legs up).
    pub forced: u64,
    /// Events refused because their session was at its leg or event limit.
    pub refused: u64,
    /// Events whose time was too far ahead of the processing clock and was clamped.
    pub clamped: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Session {
    tenant: Box<str>,
    legs: Vec<Leg>,
    keys: Vec<Arc<str>>,
    first_activity: i64,
    last_activity: i64,
    /// When the session is due to close.
    deadline: i64,
    /// The session's entry in `Assembler::deadlines`: never later than `deadline`. Deadlines
    /// mostly move later (every event pushes the idle timeout out), so the entry is only
    /// moved when the deadline comes earlier; `poll` re-files an entry that turns out early.
    #[serde(skip)]
    queued: i64,
    gap: bool,
    /// Events taken.
    #[serde(default)]
    events: u32,
    /// Events were refused at a limit.
    #[serde(default)]
    truncated: bool,
    /// Times its stored CDRs were looked up while it was quiet with a leg up.
    #[serde(default)]
    lookups: u8,
}

impl Session {
    /// A leg is still up: events of this session may still come (and be missed).
    fn live(&self) -> bool {
        self.legs.iter().any(|l| l.destroyed_us.is_none())
    }

    /// Events of it may have been missed: it spanned a gap, or a leg was first seen after
    /// its CREATE (and not from its stored CDR).
    fn incomplete(&self) -> bool {
        self.gap || self.legs.iter().any(|l| !l.saw_create && !l.from_cdr)
    }
}

/// The open state of an [`Assembler`], for keeping open sessions across a restart.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Format version.
    version: u32,
    sessions: Vec<Session>,
    closed_legs: Vec<(i64, Arc<str>)>,
    stream_us: Option<i64>,
    now: i64,
}

impl Snapshot {
    /// Open sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The latest event time seen before the snapshot.
    pub fn stream_time(&self) -> Option<StreamTime> {
        self.stream_us.map(StreamTime::from_us)
    }
}

/// Groups legs into sessions and closes them. See the module docs.
#[derive(Debug)]
pub struct Assembler {
    settings: Arc<Settings>,
    sessions: HashMap<u64, Session>,
    /// Grouping key → session. The key strings are shared with the sessions' key lists.
    index: HashMap<Arc<str>, u64>,
    deadlines: BTreeSet<(i64, u64)>,
    closed_legs: HashMap<Arc<str>, i64>,
    closed_order: VecDeque<(i64, Arc<str>)>,
    next_id: u64,
    stream_us: Option<i64>,
    now: i64,
    stats: AssemblerStats,
    /// Legs held in open sessions.
    open_legs: usize,
    /// Incomplete sessions are not closed (a backfill is reading what they may miss).
    holding: bool,
    /// Scratch space for the grouping keys of the event being applied (reused, so looking
    /// keys up allocates nothing; only keys new to the index are copied).
    scratch: Keys,
}

/// Writes the grouping key `{kind}|{tenant}|{id}` into `out`.
fn write_key(out: &mut String, kind: char, tenant: &str, id: &str) {
    out.reserve(tenant.len() + id.len() + 3);
    out.push(kind);
    out.push('|');
    out.push_str(tenant);
    out.push('|');
    out.push_str(id);
}

/// The grouping key `{kind}|{tenant}|{id}`.
fn key(kind: char, tenant: &str, id: &str) -> Arc<str> {
    let mut k = String::new();
    write_key(&mut k, kind, tenant, id);
    k.into()
}

/// The distinct grouping keys of one event, packed into one reusable buffer.
#[derive(Debug, Default)]
struct Keys {
    /// The keys, one after another.
    text: String,
    /// Where each key ends in `text`.
    ends: Vec<usize>,
    /// Sessions the keys reach (filled by `session_for`).
    found: Vec<u64>,
}

impl Keys {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.found.clear();
    }

    /// Adds a key unless it is already held.
    fn push(&mut self, kind: char, tenant: &str, id: &str) {
        let start = self.text.len();
        write_key(&mut self.text, kind, tenant, id);
        let new = &self.text[start..];
        if self.iter().any(|k| k == new) {
            self.text.truncate(start);
        } else {
            self.ends.push(self.text.len());
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.text[a..b])
    }
}

impl Assembler {
    /// An empty assembler.
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            settings,
            sessions: HashMap::default(),
            index: HashMap::default(),
            deadlines: BTreeSet::new(),
            closed_legs: HashMap::default(),
            closed_order: VecDeque::new(),
            next_id: 0,
            stream_us: None,
            now: i64::MIN,
            stats: AssemblerStats::default(),
            open_legs: 0,
            holding: false,
            scratch: Keys::default(),
        }
    }

    /// Takes the open state out (on shutdown), leaving the assembler empty.
    pub fn snapshot(&mut self) -> Snapshot {
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        let sessions = ids
            .into_iter()
            .filter_map(|id| self.sessions.remove(&id))
            .collect();
        self.index.clear();
        self.deadlines.clear();
        self.open_legs = 0;
        self.closed_legs.clear();
        Snapshot {
            version: 1,
            sessions,
            closed_legs: std::mem::take(&mut self.closed_order).into_iter().collect(),
            stream_us: self.stream_us,
            now: self.now,
        }
    }

    /// An assembler holding a snapshot's open sessions again.
    pub fn restore(settings: Arc<Settings>, snap: Snapshot) -> Self {
        let mut a = Self::new(settings);
        a.stream_us = snap.stream_us;
        a.now = snap.now;
        for (expiry, k) in snap.closed_legs {
            a.closed_legs.insert(k.clone(), expiry);
            a.closed_order.push_back((expiry, k));
        }
        for s in snap.sessions {
            let sid = a.next_id;
            a.next_id += 1;
            for k in &s.keys {
                a.index.insert(k.clone(), sid);
            }
            a.deadlines.insert((s.deadline, sid));
            a.open_legs += s.legs.len();
            a.sessions.insert(
                sid,
                Session {
                    queued: s.deadline,
                    ..s
                },
            );
        }
        a
    }

    /// The settings in use.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// Replaces the settings (directory refresh, configuration reload). Open sessions are
    /// built with the new settings when they close.
    pub fn set_settings(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }

    /// Counters so far.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Legs currently held in open sessions.
    pub fn open_legs(&self) -> usize {
        self.open_legs
    }

    /// The latest event time seen, used as the time of events that carry none.
    pub fn stream_time(&self) -> Option<StreamTime> {
        self.stream_us.map(StreamTime::from_us)
    }

    /// Folds one event in at processing time `now` (a `now` earlier than a previous one is
    /// treated as the previous one). An event stamped further ahead of `now` than the allowed
    /// clock skew is taken to have happened at `now`.
    pub fn apply(&mut self, ev: &CallEvent, now: WallTime) -> Applied {
        self.now = self.now.max(now.as_us());
        let now = self.now;
        let event_us = ev.time.map(StreamTime::as_us);
        let ahead =
            event_us.is_some_and(|t| t > now.saturating_add(self.settings.max_clock_skew_us));
        let time = if ahead { Some(now) } else { event_us };
        if let Some(t) = time {
            self.stream_us = Some(self.stream_us.map_or(t, |s| s.max(t)));
        }
        let t = time.or(self.stream_us).unwrap_or(now);
        let tenant = ev.account_id.as_deref().unwrap_or("");
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.push('c', tenant, &ev.call_id);
        if self.closed_legs.contains_key(&keys.text[..]) {
            self.scratch = keys;
            self.stats.late += 1;
            return Applied::Late;
        }
        if let Some(i) = &ev.ccv.interaction_id {
            keys.push('i', tenant, i);
        }
        let refs = [&ev.other_leg, &ev.ccv.bridge_id, &ev.loopback_other]
            .into_iter()
            .flatten()
            .chain(&ev.related)
            .filter(|r| **r != ev.call_id);
        for r in refs {
            keys.push('c', tenant, r);
        }

        let sid = self.session_for(&mut keys, tenant, now);
        self.scratch = keys;
        let (max_legs, max_events) = (
            self.settings.max_legs_per_session,
            self.settings.max_events_per_session,
        );
        let session = self.sessions.get_mut(&sid).expect("session exists");
        let position = session.legs.iter().position(|l| *l.call_id == *ev.call_id);
        if session.events >= max_events || (position.is_none() && session.legs.len() >= max_legs) {
            let first = !session.truncated;
            session.truncated = true;
            self.stats.refused += 1;
            return Applied::OverLimit { first };
        }
        let leg = match position {
            Some(i) => &mut session.legs[i],
            None => {
                // A leg is large and most sessions have a handful: grow the list one leg at a
                // time while it is short (a first push would otherwise make room for four).
                if session.legs.len() < 8 {
                    session.legs.reserve_exact(1);
                }
                session.legs.push(Leg::new(&ev.call_id));
                self.open_legs += 1;
                session.legs.last_mut().expect("just pushed")
            }
        };
        if !leg.apply(ev, t) {
            self.stats.duplicates += 1;
            return Applied::Duplicate;
        }
        session.events += 1;
        self.stats.events += 1;
        session.last_activity = now;
        Self::file_deadline(session, sid, &self.settings, &mut self.deadlines);
        if ahead {
            self.stats.clamped += 1;
            return Applied::Clamped;
        }
        Applied::Accepted
    }

    /// Finds (creating or merging) the session the keys belong to, and indexes the keys to it.
    fn session_for(&mut self, keys: &mut Keys, tenant: &str, now: i64) -> u64 {
        let mut found = std::mem::take(&mut keys.found);
        let mut all_indexed = true;
        for k in keys.iter() {
            match self.index.get(k) {
                Some(sid) if !found.contains(sid) => found.push(*sid),
                Some(_) => {}
                None => all_indexed = false,
            }
        }
        found.sort_unstable();
        let sid = match found.split_first() {
            None => {
                let sid = self.next_id;
                self.next_id += 1;
                self.sessions.insert(
                    sid,
                    Session {
                        tenant: tenant.into(),
                        legs: Vec::new(),
                        keys: Vec::new(),
                        first_activity: now,
                        last_activity: now,
                        deadline: i64::MAX,
                        queued: i64::MAX,
                        gap: false,
                        events: 0,
                        truncated: false,
                        lookups: 0,
                    },
                );
                sid
            }
            Some((&target, others)) => {
                for &other in others {
                    self.merge(target, other);
                }
                target
            }
        };
        keys.found = found;
        if all_indexed {
            // The usual case: a known leg's event that names nothing new.
            return sid;
        }
        let session = self.sessions.get_mut(&sid).expect("session exists");
        let max_keys = self
            .settings
            .max_legs_per_session
            .saturating_mul(KEYS_PER_LEG);
        for k in keys.iter() {
            // Past its key budget a session indexes nothing new: a flood of legs cannot grow
            // the index (such events reach the session through keys it already has, or form
            // sessions of their own, which have their own limits).
            if session.keys.len() >= max_keys {
                break;
            }
            if !self.index.contains_key(k) {
                let k: Arc<str> = k.into();
                self.index.insert(k.clone(), sid);
                session.keys.push(k);
            }
        }
        sid
    }

    fn merge(&mut self, target: u64, other: u64) {
        let Some(o) = self.sessions.remove(&other) else {
            return;
        };
        self.deadlines.remove(&(o.queued, other));
        for k in &o.keys {
            self.index.insert(k.clone(), target);
        }
        let t = self.sessions.get_mut(&target).expect("target exists");
        t.legs.extend(o.legs);
        t.keys.extend(o.keys);
        t.first_activity = t.first_activity.min(o.first_activity);
        t.last_activity = t.last_activity.max(o.last_activity);
        t.gap |= o.gap;
        t.events = t.events.saturating_add(o.events);
        t.truncated |= o.truncated;
    }

    fn reschedule(&mut self, sid: u64) {
        let s = self.sessions.get_mut(&sid).expect("session exists");
        Self::file_deadline(s, sid, &self.settings, &mut self.deadlines);
    }

    /// Sets session `sid`'s deadline from its state and files it in `deadlines` when it came
    /// earlier (takes the session itself: the caller holds it, no second lookup).
    fn file_deadline(
        s: &mut Session,
        sid: u64,
        st: &Settings,
        deadlines: &mut BTreeSet<(i64, u64)>,
    ) {
        let all_down = s.legs.iter().all(|l| l.destroyed_us.is_some());
        let deadline = if all_down {
            s.last_activity.saturating_add(st.grace_us)
        } else {
            s.last_activity
                .saturating_add(st.idle_timeout_us)
                .min(s.first_activity.saturating_add(st.max_session_us))
        };
        s.deadline = deadline;
        if deadline < s.queued {
            deadlines.remove(&(s.queued, sid));
            s.queued = deadline;
            deadlines.insert((deadline, sid));
        }
    }

    /// Open sessions with a leg up and no event for `quiet_us` of processing time (then
    /// twice that since the last event, four times, …): their DESTROY may have been lost.
    /// Appends each one's tenant and interaction id (sessions without one are skipped).
    pub fn quiet_sessions(
        &mut self,
        now: WallTime,
        quiet_us: i64,
        out: &mut Vec<(String, String)>,
    ) {
        let now = now.as_us();
        for s in self.sessions.values_mut() {
            let wait = quiet_us.saturating_mul(1_i64 << s.lookups.min(30));
            if !s.live() || now < s.last_activity.saturating_add(wait) {
                continue;
            }
            s.lookups = s.lookups.saturating_add(1);
            let prefix = format!("i|{}|", s.tenant);
            if let Some(i) = s.keys.iter().find_map(|k| k.strip_prefix(prefix.as_str())) {
                out.push((s.tenant.to_string(), i.to_owned()));
            }
        }
    }

    /// While `hold` is true, sessions that may have missed events (tag `gap`, or a leg first
    /// seen after its CREATE) are not closed: a backfill is reading what they may be missing.
    /// The maximum session age still applies.
    pub fn hold_incomplete(&mut self, hold: bool) {
        self.holding = hold;
    }

    /// Marks every open session that could have missed events as having spanned a gap in the
    /// event stream (the source reconnected): their CDRs carry tag `gap`. A session whose legs
    /// had all been destroyed before the drop, and that only waits out its grace period, has
    /// nothing left to miss and is not marked.
    pub fn mark_gap(&mut self) {
        for s in self.sessions.values_mut() {
            s.gap |= s.live();
        }
    }

    /// Reconciles open sessions with the PBX after the source reconnected.
    ///
    /// Every open session of a resynced tenant (`tenants`) with a leg still up is marked `gap`
    /// (a session whose legs were all destroyed has nothing left to miss). Its legs that are
    /// still up here but absent from `active` (the PBX's channel list) ended while the stream
    /// was down: they are ended at `lost` (when the stream was lost) so their sessions close
    /// after the grace period instead of waiting for the idle timeout. Returns how many legs
    /// were ended.
    pub fn resync(
        &mut self,
        tenants: &HashSet<String>,
        active: &HashSet<String>,
        lost: StreamTime,
    ) -> usize {
        let lost_us = lost.as_us();
        let mut ended = 0;
        let mut touched = Vec::new();
        for (&sid, s) in &mut self.sessions {
            if !tenants.contains(&*s.tenant) {
                continue;
            }
            s.gap |= s.live();
            for leg in &mut s.legs {
                if leg.destroyed_us.is_none() && !active.contains(&*leg.call_id) {
                    leg.destroyed_us = Some(lost_us.max(leg.last_us));
                    ended += 1;
                    touched.push(sid);
                }
            }
        }
        touched.dedup();
        for sid in touched {
            self.reschedule(sid);
        }
        ended
    }

    /// Closes every session that is due at `now` and appends its CDR to `out`.
    pub fn poll(&mut self, now: WallTime, out: &mut Vec<ClosedSession>) {
        self.now = self.now.max(now.as_us());
        let now = self.now;
        while let Some(&(queued, sid)) = self.deadlines.first() {
            if queued > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if s.deadline == queued
                && self.holding
                && s.incomplete()
                && now
                    < s.first_activity
                        .saturating_add(self.settings.max_session_us)
            {
                // Kept until the backfill is in, then closed by the usual rules.
                s.deadline = now.saturating_add(self.settings.grace_us.max(1));
                s.queued = s.deadline;
                self.deadlines.insert((s.deadline, sid));
            } else if s.deadline == queued {
                self.close(sid, now, out);
            } else {
                // The deadline moved later since the entry was filed: file it again.
                s.queued = s.deadline;
                self.deadlines.insert((s.deadline, sid));
            }
        }
        while let Some((expiry, _)) = self.closed_order.front() {
            if *expiry > now {
                break;
            }
            let (_, k) = self.closed_order.pop_front().expect("front exists");
            self.closed_legs.remove(&k);
        }
    }

    /// Closes every open session (end of input, or shutdown without persistence), in the
    /// order they opened. Sessions with legs still up are force-closed.
    pub fn flush(&mut self, out: &mut Vec<ClosedSession>) {
        let mut ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for sid in ids {
            if let Some(s) = self.sessions.get(&sid) {
                self.deadlines.remove(&(s.queued, sid));
            }
            self.close(sid, self.now, out);
        }
    }

    fn close(&mut self, sid: u64, now: i64, out: &mut Vec<ClosedSession>) {
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        self.open_legs -= s.legs.len();
        for k in &s.keys {
            self.index.remove(k);
        }
        let expiry = now.saturating_add(self.settings.late_window_us);
        for leg in &s.legs {
            let k = key('c', &s.tenant, &leg.call_id);
            self.closed_legs.insert(k.clone(), expiry);
            self.closed_order.push_back((expiry, k));
        }
        let forced = s.legs.iter().any(|l| l.destroyed_us.is_none());
        if forced {
            self.stats.forced += 1;
        } else {
            self.stats.closed += 1;
        }
        let facts = SessionFacts {
            tenant: (!s.tenant.is_empty()).then_some(&*s.tenant),
            forced,
            gap: s.gap,
            truncated: s.truncated,
        };
        out.push(build(&s.legs, &facts, &self.settings));
    }
}

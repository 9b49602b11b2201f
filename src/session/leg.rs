//! One leg (channel) of a session, folded from its events.
//!
//! Folding is order-independent: every field has a rule for which event's value wins that
//! depends only on the events, never on their arrival order, and duplicates (same event kind
//! and `msg_id`) are recognised and ignored. So a leg built from shuffled or duplicated events
//! is the same leg. Only the fields the CDR needs are kept, in compact form.
//!
//! Which value wins (README "Decisions": caller id and party fields):
//!
//! | fields | winner | why |
//! |---|---|---|
//! | `caller_id_number`/`_name`, `callee_id_number`/`_name`, `presence_id` | [`Latest`]: the event latest in the leg's life (DESTROY > ANSWER, BRIDGE, HOLD, UNHOLD, PARK_* > CREATE), ties by event time, then by value | Kazoo 4.3 reports `origination_caller_id_*`, else `effective_caller_id_*` (set by the callflow *after* CREATE), else what the phone sent (`kzd_freeswitch:caller_id_number/2`); the CREATE of a device leg carries the phone's own value (`user_wpxnx7am9w` on the public `*97` capture) and later events the device's routed caller id (`356`) |
//! | `request`/`to` user, `call_direction`, `other_leg_call_id` outside bridges, loopback peer, `other_leg_destination_number`, channel variables | [`Stamped`]: the earliest event carrying it, ties by value | where the leg was first sent and who created it; channel variables are set at routing and only accumulate |
//! | hangup cause, `billing_seconds`, `duration_seconds` | the latest DESTROY | |
//! | creation | `CHANNEL_CREATE` or `channel_created_time`, the earliest; for a leg seen only at its end, DESTROY time − `duration_seconds` | |
//! | answer | the earliest `CHANNEL_ANSWER`; without one, DESTROY time − `billing_seconds` when that is > 0 | |

use crate::source::{CallEvent, Direction, EventKind};

/// A value with the event time it came from; [`Stamped::offer`] keeps the earliest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamped<T>(Option<(i64, T)>);

impl<T> Default for Stamped<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Ord> Stamped<T> {
    /// Keeps `value` if it is earlier than what is held (ties: the smaller value).
    pub fn offer(&mut self, t: i64, value: Option<T>) {
        let Some(value) = value else { return };
        let replace = match &self.0 {
            None => true,
            Some((held_t, held)) => (t, &value) < (*held_t, held),
        };
        if replace {
            self.0 = Some((t, value));
        }
    }

    /// The held value.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref().map(|(_, v)| v)
    }
}

impl Stamped<Box<str>> {
    /// [`offer`](Self::offer) for borrowed text: copies it only when it is kept.
    pub fn offer_str(&mut self, t: i64, value: Option<&str>) {
        let Some(value) = value else { return };
        let replace = match &self.0 {
            None => true,
            Some((held_t, held)) => (t, value) < (*held_t, &**held),
        };
        if replace {
            self.0 = Some((t, value.into()));
        }
    }

    /// The held text.
    pub fn str(&self) -> Option<&str> {
        self.get().map(|s| &**s)
    }
}

/// How late in a leg's life an event kind comes, for [`Latest`]: CREATE 0, DESTROY 2, every
/// mid-call event 1.
pub fn lifecycle_rank(kind: EventKind) -> u8 {
    match kind {
        EventKind::Create => 0,
        EventKind::Destroy => 2,
        _ => 1,
    }
}

/// Text from the event latest in the leg's life: highest [`lifecycle_rank`], then latest event
/// time, then the larger value, so the winner does not depend on arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "LatestRepr")]
pub struct Latest(Option<(u8, i64, Box<str>)>);

/// What a saved [`Latest`] may look like: its own shape, or the `(time, value)` of a
/// [`Stamped`] saved by an older version (taken as a CREATE-rank value).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LatestRepr {
    Ranked(Option<(u8, i64, Box<str>)>),
    Stamped(Option<(i64, Box<str>)>),
}

impl From<LatestRepr> for Latest {
    fn from(r: LatestRepr) -> Self {
        match r {
            LatestRepr::Ranked(v) => Self(v),
            LatestRepr::Stamped(v) => Self(v.map(|(t, s)| (0, t, s))),
        }
    }
}

impl Latest {
    /// Keeps `value` if its event is later in the leg's life than the held one's.
    pub fn offer_str(&mut self, rank: u8, t: i64, value: Option<&str>) {
        let Some(value) = value else { return };
        match &mut self.0 {
            // Later events mostly repeat the value: move its stamp on without copying it again.
            Some((held_rank, held_t, held)) if **held == *value => {
                if (rank, t) > (*held_rank, *held_t) {
                    (*held_rank, *held_t) = (rank, t);
                }
            }
            Some((held_rank, held_t, held))
                if (rank, t, value) <= (*held_rank, *held_t, &**held) => {}
            _ => self.0 = Some((rank, t, value.into())),
        }
    }

    /// The held text.
    pub fn str(&self) -> Option<&str> {
        self.0.as_ref().map(|(_, _, v)| &**v)
    }
}

/// What happened on a leg at a moment, for the session timeline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum MarkKind {
    /// `CHANNEL_ANSWER`.
    Answer,
    /// `CHANNEL_BRIDGE` to the named peer leg.
    Bridge(Box<str>),
    /// `CHANNEL_HOLD`.
    Hold,
    /// `CHANNEL_UNHOLD`.
    Unhold,
    /// `PARK_PARKED`.
    Parked,
    /// `PARK_RETRIEVED`.
    Retrieved,
    /// `PARK_ABANDONED`.
    ParkAbandoned,
}

/// One timeline mark.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    /// Event time, Unix µs.
    pub t: i64,
    /// What happened.
    pub kind: MarkKind,
}

/// Kind of party a leg represents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegKind {
    /// A carrier / off-net resource leg.
    Trunk,
    /// A device (or Kazoo "mobile" device) leg.
    Device,
    /// Neither could be established.
    Unknown,
}

/// Distinct application variables one leg keeps: a PBX that sends new keys on every event
/// cannot grow a leg without bound.
pub const MAX_CAV_KEYS: usize = 64;

/// One leg, folded from its events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Leg {
    /// The leg's call id.
    pub call_id: Box<str>,
    /// Loopback half: used for grouping and bridging, never a party.
    pub loopback: bool,
    /// The other half of a loopback pair.
    pub loopback_other: Stamped<Box<str>>,
    /// `other_leg_call_id` outside bridges: the leg that originated this one.
    pub originator: Stamped<Box<str>>,
    /// An event recorded a transfer on this leg.
    pub transfer: bool,
    /// Creation: `CHANNEL_CREATE` time or `channel_created_time`, the earliest.
    pub created_us: Option<i64>,
    /// A `CHANNEL_CREATE` was seen.
    pub saw_create: bool,
    /// Earliest `CHANNEL_ANSWER`.
    pub answered_us: Option<i64>,
    /// `CHANNEL_DESTROY` time (the latest if several).
    pub destroyed_us: Option<i64>,
    /// Earliest and latest event times seen on this leg.
    pub first_us: i64,
    /// See `first_us`.
    pub last_us: i64,
    /// `call_direction`.
    pub direction: Stamped<DirectionKey>,
    /// Hangup cause of the DESTROY.
    pub hangup_cause: Option<Box<str>>,
    /// `billing_seconds` of the DESTROY.
    pub billing_secs: Option<i64>,
    /// `duration_seconds` of the DESTROY.
    #[serde(default)]
    pub duration_secs: Option<i64>,
    /// Caller id of the leg, from the event latest in its life (Kazoo's effective caller id).
    pub caller_number: Latest,
    /// See `caller_number`.
    pub caller_name: Latest,
    /// See `caller_number`.
    pub callee_number: Latest,
    /// See `caller_number`.
    pub callee_name: Latest,
    /// User part of `request`/`to`, from the earliest event carrying it.
    pub request_user: Stamped<Box<str>>,
    /// User part of `presence_id`, from the event latest in the leg's life.
    pub presence_user: Latest,
    /// `other_leg_destination_number`.
    pub other_leg_destination: Stamped<Box<str>>,
    /// Channel variables.
    pub authorizing_id: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub authorizing_type: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub owner_id: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub username: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub resource_type: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub inception: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub e164_destination: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub original_number: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub agent_id: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub queue_id: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub cid_number_prefix: Stamped<Box<str>>,
    /// See `authorizing_id`.
    pub cid_name_prefix: Stamped<Box<str>>,
    /// Any event flagged the leg as a call-forward.
    pub call_forward: bool,
    /// Any event flagged caller privacy.
    pub privacy: bool,
    /// Recording ids with the time first seen.
    pub recordings: Vec<(i64, Box<str>)>,
    /// Application variables: (time, key, value), one entry per key holding its latest
    /// value (ties: the larger value), at most [`MAX_CAV_KEYS`] keys.
    pub cavs: Vec<(i64, Box<str>, Box<str>)>,
    /// Keys refused because the leg already held [`MAX_CAV_KEYS`] (the CDR is tagged
    /// `truncated`).
    #[serde(default)]
    pub cavs_refused: u32,
    /// Timeline marks, sorted.
    pub marks: Vec<Mark>,
    /// An event read from Kazoo's stored leg CDR (not from the stream) was folded in: the
    /// session CDR is tagged `backfilled`.
    #[serde(default)]
    pub from_cdr: bool,
    /// (kind, fingerprint) of every event folded in, for dedupe.
    seen: Vec<(EventKind, u64)>,
}

/// `call_direction`, orderable so it can be [`Stamped`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DirectionKey {
    /// Into the switch.
    Inbound,
    /// Created by the switch.
    Outbound,
}

impl Leg {
    /// A leg with no events yet.
    pub fn new(call_id: &str) -> Self {
        Self {
            call_id: call_id.into(),
            first_us: i64::MAX,
            last_us: i64::MIN,
            ..Self::default()
        }
    }

    /// A leg known only from another leg's bridge to it, answered and connected from `t`:
    /// no direction, no channel variables, no end of its own.
    pub fn stand_in(call_id: &str, t: i64) -> Self {
        Self {
            created_us: Some(t),
            answered_us: Some(t),
            first_us: t,
            last_us: t,
            ..Self::new(call_id)
        }
    }

    /// Folds one event in, at time `t` (the event's own time, or the stream time for PARK_*).
    /// Returns `false` for a duplicate, which changes nothing.
    pub fn apply(&mut self, ev: &CallEvent, t: i64) -> bool {
        let key = (ev.kind, ev.fingerprint);
        if self.seen.contains(&key) {
            return false;
        }
        self.seen.push(key);
        self.first_us = self.first_us.min(t);
        self.last_us = self.last_us.max(t);
        self.loopback |= ev.loopback;
        self.transfer |= ev.transfer;
        self.from_cdr |= ev.from_cdr;
        if let Some(c) = ev.created_us {
            self.created_us = Some(self.created_us.map_or(c, |h| h.min(c)));
        }
        self.direction.offer(
            t,
            ev.direction.map(|d| match d {
                Direction::Inbound => DirectionKey::Inbound,
                Direction::Outbound => DirectionKey::Outbound,
            }),
        );
        let rank = lifecycle_rank(ev.kind);
        self.caller_number
            .offer_str(rank, t, ev.caller_number.as_deref());
        self.caller_name
            .offer_str(rank, t, ev.caller_name.as_deref());
        self.callee_number
            .offer_str(rank, t, ev.callee_number.as_deref());
        self.callee_name
            .offer_str(rank, t, ev.callee_name.as_deref());
        self.presence_user
            .offer_str(rank, t, ev.presence_user.as_deref());
        self.request_user.offer_str(t, ev.request_user.as_deref());
        self.other_leg_destination
            .offer_str(t, ev.other_leg_destination.as_deref());
        self.loopback_other
            .offer_str(t, ev.loopback_other.as_deref());
        if ev.kind != EventKind::Bridge {
            self.originator.offer_str(t, ev.other_leg.as_deref());
        }
        let c = &ev.ccv;
        self.authorizing_id
            .offer_str(t, c.authorizing_id.as_deref());
        self.authorizing_type
            .offer_str(t, c.authorizing_type.as_deref());
        self.owner_id.offer_str(t, c.owner_id.as_deref());
        self.username.offer_str(t, c.username.as_deref());
        self.resource_type.offer_str(t, c.resource_type.as_deref());
        self.inception.offer_str(t, c.inception.as_deref());
        self.e164_destination
            .offer_str(t, c.e164_destination.as_deref());
        self.original_number
            .offer_str(t, c.original_number.as_deref());
        self.agent_id.offer_str(t, c.agent_id.as_deref());
        self.queue_id.offer_str(t, c.queue_id.as_deref());
        self.cid_number_prefix
            .offer_str(t, c.cid_number_prefix.as_deref());
        self.cid_name_prefix
            .offer_str(t, c.cid_name_prefix.as_deref());
        self.call_forward |= c.call_forward;
        self.privacy |= c.privacy_hide_number;
        for r in c.recordings.iter().chain(&ev.recordings) {
            if !self.recordings.iter().any(|(_, id)| **id == **r) {
                self.recordings.push((t, (**r).into()));
            }
        }
        for (k, v) in &ev.cavs {
            let held = self.cavs.len();
            match self.cavs.iter_mut().find(|(_, key, _)| **key == **k) {
                Some(entry) => {
                    if (t, &**v) > (entry.0, &*entry.2) {
                        entry.0 = t;
                        entry.2 = (**v).into();
                    }
                }
                None if held < MAX_CAV_KEYS => self.cavs.push((t, (**k).into(), (**v).into())),
                None => self.cavs_refused = self.cavs_refused.saturating_add(1),
            }
        }
        let mark = |kind| Mark { t, kind };
        match ev.kind {
            EventKind::Create => {
                self.saw_create = true;
                self.created_us = Some(self.created_us.map_or(t, |h| h.min(t)));
            }
            EventKind::Answer => {
                self.answered_us = Some(self.answered_us.map_or(t, |h| h.min(t)));
                self.insert_mark(mark(MarkKind::Answer));
            }
            EventKind::Bridge => {
                if let Some(peer) = ev.other_leg.as_deref().filter(|p| **p != *self.call_id) {
                    self.insert_mark(mark(MarkKind::Bridge(peer.into())));
                }
            }
            EventKind::Hold => self.insert_mark(mark(MarkKind::Hold)),
            EventKind::Unhold => self.insert_mark(mark(MarkKind::Unhold)),
            EventKind::Parked => self.insert_mark(mark(MarkKind::Parked)),
            EventKind::Retrieved => self.insert_mark(mark(MarkKind::Retrieved)),
            EventKind::ParkAbandoned => self.insert_mark(mark(MarkKind::ParkAbandoned)),
            EventKind::Destroy => {
                let cause = ev.hangup_cause.as_deref();
                let later = match self.destroyed_us {
                    None => true,
                    Some(d) => (t, cause) > (d, self.hangup_cause.as_deref()),
                };
                if later {
                    self.destroyed_us = Some(t);
                    self.hangup_cause = cause.map(Into::into);
                    self.billing_secs = ev.billing_seconds;
                    self.duration_secs = ev.duration_seconds;
                }
            }
        }
        true
    }

    fn insert_mark(&mut self, m: Mark) {
        let at = self.marks.partition_point(|x| *x <= m);
        self.marks.insert(at, m);
    }

    /// When the leg came to be: its creation; for a leg whose CREATE was never seen (nor
    /// `channel_created_time`), its DESTROY time − `duration_seconds` when that is earlier than
    /// its first event; else its first event.
    ///
    /// FreeSWITCH's `duration` is `floor(hangup s) − floor(created s)`, so the estimate lands
    /// in the second the leg was created, and the session's whole-second `dur` equals Kazoo's
    /// `duration_seconds` for a leg seen only at its end.
    pub fn start_us(&self) -> i64 {
        self.created_us.unwrap_or_else(|| {
            self.seconds_before_destroy(self.duration_secs)
                .map_or(self.first_us, |s| s.min(self.first_us))
        })
    }

    /// When the leg answered: the earliest `CHANNEL_ANSWER`; without one, DESTROY time −
    /// `billing_seconds` when Kazoo billed the leg (`billing_seconds` > 0), not before
    /// [`start_us`](Self::start_us). Kazoo's `billing_seconds` is the answered time rounded up
    /// (`ceil(billmsec / 1000)`), so the estimate is at most a second early.
    pub fn answer_us(&self) -> Option<i64> {
        self.answered_us.or_else(|| {
            let billed = self.billing_secs.filter(|b| *b > 0);
            self.seconds_before_destroy(billed)
                .map(|a| a.max(self.start_us()))
        })
    }

    /// Kazoo billed this leg: `billing_seconds` > 0 on its DESTROY.
    pub fn billed(&self) -> bool {
        self.billing_secs.is_some_and(|b| b > 0)
    }

    fn seconds_before_destroy(&self, secs: Option<i64>) -> Option<i64> {
        let d = self.destroyed_us?;
        d.checked_sub(secs?.checked_mul(1_000_000)?)
    }

    /// The leg's `call_direction`.
    pub fn direction(&self) -> Option<DirectionKey> {
        self.direction.get().copied()
    }

    /// Trunk, device or unknown, from the channel variables (PRODUCT.md §3 "Direction").
    pub fn kind(&self) -> LegKind {
        let auth = self.authorizing_type.str().unwrap_or("");
        if self
            .resource_type
            .str()
            .is_some_and(|r| r.starts_with("offnet-"))
            || auth == "resource"
        {
            LegKind::Trunk
        } else if auth == "device" || auth == "mobile" {
            LegKind::Device
        } else {
            LegKind::Unknown
        }
    }

    /// Application variables with the latest value per key (ties: the larger value).
    pub fn cav_pairs(&self) -> impl Iterator<Item = (i64, &str, &str)> {
        self.cavs.iter().map(|(t, k, v)| (*t, &**k, &**v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_keeps_earliest_whatever_the_order() {
        let offers = [(5, "b"), (3, "c"), (9, "a"), (3, "a")];
        let mut fwd = Stamped::default();
        let mut rev = Stamped::default();
        for (t, v) in offers {
            fwd.offer(t, Some(v));
        }
        for (t, v) in offers.iter().rev() {
            rev.offer(*t, Some(*v));
        }
        assert_eq!(fwd.get(), Some(&"a"));
        assert_eq!(fwd, rev);
    }
}

#[cfg(test)]
mod rule_tests {
    //! Which event's value wins, field by field (the table in the module docs).

    use super::*;
    use crate::source::{decode_frame, Frame};

    /// Unix second 0 of these tests (2024-05-14).
    const BASE: i64 = 1_715_700_000;

    /// A Blackhole frame of `kind` at second `t` after [`BASE`] with the given `data` fields.
    fn frame(kind: &str, t: i64, fields: &str) -> String {
        let sep = if fields.is_empty() { "" } else { "," };
        format!(
            r#"{{"action":"event","name":"{kind}","data":{{"event_name":"{kind}","call_id":"leg-1","msg_id":"{}"{sep}{fields}}}}}"#,
            (BASE + t) * 1_000_000
        )
    }

    fn fold(frames: &[String]) -> Leg {
        let mut leg = Leg::new("leg-1");
        for f in frames {
            let Ok(Frame::Event(ev)) = decode_frame(f) else {
                panic!("{f}")
            };
            leg.apply(&ev, ev.time.unwrap().as_us());
        }
        leg
    }

    /// Every order of `frames` folds to the same leg, which `check` accepts.
    fn in_every_order(frames: &[String], check: impl Fn(&Leg)) {
        let n = frames.len();
        let mut idx: Vec<usize> = (0..n).collect();
        // Heap's algorithm over the indexes.
        let mut c = vec![0; n];
        let mut i = 0;
        let first = fold(frames);
        check(&first);
        while i < n {
            if c[i] < i {
                idx.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                let shuffled: Vec<String> = idx.iter().map(|&k| frames[k].clone()).collect();
                let leg = fold(&shuffled);
                check(&leg);
                assert_eq!(leg.caller_number, first.caller_number);
                assert_eq!(leg.start_us(), first.start_us());
                assert_eq!(leg.answer_us(), first.answer_us());
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
    }

    #[test]
    fn caller_and_callee_ids_and_presence_come_from_the_latest_event_in_the_legs_life() {
        // (field in the frame, accessor)
        type Getter = fn(&Leg) -> Option<&str>;
        let fields: [(&str, Getter); 5] = [
            ("caller_id_number", |l| l.caller_number.str()),
            ("caller_id_name", |l| l.caller_name.str()),
            ("callee_id_number", |l| l.callee_number.str()),
            ("callee_id_name", |l| l.callee_name.str()),
            ("presence_id", |l| l.presence_user.str()),
        ];
        // (events as (kind, second, value or none), expected winner)
        type Case = (
            &'static [(&'static str, i64, Option<&'static str>)],
            &'static str,
        );
        let cases: [Case; 6] = [
            (
                &[
                    ("CHANNEL_CREATE", 1, Some("phone")),
                    ("CHANNEL_ANSWER", 2, Some("routed")),
                    ("CHANNEL_DESTROY", 30, Some("final")),
                ],
                "final",
            ),
            (
                &[
                    ("CHANNEL_CREATE", 1, Some("phone")),
                    ("CHANNEL_ANSWER", 2, Some("routed")),
                    ("CHANNEL_DESTROY", 30, None),
                ],
                "routed",
            ),
            (
                &[
                    ("CHANNEL_CREATE", 1, Some("phone")),
                    ("CHANNEL_ANSWER", 2, None),
                ],
                "phone",
            ),
            // Rank before time: a DESTROY stamped (wrongly) before the ANSWER still wins.
            (
                &[
                    ("CHANNEL_ANSWER", 9, Some("routed")),
                    ("CHANNEL_DESTROY", 8, Some("final")),
                ],
                "final",
            ),
            // Same rank: the later event.
            (
                &[
                    ("CHANNEL_HOLD", 5, Some("held")),
                    ("CHANNEL_BRIDGE", 3, Some("bridged")),
                    ("CHANNEL_CREATE", 1, Some("phone")),
                ],
                "held",
            ),
            // Same rank and time: the larger value (any fixed tie-break keeps order out of it).
            (
                &[
                    ("CHANNEL_ANSWER", 4, Some("a")),
                    ("CHANNEL_BRIDGE", 4, Some("b")),
                ],
                "b",
            ),
        ];
        for (field, get) in fields {
            for (events, want) in cases {
                let frames: Vec<String> = events
                    .iter()
                    .map(|(k, t, v)| {
                        let v = v.map(|v| {
                            let v = if field == "presence_id" {
                                format!("{v}@realm")
                            } else {
                                v.to_owned()
                            };
                            format!(r#""{field}":"{v}""#)
                        });
                        frame(k, *t, v.as_deref().unwrap_or(""))
                    })
                    .collect();
                in_every_order(&frames, |leg| {
                    assert_eq!(get(leg), Some(want), "{field} {events:?}")
                });
            }
        }
    }

    #[test]
    fn request_direction_and_channel_variables_come_from_the_earliest_event() {
        let frames = [
            frame(
                "CHANNEL_CREATE",
                1,
                r#""request":"1001@r","call_direction":"inbound","custom_channel_vars":{"owner_id":"u1"}"#,
            ),
            frame(
                "CHANNEL_ANSWER",
                2,
                r#""request":"2002@r","call_direction":"outbound","custom_channel_vars":{"owner_id":"u2"}"#,
            ),
            frame(
                "CHANNEL_DESTROY",
                3,
                r#""request":"3003@r","custom_channel_vars":{"owner_id":"u3","username":"dev"}"#,
            ),
        ];
        in_every_order(&frames, |leg| {
            assert_eq!(leg.request_user.str(), Some("1001"));
            assert_eq!(leg.direction(), Some(DirectionKey::Inbound));
            assert_eq!(leg.owner_id.str(), Some("u1"));
            assert_eq!(
                leg.username.str(),
                Some("dev"),
                "a variable set late is still kept"
            );
        });
    }

    #[test]
    fn start_and_answer_without_create_or_answer_come_from_the_destroys_seconds() {
        let destroy = |fields: &str| frame("CHANNEL_DESTROY", 100, fields);
        // (other frames, destroy fields, expected start s, expected answer s)
        type Case = (Vec<String>, &'static str, i64, Option<i64>);
        let cases: Vec<Case> = vec![
            // DESTROY alone: start = end − duration; answer = end − billing.
            (
                vec![],
                r#""duration_seconds":9,"billing_seconds":"4""#,
                91,
                Some(96),
            ),
            // Not billed: never answered.
            (
                vec![],
                r#""duration_seconds":"9","billing_seconds":0"#,
                91,
                None,
            ),
            // A CREATE seen: it wins over the estimate.
            (
                vec![frame("CHANNEL_CREATE", 93, "")],
                r#""duration_seconds":9,"billing_seconds":4"#,
                93,
                Some(96),
            ),
            // channel_created_time wins too.
            (
                vec![],
                r#""duration_seconds":9,"channel_created_time":1715700092500000"#,
                92,
                None,
            ),
            // An ANSWER seen: it wins over billing; an event before the estimate bounds start.
            (
                vec![frame("CHANNEL_ANSWER", 90, "")],
                r#""duration_seconds":9,"billing_seconds":4"#,
                90,
                Some(90),
            ),
            // Billing longer than the duration (bad data): the answer is not before the start.
            (
                vec![],
                r#""duration_seconds":3,"billing_seconds":50"#,
                97,
                Some(97),
            ),
            // No seconds at all: start at the DESTROY, as before.
            (vec![], "", 100, None),
        ];
        for (mut frames, fields, start, answer) in cases {
            frames.push(destroy(fields));
            in_every_order(&frames, |leg| {
                let secs = |us: i64| us.div_euclid(1_000_000) - BASE;
                assert_eq!(secs(leg.start_us()), start, "{fields}");
                assert_eq!(leg.answer_us().map(secs), answer, "{fields}");
            });
        }
    }

    #[test]
    fn saved_legs_of_the_previous_shape_still_load() {
        let old = r#"[1715700600000000,"user_wpxnx7am9w"]"#;
        let l: Latest = serde_json::from_str(old).unwrap();
        assert_eq!(l.str(), Some("user_wpxnx7am9w"));
        let mut l2 = l.clone();
        l2.offer_str(lifecycle_rank(EventKind::Answer), 1, Some("356"));
        assert_eq!(
            l2.str(),
            Some("356"),
            "an old value counts as a CREATE value"
        );
        let back: Latest = serde_json::from_str(&serde_json::to_string(&l2).unwrap()).unwrap();
        assert_eq!(back, l2);
        let none: Latest = serde_json::from_str("null").unwrap();
        assert_eq!(none.str(), None);
    }
}

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

use std::cmp::Ordering;

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

/// The texts a leg keeps from the earliest event carrying them ([`Stamped`]'s rule: ties by
/// value). A leg sets a few of the sixteen, so [`Texts`] holds only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Text {
    /// The other half of a loopback pair.
    LoopbackOther,
    /// `other_leg_call_id` outside bridges: the leg that originated this one.
    Originator,
    /// User part of `request`/`to`.
    RequestUser,
    /// `other_leg_destination_number`.
    OtherLegDestination,
    /// Channel variable `authorizing_id`.
    AuthorizingId,
    /// Channel variable `authorizing_type`.
    AuthorizingType,
    /// Channel variable `owner_id`.
    OwnerId,
    /// Channel variable `username`.
    Username,
    /// Channel variable `resource_type`.
    ResourceType,
    /// Channel variable `inception`.
    Inception,
    /// Channel variable `e164_destination`.
    E164Destination,
    /// Channel variable `original_number`.
    OriginalNumber,
    /// Channel variable `agent_id`.
    AgentId,
    /// Channel variable `queue_id`.
    QueueId,
    /// Channel variable `caller_id_number_prefix`.
    CidNumberPrefix,
    /// Channel variable `caller_id_name_prefix`.
    CidNamePrefix,
}

/// The [`Text`]s a leg holds, each with the event time it came from: a bit per text says
/// whether it is held, and the held ones sit in text order, so a text is found by counting
/// the bits below its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    held: u16,
    values: Vec<(i64, Box<str>)>,
}

impl Texts {
    /// Where `text` is (or would be) in `values`, and whether it is held.
    fn slot(&self, text: Text) -> (usize, bool) {
        let bit = 1u16 << text as u8;
        (
            (self.held & (bit - 1)).count_ones() as usize,
            self.held & bit != 0,
        )
    }

    /// The held text with its time.
    pub fn get(&self, text: Text) -> Option<(i64, &str)> {
        match self.slot(text) {
            (at, true) => self.values.get(at).map(|(t, v)| (*t, &**v)),
            _ => None,
        }
    }

    /// Makes room, in one step, for those of `texts` that are not held yet (an event brings
    /// several new texts at once: the list then grows once, not once per text).
    pub fn make_room(&mut self, texts: impl Iterator<Item = Text>) {
        let new = texts
            .filter(|text| self.held & (1u16 << *text as u8) == 0)
            .count();
        self.values.reserve_exact(new);
    }

    /// Keeps `value` if it is earlier than what is held (ties: the smaller value); copies it
    /// only when it is kept.
    pub fn offer(&mut self, text: Text, t: i64, value: Option<&str>) {
        let Some(value) = value else { return };
        match self.slot(text) {
            (at, true) => {
                // Time first: most events come later than the one a text was kept from, and
                // then the text is not even looked at.
                let (held_t, held) = &mut self.values[at];
                match t.cmp(held_t) {
                    Ordering::Greater => {}
                    Ordering::Equal if value < &**held => *held = value.into(),
                    Ordering::Equal => {}
                    Ordering::Less if **held == *value => *held_t = t,
                    Ordering::Less => (*held_t, *held) = (t, value.into()),
                }
            }
            (at, false) => {
                // Legs set their texts once, early: grow by what is needed, not by doubling.
                self.values.reserve_exact(1);
                self.values.insert(at, (t, value.into()));
                self.held |= 1 << text as u8;
            }
        }
    }
}

/// Distinct application variables one leg keeps: a PBX that sends new keys on every event
/// cannot grow a leg without bound.
pub const MAX_CAV_KEYS: usize = 64;

/// One leg, folded from its events.
///
/// Saved (the state file) in the shape of [`LegRepr`], every text a field of its own, so
/// state files written before the texts were held sparsely still load.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "LegRepr", into = "LegRepr")]
pub struct Leg {
    /// The leg's call id.
    pub call_id: Box<str>,
    /// Loopback half: used for grouping and bridging, never a party.
    pub loopback: bool,
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
    /// User part of `presence_id`, from the event latest in the leg's life.
    pub presence_user: Latest,
    /// The texts kept from the earliest event carrying them (the loopback peer, the
    /// originator, the request user, channel variables, ...): most legs set a few of them,
    /// so only those are held. Read through the accessors named after each [`Text`].
    texts: Texts,
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

/// The saved shape of a [`Leg`]: every [`Text`] a field of its own, as legs were held before
/// [`Texts`], so state files of either version load.
#[derive(serde::Serialize, serde::Deserialize)]
struct LegRepr {
    call_id: Box<str>,
    loopback: bool,
    loopback_other: Stamped<Box<str>>,
    originator: Stamped<Box<str>>,
    transfer: bool,
    created_us: Option<i64>,
    saw_create: bool,
    answered_us: Option<i64>,
    destroyed_us: Option<i64>,
    first_us: i64,
    last_us: i64,
    direction: Stamped<DirectionKey>,
    hangup_cause: Option<Box<str>>,
    billing_secs: Option<i64>,
    #[serde(default)]
    duration_secs: Option<i64>,
    caller_number: Latest,
    caller_name: Latest,
    callee_number: Latest,
    callee_name: Latest,
    request_user: Stamped<Box<str>>,
    presence_user: Latest,
    other_leg_destination: Stamped<Box<str>>,
    authorizing_id: Stamped<Box<str>>,
    authorizing_type: Stamped<Box<str>>,
    owner_id: Stamped<Box<str>>,
    username: Stamped<Box<str>>,
    resource_type: Stamped<Box<str>>,
    inception: Stamped<Box<str>>,
    e164_destination: Stamped<Box<str>>,
    original_number: Stamped<Box<str>>,
    agent_id: Stamped<Box<str>>,
    queue_id: Stamped<Box<str>>,
    cid_number_prefix: Stamped<Box<str>>,
    cid_name_prefix: Stamped<Box<str>>,
    call_forward: bool,
    privacy: bool,
    recordings: Vec<(i64, Box<str>)>,
    cavs: Vec<(i64, Box<str>, Box<str>)>,
    #[serde(default)]
    cavs_refused: u32,
    marks: Vec<Mark>,
    #[serde(default)]
    from_cdr: bool,
    seen: Vec<(EventKind, u64)>,
}

/// [`Leg`] ⇄ [`LegRepr`]: the fields both hold are moved, the texts converted.
macro_rules! leg_repr {
    (same: [$($same:ident),* $(,)?], texts: [$($field:ident: $text:ident),* $(,)?] $(,)?) => {
        impl From<Leg> for LegRepr {
            fn from(l: Leg) -> Self {
                let texts = l.texts;
                let stamped = |text| Stamped(texts.get(text).map(|(t, v)| (t, Box::from(v))));
                Self {
                    $($field: stamped(Text::$text),)*
                    $($same: l.$same,)*
                }
            }
        }

        impl From<LegRepr> for Leg {
            fn from(r: LegRepr) -> Self {
                let mut texts = Texts::default();
                $(if let Some((t, v)) = r.$field.0 {
                    texts.offer(Text::$text, t, Some(&v));
                })*
                Self {
                    texts,
                    $($same: r.$same,)*
                }
            }
        }
    };
}

leg_repr! {
    same: [
        call_id, loopback, transfer, created_us, saw_create, answered_us, destroyed_us,
        first_us, last_us, direction, hangup_cause, billing_secs, duration_secs,
        caller_number, caller_name, callee_number, callee_name, presence_user, call_forward,
        privacy, recordings, cavs, cavs_refused, marks, from_cdr, seen,
    ],
    texts: [
        loopback_other: LoopbackOther,
        originator: Originator,
        request_user: RequestUser,
        other_leg_destination: OtherLegDestination,
        authorizing_id: AuthorizingId,
        authorizing_type: AuthorizingType,
        owner_id: OwnerId,
        username: Username,
        resource_type: ResourceType,
        inception: Inception,
        e164_destination: E164Destination,
        original_number: OriginalNumber,
        agent_id: AgentId,
        queue_id: QueueId,
        cid_number_prefix: CidNumberPrefix,
        cid_name_prefix: CidNamePrefix,
    ],
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
        let c = &ev.ccv;
        let originator = (ev.kind != EventKind::Bridge).then_some(&ev.other_leg);
        let offered = [
            (Text::LoopbackOther, &ev.loopback_other),
            (Text::Originator, originator.unwrap_or(&None)),
            (Text::RequestUser, &ev.request_user),
            (Text::OtherLegDestination, &ev.other_leg_destination),
            (Text::AuthorizingId, &c.authorizing_id),
            (Text::AuthorizingType, &c.authorizing_type),
            (Text::OwnerId, &c.owner_id),
            (Text::Username, &c.username),
            (Text::ResourceType, &c.resource_type),
            (Text::Inception, &c.inception),
            (Text::E164Destination, &c.e164_destination),
            (Text::OriginalNumber, &c.original_number),
            (Text::AgentId, &c.agent_id),
            (Text::QueueId, &c.queue_id),
            (Text::CidNumberPrefix, &c.cid_number_prefix),
            (Text::CidNamePrefix, &c.cid_name_prefix),
        ];
        self.texts.make_room(
            offered
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(text, _)| *text),
        );
        for (text, value) in offered {
            self.texts.offer(text, t, value.as_deref());
        }
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

    /// A held [`Text`].
    pub fn text(&self, text: Text) -> Option<&str> {
        self.texts.get(text).map(|(_, v)| v)
    }

    /// Offers a [`Text`] as an event at `t` would (earliest wins, ties by value).
    pub fn offer_text(&mut self, text: Text, t: i64, value: Option<&str>) {
        self.texts.offer(text, t, value);
    }

    /// The other half of a loopback pair.
    pub fn loopback_other(&self) -> Option<&str> {
        self.text(Text::LoopbackOther)
    }

    /// `other_leg_call_id` outside bridges: the leg that originated this one.
    pub fn originator(&self) -> Option<&str> {
        self.text(Text::Originator)
    }

    /// User part of `request`/`to`, from the earliest event carrying it.
    pub fn request_user(&self) -> Option<&str> {
        self.text(Text::RequestUser)
    }

    /// `other_leg_destination_number`.
    pub fn other_leg_destination(&self) -> Option<&str> {
        self.text(Text::OtherLegDestination)
    }

    /// Channel variable `authorizing_id`: the document that authorized the leg.
    pub fn authorizing_id(&self) -> Option<&str> {
        self.text(Text::AuthorizingId)
    }

    /// Channel variable `authorizing_type`.
    pub fn authorizing_type(&self) -> Option<&str> {
        self.text(Text::AuthorizingType)
    }

    /// Channel variable `owner_id`.
    pub fn owner_id(&self) -> Option<&str> {
        self.text(Text::OwnerId)
    }

    /// Channel variable `username`.
    pub fn username(&self) -> Option<&str> {
        self.text(Text::Username)
    }

    /// Channel variable `resource_type`.
    pub fn resource_type(&self) -> Option<&str> {
        self.text(Text::ResourceType)
    }

    /// Channel variable `inception`.
    pub fn inception(&self) -> Option<&str> {
        self.text(Text::Inception)
    }

    /// Channel variable `e164_destination`.
    pub fn e164_destination(&self) -> Option<&str> {
        self.text(Text::E164Destination)
    }

    /// Channel variable `original_number`.
    pub fn original_number(&self) -> Option<&str> {
        self.text(Text::OriginalNumber)
    }

    /// Channel variable `agent_id`.
    pub fn agent_id(&self) -> Option<&str> {
        self.text(Text::AgentId)
    }

    /// Channel variable `queue_id`.
    pub fn queue_id(&self) -> Option<&str> {
        self.text(Text::QueueId)
    }

    /// Channel variable `caller_id_number_prefix`.
    pub fn cid_number_prefix(&self) -> Option<&str> {
        self.text(Text::CidNumberPrefix)
    }

    /// Channel variable `caller_id_name_prefix`.
    pub fn cid_name_prefix(&self) -> Option<&str> {
        self.text(Text::CidNamePrefix)
    }

    /// The leg's `call_direction`.
    pub fn direction(&self) -> Option<DirectionKey> {
        self.direction.get().copied()
    }

    /// Trunk, device or unknown, from the channel variables (PRODUCT.md §3 "Direction").
    pub fn kind(&self) -> LegKind {
        let auth = self.authorizing_type().unwrap_or("");
        if self
            .resource_type()
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
            assert_eq!(leg.request_user(), Some("1001"));
            assert_eq!(leg.direction(), Some(DirectionKey::Inbound));
            assert_eq!(leg.owner_id(), Some("u1"));
            assert_eq!(
                leg.username(),
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

    /// Every event of a leg touches it, and every open leg holds it: the rarely set texts
    /// live outside it (a leg held them all inline, 800 bytes, before).
    #[test]
    fn a_leg_stays_small() {
        let size = std::mem::size_of::<Leg>();
        println!("Leg: {size} bytes");
        assert!(size <= 448, "Leg is {size} bytes");
    }

    #[test]
    fn texts_keep_the_earliest_and_save_in_the_previous_shape() {
        let mut leg = Leg::new("leg-1");
        leg.offer_text(Text::OwnerId, 5, Some("u5"));
        leg.offer_text(Text::LoopbackOther, 7, Some("x"));
        leg.offer_text(Text::OwnerId, 3, Some("u3"));
        leg.offer_text(Text::OwnerId, 3, Some("u9"));
        leg.offer_text(Text::CidNamePrefix, 1, Some("p"));
        leg.offer_text(Text::LoopbackOther, 7, Some("a"));
        assert_eq!(leg.owner_id(), Some("u3"));
        assert_eq!(leg.loopback_other(), Some("a"));
        assert_eq!(leg.cid_name_prefix(), Some("p"));
        assert_eq!(leg.username(), None);
        // Saved with every text a field of its own, as before texts were held sparsely.
        let saved = serde_json::to_value(&leg).unwrap();
        assert_eq!(saved["owner_id"], serde_json::json!([3, "u3"]));
        assert_eq!(saved["loopback_other"], serde_json::json!([7, "a"]));
        assert_eq!(saved["username"], serde_json::Value::Null);
        let back: Leg = serde_json::from_value(saved.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), saved);
        assert_eq!(back.owner_id(), Some("u3"));
        assert_eq!(back.cid_name_prefix(), Some("p"));
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

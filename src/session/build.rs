//! Builds the session CDR from a closed session's legs (PRODUCT.md §3).
//!
//! Pure: legs, a few facts about how the session closed, and the settings in; a
//! [`ClosedSession`] out. Every decision the spec leaves open is documented where it is made.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{SecondsFormat, TimeZone};
use uuid::Uuid;

use super::leg::{DirectionKey, Leg, LegKind, MarkKind};
use super::numbers;
use super::settings::{Settings, TenantSettings};
use super::timeline::{self, Roles};
use crate::cdr::{CallType, Cdr, Direction, Party, CDR_TYPE, CDR_VERSION};

/// Namespace of the deterministic session ids (UUID v5).
const SESSION_NAMESPACE: Uuid = Uuid::from_u128(0x7a1c_52e0_93f4_4b8e_a1d2_5c0f_6e3b_9d47);

/// Hangup causes that describe a leg's own fate, never the session's.
const NOT_A_SESSION_CAUSE: [&str; 4] = [
    "LOSE_RACE",
    "PICKED_OFF",
    "ATTENDED_TRANSFER",
    "BLIND_TRANSFER",
];

/// Causes too generic to explain an unanswered session.
const GENERIC_CAUSE: [&str; 2] = ["NORMAL_CLEARING", "NORMAL_UNSPECIFIED"];

/// How the session closed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionFacts<'a> {
    /// Tenant (Kazoo account) of the session.
    pub tenant: Option<&'a str>,
    /// A leg was still up when the session closed.
    pub forced: bool,
    /// The event stream had a gap while the session was open.
    pub gap: bool,
    /// Events were refused at the session's leg or event limit.
    pub truncated: bool,
}

/// An answered trunk leg, for rating.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillableLeg {
    /// The rated number: the dialled number (E.164 where valid) on outbound legs, the DID on
    /// inbound ones.
    pub number: String,
    /// The switch created the leg (an outbound call or forward), as opposed to a carrier
    /// calling in.
    pub outbound: bool,
    /// Kazoo's `billing_seconds`, else answered → destroyed rounded up.
    pub billable_secs: u64,
    /// When the leg answered (Unix µs), to order legs.
    pub answered_us: i64,
}

/// A finished session: the CDR and what trigger matching needs besides it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClosedSession {
    /// The record sent as `cdr`.
    pub cdr: Cdr,
    /// Tenant (Kazoo account id) the session belongs to.
    pub tenant_id: Option<String>,
    /// Users (owners of devices, ACDc agents) who took part, for user-owned triggers.
    pub user_ids: Vec<String>,
    /// Session start and end (Unix µs).
    pub start_us: i64,
    /// See `start_us`.
    pub end_us: i64,
    /// Answered trunk legs, first answered first.
    pub billable: Vec<BillableLeg>,
}

/// The part one leg plays in the session (PRODUCT.md §3 "Parties" and "Direction"): where it
/// stands (origin, destination, neither, or a loopback half that is never a party) and, for a
/// party, its kind (trunk, device or unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegRole {
    /// Half of a loopback: it groups legs but is never a party.
    Loopback,
    /// The leg the session started with.
    Origin(LegKind),
    /// A leg the switch created towards a party (outbound, not the origin): what rings.
    Destination(LegKind),
    /// Any other party leg (e.g. an inbound leg that joined by pickup or transfer).
    Other(LegKind),
}

impl LegRole {
    /// The role of each leg, given the origin. A loopback half stays a loopback even when
    /// it is the origin (a session of loopback legs only).
    fn of_legs(legs: &[Leg], origin: usize) -> Vec<LegRole> {
        legs.iter()
            .enumerate()
            .map(|(i, l)| {
                let kind = l.kind();
                if l.loopback {
                    LegRole::Loopback
                } else if i == origin {
                    LegRole::Origin(kind)
                } else if l.direction() == Some(DirectionKey::Outbound) {
                    LegRole::Destination(kind)
                } else {
                    LegRole::Other(kind)
                }
            })
            .collect()
    }

    /// The kind of a party leg; `None` for a loopback half.
    fn kind(self) -> Option<LegKind> {
        match self {
            LegRole::Loopback => None,
            LegRole::Origin(k) | LegRole::Destination(k) | LegRole::Other(k) => Some(k),
        }
    }

    /// Can be a party (not a loopback half).
    fn person(self) -> bool {
        self != LegRole::Loopback
    }

    /// A party trunk leg.
    fn trunk(self) -> bool {
        self.kind() == Some(LegKind::Trunk)
    }

    /// A party device leg.
    fn device(self) -> bool {
        self.kind() == Some(LegKind::Device)
    }

    /// A destination leg (its alerting is ring).
    fn destination(self) -> bool {
        matches!(self, LegRole::Destination(_))
    }
}

/// Builds the CDR of a closed session.
///
/// A billed leg bridged to a leg the stream never delivered gets that peer as a party of
/// unknown kind (see [`unseen_peers`]); such a peer never starts, ends or originates the
/// session.
pub fn build(seen: &[Leg], facts: &SessionFacts<'_>, settings: &Settings) -> ClosedSession {
    let tenant = settings.tenant(facts.tenant);
    let peers = unseen_peers(seen);
    let unseen_peer = !peers.is_empty();
    let all: Cow<'_, [Leg]> = if unseen_peer {
        Cow::Owned(seen.iter().cloned().chain(peers).collect())
    } else {
        Cow::Borrowed(seen)
    };
    let legs: &[Leg] = &all;
    let (origin, start, end) = origin_and_span(legs, seen.len());
    let o = &legs[origin];
    let roles = LegRole::of_legs(legs, origin);
    let (dir, call_type) = direction(DirectionFacts::of(legs, &roles, origin, unseen_peer));

    let tl = timeline::compute(&Roles {
        legs,
        origin,
        person: roles.iter().map(|r| r.person()).collect(),
        trunk: roles.iter().map(|r| r.trunk()).collect(),
        destination: roles.iter().map(|r| r.destination()).collect(),
        start,
        end,
        anchor_far_end: dir == Direction::Outgoing,
    });
    let anchor = tl.anchor;
    let parties = parties(legs, &roles, anchor, |i| tl.with_anchor(i));
    let party = |i: Option<usize>| i.map(|i| party_of(&legs[i], settings)).unwrap_or_default();
    let group = |i: Option<usize>| {
        i.and_then(|i| legs[i].queue_id())
            .and_then(|q| settings.directory.queues.get(q).cloned())
    };

    let region = tenant.region;
    let num = numbers(legs, &roles, origin, dir, region);
    let ddi_name = num
        .ddi_num
        .as_ref()
        .and_then(|n| settings.directory.numbers.get(n).cloned());
    let first_rang = parties.rang.first().map(|&i| &legs[i]);
    let (rte_id, rte_name) = routing_prefixes(legs, o, dir.is_external_incoming(), first_rang);

    let out = outcome(&tl, start, end, dir, tenant);
    let cause = session_cause(legs, &roles, origin, out.ans);

    // Voicemail: nobody answered, and the PBX answered the caller itself after a device had
    // rung (Kazoo's no-answer fall-through). A PBX answer before any ringing is an IVR or a
    // queue, not voicemail.
    let voicemail = !out.ans
        && o.answer_us()
            .is_some_and(|ta| parties.rang.iter().any(|&i| legs[i].start_us() < ta));
    let distinct_answered = (0..legs.len())
        .filter(|&i| i != anchor && roles[i].person() && tl.with_anchor(i).is_some())
        .count();
    let system = [
        ("voicemail", voicemail),
        (
            "transferred",
            legs.iter().any(|l| l.transfer) || distinct_answered >= 2,
        ),
        (
            "forwarded",
            dir == Direction::Both || legs.iter().any(|l| l.call_forward),
        ),
        (
            "pickup",
            legs.iter()
                .any(|l| l.hangup_cause.as_deref() == Some("PICKED_OFF")),
        ),
        (
            "parked",
            legs.iter()
                .any(|l| l.marks.iter().any(|m| m.kind == MarkKind::Parked)),
        ),
        ("withheld", num.withheld),
        ("partial", partial(seen, &roles[..seen.len()])),
        ("unseen_peer", unseen_peer),
        ("forced_close", facts.forced),
        ("gap", facts.gap),
        (
            "truncated",
            facts.truncated || legs.iter().any(|l| l.cavs_refused > 0),
        ),
        ("backfilled", legs.iter().any(|l| l.from_cdr)),
    ];
    let tags = tags(legs, &system);
    let recording_ids = recording_ids(legs);
    let user_ids = user_ids(legs);

    let id = Uuid::new_v5(
        &SESSION_NAMESPACE,
        format!(
            "{}|{}|{}",
            settings.pbx_id.as_deref().unwrap_or(""),
            facts.tenant.unwrap_or(""),
            o.call_id
        )
        .as_bytes(),
    );
    let time = |us: i64| rfc3339(us, tenant);
    let cdr = Cdr {
        id: id.to_string(),
        d_type: CDR_TYPE.to_owned(),
        s_ver: CDR_VERSION,
        pbx_id: settings.pbx_id.clone(),
        pbx_name: settings.pbx_name.clone(),
        tz: tenant.tz.name().to_owned(),
        start: time(start),
        answer: tl.answer_us.map(time),
        end: time(end),
        dur: out.dur,
        ring: out.ring,
        talk: out.talk,
        hold: out.hold,
        park: out.park,
        lost: out.lost.into(),
        lostin_park: tl.lost_in_park.into(),
        aban: out.aban.into(),
        ans: out.ans.into(),
        short: out.short.into(),
        cause,
        dir,
        call_type,
        t2t: tl.t2t.into(),
        cli_num: num.cli_num,
        cli_name: num.cli_name,
        cli_loc: None,
        cli_area: None,
        cli_state: None,
        cli_ctry: None,
        ddi_num: num.ddi_num,
        ddi_name,
        first_rang: party(parties.rang.first().copied()).into(),
        last_rang: party(parties.rang.last().copied()).into(),
        answering: party(parties.answering.first().copied()).into(),
        last_answering: party(parties.answering.last().copied()).into(),
        rte_id,
        rte_name,
        f_rng_group_name: group(parties.rang.first().copied()),
        l_rng_group_name: group(parties.rang.last().copied()),
        ans_group_name: group(parties.answering.first().copied()),
        has_rec: (!recording_ids.is_empty()).into(),
        rate: 0,
        rate_cost: None,
        rate_band: None,
        rate_name: None,
        recording_ids,
        directory_matches: Vec::new(),
        tags,
    };
    let billable = billable_legs(legs, &roles, region, cdr.ddi_num.as_deref());
    ClosedSession {
        cdr,
        tenant_id: facts.tenant.map(str::to_owned),
        user_ids,
        start_us: start,
        end_us: end,
        billable,
    }
}

/// The origin leg and the session's start and end (µs), from the first `n_seen` legs (the
/// ones the stream delivered; stand-ins for unseen peers follow them).
///
/// Only party legs count, unless the session has none (loopback legs only). The origin is
/// the earliest created, an inbound leg first on a tie, then by call id. `end` is the last
/// destroy (or last event of a leg never destroyed), never before `start`.
fn origin_and_span(legs: &[Leg], n_seen: usize) -> (usize, i64, i64) {
    let any_person = legs[..n_seen].iter().any(|l| !l.loopback);
    let counts = |i: usize| i < n_seen && (!legs[i].loopback || !any_person);
    let origin = (0..legs.len())
        .filter(|&i| counts(i))
        .min_by_key(|&i| {
            let l = &legs[i];
            (
                l.start_us(),
                l.direction() != Some(DirectionKey::Inbound),
                &l.call_id,
            )
        })
        .unwrap_or(0);
    let start = (0..legs.len())
        .filter(|&i| counts(i))
        .map(|i| legs[i].start_us())
        .min()
        .unwrap_or(legs[origin].first_us);
    let end = (0..legs.len())
        .filter(|&i| counts(i))
        .map(|i| {
            legs[i]
                .destroyed_us
                .unwrap_or(legs[i].last_us)
                .max(legs[i].last_us)
        })
        .max()
        .unwrap_or(start)
        .max(start);
    (origin, start, end)
}

/// What decides `dir` and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirectionFacts {
    /// Kind of the origin leg.
    origin: LegKind,
    /// Some party leg is a trunk.
    any_trunk: bool,
    /// Some destination leg is a trunk (the switch called out to a carrier).
    outbound_trunk: bool,
    /// A billed leg was bridged to a peer the stream never delivered.
    unseen_peer: bool,
}

impl DirectionFacts {
    fn of(legs: &[Leg], roles: &[LegRole], origin: usize, unseen_peer: bool) -> Self {
        DirectionFacts {
            origin: legs[origin].kind(),
            any_trunk: roles.iter().any(|r| r.trunk()),
            outbound_trunk: roles.contains(&LegRole::Destination(LegKind::Trunk)),
            unseen_peer,
        }
    }
}

/// `dir` and `type` (PRODUCT.md §3 "Direction").
///
/// Where the spec is silent: a device origin with a trunk leg that is not a destination (a
/// carrier call joined by pickup or transfer) is `dir` unknown; so is a device origin bridged
/// to an unseen peer, which may be a carrier (its `type` is then unknown too, since whether a
/// trunk took part is not known).
fn direction(f: DirectionFacts) -> (Direction, CallType) {
    let any_trunk = if f.any_trunk {
        CallType::External
    } else {
        CallType::Unknown
    };
    match f.origin {
        LegKind::Trunk if f.outbound_trunk => (Direction::Both, CallType::External),
        LegKind::Trunk => (Direction::Incoming, CallType::External),
        LegKind::Device if f.outbound_trunk => (Direction::Outgoing, CallType::External),
        LegKind::Device if !f.any_trunk && !f.unseen_peer => {
            (Direction::Internal, CallType::Internal)
        }
        _ => (Direction::Unknown, any_trunk),
    }
}

/// Party legs in the order the CDR's party fields read them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parties {
    /// Destination device legs by creation (ties by call id): first and last rang.
    rang: Vec<usize>,
    /// Device legs connected to the anchor, by first connection (ties by call id): answering
    /// and last answering.
    answering: Vec<usize>,
}

/// Who rang and who answered (PRODUCT.md §3 "Parties").
///
/// Answering parties are the device legs connected to the anchor, in order of connection.
/// The anchor is the origin, except on outgoing calls where it is the far end (so the calling
/// device answers, and a device it transfers the call to answers last). `connected(i)` is
/// when leg `i` was first connected to the anchor.
fn parties(
    legs: &[Leg],
    roles: &[LegRole],
    anchor: usize,
    connected: impl Fn(usize) -> Option<i64>,
) -> Parties {
    let mut answering: Vec<(i64, &str, usize)> = (0..legs.len())
        .filter(|&i| i != anchor && roles[i].device())
        .filter_map(|i| connected(i).map(|t| (t, &*legs[i].call_id, i)))
        .collect();
    answering.sort_unstable();
    let mut rang: Vec<(i64, &str, usize)> = (0..legs.len())
        .filter(|&i| roles[i] == LegRole::Destination(LegKind::Device))
        .map(|i| (legs[i].start_us(), &*legs[i].call_id, i))
        .collect();
    rang.sort_unstable();
    let order = |v: Vec<(i64, &str, usize)>| v.into_iter().map(|x| x.2).collect();
    Parties {
        rang: order(rang),
        answering: order(answering),
    }
}

/// `cliNum`, `cliName`, `ddiNum` and whether the caller withheld their number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Numbers {
    cli_num: Option<String>,
    cli_name: Option<String>,
    ddi_num: Option<String>,
    withheld: bool,
}

/// The session's numbers (PRODUCT.md §3 "Numbers").
///
/// | `dir` | `cliNum` | `ddiNum` |
/// |---|---|---|
/// | incoming, both | the origin's caller id (none when withheld) | the origin's request user when it is a number, else the `inception` |
/// | outgoing | the number dialled on the first outbound trunk leg, else the origin's request user | the caller id presented on that trunk leg |
/// | internal, unknown | the origin's caller id | none |
fn numbers(
    legs: &[Leg],
    roles: &[LegRole],
    origin: usize,
    dir: Direction,
    region: numbers::Region,
) -> Numbers {
    let o = &legs[origin];
    let external_in = dir.is_external_incoming();
    let withheld = external_in && (numbers::is_withheld(o.caller_number.str()) || o.privacy);
    let first_out_trunk = (0..legs.len())
        .filter(|&i| roles[i] == LegRole::Destination(LegKind::Trunk))
        .min_by_key(|&i| (legs[i].start_us(), &legs[i].call_id));
    let (cli_raw, cli_name) = if withheld {
        (None, None)
    } else if dir == Direction::Outgoing {
        let t = first_out_trunk.map(|i| &legs[i]);
        let dialled = t
            .and_then(|t| {
                t.e164_destination()
                    .or(t.request_user())
                    .or(t.callee_number.str())
            })
            .or(o.request_user());
        (dialled, None)
    } else {
        (o.caller_number.str(), o.caller_name.str())
    };
    let ddi_raw = match dir {
        Direction::Incoming | Direction::Both => o
            .request_user()
            .filter(|u| numbers::to_e164(u, region).is_some())
            .or_else(|| legs.iter().find_map(|l| l.inception()))
            .map(|s| s.split('@').next().unwrap_or(s)),
        Direction::Outgoing => first_out_trunk.and_then(|i| legs[i].caller_number.str()),
        Direction::Internal | Direction::Unknown => None,
    };
    Numbers {
        cli_num: cli_raw.and_then(|n| numbers::normalise(n, region)),
        cli_name: cli_name.map(str::to_owned),
        ddi_num: ddi_raw.and_then(|n| numbers::normalise(n, region)),
        withheld,
    }
}

/// Timings in whole seconds and the outcome flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Outcome {
    dur: u64,
    ring: u64,
    talk: u64,
    hold: u64,
    park: u64,
    ans: bool,
    lost: bool,
    aban: bool,
    short: bool,
}

/// `dur`, the four timings and the outcome flags (PRODUCT.md §3 "Times" and "Outcome").
///
/// `dur` is the difference of the whole seconds of `end` and `start` (the seconds the CDR's
/// timestamps show). Ring, hold and park are floored from microseconds. Connected time
/// (talk + hold) is rounded up to whole seconds as Kazoo rounds `billing_seconds`
/// (`ceil(billmsec / 1000)`), so it agrees with what Kazoo bills the connected legs; it is
/// capped so that ring + talk + hold + park never exceed `dur`. Talk is the connected time
/// less hold.
fn outcome(
    tl: &timeline::Timeline,
    start: i64,
    end: i64,
    dir: Direction,
    tenant: &TenantSettings,
) -> Outcome {
    let secs = |us: i64| u64::try_from(us.max(0) / 1_000_000).unwrap_or(0);
    let dur = u64::try_from(end.div_euclid(1_000_000) - start.div_euclid(1_000_000)).unwrap_or(0);
    let (ring, hold, park) = (secs(tl.ring_us), secs(tl.hold_us), secs(tl.park_us));
    let connected_us = tl.talk_us.max(0) + tl.hold_us.max(0);
    let connected = u64::try_from(connected_us)
        .unwrap_or(0)
        .div_ceil(1_000_000)
        .min(dur.saturating_sub(ring + park))
        .max(hold);
    let talk = connected - hold;
    let ans = tl.answer_us.is_some();
    let unanswered_external = dir.is_external_incoming() && !ans;
    let aban = unanswered_external && ring <= tenant.short_ring_secs;
    Outcome {
        dur,
        ring,
        talk,
        hold,
        park,
        ans,
        lost: unanswered_external && !aban,
        aban,
        short: ans && talk + hold < tenant.short_call_secs,
    }
}

/// Tags: the callflows' application variables (the latest value per key wins), then the
/// system tags that are on, with value `"1"`.
fn tags(legs: &[Leg], system: &[(&str, bool)]) -> BTreeMap<String, String> {
    let mut cavs: Vec<(i64, &str, &str, &str)> = legs
        .iter()
        .flat_map(|l| l.cav_pairs().map(move |(t, k, v)| (t, &*l.call_id, k, v)))
        .collect();
    cavs.sort_unstable();
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for (_, _, k, v) in cavs {
        tags.insert(k.to_owned(), v.to_owned());
    }
    for (name, _) in system.iter().filter(|(_, on)| *on) {
        tags.insert((*name).to_owned(), "1".to_owned());
    }
    tags
}

/// Recording ids of every leg, in the order they started, each once.
fn recording_ids(legs: &[Leg]) -> Vec<String> {
    let mut recordings: Vec<(i64, &str)> = legs
        .iter()
        .flat_map(|l| l.recordings.iter().map(|(t, id)| (*t, &**id)))
        .collect();
    recordings.sort_unstable();
    let mut ids: Vec<String> = Vec::new();
    for (_, id) in recordings {
        if !ids.iter().any(|r| r == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// Owners of party legs and ACDc agents, sorted, each once.
fn user_ids(legs: &[Leg]) -> Vec<String> {
    let mut ids: Vec<String> = legs
        .iter()
        .filter(|l| !l.loopback)
        .flat_map(|l| [l.owner_id(), l.agent_id()])
        .flatten()
        .map(str::to_owned)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Answered trunk legs with the number and seconds a rate deck needs.
fn billable_legs(
    legs: &[Leg],
    roles: &[LegRole],
    region: numbers::Region,
    ddi: Option<&str>,
) -> Vec<BillableLeg> {
    let mut out: Vec<BillableLeg> = (0..legs.len())
        .filter(|&i| roles[i].trunk())
        .filter_map(|i| {
            let l = &legs[i];
            let answered = l.answer_us()?;
            let outbound = roles[i].destination();
            let number = if outbound {
                l.e164_destination()
                    .or(l.request_user())
                    .or(l.callee_number.str())
                    .and_then(|n| numbers::normalise(n, region))
            } else {
                ddi.map(str::to_owned)
            }?;
            let measured = l.destroyed_us.map(|d| {
                u64::try_from((d - answered).max(0))
                    .unwrap_or(0)
                    .div_ceil(1_000_000)
            });
            let billable_secs = l
                .billing_secs
                .and_then(|b| u64::try_from(b).ok())
                .or(measured)?;
            Some(BillableLeg {
                number,
                outbound,
                billable_secs,
                answered_us: answered,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.answered_us, &a.number).cmp(&(b.answered_us, &b.number)));
    out
}

/// RFC 3339 in the tenant's time zone, whole seconds.
fn rfc3339(us: i64, tenant: &TenantSettings) -> String {
    let secs = us.div_euclid(1_000_000);
    match tenant.tz.timestamp_opt(secs, 0).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, false),
        None => secs.to_string(),
    }
}

/// Device, user and agent of a device leg: the PBX directory first, then what the leg's
/// events carry.
///
/// | field | from |
/// |---|---|
/// | device number | `username` channel variable, else the directory device's username |
/// | device name | directory device name, else the leg's own caller-id name |
/// | user / agent number | directory extension, else the `presence_id` user when it is not the SIP username (Kazoo's presence id is the configured extension), else the leg's own caller-id number, else the `presence_id` user |
/// | user / agent name | directory name, else the leg's own caller-id name |
///
/// The leg's own caller id is the callee id on legs the switch created towards the device and
/// the caller id on legs the device placed, each from the event latest in the leg's life
/// ([`Latest`](super::leg::Latest)): the routed value, not what the phone sent at CREATE.
fn party_of(leg: &Leg, settings: &Settings) -> Party {
    let dir = &settings.directory;
    let own_cid = if leg.direction() == Some(DirectionKey::Outbound) {
        (leg.callee_number.str(), leg.callee_name.str())
    } else {
        (leg.caller_number.str(), leg.caller_name.str())
    };
    // Kazoo's `presence_id` is the device's (or its owner's) configured presence id, the
    // extension, else the SIP username (`kz_attributes:presence_id/2`): only the former says
    // which extension the user has.
    let presence_extension = leg
        .presence_user
        .str()
        .filter(|p| Some(*p) != leg.username());
    let device = leg.authorizing_id().and_then(|d| dir.devices.get(d));
    let own = |s: Option<&str>| s.map(str::to_owned);
    let dev_num = own(leg.username()).or_else(|| device.and_then(|d| d.username.clone()));
    let dev_name = device
        .and_then(|d| d.name.clone())
        .or_else(|| own(own_cid.1));
    let person = |user_id: Option<&str>| -> (Option<String>, Option<String>) {
        let Some(uid) = user_id else {
            return (None, None);
        };
        let u = dir.users.get(uid);
        let num = u
            .and_then(|u| u.extension.clone())
            .or_else(|| own(presence_extension))
            .or_else(|| own(own_cid.0))
            .or_else(|| own(leg.presence_user.str()));
        let name = u.and_then(|u| u.name.clone()).or_else(|| own(own_cid.1));
        (num, name)
    };
    let (usr_num, usr_name) = person(leg.owner_id());
    let (agt_num, agt_name) = match leg.agent_id() {
        Some(agent) => person(Some(agent)),
        None => (usr_num.clone(), usr_name.clone()),
    };
    Party {
        dev_num,
        dev_name,
        usr_num,
        usr_name,
        agt_num,
        agt_name,
    }
}

/// `rteID` / `rteName`: prefixes exported by the callflow, else the leading part the first
/// rung device leg's caller id has in addition to the origin's original caller id.
fn routing_prefixes(
    legs: &[Leg],
    origin: &Leg,
    external_in: bool,
    first_rang: Option<&Leg>,
) -> (Option<String>, Option<String>) {
    let exported = |f: fn(&Leg) -> Option<&str>| legs.iter().find_map(f).map(str::to_owned);
    let mut number = exported(|l| l.cid_number_prefix());
    let mut name = exported(|l| l.cid_name_prefix());
    if external_in {
        let device = first_rang;
        let derive = |orig: Option<&str>, seen: Option<&str>| -> Option<String> {
            let (orig, seen) = (orig?, seen?);
            let prefix = seen.strip_suffix(orig)?.trim_end();
            (!prefix.is_empty()).then(|| prefix.to_owned())
        };
        if let Some(d) = device {
            number = number.or_else(|| derive(origin.caller_number.str(), d.caller_number.str()));
            name = name.or_else(|| derive(origin.caller_name.str(), d.caller_name.str()));
        }
    }
    (number, name)
}

/// The origin leg's hangup cause; for an unanswered session whose origin cause is generic,
/// the cause of the last destination attempt. Leg-only causes never describe the session.
fn session_cause(legs: &[Leg], roles: &[LegRole], origin: usize, answered: bool) -> Option<String> {
    let usable = |i: usize| {
        legs[i]
            .hangup_cause
            .as_deref()
            .filter(|c| roles[i].person() && !NOT_A_SESSION_CAUSE.contains(c))
    };
    let origin_cause = usable(origin);
    let last_attempt = || {
        (0..legs.len())
            .filter(|&i| roles[i].destination())
            .filter_map(|i| usable(i).map(|c| ((legs[i].start_us(), &legs[i].call_id), c)))
            .max()
            .map(|x| x.1)
    };
    let cause = match origin_cause {
        Some(c) if answered || !GENERIC_CAUSE.contains(&c) => Some(c),
        generic => last_attempt()
            .filter(|c| !GENERIC_CAUSE.contains(c))
            .or(generic),
    };
    cause.map(str::to_owned)
}

/// Events are missing: a party leg without its CREATE or its DESTROY.
///
/// A leg read from Kazoo's stored CDR without its CREATE is not missing anything: the CDR
/// gives its start, answer and end.
fn partial(legs: &[Leg], roles: &[LegRole]) -> bool {
    legs.iter()
        .zip(roles)
        .any(|(l, r)| r.person() && ((!l.saw_create && !l.from_cdr) || l.destroyed_us.is_none()))
}

/// Peers that billed legs were bridged to but that the session never saw (frames lost in a
/// gap, a peer in an account that is not subscribed, one side not delivered), as stand-in
/// legs of unknown kind, connected from the bridge on.
///
/// Evidence needed: the leg is not a loopback half, Kazoo billed it (`billing_seconds` > 0
/// on its DESTROY: it was answered), and it was bridged to the peer (`CHANNEL_BRIDGE`, or
/// without one, `other_leg_call_id`, from the leg's answer on). A bridge joins two channels,
/// so a person or carrier was on the other side: counting the peer lets the call be answered
/// with talk time as Kazoo billed it, and the CDR is tagged `unseen_peer` so no one mistakes
/// the unknown party for a known one.
fn unseen_peers(legs: &[Leg]) -> Vec<Leg> {
    let seen = |id: &str| legs.iter().any(|l| *l.call_id == *id);
    let mut peers: Vec<(i64, &str)> = Vec::new();
    for l in legs.iter().filter(|l| !l.loopback && l.billed()) {
        let bridges: Vec<(i64, &str)> = l
            .marks
            .iter()
            .filter_map(|m| match &m.kind {
                MarkKind::Bridge(p) => Some((m.t, &**p)),
                _ => None,
            })
            .collect();
        let originated = match (bridges.is_empty(), l.originator(), l.answer_us()) {
            (true, Some(p), Some(t)) => Some((t, p)),
            _ => None,
        };
        for (t, peer) in bridges.into_iter().chain(originated) {
            if seen(peer) {
                continue;
            }
            match peers.iter_mut().find(|(_, p)| *p == peer) {
                Some(held) => held.0 = held.0.min(t),
                None => peers.push((t, peer)),
            }
        }
    }
    peers.sort_unstable();
    peers
        .into_iter()
        .map(|(t, peer)| Leg::stand_in(peer, t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{decode_frame, Frame};

    /// A leg folded from `(event, second, data fields)`.
    fn leg(events: &[(&str, i64, &str)]) -> Leg {
        named_leg("leg-1", events)
    }

    /// Like [`leg`], with its call id.
    fn named_leg(id: &str, events: &[(&str, i64, &str)]) -> Leg {
        let mut leg = Leg::new(id);
        for (kind, t, fields) in events {
            let text = format!(
                r#"{{"action":"event","name":"{kind}","data":{{"event_name":"{kind}","call_id":"{id}","msg_id":"{}",{fields}}}}}"#,
                (1_715_700_000 + t) * 1_000_000
            );
            let Ok(Frame::Event(ev)) = decode_frame(&text) else {
                panic!("{text}")
            };
            leg.apply(&ev, ev.time.unwrap().as_us());
        }
        leg
    }

    /// Party fields with no directory: which event's value ends up where.
    #[test]
    fn party_fields_follow_the_routed_caller_id_and_the_presence_extension() {
        let ccv = r#""custom_channel_vars":{"authorizing_type":"device","username":"user_wpxnx7am9w","owner_id":"u1"}"#;
        // (case, events, expected (devNum, devName, usrNum, usrName))
        type Case<'a> = (&'a str, Vec<(&'a str, i64, String)>, [Option<&'a str>; 4]);
        let cases: Vec<Case> = vec![
            (
                "the *97 capture: phone's own id at CREATE, routed id after, presence = extension",
                vec![
                    (
                        "CHANNEL_CREATE",
                        0,
                        format!(
                            r#""call_direction":"inbound","caller_id_number":"user_wpxnx7am9w","caller_id_name":"user_wpxnx7am9w","presence_id":"356@r",{ccv}"#
                        ),
                    ),
                    (
                        "CHANNEL_ANSWER",
                        1,
                        format!(
                            r#""caller_id_number":"356","caller_id_name":"web phone","presence_id":"356@r",{ccv}"#
                        ),
                    ),
                    (
                        "CHANNEL_DESTROY",
                        31,
                        format!(
                            r#""caller_id_number":"356","caller_id_name":"web phone","presence_id":"356@r",{ccv}"#
                        ),
                    ),
                ],
                [
                    Some("user_wpxnx7am9w"),
                    Some("web phone"),
                    Some("356"),
                    Some("web phone"),
                ],
            ),
            (
                "presence is the extension even when routing presents another number",
                vec![
                    (
                        "CHANNEL_CREATE",
                        0,
                        format!(
                            r#""call_direction":"inbound","caller_id_number":"user_wpxnx7am9w","presence_id":"1001@r",{ccv}"#
                        ),
                    ),
                    (
                        "CHANNEL_DESTROY",
                        9,
                        format!(
                            r#""caller_id_number":"+15125550100","caller_id_name":"Acme",{ccv}"#
                        ),
                    ),
                ],
                [
                    Some("user_wpxnx7am9w"),
                    Some("Acme"),
                    Some("1001"),
                    Some("Acme"),
                ],
            ),
            (
                "presence is only the SIP username: the routed caller id is the best number",
                vec![
                    (
                        "CHANNEL_CREATE",
                        0,
                        format!(
                            r#""call_direction":"inbound","caller_id_number":"user_wpxnx7am9w","presence_id":"user_wpxnx7am9w@r",{ccv}"#
                        ),
                    ),
                    (
                        "CHANNEL_ANSWER",
                        2,
                        format!(r#""caller_id_number":"2002","caller_id_name":"Annex",{ccv}"#),
                    ),
                ],
                [
                    Some("user_wpxnx7am9w"),
                    Some("Annex"),
                    Some("2002"),
                    Some("Annex"),
                ],
            ),
            (
                "a leg the switch created towards the device: its callee id, latest",
                vec![
                    (
                        "CHANNEL_CREATE",
                        0,
                        format!(
                            r#""call_direction":"outbound","caller_id_number":"+14155550123","callee_id_number":"user_wpxnx7am9w","callee_id_name":"user_wpxnx7am9w",{ccv}"#
                        ),
                    ),
                    (
                        "CHANNEL_ANSWER",
                        3,
                        format!(
                            r#""caller_id_number":"+14155550123","callee_id_number":"1003","callee_id_name":"Front Desk",{ccv}"#
                        ),
                    ),
                ],
                [
                    Some("user_wpxnx7am9w"),
                    Some("Front Desk"),
                    Some("1003"),
                    Some("Front Desk"),
                ],
            ),
        ];
        let settings = Settings::default();
        for (case, events, want) in cases {
            let events: Vec<(&str, i64, &str)> = events
                .iter()
                .map(|(k, t, f)| (*k, *t, f.as_str()))
                .collect();
            for order in [events.clone(), events.iter().rev().copied().collect()] {
                let p = party_of(&leg(&order), &settings);
                let got = [
                    p.dev_num.as_deref(),
                    p.dev_name.as_deref(),
                    p.usr_num.as_deref(),
                    p.usr_name.as_deref(),
                ];
                assert_eq!(got, want, "{case}");
                assert_eq!((p.agt_num, p.agt_name), (p.usr_num, p.usr_name), "{case}");
            }
        }
    }

    #[test]
    fn an_unbilled_or_seen_peer_is_no_stand_in() {
        let bridged = |billing: i64, peer: &str| {
            leg(&[
                ("CHANNEL_CREATE", 0, r#""call_direction":"inbound""#),
                ("CHANNEL_ANSWER", 1, r#""call_direction":"inbound""#),
                (
                    "CHANNEL_BRIDGE",
                    2,
                    &format!(r#""other_leg_call_id":"{peer}""#),
                ),
                (
                    "CHANNEL_DESTROY",
                    9,
                    &format!(r#""billing_seconds":{billing}"#),
                ),
            ])
        };
        assert_eq!(unseen_peers(&[bridged(8, "far")]).len(), 1);
        assert!(unseen_peers(&[bridged(0, "far")]).is_empty());
        let mut peer = Leg::new("far");
        peer.created_us = Some(0);
        assert!(unseen_peers(&[bridged(8, "far"), peer]).is_empty());
        let stand_in = &unseen_peers(&[bridged(8, "far")])[0];
        assert_eq!(
            (&*stand_in.call_id, stand_in.answered_us),
            ("far", Some((1_715_700_000 + 2) * 1_000_000))
        );
    }

    /// A leg created at second `t` (and destroyed with `cause`, when given).
    fn created(id: &str, t: i64, cause: Option<&str>) -> Leg {
        let destroy = cause.map(|c| format!(r#""hangup_cause":"{c}""#));
        let mut events = vec![("CHANNEL_CREATE", t, "\"x\":0")];
        if let Some(d) = destroy.as_deref() {
            events.push(("CHANNEL_DESTROY", t + 30, d));
        }
        named_leg(id, &events)
    }

    const S: i64 = 1_000_000;

    /// PRODUCT.md §3 "Direction": `type` 2 with any trunk leg, 1 with none, 0 when the origin
    /// cannot be classified; `dir` 1 internal, 2 incoming (trunk origin, no outbound trunk),
    /// 3 outgoing (device origin, an outbound trunk), 4 both (trunk origin and an outbound
    /// trunk), 0 unknown.
    #[test]
    fn direction_and_type_follow_the_origin_and_the_outbound_trunks() {
        use Direction as D;
        use LegKind::{Device, Trunk, Unknown};
        // (case, origin kind, any trunk, outbound trunk, unseen peer, expected)
        let cases = [
            (
                "carrier call to a device",
                Trunk,
                true,
                false,
                false,
                (D::Incoming, CallType::External),
            ),
            (
                "carrier call forwarded to a mobile",
                Trunk,
                true,
                true,
                false,
                (D::Both, CallType::External),
            ),
            (
                "device dials out",
                Device,
                true,
                true,
                false,
                (D::Outgoing, CallType::External),
            ),
            (
                "device calls device",
                Device,
                false,
                false,
                false,
                (D::Internal, CallType::Internal),
            ),
            (
                "unclassified origin, no trunk",
                Unknown,
                false,
                false,
                false,
                (D::Unknown, CallType::Unknown),
            ),
            (
                "unclassified origin, a trunk took part",
                Unknown,
                true,
                true,
                false,
                (D::Unknown, CallType::External),
            ),
            // Decisions where the spec is silent (see `direction`).
            (
                "device origin, a trunk that is no destination",
                Device,
                true,
                false,
                false,
                (D::Unknown, CallType::External),
            ),
            (
                "device origin bridged to an unseen peer",
                Device,
                false,
                false,
                true,
                (D::Unknown, CallType::Unknown),
            ),
        ];
        for (case, origin, any_trunk, outbound_trunk, unseen_peer, want) in cases {
            let got = direction(DirectionFacts {
                origin,
                any_trunk,
                outbound_trunk,
                unseen_peer,
            });
            assert_eq!(got, want, "{case}");
        }
    }

    /// The facts are read from the roles: only a trunk *destination* is an outbound trunk,
    /// and a loopback half is no trunk.
    #[test]
    fn direction_facts_come_from_the_roles() {
        let legs = [
            created("o", 0, None),
            created("a", 1, None),
            created("b", 1, None),
        ];
        let facts = |roles: [LegRole; 3]| DirectionFacts::of(&legs, &roles, 0, false);
        let dev = LegRole::Origin(LegKind::Device);
        let f = facts([dev, LegRole::Other(LegKind::Trunk), LegRole::Loopback]);
        assert!(f.any_trunk && !f.outbound_trunk);
        let f = facts([dev, LegRole::Destination(LegKind::Trunk), LegRole::Loopback]);
        assert!(f.any_trunk && f.outbound_trunk);
        let f = facts([
            dev,
            LegRole::Destination(LegKind::Device),
            LegRole::Loopback,
        ]);
        assert!(!f.any_trunk && !f.outbound_trunk);
    }

    /// PRODUCT.md §3 "Times" and "Outcome", with the default thresholds (short ring 6 s,
    /// short call 20 s).
    #[test]
    fn outcome_flags_and_timings() {
        use Direction as D;
        // (case, dir, answered, ring, talk, hold, park µs, end µs (start 0)) →
        // (dur, ring, talk, hold, park, ans, lost, aban, short)
        type Want = (u64, u64, u64, u64, u64, bool, bool, bool, bool);
        type Case = (&'static str, D, bool, [i64; 4], i64, Want);
        let cases: [Case; 12] = [
            (
                "incoming, gave up after 5 s of ringing: aban",
                D::Incoming,
                false,
                [5 * S, 0, 0, 0],
                10 * S,
                (10, 5, 0, 0, 0, false, false, true, false),
            ),
            (
                "ring equal to the short-ring threshold is still aban",
                D::Incoming,
                false,
                [6 * S, 0, 0, 0],
                10 * S,
                (10, 6, 0, 0, 0, false, false, true, false),
            ),
            (
                "incoming, rang 7 s unanswered: lost",
                D::Incoming,
                false,
                [7 * S, 0, 0, 0],
                10 * S,
                (10, 7, 0, 0, 0, false, true, false, false),
            ),
            (
                "forwarded (both), unanswered: lost",
                D::Both,
                false,
                [30 * S, 0, 0, 0],
                40 * S,
                (40, 30, 0, 0, 0, false, true, false, false),
            ),
            (
                "outgoing, unanswered: neither lost nor aban",
                D::Outgoing,
                false,
                [30 * S, 0, 0, 0],
                40 * S,
                (40, 30, 0, 0, 0, false, false, false, false),
            ),
            (
                "internal, unanswered: neither",
                D::Internal,
                false,
                [3 * S, 0, 0, 0],
                5 * S,
                (5, 3, 0, 0, 0, false, false, false, false),
            ),
            (
                "answered, talk + hold 19 s: short",
                D::Incoming,
                true,
                [2 * S, 10 * S, 9 * S, 0],
                30 * S,
                (30, 2, 10, 9, 0, true, false, false, true),
            ),
            (
                "answered, talk + hold 20 s: not short",
                D::Incoming,
                true,
                [2 * S, 11 * S, 9 * S, 0],
                30 * S,
                (30, 2, 11, 9, 0, true, false, false, false),
            ),
            (
                "answered internal call of 5 s: short",
                D::Internal,
                true,
                [S, 5 * S, 0, 0],
                7 * S,
                (7, 1, 5, 0, 0, true, false, false, true),
            ),
            (
                "park counted on its own",
                D::Incoming,
                true,
                [S, 30 * S, 0, 15 * S],
                50 * S,
                (50, 1, 30, 0, 15, true, false, false, false),
            ),
            // Decisions: ring floored, connected time rounded up as Kazoo rounds billing...
            (
                "connected 4.2 s bills as 5 s",
                D::Incoming,
                true,
                [1_500_000, 4_200_000, 0, 0],
                10 * S,
                (10, 1, 5, 0, 0, true, false, false, true),
            ),
            // ...but ring + talk + hold + park never exceed dur.
            (
                "rounding never pushes the sum past dur",
                D::Incoming,
                true,
                [5 * S, 5_200_000, 0, 0],
                10 * S,
                (10, 5, 5, 0, 0, true, false, false, true),
            ),
        ];
        let tenant = TenantSettings::default();
        for (case, dir, answered, [ring, talk, hold, park], end, want) in cases {
            let mut tl = timeline::Timeline::default();
            tl.answer_us = answered.then_some(ring);
            (tl.ring_us, tl.talk_us, tl.hold_us, tl.park_us) = (ring, talk, hold, park);
            let o = outcome(&tl, 0, end, dir, &tenant);
            let got = (
                o.dur, o.ring, o.talk, o.hold, o.park, o.ans, o.lost, o.aban, o.short,
            );
            assert_eq!(got, want, "{case}");
            assert!(o.ring + o.talk + o.hold + o.park <= o.dur, "{case}");
        }
    }

    /// `dur` = end − start as the CDR's whole-second timestamps show them.
    #[test]
    fn dur_is_the_difference_of_the_shown_seconds() {
        let tl = timeline::Timeline::default();
        let o = outcome(
            &tl,
            900_000,
            10 * S + 100_000,
            Direction::Internal,
            &TenantSettings::default(),
        );
        assert_eq!(o.dur, 10);
    }

    /// PRODUCT.md §3 "Parties": destination device legs by creation are first and last
    /// rang; device legs connected to the origin, by connection, are answering and last
    /// answering; on outgoing calls the calling device is the answering one; loopback legs
    /// and trunk legs are never parties of these fields.
    #[test]
    fn parties_rang_and_answering() {
        use LegKind::{Device, Trunk};
        use LegRole::{Destination, Loopback, Origin};
        // (case, legs (id, created s, role, connected to the anchor at s), anchor,
        //  expected rang ids, expected answering ids)
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, i64, LegRole, Option<i64>)>,
            usize,
            Vec<&'a str>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "ring group: all rang by creation, answering by connection",
                vec![
                    ("o", 0, Origin(Trunk), None),
                    ("d3", 2, Destination(Device), None),
                    ("d1", 1, Destination(Device), Some(9)),
                    ("d2", 2, Destination(Device), Some(4)),
                    ("fwd", 1, Destination(Trunk), Some(3)),
                    ("lb", 1, Loopback, Some(2)),
                ],
                0,
                vec!["d1", "d2", "d3"],
                vec!["d2", "d1"],
            ),
            (
                "outgoing: the calling device answers, measured against the far end",
                vec![
                    ("o", 0, Origin(Device), Some(5)),
                    ("far", 1, Destination(Trunk), None),
                ],
                1,
                vec![],
                vec!["o"],
            ),
            (
                "nobody answered",
                vec![
                    ("o", 0, Origin(Trunk), None),
                    ("d1", 1, Destination(Device), None),
                ],
                0,
                vec!["d1"],
                vec![],
            ),
        ];
        for (case, spec, anchor, rang, answering) in cases {
            let legs: Vec<Leg> = spec
                .iter()
                .map(|(id, t, _, _)| created(id, *t, None))
                .collect();
            let roles: Vec<LegRole> = spec.iter().map(|x| x.2).collect();
            let p = parties(&legs, &roles, anchor, |i| spec[i].3.map(|t| t * S));
            let ids = |v: &[usize]| v.iter().map(|&i| spec[i].0).collect::<Vec<_>>();
            assert_eq!(ids(&p.rang), rang, "{case}");
            assert_eq!(ids(&p.answering), answering, "{case}");
        }
    }

    /// PRODUCT.md §3 "Numbers": `cliNum` is the caller on incoming and both, the dialled
    /// number on outgoing, the calling extension on internal calls; `ddiNum` the DID dialled
    /// on incoming calls, the presented caller id on outgoing ones; withheld numbers omitted.
    #[test]
    fn numbers_by_direction() {
        use Direction as D;
        use LegKind::{Device, Trunk};
        use LegRole::{Destination, Origin};
        let carrier_in = |caller: &str| {
            named_leg(
                "o",
                &[(
                    "CHANNEL_CREATE",
                    0,
                    &format!(
                        r#""call_direction":"inbound","caller_id_number":"{caller}","caller_id_name":"Acme","request":"+16002012345@r""#
                    ),
                )],
            )
        };
        let device = named_leg(
            "o",
            &[(
                "CHANNEL_CREATE",
                0,
                r#""call_direction":"inbound","caller_id_number":"1001","caller_id_name":"Front","request":"6002012399@r""#,
            )],
        );
        let out_trunk = named_leg(
            "t",
            &[(
                "CHANNEL_CREATE",
                1,
                r#""call_direction":"outbound","caller_id_number":"+16002012345","request":"6002012399@r""#,
            )],
        );
        let want = |cli: Option<&str>, name: Option<&str>, ddi: Option<&str>, withheld| Numbers {
            cli_num: cli.map(str::to_owned),
            cli_name: name.map(str::to_owned),
            ddi_num: ddi.map(str::to_owned),
            withheld,
        };
        let cases = [
            (
                "incoming: caller in E.164, the DID dialled",
                vec![carrier_in("6002012399")],
                vec![Origin(Trunk)],
                D::Incoming,
                want(
                    Some("+16002012399"),
                    Some("Acme"),
                    Some("+16002012345"),
                    false,
                ),
            ),
            (
                "both (forwarded): as incoming",
                vec![carrier_in("+16002012399"), out_trunk.clone()],
                vec![Origin(Trunk), Destination(Trunk)],
                D::Both,
                want(
                    Some("+16002012399"),
                    Some("Acme"),
                    Some("+16002012345"),
                    false,
                ),
            ),
            (
                "incoming, withheld: no caller number or name, the DID still known",
                vec![carrier_in("anonymous")],
                vec![Origin(Trunk)],
                D::Incoming,
                want(None, None, Some("+16002012345"), true),
            ),
            (
                "outgoing: the dialled number, our presented caller id",
                vec![device.clone(), out_trunk],
                vec![Origin(Device), Destination(Trunk)],
                D::Outgoing,
                want(Some("+16002012399"), None, Some("+16002012345"), false),
            ),
            (
                "internal: the calling extension, no DDI",
                vec![device],
                vec![Origin(Device)],
                D::Internal,
                want(Some("1001"), Some("Front"), None, false),
            ),
        ];
        for (case, legs, roles, dir, want) in cases {
            assert_eq!(
                numbers(&legs, &roles, 0, dir, numbers::Region::US),
                want,
                "{case}"
            );
        }
    }

    /// PRODUCT.md §3: `cause` is the origin's hangup cause; for an unanswered session whose
    /// origin cause is generic, the cause of the last destination attempt; never
    /// `LOSE_RACE`, `PICKED_OFF` or a loopback's cause.
    #[test]
    fn session_cause_table() {
        use LegKind::{Device, Trunk};
        use LegRole::{Destination, Loopback, Origin};
        // (case, answered, legs (id, created s, cause, role), expected)
        type Case<'a> = (
            &'a str,
            bool,
            Vec<(&'a str, i64, &'a str, LegRole)>,
            Option<&'a str>,
        );
        let o = |cause| ("o", 0, cause, Origin(Trunk));
        let cases: Vec<Case> = vec![
            (
                "answered: the origin's cause",
                true,
                vec![
                    o("NORMAL_CLEARING"),
                    ("d1", 1, "USER_BUSY", Destination(Device)),
                ],
                Some("NORMAL_CLEARING"),
            ),
            (
                "unanswered, generic origin cause: the last attempt's",
                false,
                vec![
                    o("NORMAL_CLEARING"),
                    ("d1", 1, "NO_ANSWER", Destination(Device)),
                    ("d2", 2, "USER_BUSY", Destination(Device)),
                ],
                Some("USER_BUSY"),
            ),
            (
                "unanswered, specific origin cause: the origin's",
                false,
                vec![
                    o("ORIGINATOR_CANCEL"),
                    ("d1", 1, "NO_ANSWER", Destination(Device)),
                ],
                Some("ORIGINATOR_CANCEL"),
            ),
            (
                "a leg that lost the race is no attempt's cause",
                false,
                vec![
                    o("NORMAL_CLEARING"),
                    ("d1", 1, "LOSE_RACE", Destination(Device)),
                ],
                Some("NORMAL_CLEARING"),
            ),
            (
                "a picked-off leg neither",
                false,
                vec![
                    o("NORMAL_UNSPECIFIED"),
                    ("d1", 1, "PICKED_OFF", Destination(Device)),
                ],
                Some("NORMAL_UNSPECIFIED"),
            ),
            (
                "a loopback's cause never",
                false,
                vec![o("NORMAL_CLEARING"), ("lb", 3, "USER_BUSY", Loopback)],
                Some("NORMAL_CLEARING"),
            ),
        ];
        for (case, answered, spec, want) in cases {
            let legs: Vec<Leg> = spec
                .iter()
                .map(|(id, t, c, _)| created(id, *t, Some(c)))
                .collect();
            let roles: Vec<LegRole> = spec.iter().map(|x| x.3).collect();
            let got = session_cause(&legs, &roles, 0, answered);
            assert_eq!(got.as_deref(), want, "{case}");
        }
    }

    /// PRODUCT.md §3 "Tags": the callflows' `custom_application_vars`, plus the system tags
    /// that hold, with value "1".
    #[test]
    fn tags_are_application_variables_and_system_tags_that_hold() {
        let legs = [named_leg(
            "o",
            &[(
                "CHANNEL_CREATE",
                0,
                r#""custom_application_vars":{"campaign":"spring","queue":"sales"}"#,
            )],
        )];
        let got = tags(
            &legs,
            &[("voicemail", true), ("gap", false), ("withheld", true)],
        );
        let want: BTreeMap<String, String> = [
            ("campaign", "spring"),
            ("queue", "sales"),
            ("voicemail", "1"),
            ("withheld", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    /// PRODUCT.md §3: loopback legs group but are never parties (even as the only legs);
    /// destinations are the legs the switch created towards a party (outbound, not the
    /// origin); a trunk is `resource_type` `offnet-*` or `authorizing_type` `resource`, a
    /// device `authorizing_type` `device` or `mobile`.
    #[test]
    fn leg_roles() {
        let with = |id: &str, fields: &str| named_leg(id, &[("CHANNEL_CREATE", 0, fields)]);
        let carrier = with(
            "carrier",
            r#""call_direction":"inbound","custom_channel_vars":{"resource_type":"offnet-origination"}"#,
        );
        let phone = with(
            "phone",
            r#""call_direction":"outbound","custom_channel_vars":{"authorizing_type":"device"}"#,
        );
        let mobile_fwd = with(
            "fwd",
            r#""call_direction":"outbound","custom_channel_vars":{"authorizing_type":"resource"}"#,
        );
        let picker = with(
            "picker",
            r#""call_direction":"inbound","custom_channel_vars":{"authorizing_type":"mobile"}"#,
        );
        let mut lb = with("lb", r#""call_direction":"outbound""#);
        lb.loopback = true;
        let legs = [carrier, phone, mobile_fwd, picker, lb.clone()];
        use LegKind::{Device, Trunk};
        assert_eq!(
            LegRole::of_legs(&legs, 0),
            [
                LegRole::Origin(Trunk),
                LegRole::Destination(Device),
                LegRole::Destination(Trunk),
                LegRole::Other(Device),
                LegRole::Loopback,
            ]
        );
        assert_eq!(LegRole::of_legs(&[lb], 0), [LegRole::Loopback]);
    }
}

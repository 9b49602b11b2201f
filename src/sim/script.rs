//! One call as a compact script: its legs and their timed events, not yet rendered.
//!
//! Scenario builders drive [`CallGen`] ("A-leg created at 0 ms, B answers at 8 870 ms, …");
//! the result is a [`Script`] whose events are rendered to frame text only when they are sent
//! (see `frames.rs`). Rendering is a pure function of the script, so a call mix can keep
//! thousands of calls in flight at a few hundred bytes per leg.

use crate::source::{fnv1a, EventKind, GREGORIAN_UNIX_OFFSET_SECS};

use super::model::Pbx;
use super::rng::Rng;

/// A caller-id pair as presented on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Party {
    /// `caller_id_name` / `callee_id_name`.
    pub name: String,
    /// `caller_id_number` / `callee_id_number`.
    pub number: String,
}

impl Party {
    /// A party from its name and number.
    pub(crate) fn new(name: &str, number: &str) -> Self {
        Self {
            name: name.into(),
            number: number.into(),
        }
    }
}

/// What kind of channel a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Call from a carrier into the switch (`offnet-origination`).
    CarrierIn { carrier: usize },
    /// Call placed by a device (inbound to the switch).
    DeviceIn { device: usize },
    /// Leg the switch places to a device; `agent` for ACDc agent legs.
    DeviceOut { device: usize, agent: bool },
    /// Leg the switch places to a carrier (`offnet-termination`).
    CarrierOut { carrier: usize, forward: bool },
    /// One half of a FreeSWITCH loopback pair created for `device`'s call-forward.
    Loopback { a_half: bool, device: usize },
}

impl Role {
    /// Whether the channel came into the switch.
    pub(crate) fn inbound(self) -> bool {
        matches!(
            self,
            Role::CarrierIn { .. } | Role::DeviceIn { .. } | Role::Loopback { a_half: false, .. }
        )
    }
}

/// A transfer recorded on a leg (`transfer_history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Xfer {
    /// From when the leg carries it.
    pub at_us: i64,
    /// Leg named in the history.
    pub leg: usize,
    /// `blind` or `attended`.
    pub kind: &'static str,
}

/// One call leg.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    /// The leg's call id.
    pub call_id: String,
    /// Channel kind.
    pub role: Role,
    /// `channel_created_time` (µs).
    pub created_us: i64,
    /// From this time the leg carries its routed channel variables.
    pub routed_us: i64,
    /// Answer time, if answered.
    pub answered_us: Option<i64>,
    /// Index into [`Script::interactions`].
    pub interaction: usize,
    /// Leg whose call id is this leg's `bridge_id`.
    pub bridge_id: usize,
    /// Callflow the leg was routed by (inbound legs).
    pub callflow: Option<String>,
    /// Carries the `inception` of an off-net call.
    pub inception: bool,
    /// Carries the script's custom application variables once routed.
    pub cavs: bool,
    /// Caller id shown on the leg.
    pub caller: Party,
    /// Callee id shown on the leg.
    pub callee: Option<Party>,
    /// User part of the request: what the leg was sent to.
    pub dest: String,
    /// The other half of a loopback pair.
    pub loop_peer: Option<usize>,
    /// Transfer history.
    pub xfer: Option<Xfer>,
}

/// A SIP hangup: `hangup_cause` and `hangup_code`.
pub(crate) type Hangup = (&'static str, &'static str);

/// One event of one leg.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ev {
    /// When it happened (`msg_id`).
    pub at_us: i64,
    /// When Blackhole sends it.
    pub deliver_us: i64,
    /// Leg index.
    pub leg: usize,
    /// Which event.
    pub kind: EventKind,
    /// `other_leg_call_id` (for PARK_*: the leg whose callee id the parked record shows).
    pub other: Option<usize>,
    /// DESTROY cause.
    pub hangup: Option<Hangup>,
    /// PARK_* slot.
    pub slot: u8,
    /// PARK_* random `msg_id`.
    pub tag: u128,
}

/// One call, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Index into [`Pbx::accounts`].
    pub account: usize,
    /// Index into [`Pbx::media_servers`].
    pub media: usize,
    /// Dialled DID (incoming) or presented number (outgoing), E.164.
    pub did: Option<String>,
    /// `call_interaction_id`s used by the legs.
    pub interactions: Vec<String>,
    /// Custom application variables the callflow set.
    pub cavs: Vec<(String, String)>,
    /// The legs.
    pub legs: Vec<Leg>,
    /// Events in stream order.
    pub events: Vec<Ev>,
}

/// Gregorian seconds of a µs time.
pub(crate) fn gregorian(us: i64) -> i64 {
    us.div_euclid(1_000_000) + GREGORIAN_UNIX_OFFSET_SECS
}

/// Builds one call's script on a millisecond timeline relative to its start.
pub(crate) struct CallGen<'a> {
    /// The directory.
    pub pbx: &'a Pbx,
    /// Randomness for ids and sub-millisecond jitter.
    pub rng: Rng,
    t0: i64,
    other: Vec<Option<usize>>,
    s: Script,
}

const NORMAL: Hangup = ("NORMAL_CLEARING", "sip:200");

impl<'a> CallGen<'a> {
    /// A call in `account` starting at `t0_us`.
    pub(crate) fn new(pbx: &'a Pbx, account: usize, mut rng: Rng, t0_us: i64) -> Self {
        let media = rng.index(pbx.media_servers.len());
        Self {
            pbx,
            rng,
            t0: t0_us,
            other: Vec::new(),
            s: Script {
                account,
                media,
                did: None,
                interactions: Vec::new(),
                cavs: Vec::new(),
                legs: Vec::new(),
                events: Vec::new(),
            },
        }
    }

    /// The account the call belongs to.
    pub(crate) fn account(&self) -> &'a super::model::Account {
        &self.pbx.accounts[self.s.account]
    }

    /// µs time of `ms` after the start, plus up to 1 ms of jitter.
    pub(crate) fn at(&mut self, ms: i64) -> i64 {
        self.t0 + ms * 1000 + self.rng.below(1000) as i64
    }

    /// Sets the DID of the call.
    pub(crate) fn set_did(&mut self, number: &str) {
        self.s.did = Some(number.to_owned());
    }

    /// Adds a custom application variable (set by the callflow on the origin leg).
    pub(crate) fn set_cav(&mut self, key: &str, value: &str) {
        self.s.cavs.push((key.into(), value.into()));
    }

    fn new_interaction(&mut self, at_us: i64) -> usize {
        let id = format!("{}-{}", gregorian(at_us), self.rng.hex(8));
        self.s.interactions.push(id);
        self.s.interactions.len() - 1
    }

    fn push(&mut self, leg: Leg) -> usize {
        self.s.legs.push(leg);
        self.other.push(None);
        self.s.legs.len() - 1
    }

    fn emit_at(&mut self, leg: usize, kind: EventKind, at_us: i64, hangup: Option<Hangup>) {
        self.s.events.push(Ev {
            at_us,
            deliver_us: at_us,
            leg,
            kind,
            other: self.other[leg],
            hangup,
            slot: 0,
            tag: 0,
        });
    }

    fn create(&mut self, leg: usize) {
        let at = self.s.legs[leg].created_us + 3_000 + self.rng.below(3_000) as i64;
        self.emit_at(leg, EventKind::Create, at, None);
    }

    fn carrier_call_id(&mut self, carrier: usize) -> String {
        let c = &self.pbx.carriers[carrier];
        match &c.call_id_host {
            Some(host) => format!("{}@{host}", self.rng.hex(32)),
            None => format!("{}@{}", self.rng.uuid(), c.ip),
        }
    }

    fn device_call_id(&mut self, device: usize) -> String {
        let dev = &self.account().devices[device];
        if dev.user_agent.starts_with("Yealink") {
            format!("0_{}@{}", self.rng.digits(16), dev.ip)
        } else if dev.user_agent.starts_with("Polycom") {
            format!(
                "{}-{}-{}@{}",
                self.rng.hex(8),
                self.rng.hex(8),
                self.rng.hex(8),
                dev.ip
            )
        } else {
            self.rng.alnum(22)
        }
    }

    /// A call from the PSTN to `did`, created at `ms` and routed 300 ms later by `callflow`.
    pub(crate) fn carrier_in(
        &mut self,
        ms: i64,
        caller: &Party,
        did: &str,
        callflow: &str,
    ) -> usize {
        let carrier = self.rng.index(self.pbx.carriers.len());
        let call_id = self.carrier_call_id(carrier);
        let created_us = self.at(ms);
        let routed_us = self.at(ms + 300);
        let interaction = self.new_interaction(routed_us);
        self.set_did(did);
        let idx = self.s.legs.len();
        let leg = self.push(Leg {
            call_id,
            role: Role::CarrierIn { carrier },
            created_us,
            routed_us,
            answered_us: None,
            interaction,
            bridge_id: idx,
            callflow: Some(callflow.to_owned()),
            inception: true,
            cavs: true,
            caller: caller.clone(),
            callee: None,
            dest: did.to_owned(),
            loop_peer: None,
            xfer: None,
        });
        self.create(leg);
        leg
    }

    /// A call placed by `device` to `dialled`, created at `ms` and routed 250 ms later by
    /// `callflow`, under `interaction` (a new one when `None`).
    pub(crate) fn device_in(
        &mut self,
        ms: i64,
        device: usize,
        dialled: &str,
        callflow: &str,
        interaction: Option<usize>,
    ) -> usize {
        let call_id = self.device_call_id(device);
        let created_us = self.at(ms);
        let routed_us = self.at(ms + 250);
        let interaction = match interaction {
            Some(i) => i,
            None => self.new_interaction(routed_us),
        };
        let (name, number) = self.account().internal_cid(device);
        let idx = self.s.legs.len();
        let leg = self.push(Leg {
            call_id,
            role: Role::DeviceIn { device },
            created_us,
            routed_us,
            answered_us: None,
            interaction,
            bridge_id: idx,
            callflow: Some(callflow.to_owned()),
            inception: false,
            cavs: false,
            caller: Party { name, number },
            callee: None,
            dest: dialled.to_owned(),
            loop_peer: None,
            xfer: None,
        });
        self.create(leg);
        leg
    }

    fn outbound(
        &mut self,
        ms: i64,
        origin: usize,
        role: Role,
        caller: Party,
        callee: Party,
        dest: String,
    ) -> usize {
        let call_id = self.rng.uuid();
        let created_us = self.at(ms);
        let o = &self.s.legs[origin];
        let (interaction, bridge_id, inception) = (o.interaction, o.bridge_id, o.inception);
        let leg = self.push(Leg {
            call_id,
            role,
            created_us,
            routed_us: created_us,
            answered_us: None,
            interaction,
            bridge_id,
            callflow: None,
            inception,
            cavs: false,
            caller,
            callee: Some(callee),
            dest,
            loop_peer: None,
            xfer: None,
        });
        self.other[leg] = Some(origin);
        leg
    }

    /// The switch rings `device` on behalf of `origin` (`agent`: as an ACDc agent leg).
    pub(crate) fn device_out(
        &mut self,
        ms: i64,
        device: usize,
        origin: usize,
        agent: bool,
    ) -> usize {
        let (name, number) = self.account().internal_cid(device);
        let username = self.account().devices[device].username.clone();
        let caller = self.s.legs[origin].caller.clone();
        let leg = self.outbound(
            ms,
            origin,
            Role::DeviceOut { device, agent },
            caller,
            Party { name, number },
            username,
        );
        if agent {
            let owner = self
                .account()
                .owner(device)
                .map(|u| u.id.clone())
                .unwrap_or_default();
            let member = fnv1a(self.s.legs[origin].call_id.as_bytes());
            let mut h = Rng::new(member);
            self.s.legs[leg].call_id = format!("{}-{owner}-{}", h.hex(32), self.rng.hex(8));
        }
        self.create(leg);
        leg
    }

    /// The switch calls `e164` through a carrier on behalf of `origin`, presenting `presented`.
    pub(crate) fn carrier_out(
        &mut self,
        ms: i64,
        origin: usize,
        e164: &str,
        presented: Party,
        forward: bool,
    ) -> usize {
        let carrier = self.rng.index(self.pbx.carriers.len());
        let leg = self.outbound(
            ms,
            origin,
            Role::CarrierOut { carrier, forward },
            presented,
            Party::new(e164, e164),
            e164.to_owned(),
        );
        self.create(leg);
        leg
    }

    /// A loopback pair for `device`'s call-forward to `number`, originated by `origin` at
    /// `ms`: returns (A half, B half). The A half is bridged to `origin`'s side; the B half is
    /// routed (150 ms later) and places the forward.
    pub(crate) fn loopback(
        &mut self,
        ms: i64,
        origin: usize,
        device: usize,
        number: &str,
    ) -> (usize, usize) {
        let caller = self.s.legs[origin].caller.clone();
        let (name, ext) = self.account().internal_cid(device);
        let callee = Party { name, number: ext };
        let a = self.outbound(
            ms,
            origin,
            Role::Loopback {
                a_half: true,
                device,
            },
            caller.clone(),
            callee.clone(),
            number.to_owned(),
        );
        let b = self.outbound(
            ms + 6,
            origin,
            Role::Loopback {
                a_half: false,
                device,
            },
            caller,
            callee,
            number.to_owned(),
        );
        self.other[b] = None;
        self.s.legs[b].routed_us = self.at(ms + 150);
        self.s.legs[a].loop_peer = Some(b);
        self.s.legs[b].loop_peer = Some(a);
        self.create(a);
        self.create(b);
        (a, b)
    }

    /// CHANNEL_ANSWER of `leg` at `ms`.
    pub(crate) fn answer(&mut self, leg: usize, ms: i64) {
        let at = self.at(ms);
        self.s.legs[leg].answered_us = Some(at);
        self.emit_at(leg, EventKind::Answer, at, None);
    }

    /// CHANNEL_BRIDGE raised on `leg`, now bridged to `other`, at `ms`.
    pub(crate) fn bridge(&mut self, leg: usize, other: usize, ms: i64) {
        self.other[leg] = Some(other);
        self.other[other] = Some(leg);
        let at = self.at(ms);
        self.emit_at(leg, EventKind::Bridge, at, None);
    }

    /// CHANNEL_BRIDGE on `leg` towards `other` without re-pointing anything (the second
    /// event Kazoo sends for an intercept).
    pub(crate) fn bridge_echo(&mut self, leg: usize, ms: i64) {
        let at = self.at(ms);
        self.emit_at(leg, EventKind::Bridge, at, None);
    }

    /// CHANNEL_HOLD (`held`) or CHANNEL_UNHOLD of `leg` at `ms`.
    pub(crate) fn hold(&mut self, leg: usize, ms: i64, held: bool) {
        let at = self.at(ms);
        let kind = if held {
            EventKind::Hold
        } else {
            EventKind::Unhold
        };
        self.emit_at(leg, kind, at, None);
    }

    /// CHANNEL_DESTROY of `leg` at `ms`.
    pub(crate) fn destroy(&mut self, leg: usize, ms: i64, hangup: Hangup) {
        let at = self.at(ms);
        self.emit_at(leg, EventKind::Destroy, at, Some(hangup));
    }

    /// CHANNEL_DESTROY with `NORMAL_CLEARING` / `sip:200`.
    pub(crate) fn hangup(&mut self, leg: usize, ms: i64) {
        self.destroy(leg, ms, NORMAL);
    }

    /// A PARK_* event for `leg` in `slot` at `ms`; `callee` names the leg whose callee id the
    /// parking record shows.
    pub(crate) fn park(&mut self, kind: EventKind, leg: usize, ms: i64, slot: u8, callee: usize) {
        let at = self.at(ms);
        let tag = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
        self.s.events.push(Ev {
            at_us: at,
            deliver_us: at,
            leg,
            kind,
            other: Some(callee),
            hangup: None,
            slot,
            tag,
        });
    }

    /// Records on `leg`, from `ms` on, that it was transferred away from `from`.
    pub(crate) fn transferred(&mut self, leg: usize, ms: i64, from: usize, kind: &'static str) {
        let at_us = self.t0 + ms * 1000;
        self.s.legs[leg].xfer = Some(Xfer {
            at_us,
            leg: from,
            kind,
        });
    }

    /// Index of `leg`'s interaction (to share it with a new leg, as pickup does).
    pub(crate) fn interaction_of(&self, leg: usize) -> usize {
        self.s.legs[leg].interaction
    }

    /// The script, events in time order.
    pub(crate) fn finish(mut self) -> Script {
        self.s.events.sort_by_key(|e| e.deliver_us);
        self.s
    }
}

/// Rewrites a finished script's stream order: `order` lists indices into the time-ordered
/// events (repeats = verbatim duplicates, omissions = lost frames). Delivery times become the
/// running maximum of event times, so frames are still sent in non-decreasing time.
pub(crate) fn reorder(s: &mut Script, order: &[usize]) {
    let events: Vec<Ev> = order.iter().map(|i| s.events[*i]).collect();
    let mut now = i64::MIN;
    s.events = events
        .into_iter()
        .map(|mut e| {
            now = now.max(e.at_us);
            e.deliver_us = now;
            e
        })
        .collect();
}

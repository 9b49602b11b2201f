//! Random call mixes: N calls of the scenario kinds with randomised parties, devices and
//! durations, streamed in send-time order.
//!
//! Calls are generated one at a time when the stream reaches their start, kept as compact
//! [`Script`]s, and rendered frame by frame from a min-heap of pending events, so memory
//! follows the number of calls in flight, not the number of calls.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::frames::render;
use super::model::{Pbx, DEMO_SEED, DID_DIRECT, DID_GROUP, DID_MAIN, DID_QUEUE};
use super::rng::Rng;
use super::scenarios::{Kind, Params};
use super::script::{Party, Script};
use super::SimFrame;

/// What [`mix`](super::mix) generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixSpec {
    /// Number of calls.
    pub calls: u64,
    /// Seed of the call stream (kinds, parties, durations, ids).
    pub seed: u64,
    /// Start of the first call (unix µs).
    pub start_us: i64,
    /// Mean spacing between call arrivals (uniform in 0..2× this, in ms).
    pub mean_gap_ms: u64,
    /// Also generate damaged streams (out-of-order/duplicated frames, a lost DESTROY), about
    /// 2 % of calls.
    pub faults: bool,
    /// Seed of the PBX directory ([`Pbx::demo`]); the default matches the fixtures.
    pub pbx_seed: u64,
}

impl Default for MixSpec {
    /// 1 000 calls, one every 2 s on average, from 2024-05-14T13:00:00Z, no faults.
    fn default() -> Self {
        Self {
            calls: 1_000,
            seed: 1,
            start_us: 1_715_691_600_000_000,
            mean_gap_ms: 2_000,
            faults: false,
            pbx_seed: DEMO_SEED,
        }
    }
}

/// Relative frequency of each kind in a mix, in [`Kind::ALL`] order.
const WEIGHTS: [u32; 19] = [26, 9, 5, 5, 6, 6, 3, 2, 2, 1, 2, 12, 3, 7, 2, 5, 1, 1, 2];

/// The streaming generator behind [`mix`](super::mix).
pub(crate) struct Mix {
    pbx: Pbx,
    spec: MixSpec,
    arrivals: Rng,
    next_call: u64,
    next_start: i64,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    calls: HashMap<u64, (Script, usize)>,
    /// Render the calls as they happened, without the stream damage of fault calls.
    undamaged: bool,
}

impl Mix {
    pub(crate) fn new(spec: MixSpec) -> Self {
        Self {
            pbx: Pbx::demo(spec.pbx_seed),
            arrivals: Rng::derive(spec.seed, u64::MAX),
            next_call: 0,
            next_start: spec.start_us,
            heap: BinaryHeap::new(),
            calls: HashMap::new(),
            spec,
            undamaged: false,
        }
    }

    /// The same calls as [`Mix::new`], as they happened in the PBX: a fault call's lost or
    /// reordered frames are sent as they were raised (what Kazoo's `cdr` app saw).
    pub(crate) fn undamaged(spec: MixSpec) -> Self {
        Self {
            undamaged: true,
            ..Self::new(spec)
        }
    }

    /// Calls generated but not fully sent.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// The script of call `index` of a mix (what [`Iterator::next`] renders).
    pub(crate) fn call(
        pbx: &Pbx,
        spec: &MixSpec,
        index: u64,
        start_us: i64,
        undamaged: bool,
    ) -> Script {
        let mut rng = Rng::derive(spec.seed, index);
        let mut weights = WEIGHTS;
        if !spec.faults {
            weights[Kind::OutOfOrderDuplicates as usize] = 0;
            weights[Kind::MissingDestroy as usize] = 0;
        }
        let kind = Kind::ALL[rng.weighted(&weights)];
        let p = random_params(pbx, kind, &mut rng);
        if undamaged {
            kind.call(pbx, rng, start_us, &p)
        } else {
            kind.script(pbx, rng, start_us, &p)
        }
    }

    fn spawn(&mut self) {
        let index = self.next_call;
        let script = Self::call(
            &self.pbx,
            &self.spec,
            index,
            self.next_start,
            self.undamaged,
        );
        for (i, e) in script.events.iter().enumerate() {
            self.heap.push(Reverse((e.deliver_us, index, i as u32)));
        }
        let n = script.events.len();
        if n > 0 {
            self.calls.insert(index, (script, n));
        }
        self.next_call += 1;
        let gap_ms = self.arrivals.below(2 * self.spec.mean_gap_ms + 1) as i64;
        self.next_start += gap_ms * 1000 + self.arrivals.below(1000) as i64;
    }
}

impl Iterator for Mix {
    type Item = SimFrame;

    fn next(&mut self) -> Option<SimFrame> {
        while self.next_call < self.spec.calls
            && self
                .heap
                .peek()
                .is_none_or(|Reverse((t, _, _))| *t >= self.next_start)
        {
            self.spawn();
        }
        let Reverse((time_us, call, idx)) = self.heap.pop()?;
        let (script, left) = self.calls.get_mut(&call)?;
        let text = render(&self.pbx, script, &script.events[idx as usize]);
        *left -= 1;
        if *left == 0 {
            self.calls.remove(&call);
        }
        Some(SimFrame { time_us, text })
    }
}

const US_NAMES: &[&str] = &[
    "WIRELESS CALLER",
    "AUSTIN TX",
    "GARCIA ROSA",
    "BRIGHT JOHN",
    "CHEN WEI",
    "SAN ANTONIO TX",
    "KOWALSKI ANNA",
    "BELL ANDREA",
    "NGUYEN MINH",
    "OKAFOR DAVID",
];
const US_NPAS: &[&str] = &[
    "415", "212", "312", "737", "512", "210", "617", "303", "206", "702",
];
const GB_RANGES: &[&str] = &["+447700900", "+4420794602", "+441134960", "+441614960"];

/// A random external number for an account in `region`.
fn external(rng: &mut Rng, region: &str) -> Party {
    let foreign = rng.chance(10);
    let us = (region == "US") != foreign;
    if us {
        let number = format!("+1{}55501{:02}", rng.pick(US_NPAS), rng.below(100));
        Party::new(rng.pick::<&str>(US_NAMES), &number)
    } else {
        let number = format!("{}{:03}", rng.pick(GB_RANGES), rng.below(1000) % 900 + 100);
        Party::new(&number, &number)
    }
}

fn talk(rng: &mut Rng) -> i64 {
    if rng.chance(15) {
        rng.range(180_000, 900_000)
    } else {
        rng.range(4_000, 180_000)
    }
}

/// Randomised parameters for one call of `kind`.
pub(crate) fn random_params(pbx: &Pbx, kind: Kind, rng: &mut Rng) -> Params {
    let account = usize::from(!rng.chance(60));
    let acct = &pbx.accounts[account];
    // Users with a device and no call-forward: callable and transferable.
    let people: Vec<usize> = (0..acct.users.len())
        .filter(|u| acct.devices[acct.device_of_user(*u)].call_forward.is_none())
        .collect();
    let forwarded = (0..acct.users.len())
        .find(|u| acct.devices[acct.device_of_user(*u)].call_forward.is_some())
        .unwrap_or(0);
    let user = *rng.pick(&people);
    let (did, dev0) = if rng.chance(20) {
        (DID_MAIN, 0)
    } else {
        (DID_DIRECT + user, acct.device_of_user(user))
    };
    let other_people: Vec<usize> = people
        .iter()
        .copied()
        .filter(|u| acct.device_of_user(*u) != dev0)
        .collect();
    let colleague = acct.device_of_user(*rng.pick(&other_people));
    let fwd_device = acct.device_of_user(forwarded);
    let anyone: Vec<usize> = (0..acct.devices.len())
        .filter(|d| *d != dev0 && *d != fwd_device)
        .collect();
    let bystander = *rng.pick(&anyone);
    let mut party = external(rng, &acct.region);
    if rng.chance(5) {
        party = Party::new("Anonymous", "anonymous");
    }
    let talk_ms = talk(rng);
    let hold_ms = rng.range(3_000, 60_000).min(talk_ms / 2);
    let mut p = Params {
        account,
        party,
        did,
        dev: [dev0, colleague, rng.index(acct.ring_group.members.len())],
        ring_ms: rng.range(1_500, 20_000),
        ring2_ms: rng.range(2_000, 15_000),
        talk_ms,
        talk2_ms: talk(rng),
        hold_at_ms: rng.range(0, talk_ms - hold_ms),
        hold_ms,
        wait_ms: rng.range(3_000, 60_000),
        caller_hangs_up: rng.chance(40),
    };
    match kind {
        Kind::RingGroupSecondAnswers => p.did = DID_GROUP,
        Kind::CallerHangupLongRing => p.ring_ms = rng.range(7_000, 45_000),
        Kind::CallerHangupShortRing => p.ring_ms = rng.range(500, 6_000),
        Kind::NoAnswerVoicemail => p.ring_ms = 20_000 + rng.range(0, 600),
        Kind::ParkRetrieve | Kind::ParkAbandoned => {
            p.wait_ms = rng.range(5_000, 120_000);
            p.dev[1] = bystander;
        }
        Kind::CallPickup => p.dev[1] = bystander,
        Kind::OutboundAnswered | Kind::OutboundBusy | Kind::InternalCall => {
            let caller = *rng.pick(&(0..acct.devices.len()).collect::<Vec<_>>());
            p.dev[0] = caller;
            p.did = match acct.owner(caller) {
                Some(u) if rng.chance(50) => {
                    DID_DIRECT + acct.users.iter().position(|x| x.id == u.id).unwrap_or(0)
                }
                _ => DID_MAIN,
            };
            p.dev[1] = acct.device_of_user(
                *rng.pick(
                    &people
                        .iter()
                        .copied()
                        .filter(|u| acct.device_of_user(*u) != caller)
                        .collect::<Vec<_>>(),
                ),
            );
            if kind == Kind::OutboundBusy {
                p.ring_ms = rng.range(300, 5_000);
            }
            if kind != Kind::InternalCall {
                let number = external(rng, &acct.region).number;
                p.party = Party::new(&number, &number);
            }
        }
        Kind::ForwardToMobile => {
            p.did = DID_DIRECT + forwarded;
            p.dev[0] = fwd_device;
        }
        Kind::AcdcQueue => {
            p.did = DID_QUEUE;
            let agent = rng.pick(&acct.queue.agents).clone();
            let u = acct.users.iter().position(|x| x.id == agent).unwrap_or(0);
            p.dev[1] = acct.device_of_user(u);
            p.wait_ms = rng.range(0, 180_000);
            p.ring_ms = rng.range(1_500, 15_000);
        }
        Kind::WithheldCallerId => p.party = Party::new("Anonymous", "anonymous"),
        _ => {}
    }
    if kind == Kind::CallPickup {
        p.ring_ms = p.ring_ms.max(2_500);
    }
    p
}

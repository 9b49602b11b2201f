//! The named call scenarios: one builder per kind of call, plus the fixed parameters the
//! committed fixtures use.
//!
//! Each builder lays a call out on a millisecond timeline measured from the start of the call
//! (the A-leg's `channel_created_time`); every event time gets up to 1 ms of seeded jitter,
//! which never moves a documented duration across a whole second. The doc comment of each
//! builder gives that timeline for the fixture's parameters and the session CDR postcall must
//! produce from it (PRODUCT.md §3; durations are floored whole seconds, exact values in
//! brackets). "Device n" is index n of the account's `devices` in [`Pbx::demo`]; device
//! numbers (`*DevNum`) are the devices' seeded SIP usernames. All fixtures use
//! [`DEMO_SEED`](super::model::DEMO_SEED). Unless stated otherwise: t2t 0, hold 0, park 0,
//! lostinPark 0, short 0, no tags.
//!
//! Acme Corp (US, `America/Chicago`): device 0 "(T54W) Front Desk" (user 1001 Maria Lopez),
//! 1 "(T42S) James Carter" (1002), 2 "(VVX 450) Priya Patel" (1003), 3 "(T42S) Tom Becker"
//! (1004, forwards to +15125550187), 4 "(Bria) Lena Novak" (1005), 5 "(T42S) Sales Floor"
//! (no owner), 6 "(CP960) Conference Room" (no owner). Numbers: +15125550100 "Main Line" →
//! device 0; +15125550101 "Sales" → ring group Sales (devices 1, 2, 5); +15125550102
//! "Support" → ACDc queue Support (agents 1005, 1002, 1003); +151255501{11..15} the users'
//! direct numbers ("Maria Lopez Direct", …).
//!
//! Globex Ltd (GB, `Europe/London`): device 0 "(T54W) Reception" (user 2001 Oliver Hughes),
//! 1 "(T42S) Amelia Clarke" (2002), 2 "(VVX 450) Harry Wilson" (2003), 3 "(Bria) Isla Morgan"
//! (2004, forwards to +447700900321), 4 "(T42S) George Evans" (2005), 5 "(T42S) Sales Desk",
//! 6 "(CP960) Boardroom". Numbers: +442079460100 "Reception" → device 0; …101 "Sales Team";
//! …102 "Help Desk"; +4420794601{11..15} direct.

use crate::source::EventKind;

use super::model::{Account, Pbx, DID_DIRECT, DID_GROUP, DID_MAIN, DID_QUEUE};
use super::rng::Rng;
use super::script::{reorder, CallGen, Hangup, Party, Script};

/// Every scenario, in fixture order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PstnAnswered,
    RingGroupSecondAnswers,
    CallerHangupLongRing,
    CallerHangupShortRing,
    NoAnswerVoicemail,
    HoldResume,
    BlindTransfer,
    AttendedTransfer,
    ParkRetrieve,
    ParkAbandoned,
    CallPickup,
    OutboundAnswered,
    OutboundBusy,
    InternalCall,
    ForwardToMobile,
    AcdcQueue,
    OutOfOrderDuplicates,
    MissingDestroy,
    WithheldCallerId,
}

/// Scenario names, in the order of [`Kind::ALL`].
pub(crate) const NAMES: &[&str] = &[
    "pstn_answered",
    "ring_group_second_answers",
    "caller_hangup_long_ring",
    "caller_hangup_short_ring",
    "no_answer_voicemail",
    "hold_resume",
    "blind_transfer",
    "attended_transfer",
    "park_retrieve",
    "park_abandoned",
    "call_pickup",
    "outbound_answered",
    "outbound_busy",
    "internal_call",
    "forward_to_mobile",
    "acdc_queue",
    "out_of_order_duplicates",
    "missing_destroy",
    "withheld_caller_id",
];

impl Kind {
    /// All kinds, in fixture order.
    pub(crate) const ALL: [Kind; 19] = [
        Kind::PstnAnswered,
        Kind::RingGroupSecondAnswers,
        Kind::CallerHangupLongRing,
        Kind::CallerHangupShortRing,
        Kind::NoAnswerVoicemail,
        Kind::HoldResume,
        Kind::BlindTransfer,
        Kind::AttendedTransfer,
        Kind::ParkRetrieve,
        Kind::ParkAbandoned,
        Kind::CallPickup,
        Kind::OutboundAnswered,
        Kind::OutboundBusy,
        Kind::InternalCall,
        Kind::ForwardToMobile,
        Kind::AcdcQueue,
        Kind::OutOfOrderDuplicates,
        Kind::MissingDestroy,
        Kind::WithheldCallerId,
    ];

    /// The kind called `name`.
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        NAMES.iter().position(|n| *n == name).map(|i| Kind::ALL[i])
    }

    /// Builds the call starting at `t0_us` with ids drawn from `rng`.
    pub(crate) fn script(self, pbx: &Pbx, rng: Rng, t0_us: i64, p: &Params) -> Script {
        let mut s = self.call(pbx, rng, t0_us, p);
        damage(self, &mut s);
        s
    }

    /// The call as it happened in the PBX, before the stream damage of the fault scenarios.
    pub(crate) fn call(self, pbx: &Pbx, rng: Rng, t0_us: i64, p: &Params) -> Script {
        let mut g = CallGen::new(pbx, p.account, rng, t0_us);
        self.build(&mut g, p);
        g.finish()
    }

    fn build(self, g: &mut CallGen<'_>, p: &Params) {
        match self {
            Kind::PstnAnswered | Kind::WithheldCallerId => pstn_answered(g, p),
            Kind::RingGroupSecondAnswers => ring_group_second_answers(g, p),
            Kind::CallerHangupLongRing => caller_hangup_long_ring(g, p),
            Kind::CallerHangupShortRing => caller_hangup_short_ring(g, p),
            Kind::NoAnswerVoicemail => no_answer_voicemail(g, p),
            Kind::HoldResume => hold_resume(g, p),
            Kind::BlindTransfer => blind_transfer(g, p),
            Kind::AttendedTransfer => attended_transfer(g, p),
            Kind::ParkRetrieve => park_retrieve(g, p),
            Kind::ParkAbandoned => park_abandoned(g, p),
            Kind::CallPickup => call_pickup(g, p),
            Kind::OutboundAnswered => outbound_answered(g, p),
            Kind::OutboundBusy => outbound_busy(g, p),
            Kind::InternalCall => internal_call(g, p),
            Kind::ForwardToMobile => forward_to_mobile(g, p),
            Kind::AcdcQueue => acdc_queue(g, p),
            Kind::OutOfOrderDuplicates => out_of_order_duplicates(g, p),
            Kind::MissingDestroy => missing_destroy(g, p),
        }
    }
}

/// What a builder varies: who, which number, and how long each phase lasts.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Index into `Pbx::accounts`.
    pub account: usize,
    /// The external party: the PSTN caller (incoming) or the dialled number (outgoing).
    pub party: Party,
    /// Index into the account's `dids`: dialled (incoming) or presented (outgoing).
    pub did: usize,
    /// Devices: `[0]` rung / calling / answering; `[1]` transfer target, picker, retriever,
    /// callee or ACDc agent; `[2]` ring-group winner position (0–2).
    pub dev: [usize; 3],
    /// First ringing phase.
    pub ring_ms: i64,
    /// Second ringing phase (transfer target).
    pub ring2_ms: i64,
    /// First connected phase (includes hold).
    pub talk_ms: i64,
    /// Second connected phase (after a transfer or retrieval).
    pub talk2_ms: i64,
    /// Connected time before the hold starts.
    pub hold_at_ms: i64,
    /// Time on hold.
    pub hold_ms: i64,
    /// Queue wait, voicemail message, time parked, consultation talk.
    pub wait_ms: i64,
    /// The caller (A side) hangs up first.
    pub caller_hangs_up: bool,
}

const NORMAL: Hangup = ("NORMAL_CLEARING", "sip:200");
const CANCEL: Hangup = ("ORIGINATOR_CANCEL", "sip:487");
/// Time from the A-leg's creation to the first device leg on PSTN calls (routing).
const B_AT: i64 = 850;

fn user_flow(acct: &Account, device: usize) -> (String, String) {
    match acct.owner(device) {
        Some(u) => (
            u.extension.clone(),
            acct.callflow("user", Some(&u.id)).to_owned(),
        ),
        None => (
            acct.devices[device].username.clone(),
            acct.callflow("device", Some(&acct.devices[device].id))
                .to_owned(),
        ),
    }
}

/// The carrier A-leg of an incoming call to `p.did`.
fn pstn_a(g: &mut CallGen<'_>, p: &Params) -> usize {
    let did = &g.account().dids[p.did];
    g.carrier_in(0, &p.party, &did.number, &did.callflow_id)
}

/// B answers at `t`, A 52 ms later, A bridges to B 16 ms after that; returns the bridge time.
fn connect(g: &mut CallGen<'_>, a: usize, b: usize, t: i64) -> i64 {
    g.answer(b, t);
    g.answer(a, t + 52);
    g.bridge(a, b, t + 68);
    t + 68
}

/// Both sides hang up at `t`: the first named leg first, the other 27 ms later.
fn hang_up(g: &mut CallGen<'_>, a: usize, b: usize, t: i64, caller_first: bool) {
    let (first, second) = if caller_first { (a, b) } else { (b, a) };
    g.hangup(first, t);
    g.hangup(second, t + 27);
}

/// **pstn_answered** (Acme, 2024-05-14T13:00:00Z): "WIRELESS CALLER" +14155550123 calls
/// +15125550100 "Main Line"; device 0 "(T54W) Front Desk" rings and answers; the phone hangs
/// up.
///
/// Timeline: A (carrier) created 0; B (device 0) created 850; B ANSWER 9 000; A ANSWER 9 052;
/// A BRIDGE→B 9 068; B DESTROY 98 268; A DESTROY 98 295.
///
/// Expected: dir 2 (incoming), type 2, t2t 0, ans 1, lost 0, aban 0, short 0; answer at
/// +9.068 s; dur 98 (98.30), ring 8 (8.15), talk 89 (89.20), hold 0, park 0; cause
/// NORMAL_CLEARING; cliNum +14155550123 (cliName WIRELESS CALLER, US, area 415, CA); ddiNum
/// +15125550100 "Main Line"; first rang = last rang = answering = last answering = device 0
/// "(T54W) Front Desk", user 1001 Maria Lopez; no agent, no group; tags none.
///
/// **withheld_caller_id** uses this builder (Globex, 2024-05-14T17:30:00Z): "Anonymous" /
/// `anonymous` (from `anonymous@anonymous.invalid`) calls +442079460112 "Amelia Clarke
/// Direct"; device 1 "(T42S) Amelia Clarke" answers; the caller hangs up. Timeline: B created
/// 850, B ANSWER 8 200, A ANSWER 8 252, A BRIDGE 8 268, A DESTROY 66 468, B DESTROY 66 495.
/// Expected: dir 2, type 2, ans 1; dur 66 (66.50), ring 7 (7.35), talk 58 (58.20); cause
/// NORMAL_CLEARING; cliNum/cliName and all cli location fields omitted; ddiNum +442079460112
/// "Amelia Clarke Direct"; rang/answering device 1, user 2002 Amelia Clarke; tags
/// `withheld`.
fn pstn_answered(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = connect(g, a, b, B_AT + p.ring_ms);
    hang_up(g, a, b, t + p.talk_ms, p.caller_hangs_up);
}

/// **ring_group_second_answers** (Acme, 13:15Z): "KOWALSKI ANNA" +12125550134 calls
/// +15125550101 "Sales"; the callflow sets custom application var `department=sales` on the
/// A-leg and rings the Sales group simultaneously: devices 1 "(T42S) James Carter", 2 "(VVX
/// 450) Priya Patel", 5 "(T42S) Sales Floor" (created 850, 858, 866). The second (Priya)
/// answers; the other two end with LOSE_RACE sip:487, billing 0. The caller hangs up.
///
/// Timeline: B2 ANSWER 12 250; B1 DESTROY 12 270, B3 DESTROY 12 274 (LOSE_RACE); A ANSWER
/// 12 302; A BRIDGE→B2 12 318; A DESTROY 76 818; B2 DESTROY 76 845.
///
/// Expected: dir 2, type 2, ans 1; answer +12.318; dur 76 (76.85); ring 11 (union of the
/// three alerting legs before the answer, 11.40–11.42); talk 64 (64.50); cause
/// NORMAL_CLEARING; cliNum +12125550134; ddiNum +15125550101 "Sales"; first rang device 1
/// James Carter (user 1002), last rang device 5 "(T42S) Sales Floor" (no user), answering =
/// last answering device 2 Priya Patel (user 1003); fRng/lRng/ans group name "Sales"
/// (resolved from the A-leg's callflow_id); tags `department=sales`.
fn ring_group_second_answers(g: &mut CallGen<'_>, p: &Params) {
    g.set_cav("department", "sales");
    let a = pstn_a(g, p);
    let members: Vec<usize> = {
        let acct = g.account();
        acct.ring_group
            .members
            .iter()
            .map(|id| acct.device_index(id))
            .collect()
    };
    let legs: Vec<usize> = members
        .iter()
        .enumerate()
        .map(|(i, d)| g.device_out(B_AT + 8 * i as i64, *d, a, false))
        .collect();
    let winner = p.dev[2] % legs.len();
    let t = B_AT + p.ring_ms;
    g.answer(legs[winner], t);
    let mut lose_at = t + 20;
    for (i, leg) in legs.iter().enumerate() {
        if i != winner {
            g.destroy(*leg, lose_at, ("LOSE_RACE", "sip:487"));
            lose_at += 4;
        }
    }
    g.answer(a, t + 52);
    g.bridge(a, legs[winner], t + 68);
    hang_up(g, a, legs[winner], t + 68 + p.talk_ms, p.caller_hangs_up);
}

/// Caller gives up while B rings: B ORIGINATOR_CANCEL sip:487 at `t`, A with `a_cause` 18 ms
/// later.
fn caller_gives_up(g: &mut CallGen<'_>, p: &Params, a_cause: Hangup) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = B_AT + p.ring_ms;
    g.destroy(b, t, CANCEL);
    g.destroy(a, t + 18, a_cause);
}

/// **caller_hangup_long_ring** (Acme, 13:30Z): "GARCIA ROSA" +13125550147 calls
/// +15125550112 "James Carter Direct"; device 1 "(T42S) James Carter" rings 25.3 s and the
/// caller hangs up.
///
/// Timeline: A created 0; B created 850; B DESTROY 26 150 (ORIGINATOR_CANCEL sip:487, billing
/// 0); A DESTROY 26 168 (ORIGINATOR_CANCEL sip:487). No ANSWER, no BRIDGE.
///
/// Expected: dir 2, type 2, ans 0, **lost 1**, aban 0, short 0; no answer time; dur 26
/// (26.17); ring 25 (25.30); talk 0; cause ORIGINATOR_CANCEL; cliNum +13125550147; ddiNum
/// +15125550112 "James Carter Direct"; first = last rang device 1 James Carter (user 1002);
/// no answering device/user.
fn caller_hangup_long_ring(g: &mut CallGen<'_>, p: &Params) {
    caller_gives_up(g, p, CANCEL);
}

/// **caller_hangup_short_ring** (Globex, 13:45Z): +447700900456 (name = number) calls
/// +442079460100 "Reception"; device 0 "(T54W) Reception" rings 3.4 s and the caller hangs
/// up.
///
/// Timeline: A created 0; B created 850; B DESTROY 4 250 (ORIGINATOR_CANCEL sip:487); A DESTROY
/// 4 268 (NORMAL_CLEARING sip:200).
///
/// Expected: dir 2, type 2, ans 0, lost 0, **aban 1** (ring ≤ 6 s); dur 4 (4.27); ring 3
/// (3.40); talk 0; cause ORIGINATOR_CANCEL (the origin's NORMAL_CLEARING is generic, so the
/// last destination attempt's cause); cliNum +447700900456 (GB, mobile, no area/state);
/// ddiNum +442079460100 "Reception"; first = last rang device 0 "(T54W) Reception" (user
/// 2001 Oliver Hughes); no answering device.
fn caller_hangup_short_ring(g: &mut CallGen<'_>, p: &Params) {
    caller_gives_up(g, p, NORMAL);
}

/// **no_answer_voicemail** (Acme, 14:00Z): "BRIGHT JOHN" +17375550162 calls +15125550113
/// "Priya Patel Direct"; device 2 "(VVX 450) Priya Patel" rings out after 20 s; the callflow
/// answers the A-leg for voicemail and the caller leaves a 30.4 s message.
///
/// Timeline: A created 0; B created 850; B DESTROY 20 900 (NO_ANSWER sip:480); A ANSWER
/// 20 940 (voicemail, no BRIDGE ever); A DESTROY 51 340 (NORMAL_CLEARING).
///
/// Expected: dir 2, type 2, **ans 0** (the PBX answering is not an answer), **lost 1**, aban 0;
/// no answer time; dur 51 (51.34); ring 20 (20.05); talk 0; cause NO_ANSWER (origin cause
/// generic → last destination's); cliNum +17375550162; ddiNum +15125550113 "Priya Patel
/// Direct"; first = last rang device 2 Priya Patel (user 1003); no answering device; tags
/// `voicemail`.
fn no_answer_voicemail(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = B_AT + p.ring_ms;
    g.destroy(b, t, ("NO_ANSWER", "sip:480"));
    g.answer(a, t + 40);
    g.hangup(a, t + 40 + p.wait_ms);
}

/// **hold_resume** (Acme, 14:15Z): "AUSTIN TX" +15125550163 calls +15125550100 "Main Line";
/// device 0 "(T54W) Front Desk" answers, puts the caller on hold for 15.3 s, resumes, and
/// hangs up (the §4.6 call).
///
/// Timeline: B created 850; B ANSWER 6 300; A ANSWER 6 352; A BRIDGE→B 6 368; B HOLD 39 968
/// (channel_call_state HELD); B UNHOLD 55 268 (ACTIVE); B DESTROY 95 468; A DESTROY 95 495.
///
/// Expected: dir 2, type 2, ans 1; answer +6.368; dur 95 (95.50); ring 5 (5.45); talk 73
/// (89.10 connected − 15.30 held = 73.80); hold 15 (15.30); cause NORMAL_CLEARING; cliNum
/// +15125550163 (US, area 512, TX); ddiNum +15125550100 "Main Line"; rang/answering device 0
/// Front Desk, user 1001 Maria Lopez.
fn hold_resume(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = connect(g, a, b, B_AT + p.ring_ms);
    let hold_at = t + p.hold_at_ms;
    g.hold(b, hold_at, true);
    g.hold(b, hold_at + p.hold_ms, false);
    hang_up(g, a, b, t + p.talk_ms, p.caller_hangs_up);
}

/// **blind_transfer** (Acme, 14:30Z): "CHEN WEI" +16175550188 calls +15125550100 "Main Line";
/// device 0 Front Desk answers, talks 40.3 s, then blind-transfers the caller to 1003: B's leg
/// ends (BLIND_TRANSFER), a new leg C rings device 2 "(VVX 450) Priya Patel" for 6.2 s (the
/// caller hears ringback), C answers and is bridged to A; A's later events carry
/// `transfer_history {"<epoch s>":{"call_id":B,"type":"blind"}}`. C hangs up.
///
/// Timeline: B created 850; B ANSWER 5 100; A ANSWER 5 152; A BRIDGE→B 5 168; B DESTROY
/// 45 468 (BLIND_TRANSFER sip:200); C created 46 068; C ANSWER 52 268; A BRIDGE→C 52 290;
/// C DESTROY 102 690; A DESTROY 102 717.
///
/// Expected: dir 2, type 2, ans 1; answer +5.168; dur 102 (102.72); ring 4 (4.25; C's ringing
/// after the answer is excluded); talk 90 (40.30 + 50.40); hold 0; cause NORMAL_CLEARING;
/// cliNum +16175550188; ddiNum +15125550100; first rang device 0 Front Desk (1001 Maria
/// Lopez), last rang device 2 Priya Patel (1003); answering device 0 / user 1001; last
/// answering device 2 / user 1003; tags `transferred`.
fn blind_transfer(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = connect(g, a, b, B_AT + p.ring_ms);
    let t = t + p.talk_ms;
    g.destroy(b, t, ("BLIND_TRANSFER", "sip:200"));
    g.transferred(a, t, b, "blind");
    let c = g.device_out(t + 600, p.dev[1], a, false);
    let t = t + 600 + p.ring2_ms;
    g.answer(c, t);
    g.bridge(a, c, t + 22);
    hang_up(g, a, c, t + 22 + p.talk2_ms, p.caller_hangs_up);
}

/// **attended_transfer** (Acme, 14:45Z): "KOWALSKI ANNA" +12125550134 calls +15125550100;
/// device 0 Front Desk answers, talks 25.3 s and presses hold; its phone then places a
/// consultation call B2 (inbound device leg, dialled `1002`, its **own** new
/// call_interaction_id and bridge_id) to device 1 "(T42S) James Carter" (leg C, bridge_id =
/// B2); C answers after 4.1 s, they talk 15.2 s, and Front Desk completes the transfer: A is
/// bridged to C (A gains `transfer_history` type `attended`), B and B2 end with
/// ATTENDED_TRANSFER. No UNHOLD is sent. C hangs up after 60.3 s.
///
/// Timeline: B created 850; B ANSWER 7 000; A ANSWER 7 052; A BRIDGE→B 7 068; B HOLD 32 368;
/// B2 created 33 900 (routed 34 150); C created 34 600; C ANSWER 38 700; B2 ANSWER 38 740;
/// B2 BRIDGE→C 38 755; A BRIDGE→C 53 955; B DESTROY 53 975 and B2 DESTROY 53 990
/// (ATTENDED_TRANSFER sip:200); C DESTROY 114 255; A DESTROY 114 282.
///
/// Expected (one session; C joins through A's BRIDGE, B2 through C): dir 2, type 2, ans 1;
/// answer +7.068; dur 114 (114.28); ring 6 (6.15); talk 85 (25.30 + 60.30); hold 21 (HOLD
/// 32.368 until the A–B bridge ends at 53.955–53.975: 21.59–21.61; the B2–C consultation
/// inside it is not talk); cause NORMAL_CLEARING; cliNum +12125550134; ddiNum +15125550100
/// "Main Line"; first rang device 0 Front Desk (1001), last rang device 1 James Carter (1002;
/// B2 is the transferor's own consultation leg, never a destination); answering device 0 /
/// user 1001; last answering device 1 / user 1002; tags `transferred`.
fn attended_transfer(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = connect(g, a, b, B_AT + p.ring_ms);
    let t = t + p.talk_ms;
    g.hold(b, t, true);
    let (ext, flow) = user_flow(g.account(), p.dev[1]);
    let b2 = g.device_in(t + 1_532, p.dev[0], &ext, &flow, None);
    let c = g.device_out(t + 2_232, p.dev[1], b2, false);
    let t = t + 2_232 + p.ring2_ms;
    g.answer(c, t);
    g.answer(b2, t + 40);
    g.bridge(b2, c, t + 55);
    let t = t + 55 + p.wait_ms;
    g.transferred(a, t, b, "attended");
    g.bridge(a, c, t);
    g.destroy(b, t + 20, ("ATTENDED_TRANSFER", "sip:200"));
    g.destroy(b2, t + 35, ("ATTENDED_TRANSFER", "sip:200"));
    hang_up(g, a, c, t + p.talk2_ms, p.caller_hangs_up);
}

/// Caller answered by `p.dev[0]`, talks `p.talk_ms`, then is blind-transferred to park slot
/// `slot`: B DESTROY (BLIND_TRANSFER) at the returned time, PARK_PARKED 62 ms later.
fn park_caller(g: &mut CallGen<'_>, p: &Params, slot: u8) -> (usize, usize, i64) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let t = connect(g, a, b, B_AT + p.ring_ms) + p.talk_ms;
    g.destroy(b, t, ("BLIND_TRANSFER", "sip:200"));
    g.transferred(a, t, b, "blind");
    g.park(EventKind::Parked, a, t + 62, slot, b);
    (a, b, t)
}

/// **park_retrieve** (Acme, 15:00Z): "SAN ANTONIO TX" +12105550119 calls +15125550100; device 0
/// Front Desk answers, talks 30.4 s, and transfers the caller to park (`*3`, slot 1): B ends
/// (BLIND_TRANSFER), PARK_PARKED on A. 40 s later device 4 "(Bria) Lena Novak" dials `*31`:
/// a new inbound device leg D (new call_interaction_id) is answered by the park callflow,
/// PARK_RETRIEVED on A, and D bridges to A (the BRIDGE is on D). D hangs up after 25.3 s.
///
/// Timeline: B created 850; B ANSWER 8 000; A ANSWER 8 052; A BRIDGE→B 8 068; B DESTROY
/// 38 468; PARK_PARKED 38 530 (no time in the frame: the stream's latest time is B's DESTROY);
/// D created 78 530 (routed 78 780); D ANSWER 78 930; PARK_RETRIEVED 78 960; D BRIDGE→A
/// 78 990; D DESTROY 104 290; A DESTROY 104 317.
///
/// Expected: dir 2, type 2, ans 1; answer +8.068; dur 104 (104.32); ring 7 (7.15); talk 55
/// (30.40 + 25.30); hold 0; park 40 (38.47–38.53 → 78.99: 40.46–40.52); lostinPark 0; cause
/// NORMAL_CLEARING; cliNum +12105550119; ddiNum +15125550100 "Main Line"; first = last rang
/// device 0 Front Desk (D is the retriever's own call, not a destination); answering device 0
/// / user 1001 Maria Lopez; last answering device 4 "(Bria) Lena Novak" / user 1005; tags
/// `parked` (plus `transferred` if a blind transfer into park counts: A carries
/// `transfer_history` type `blind`).
fn park_retrieve(g: &mut CallGen<'_>, p: &Params) {
    let (a, b, t) = park_caller(g, p, 1);
    let t = t + 62 + p.wait_ms;
    let flow = g.account().callflow("park", None).to_owned();
    let d = g.device_in(t, p.dev[1], "*31", &flow, None);
    g.answer(d, t + 400);
    g.park(EventKind::Retrieved, a, t + 430, 1, b);
    g.bridge(d, a, t + 460);
    hang_up(g, a, d, t + 460 + p.talk2_ms, p.caller_hangs_up);
}

/// **park_abandoned** (Globex, 15:15Z): +441134960321 calls +442079460100 "Reception"; device
/// 0 "(T54W) Reception" answers, talks 24.5 s and parks the caller in slot 2; nobody retrieves
/// the call and the caller hangs up 35.2 s later. The callflow publishes PARK_ABANDONED
/// 15 ms after A's DESTROY (it reacts to the hang-up).
///
/// Timeline: B created 850; B ANSWER 6 150; A ANSWER 6 202; A BRIDGE→B 6 218; B DESTROY 30 718
/// (BLIND_TRANSFER); PARK_PARKED 30 780; A DESTROY 65 980 (NORMAL_CLEARING); PARK_ABANDONED
/// 65 995.
///
/// Expected: dir 2, type 2, ans 1, **lostinPark 1**, lost 0, aban 0, short 0 (talk 24 ≥ 20);
/// answer +6.218; dur 65 (65.98); ring 5 (5.30); talk 24 (24.50); park 35 (35.20–35.26);
/// cause NORMAL_CLEARING; cliNum +441134960321 (GB, area 113, Leeds); ddiNum +442079460100
/// "Reception"; rang/answering device 0 Reception, user 2001 Oliver Hughes; tags `parked`
/// (plus `transferred` as in park_retrieve).
fn park_abandoned(g: &mut CallGen<'_>, p: &Params) {
    let (a, b, t) = park_caller(g, p, 2);
    let t = t + 62 + p.wait_ms;
    g.hangup(a, t);
    g.park(EventKind::ParkAbandoned, a, t + 15, 2, b);
}

/// **call_pickup** (Acme, 15:30Z): "WIRELESS CALLER" +14155550177 calls +15125550112 "James
/// Carter Direct"; device 1 "(T42S) James Carter" rings; after 5.35 s device 2 "(VVX 450)
/// Priya Patel" dials `*81002`: a new inbound device leg P, whose routed events carry the
/// **same** call_interaction_id as A, is answered, B ends with PICKED_OFF, and P is bridged to
/// A (one CHANNEL_BRIDGE on A and one on P). P hangs up.
///
/// Timeline: B created 850; P created 6 200 (routed 6 450); P ANSWER 7 150; B DESTROY 7 170
/// (PICKED_OFF sip:487, billing 0); A ANSWER 7 205; A BRIDGE→P 7 220; P BRIDGE→A 7 224;
/// P DESTROY 59 520; A DESTROY 59 547.
///
/// Expected: dir 2, type 2, ans 1; answer +7.220; dur 59 (59.55); ring 6 (B alerting until
/// picked off: 6.32); talk 52 (52.30); cause NORMAL_CLEARING; cliNum +14155550177; ddiNum
/// +15125550112 "James Carter Direct"; first = last rang device 1 James Carter (1002);
/// answering = last answering device 2 Priya Patel / user 1003 (the picker); tags `pickup`.
fn call_pickup(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let b = g.device_out(B_AT, p.dev[0], a, false);
    let (ext, _) = user_flow(g.account(), p.dev[0]);
    let flow = g.account().callflow("intercept", None).to_owned();
    let t = B_AT + p.ring_ms;
    let shared = g.interaction_of(a);
    let pk = g.device_in(t - 970, p.dev[1], &format!("*8{ext}"), &flow, Some(shared));
    g.answer(pk, t - 20);
    g.destroy(b, t, ("PICKED_OFF", "sip:487"));
    g.answer(a, t + 35);
    g.bridge(a, pk, t + 50);
    g.bridge_echo(pk, t + 54);
    hang_up(g, a, pk, t + 50 + p.talk_ms, p.caller_hangs_up);
}

/// The device A-leg and carrier B-leg of an outgoing call; returns them and B's create time.
fn outbound_legs(g: &mut CallGen<'_>, p: &Params) -> (usize, usize, i64) {
    let acct = g.account();
    let dialled = dialled_form(&acct.region, &p.party.number);
    let flow = acct.callflow("offnet", None).to_owned();
    let did = &acct.dids[p.did];
    let presented = Party::new(&acct.name, &did.number);
    let a = g.device_in(0, p.dev[0], &dialled, &flow, None);
    g.set_did(&did.number);
    let b = g.carrier_out(700, a, &p.party.number, presented, false);
    (a, b, 700)
}

/// How a user of an account in `region` dials `e164`.
pub(crate) fn dialled_form(region: &str, e164: &str) -> String {
    match (region, e164.strip_prefix("+1"), e164.strip_prefix("+44")) {
        ("US", Some(nat), _) => nat.to_owned(),
        ("GB", _, Some(nat)) => format!("0{nat}"),
        ("US", _, _) => format!("011{}", &e164[1..]),
        _ => format!("00{}", &e164[1..]),
    }
}

/// **outbound_answered** (Acme, 15:45Z): device 1 "(T42S) James Carter" (1002) dials
/// `4155550199`; the offnet callflow sends it to a carrier as +14155550199 presenting "Acme
/// Corp" +15125550100; the far end rings 8.3 s and answers; James hangs up.
///
/// Timeline: A (device, inbound) created 0 (CREATE has device CCVs but no interaction id;
/// routed 250); B (carrier, offnet-termination) created 700; B ANSWER 9 000; A ANSWER 9 040;
/// A BRIDGE→B 9 055; A DESTROY 130 455; B DESTROY 130 482.
///
/// Expected: **dir 3** (outgoing), type 2, t2t 0, ans 1; answer +9.055; dur 130 (130.48);
/// ring 8 (8.30); talk 121 (121.40); cause NORMAL_CLEARING; cliNum +14155550199 (the
/// dialled number); ddiNum +15125550100 "Main Line" (presented caller id); answering = last
/// answering device 1 James Carter (the calling device), user 1002 James Carter; no rang
/// devices.
fn outbound_answered(g: &mut CallGen<'_>, p: &Params) {
    let (a, b, t) = outbound_legs(g, p);
    let t = t + p.ring_ms;
    g.answer(b, t);
    g.answer(a, t + 40);
    g.bridge(a, b, t + 55);
    hang_up(g, a, b, t + 55 + p.talk_ms, p.caller_hangs_up);
}

/// **outbound_busy** (Globex, 16:00Z): device 2 "(VVX 450) Harry Wilson" (2003) dials
/// `07700900789`; the carrier leg to +447700900789 (presenting "Globex Ltd" +442079460100)
/// is rejected busy after 2.3 s and never answered.
///
/// Timeline: A created 0; B created 700; B DESTROY 3 000 (USER_BUSY sip:486, billing 0);
/// A DESTROY 3 040 (USER_BUSY sip:486).
///
/// Expected: dir 3, type 2, ans 0, lost 0, aban 0 (not an incoming call), short 0; no answer
/// time; dur 3 (3.04); ring 2 (2.30); talk 0; cause USER_BUSY; cliNum +447700900789;
/// ddiNum +442079460100 "Reception"; user 2003 Harry Wilson (calling device 2); no answering
/// device.
fn outbound_busy(g: &mut CallGen<'_>, p: &Params) {
    let (a, b, t) = outbound_legs(g, p);
    let t = t + p.ring_ms;
    g.destroy(b, t, ("USER_BUSY", "sip:486"));
    g.destroy(a, t + 40, ("USER_BUSY", "sip:486"));
}

/// **internal_call** (Acme, 16:15Z): device 4 "(Bria) Lena Novak" (1005) dials `1003`; device 2
/// "(VVX 450) Priya Patel" rings 6.25 s and answers; Priya hangs up.
///
/// Timeline: A (device) created 0 (routed 250); B created 650; B ANSWER 6 900; A ANSWER 6 940;
/// A BRIDGE→B 6 955; B DESTROY 52 255; A DESTROY 52 282.
///
/// Expected: **dir 1, type 1**, t2t 0, ans 1, lost 0, aban 0; answer +6.955; dur 52 (52.28);
/// ring 6 (6.25); talk 45 (45.30); cause NORMAL_CLEARING; cliNum `1005` (the calling
/// extension; no location fields); no ddiNum; first = last rang = answering device 2 Priya
/// Patel, user 1003.
fn internal_call(g: &mut CallGen<'_>, p: &Params) {
    let (ext, flow) = user_flow(g.account(), p.dev[1]);
    let a = g.device_in(0, p.dev[0], &ext, &flow, None);
    let b = g.device_out(650, p.dev[1], a, false);
    let t = 650 + p.ring_ms;
    g.answer(b, t);
    g.answer(a, t + 40);
    g.bridge(a, b, t + 55);
    hang_up(g, a, b, t + 55 + p.talk_ms, p.caller_hangs_up);
}

/// **forward_to_mobile** (Acme, 16:30Z): "BELL ANDREA" +13035550142 calls +15125550114 "Tom
/// Becker Direct"; Tom's device 3 forwards unconditionally to +15125550187, so Kazoo bridges A
/// to a loopback pair (LA: `loopback/+15125550187-a`, leg "A", outbound, bridged to A; LB:
/// `…-b`, leg "B", inbound) and LB places the outbound carrier leg C (offnet-termination,
/// `call_forward "true"`, presenting the original caller). The mobile answers after 9.35 s and
/// hangs up.
///
/// Timeline: A created 0; LA created 800, LB created 806 (routed 950); C created 1 250;
/// C ANSWER 10 600; LB ANSWER 10 630; LB BRIDGE→C 10 645; LA ANSWER 10 660; A ANSWER 10 675;
/// A BRIDGE→LA 10 690; C DESTROY 83 990; LB DESTROY 84 000; LA DESTROY 84 010; A DESTROY
/// 84 025.
///
/// Expected: **dir 4** (both), type 2, **t2t 1**, ans 1; answer +10.690 (when the answered
/// trunk leg reaches the caller through the loopback); dur 84 (84.03); ring 9 (C alerting
/// 9.35; 9.86 if the loopback half's alerting were counted, still 9); talk 73 (73.30); cause
/// NORMAL_CLEARING; cliNum +13035550142; ddiNum +15125550114 "Tom Becker Direct"; no device
/// leg rang or answered (loopback halves carry Tom's device id but are never parties); tags
/// `forwarded`.
fn forward_to_mobile(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    let acct = g.account();
    let device = p.dev[0];
    let number = acct.devices[device]
        .call_forward
        .as_ref()
        .map_or_else(|| p.party.number.clone(), |f| f.number.clone());
    let (la, lb) = g.loopback(800, a, device, &number);
    let caller = p.party.clone();
    let c = g.carrier_out(1_250, lb, &number, caller, true);
    let t = 1_250 + p.ring_ms;
    g.answer(c, t);
    g.answer(lb, t + 30);
    g.bridge(lb, c, t + 45);
    g.answer(la, t + 60);
    g.answer(a, t + 75);
    g.bridge(a, la, t + 90);
    let t = t + 90 + p.talk_ms;
    if p.caller_hangs_up {
        g.hangup(a, t);
        g.hangup(la, t + 10);
        g.hangup(lb, t + 20);
        g.hangup(c, t + 35);
    } else {
        g.hangup(c, t);
        g.hangup(lb, t + 10);
        g.hangup(la, t + 20);
        g.hangup(a, t + 35);
    }
}

/// **acdc_queue** (Acme, 16:45Z): "WIRELESS CALLER" +14155550190 calls +15125550102
/// "Support"; the callflow answers A at 600 ms and queues it with music for 12 s; ACDc then
/// rings agent Lena Novak (1005) on device 4 "(Bria) Lena Novak" with an agent leg (call id
/// `<32 hex>-<agent id>-<8 hex>`, CCVs agent_id, queue_id, member_call_id = A); she answers
/// after 5.2 s, A is bridged to her, and she hangs up after 95.3 s.
///
/// Timeline: A created 0; A ANSWER 600 (queue, not a person); agent leg created 12 600;
/// agent ANSWER 17 800; A BRIDGE→agent 17 840; agent DESTROY 113 140; A DESTROY 113 167.
///
/// Expected: dir 2, type 2, ans 1; answer +17.840; dur 113 (113.17); ring 5 (5.20; the 12 s in
/// queue is neither ring nor talk); talk 95 (95.30); cause NORMAL_CLEARING; cliNum
/// +14155550190; ddiNum +15125550102 "Support"; first = last rang = answering device 4
/// "(Bria) Lena Novak", user 1005, **agent** 1005 Lena Novak (fRng/lRng/ans agent); group
/// names "Support" (queue_id); tags none.
fn acdc_queue(g: &mut CallGen<'_>, p: &Params) {
    let a = pstn_a(g, p);
    g.answer(a, 600);
    let ag = g.device_out(600 + p.wait_ms, p.dev[1], a, true);
    let t = 600 + p.wait_ms + p.ring_ms;
    g.answer(ag, t);
    g.bridge(a, ag, t + 40);
    hang_up(g, a, ag, t + 40 + p.talk_ms, p.caller_hangs_up);
}

/// **out_of_order_duplicates** (Globex, 17:00Z): a plain answered call — +441614960777 calls
/// +442079460100 "Reception", device 0 "(T54W) Reception" answers after 6.3 s, the phone
/// hangs up after 41.2 s — delivered out of order with duplicates. Stream order: A CREATE,
/// **B ANSWER, B CREATE**, A ANSWER, **A ANSWER (verbatim duplicate)**, **B DESTROY, A BRIDGE**,
/// **B DESTROY (duplicate)**, A DESTROY. `msg_id`s keep the true event times; each frame's
/// send time is the running maximum (so B CREATE and A BRIDGE arrive late).
///
/// Timeline (event times): B created 850; B ANSWER 7 150; A ANSWER 7 202; A BRIDGE→B 7 218;
/// B DESTROY 48 418; A DESTROY 48 445.
///
/// Expected: exactly as if in order — dir 2, type 2, ans 1; answer +7.218; dur 48 (48.45);
/// ring 6 (6.30); talk 41 (41.20); cause NORMAL_CLEARING; cliNum +441614960777 (GB, area
/// 161, Manchester); ddiNum +442079460100 "Reception"; rang/answering device 0 Reception,
/// user 2001 Oliver Hughes; tags none (duplicates are dropped, nothing is missing).
fn out_of_order_duplicates(g: &mut CallGen<'_>, p: &Params) {
    pstn_answered(g, p);
}

/// **missing_destroy** (Acme, 17:15Z): "WIRELESS CALLER" +17375550108 calls +15125550111
/// "Maria Lopez Direct"; device 0 Front Desk answers after 4.15 s; the phone hangs up after
/// 33.3 s but B's CHANNEL_DESTROY never arrives; A's does.
///
/// Timeline: B created 850; B ANSWER 5 000; A ANSWER 5 052; A BRIDGE→B 5 068; (B DESTROY
/// 38 368 lost); A DESTROY 38 395.
///
/// Expected: the session stays open until the idle timeout force-closes it: tags
/// `forced_close` (and `partial`, events missing); end = A's DESTROY (+38.395), dur 38
/// (38.40); dir 2, type 2, ans 1; answer +5.068; ring 4 (4.15); talk 33 (33.30–33.33, to the
/// only DESTROY seen); cause NORMAL_CLEARING; cliNum +17375550108; ddiNum +15125550111 "Maria
/// Lopez Direct"; rang/answering device 0 Front Desk, user 1001 Maria Lopez.
fn missing_destroy(g: &mut CallGen<'_>, p: &Params) {
    pstn_answered(g, p);
}

/// Applies the stream damage of the fault scenarios to a built script.
pub(crate) fn damage(kind: Kind, s: &mut Script) {
    let n = s.events.len();
    let find = |s: &Script, leg: usize, k: EventKind| {
        s.events.iter().position(|e| e.leg == leg && e.kind == k)
    };
    match kind {
        Kind::OutOfOrderDuplicates => {
            let (Some(ac), Some(bc), Some(ba), Some(aa), Some(br), Some(bd), Some(ad)) = (
                find(s, 0, EventKind::Create),
                find(s, 1, EventKind::Create),
                find(s, 1, EventKind::Answer),
                find(s, 0, EventKind::Answer),
                find(s, 0, EventKind::Bridge),
                find(s, 1, EventKind::Destroy),
                find(s, 0, EventKind::Destroy),
            ) else {
                return;
            };
            let mut order = vec![ac, ba, bc, aa, aa, bd, br, bd, ad];
            order.extend((0..n).filter(|i| ![ac, bc, ba, aa, br, bd, ad].contains(i)));
            reorder(s, &order);
        }
        Kind::MissingDestroy => {
            if let Some(bd) = find(s, 1, EventKind::Destroy) {
                let order: Vec<usize> = (0..n).filter(|i| *i != bd).collect();
                reorder(s, &order);
            }
        }
        _ => {}
    }
}

/// Start of the fixture day: 2024-05-14T13:00:00Z (unix µs).
const FIXTURE_DAY_US: i64 = 1_715_691_600_000_000;

/// Start time (unix µs) and parameters of the committed fixture for `kind`.
pub(crate) fn fixture(kind: Kind) -> (i64, Params) {
    let acme = |caller: (&str, &str), did: usize, dev0: usize| Params {
        account: 0,
        party: Party::new(caller.0, caller.1),
        did,
        dev: [dev0, 0, 0],
        ring_ms: 0,
        ring2_ms: 0,
        talk_ms: 0,
        talk2_ms: 0,
        hold_at_ms: 0,
        hold_ms: 0,
        wait_ms: 0,
        caller_hangs_up: false,
    };
    let globex = |caller: &str, did: usize, dev0: usize| Params {
        account: 1,
        ..acme((caller, caller), did, dev0)
    };
    let p = match kind {
        Kind::PstnAnswered => Params {
            ring_ms: 8_150,
            talk_ms: 89_200,
            ..acme(("WIRELESS CALLER", "+14155550123"), DID_MAIN, 0)
        },
        Kind::RingGroupSecondAnswers => Params {
            dev: [0, 0, 1],
            ring_ms: 11_400,
            talk_ms: 64_500,
            caller_hangs_up: true,
            ..acme(("KOWALSKI ANNA", "+12125550134"), DID_GROUP, 0)
        },
        Kind::CallerHangupLongRing => Params {
            ring_ms: 25_300,
            ..acme(("GARCIA ROSA", "+13125550147"), DID_DIRECT + 1, 1)
        },
        Kind::CallerHangupShortRing => Params {
            ring_ms: 3_400,
            ..globex("+447700900456", DID_MAIN, 0)
        },
        Kind::NoAnswerVoicemail => Params {
            ring_ms: 20_050,
            wait_ms: 30_400,
            ..acme(("BRIGHT JOHN", "+17375550162"), DID_DIRECT + 2, 2)
        },
        Kind::HoldResume => Params {
            ring_ms: 5_450,
            talk_ms: 89_100,
            hold_at_ms: 33_600,
            hold_ms: 15_300,
            ..acme(("AUSTIN TX", "+15125550163"), DID_MAIN, 0)
        },
        Kind::BlindTransfer => Params {
            dev: [0, 2, 0],
            ring_ms: 4_250,
            talk_ms: 40_300,
            ring2_ms: 6_200,
            talk2_ms: 50_400,
            ..acme(("CHEN WEI", "+16175550188"), DID_MAIN, 0)
        },
        Kind::AttendedTransfer => Params {
            dev: [0, 1, 0],
            ring_ms: 6_150,
            talk_ms: 25_300,
            ring2_ms: 4_100,
            wait_ms: 15_200,
            talk2_ms: 60_300,
            ..acme(("KOWALSKI ANNA", "+12125550134"), DID_MAIN, 0)
        },
        Kind::ParkRetrieve => Params {
            dev: [0, 4, 0],
            ring_ms: 7_150,
            talk_ms: 30_400,
            wait_ms: 40_000,
            talk2_ms: 25_300,
            ..acme(("SAN ANTONIO TX", "+12105550119"), DID_MAIN, 0)
        },
        Kind::ParkAbandoned => Params {
            ring_ms: 5_300,
            talk_ms: 24_500,
            wait_ms: 35_200,
            ..globex("+441134960321", DID_MAIN, 0)
        },
        Kind::CallPickup => Params {
            dev: [1, 2, 0],
            ring_ms: 6_320,
            talk_ms: 52_300,
            ..acme(("WIRELESS CALLER", "+14155550177"), DID_DIRECT + 1, 1)
        },
        Kind::OutboundAnswered => Params {
            ring_ms: 8_300,
            talk_ms: 121_400,
            caller_hangs_up: true,
            ..acme(("+14155550199", "+14155550199"), DID_MAIN, 1)
        },
        Kind::OutboundBusy => Params {
            ring_ms: 2_300,
            ..globex("+447700900789", DID_MAIN, 2)
        },
        Kind::InternalCall => Params {
            dev: [4, 2, 0],
            ring_ms: 6_250,
            talk_ms: 45_300,
            ..acme(("", ""), DID_MAIN, 4)
        },
        Kind::ForwardToMobile => Params {
            ring_ms: 9_350,
            talk_ms: 73_300,
            ..acme(("BELL ANDREA", "+13035550142"), DID_DIRECT + 3, 3)
        },
        Kind::AcdcQueue => Params {
            dev: [0, 4, 0],
            wait_ms: 12_000,
            ring_ms: 5_200,
            talk_ms: 95_300,
            ..acme(("WIRELESS CALLER", "+14155550190"), DID_QUEUE, 0)
        },
        Kind::OutOfOrderDuplicates => Params {
            ring_ms: 6_300,
            talk_ms: 41_200,
            ..globex("+441614960777", DID_MAIN, 0)
        },
        Kind::MissingDestroy => Params {
            ring_ms: 4_150,
            talk_ms: 33_300,
            ..acme(("WIRELESS CALLER", "+17375550108"), DID_DIRECT, 0)
        },
        Kind::WithheldCallerId => Params {
            party: Party::new("Anonymous", "anonymous"),
            ring_ms: 7_350,
            talk_ms: 58_200,
            caller_hangs_up: true,
            ..globex("", DID_DIRECT + 1, 1)
        },
    };
    let start = FIXTURE_DAY_US + kind as i64 * 15 * 60 * 1_000_000;
    (start, p)
}

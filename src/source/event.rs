//! The owned call event the assembler consumes, and frame classification.
//!
//! [`decode_frame`] turns one websocket text frame into a [`Frame`]: a call event, a reply to a
//! command, or a typed [`DecodeError`] whose [`reason`](DecodeError::reason) is the metric label
//! under which the frame is counted and skipped. Only the fields the session CDR needs are kept.
//!
//! A [`CallEvent`] borrows its text from the frame wherever the JSON needed no unescaping, so
//! decoding an event allocates almost nothing; the assembler copies only what it keeps.

use std::borrow::Cow;
use std::ops::Range;

use super::wire::{WireCcvs, WireData, WireFrame};
use crate::clock::StreamTime;

/// Seconds between 0000-01-01 (Kazoo's Gregorian `timestamp`) and the Unix epoch.
pub const GREGORIAN_UNIX_OFFSET_SECS: i64 = 62_167_219_200;

/// µs bounds inside which a numeric `msg_id` is taken as an event time (years 2000–2100).
const PLAUSIBLE_US: std::ops::Range<i64> = 946_684_800_000_000..4_102_444_800_000_000;

/// The nine Blackhole call events (`call.*.*`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum EventKind {
    /// `CHANNEL_CREATE`
    Create,
    /// `CHANNEL_ANSWER`
    Answer,
    /// `CHANNEL_BRIDGE`
    Bridge,
    /// `CHANNEL_HOLD`
    Hold,
    /// `CHANNEL_UNHOLD`
    Unhold,
    /// `PARK_PARKED`
    Parked,
    /// `PARK_RETRIEVED`
    Retrieved,
    /// `PARK_ABANDONED`
    ParkAbandoned,
    /// `CHANNEL_DESTROY`
    Destroy,
}

impl EventKind {
    /// Parses Kazoo's event name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "CHANNEL_CREATE" => Self::Create,
            "CHANNEL_ANSWER" => Self::Answer,
            "CHANNEL_BRIDGE" => Self::Bridge,
            "CHANNEL_HOLD" => Self::Hold,
            "CHANNEL_UNHOLD" => Self::Unhold,
            "PARK_PARKED" => Self::Parked,
            "PARK_RETRIEVED" => Self::Retrieved,
            "PARK_ABANDONED" => Self::ParkAbandoned,
            "CHANNEL_DESTROY" => Self::Destroy,
            _ => return None,
        })
    }

    /// Kazoo's event name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "CHANNEL_CREATE",
            Self::Answer => "CHANNEL_ANSWER",
            Self::Bridge => "CHANNEL_BRIDGE",
            Self::Hold => "CHANNEL_HOLD",
            Self::Unhold => "CHANNEL_UNHOLD",
            Self::Parked => "PARK_PARKED",
            Self::Retrieved => "PARK_RETRIEVED",
            Self::ParkAbandoned => "PARK_ABANDONED",
            Self::Destroy => "CHANNEL_DESTROY",
        }
    }
}

/// `call_direction`, relative to the media server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The leg came into the switch (the calling side).
    Inbound,
    /// The switch created the leg towards an endpoint.
    Outbound,
}

/// Custom channel variables postcall uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ccvs<'a> {
    /// Document that authorized the leg (a device id on device legs).
    pub authorizing_id: Option<Cow<'a, str>>,
    /// `device`, `mobile`, `resource`, ...
    pub authorizing_type: Option<Cow<'a, str>>,
    /// User owning the device.
    pub owner_id: Option<Cow<'a, str>>,
    /// SIP username of the device.
    pub username: Option<Cow<'a, str>>,
    /// The A-leg's call id, exported to every leg it bridges to.
    pub bridge_id: Option<Cow<'a, str>>,
    /// The interaction (session) id.
    pub interaction_id: Option<Cow<'a, str>>,
    /// `offnet-origination`, `offnet-termination`, ...
    pub resource_type: Option<Cow<'a, str>>,
    /// Original request of an off-net inbound call (`+DID@ip`).
    pub inception: Option<Cow<'a, str>>,
    /// Dialled number on outbound carrier legs.
    pub e164_destination: Option<Cow<'a, str>>,
    /// Number as dialled, on outbound carrier legs.
    pub original_number: Option<Cow<'a, str>>,
    /// The leg is a call-forward.
    pub call_forward: bool,
    /// ACDc agent (a user id) on queue-delivered legs.
    pub agent_id: Option<Cow<'a, str>>,
    /// ACDc queue on queue-delivered legs.
    pub queue_id: Option<Cow<'a, str>>,
    /// The caller's call id on ACDc agent legs.
    pub member_call_id: Option<Cow<'a, str>>,
    /// Caller asked for privacy.
    pub privacy_hide_number: bool,
    /// Recording ids carried in channel variables.
    pub recordings: Vec<Cow<'a, str>>,
    /// Prefix a callflow added to the caller-id number, when exported.
    pub cid_number_prefix: Option<Cow<'a, str>>,
    /// Prefix a callflow added to the caller-id name, when exported.
    pub cid_name_prefix: Option<Cow<'a, str>>,
}

/// One call event of one leg, decoded and reduced to what the assembler needs; text is
/// borrowed from the frame where it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent<'a> {
    /// Which of the nine events.
    pub kind: EventKind,
    /// Tenant (Kazoo account) the leg belongs to.
    pub account_id: Option<Cow<'a, str>>,
    /// The leg's call id.
    pub call_id: Cow<'a, str>,
    /// When it happened on the PBX's clock: numeric `msg_id`, else `timestamp`; `None` for
    /// PARK_* events.
    pub time: Option<StreamTime>,
    /// Identity of this event within its leg (µs `msg_id`, or a hash of a hex one) for dedupe.
    pub fingerprint: u64,
    /// `channel_created_time` (Unix µs).
    pub created_us: Option<i64>,
    /// `call_direction`.
    pub direction: Option<Direction>,
    /// `caller_id_number` / `caller_id_name`.
    pub caller_number: Option<Cow<'a, str>>,
    /// See `caller_number`.
    pub caller_name: Option<Cow<'a, str>>,
    /// `callee_id_number` / `callee_id_name`.
    pub callee_number: Option<Cow<'a, str>>,
    /// See `callee_number`.
    pub callee_name: Option<Cow<'a, str>>,
    /// `other_leg_call_id`: the bridged peer or the originating leg.
    pub other_leg: Option<Cow<'a, str>>,
    /// `other_leg_destination_number`.
    pub other_leg_destination: Option<Cow<'a, str>>,
    /// The leg is a FreeSWITCH loopback half.
    pub loopback: bool,
    /// The other half of a loopback pair.
    pub loopback_other: Option<Cow<'a, str>>,
    /// User part of `request` (else `to`): the number this leg was sent to.
    pub request_user: Option<Cow<'a, str>>,
    /// User part of `presence_id`.
    pub presence_user: Option<Cow<'a, str>>,
    /// `hangup_cause` (DESTROY).
    pub hangup_cause: Option<Cow<'a, str>>,
    /// `billing_seconds` (DESTROY).
    pub billing_seconds: Option<i64>,
    /// `duration_seconds` (DESTROY).
    pub duration_seconds: Option<i64>,
    /// Other call ids this leg names as related: replaced-by, transfer history, ACDc member.
    pub related: Vec<Cow<'a, str>>,
    /// The event records a transfer (`transfer_history` or `replaced_by`).
    pub transfer: bool,
    /// Recording ids from the event's top level (5.x).
    pub recordings: Vec<Cow<'a, str>>,
    /// `parking_slot` (PARK_*).
    pub parking_slot: Option<Cow<'a, str>>,
    /// Channel variables.
    pub ccv: Ccvs<'a>,
    /// `custom_application_vars`, as text.
    pub cavs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The event was read from a CDR document Kazoo stored (`cdr_doc::leg_event`), not from
    /// the live stream.
    pub from_cdr: bool,
}

/// A reply to a command the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The echoed request id.
    pub request_id: Option<String>,
    /// `status: "success"`.
    pub ok: bool,
    /// Bindings listed as subscribed.
    pub subscribed: Vec<String>,
    /// Error messages of an error reply.
    pub errors: Vec<String>,
}

/// One classified frame; an event borrows from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A call event.
    Event(Box<CallEvent<'a>>),
    /// A reply to a subscribe, unsubscribe or ping.
    Reply(Reply),
}

/// Why a frame was skipped. Each variant is counted under its [`reason`](Self::reason).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object.
    #[error("frame is not a JSON object: {0}")]
    InvalidJson(String),
    /// An action other than `event` or `reply`.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// An event frame without `data`.
    #[error("event frame without data")]
    MissingData,
    /// An event that is not one of the nine call events.
    #[error("unsupported event {0:?}")]
    UnsupportedEvent(String),
    /// A call event without `call_id`.
    #[error("call event {0} without call_id")]
    MissingCallId(&'static str),
}

impl DecodeError {
    /// Stable metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::UnknownAction(_) => "unknown_action",
            Self::MissingData => "missing_data",
            Self::UnsupportedEvent(_) => "unsupported_event",
            Self::MissingCallId(_) => "missing_call_id",
        }
    }
}

/// Decodes one websocket text frame.
///
/// # Errors
/// A [`DecodeError`] says why the frame carries nothing postcall can use.
pub fn decode_frame(text: &str) -> Result<Frame<'_>, DecodeError> {
    let wire: WireFrame<'_> = serde_json::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        // At most 120 bytes, cut on a character boundary (the message may quote the input).
        let mut cut = msg.len().min(120);
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        DecodeError::InvalidJson(msg)
    })?;
    let action = wire.action.as_deref().unwrap_or("");
    match action {
        "reply" => {
            let data = wire.data.unwrap_or_default();
            Ok(Frame::Reply(Reply {
                request_id: wire.request_id.map(|s| s.into_owned()),
                ok: wire.status.as_deref() == Some("success"),
                subscribed: data.subscribed,
                errors: data.errors,
            }))
        }
        "event" => {
            let data = wire.data.ok_or(DecodeError::MissingData)?;
            let name = data
                .event_name
                .as_deref()
                .or(wire.name.as_deref())
                .unwrap_or("");
            let kind = EventKind::from_name(name)
                .ok_or_else(|| DecodeError::UnsupportedEvent(name.to_owned()))?;
            let event = from_data(kind, data, wire.routing_key)?;
            Ok(Frame::Event(Box::new(event)))
        }
        other => Err(DecodeError::UnknownAction(other.to_owned())),
    }
}

/// The part of `text` that `span` picks, borrowed when `text` is.
fn sub_str<'a>(
    text: Cow<'a, str>,
    span: impl Fn(&str) -> Option<Range<usize>>,
) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(t) => span(t).map(|r| Cow::Borrowed(&t[r])),
        Cow::Owned(t) => span(&t).map(|r| Cow::Owned(t[r].to_owned())),
    }
}

/// The account id inside a `call.{ACCOUNT_ID}.{EVENT}.{CALL_ID}` routing key.
fn routing_account(key: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    sub_str(key?, |k| {
        let start = k.find('.')? + 1;
        let end = k[start..].find('.').map_or(k.len(), |n| start + n);
        let account = &k[start..end];
        (!account.is_empty() && account != "*").then_some(start..end)
    })
}

pub(super) fn from_data<'a>(
    kind: EventKind,
    d: Box<WireData<'a>>,
    routing_key: Option<Cow<'a, str>>,
) -> Result<CallEvent<'a>, DecodeError> {
    let call_id = d.call_id.ok_or(DecodeError::MissingCallId(kind.name()))?;
    let numeric_msg = d
        .msg_id
        .as_deref()
        .filter(|m| m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<i64>().ok());
    let time = event_time(numeric_msg, d.timestamp);
    let fingerprint = match (&numeric_msg, &d.msg_id) {
        (Some(m), _) => *m as u64,
        (None, Some(m)) => fnv1a(m.as_bytes()),
        (None, None) => time.map_or(0, StreamTime::as_us) as u64,
    };
    let mut ccv_wire = d.custom_channel_vars.unwrap_or_default();
    let interaction_id = ccv_wire
        .call_interaction_id
        .take()
        .or(d.call_interaction.and_then(|i| i.id));
    let transfer = !d.transfer_history.is_empty() || d.replaced_by.is_some();
    let mut related: Vec<Cow<'a, str>> = d.transfer_history.into_iter().map(Cow::Owned).collect();
    related.extend(d.replaced_by);
    related.extend(ccv_wire.member_call_id.clone());
    let account_id = ccv_wire
        .account_id
        .take()
        .or_else(|| routing_account(routing_key));
    let ccv = ccvs(ccv_wire, interaction_id);
    let loopback = d.channel_is_loopback.unwrap_or(false)
        || d.channel_name
            .as_deref()
            .is_some_and(|n| n.starts_with("loopback/"));
    Ok(CallEvent {
        kind,
        account_id,
        call_id,
        time,
        fingerprint,
        created_us: d.channel_created_time.filter(|t| PLAUSIBLE_US.contains(t)),
        direction: match d.call_direction.as_deref() {
            Some("inbound") => Some(Direction::Inbound),
            Some("outbound") => Some(Direction::Outbound),
            _ => None,
        },
        caller_number: d.caller_id_number,
        caller_name: d.caller_id_name,
        callee_number: d.callee_id_number,
        callee_name: d.callee_id_name,
        other_leg: d.other_leg_call_id,
        other_leg_destination: d.other_leg_destination_number,
        loopback,
        loopback_other: d.channel_loopback_other_leg_id,
        request_user: user_part(d.request.or(d.to)),
        presence_user: user_part(d.presence_id),
        hangup_cause: d.hangup_cause,
        billing_seconds: d.billing_seconds.filter(|s| *s >= 0),
        duration_seconds: d.duration_seconds.filter(|s| *s >= 0),
        related,
        transfer,
        recordings: d.media_recordings.into_iter().map(Cow::Owned).collect(),
        parking_slot: d.parking_slot,
        ccv,
        cavs: d
            .custom_application_vars
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
            .collect(),
        from_cdr: false,
    })
}

fn ccvs<'a>(c: Box<WireCcvs<'a>>, interaction_id: Option<Cow<'a, str>>) -> Ccvs<'a> {
    let truthy =
        |v: &Option<Cow<'_, str>>| v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let mut recordings: Vec<Cow<'a, str>> =
        c.media_recordings.into_iter().map(Cow::Owned).collect();
    recordings.extend(c.media_recording_id);
    Ccvs {
        call_forward: truthy(&c.call_forward),
        privacy_hide_number: truthy(&c.privacy_hide_number)
            || truthy(&c.caller_privacy_hide_number),
        authorizing_id: c.authorizing_id,
        authorizing_type: c.authorizing_type,
        owner_id: c.owner_id,
        username: c.username,
        bridge_id: c.bridge_id,
        interaction_id,
        resource_type: c.resource_type,
        inception: c.inception,
        e164_destination: c.e164_destination,
        original_number: c.original_number,
        agent_id: c.agent_id,
        queue_id: c.queue_id,
        member_call_id: c.member_call_id,
        recordings,
        cid_number_prefix: c.caller_id_number_prefix,
        cid_name_prefix: c.caller_id_name_prefix,
    }
}

/// Event time: a numeric `msg_id` (µs) when it agrees with `timestamp` within a day, else
/// `timestamp` (Gregorian seconds); `None` when neither is usable.
pub fn event_time(numeric_msg_id: Option<i64>, gregorian_secs: Option<i64>) -> Option<StreamTime> {
    let ts_us = gregorian_secs
        .and_then(|g| g.checked_sub(GREGORIAN_UNIX_OFFSET_SECS))
        .and_then(|u| u.checked_mul(1_000_000))
        .filter(|t| PLAUSIBLE_US.contains(t));
    let msg = numeric_msg_id.filter(|m| PLAUSIBLE_US.contains(m));
    let us = match (msg, ts_us) {
        (Some(m), Some(t)) if (m - t).abs() <= 86_400_000_000 => Some(m),
        (Some(m), None) => Some(m),
        (_, t) => t,
    };
    us.map(StreamTime::from_us)
}

/// `user@realm` → `user` (a leading `sip:` is dropped); `None` when the user part is empty.
fn user_part(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    sub_str(s?, |s| {
        let start = if s.starts_with("sip:") { 4 } else { 0 };
        let end = s[start..].find('@').map_or(s.len(), |n| start + n);
        (end > start).then_some(start..end)
    })
}

/// FNV-1a (64 bit): the stable hash for a non-numeric `msg_id`'s fingerprint, and the
/// simulator's per-leg values derived from a call id (the fixtures depend on it: one copy, here).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors of the FNV specification (draft-eastlake-fnv, FNV-1a 64-bit).
    #[test]
    fn fnv1a_matches_the_spec() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn gregorian_matches_msg_id() {
        // README sample: 63610891956 → 2015-10-01 04:12:36 UTC, Msg-ID 1443672756993309.
        assert_eq!(
            event_time(Some(1_443_672_756_993_309), Some(63_610_891_956)),
            Some(StreamTime::from_us(1_443_672_756_993_309))
        );
        assert_eq!(
            event_time(None, Some(63_610_891_956)),
            Some(StreamTime::from_us(1_443_672_756_000_000))
        );
        // A msg_id far from the timestamp is not trusted.
        assert_eq!(
            event_time(Some(1_000_000_000_000_000), Some(63_610_891_956)),
            Some(StreamTime::from_us(1_443_672_756_000_000))
        );
        assert_eq!(event_time(Some(12), None), None);
    }

    #[test]
    fn classifies_frames() {
        assert_eq!(decode_frame("nope").unwrap_err().reason(), "invalid_json");
        assert_eq!(decode_frame("[1]").unwrap_err().reason(), "invalid_json");
        assert_eq!(
            decode_frame(r#"{"action":"event","data":{"event_name":"DTMF","call_id":"x"}}"#)
                .unwrap_err()
                .reason(),
            "unsupported_event"
        );
        assert_eq!(
            decode_frame(r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#)
                .unwrap_err()
                .reason(),
            "missing_call_id"
        );
        let Frame::Reply(r) = decode_frame(
            r#"{"action":"reply","request_id":"r1","status":"error","data":{"errors":["unauthorized account id"]}}"#,
        )
        .unwrap() else {
            panic!("reply expected")
        };
        assert!(!r.ok);
        assert_eq!(r.errors, ["unauthorized account id"]);
    }

    #[test]
    fn escaped_text_is_owned_and_plain_text_borrowed() {
        let Frame::Event(e) = decode_frame(
            r#"{"action":"event","routing_key":"call.\u0061cct.CHANNEL_CREATE.x",
               "data":{"event_name":"CHANNEL_CREATE","call_id":"x","request":"sip:\u00311@r",
               "presence_id":"sip:@r","to":"2@r","caller_id_name":"Ann"}}"#,
        )
        .unwrap() else {
            panic!("event expected")
        };
        assert_eq!(e.account_id.as_deref(), Some("acct"));
        assert_eq!(e.request_user.as_deref(), Some("11"));
        assert_eq!(e.presence_user, None);
        assert!(matches!(e.caller_name, Some(Cow::Borrowed("Ann"))));
        assert_eq!(
            user_part(Some(Cow::Borrowed("1001"))).as_deref(),
            Some("1001")
        );
        assert_eq!(routing_account(Some(Cow::Borrowed("call.*.X.y"))), None);
        assert_eq!(routing_account(Some(Cow::Borrowed("call"))), None);
        assert_eq!(
            routing_account(Some(Cow::Borrowed("call.a"))).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn park_event_has_no_time_and_hashes_msg_id() {
        let Frame::Event(e) = decode_frame(
            r#"{"action":"event","name":"PARK_PARKED","routing_key":"call.acct1.PARK_PARKED.abc",
               "data":{"event_name":"PARK_PARKED","msg_id":"2c7d9e41a0b34f6e8d1c5a7b9e0f3d62",
               "call_id":"abc","parking_slot":1}}"#,
        )
        .unwrap() else {
            panic!("event expected")
        };
        assert_eq!(e.kind, EventKind::Parked);
        assert_eq!(e.time, None);
        assert_eq!(e.account_id.as_deref(), Some("acct1"));
        assert_eq!(e.parking_slot.as_deref(), Some("1"));
        assert_ne!(e.fingerprint, 0);
    }
}

#[cfg(test)]
mod decode_error_tests {
    use super::*;

    /// serde_json quotes the offending value in its message; cutting it to 120 bytes must not
    /// split a character (found by scripts/fuzz).
    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        for pad in 0..4 {
            let text = format!(
                "{{\"action\":\"event\",\"data\":\"{}{}\"}}",
                "x".repeat(pad),
                "é".repeat(200)
            );
            match decode_frame(&text) {
                Err(DecodeError::InvalidJson(m)) => assert!(m.len() <= 120, "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

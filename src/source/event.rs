//! The owned call event the assembler consumes, and frame classification.
//!
//! [`decode_frame`] turns one websocket text frame into a [`Frame`]: a call event, a reply to a
//! command, or a typed [`DecodeError`] whose [`reason`](DecodeError::reason) is the metric label
//! under which the frame is counted and skipped. Only the fields the session CDR needs are kept.

use super::wire::{WireCcvs, WireData, WireFrame};

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
pub struct Ccvs {
    /// Document that authorized the leg (a device id on device legs).
    pub authorizing_id: Option<String>,
    /// `device`, `mobile`, `resource`, ...
    pub authorizing_type: Option<String>,
    /// User owning the device.
    pub owner_id: Option<String>,
    /// SIP username of the device.
    pub username: Option<String>,
    /// The A-leg's call id, exported to every leg it bridges to.
    pub bridge_id: Option<String>,
    /// The interaction (session) id.
    pub interaction_id: Option<String>,
    /// `offnet-origination`, `offnet-termination`, ...
    pub resource_type: Option<String>,
    /// Original request of an off-net inbound call (`+DID@ip`).
    pub inception: Option<String>,
    /// Dialled number on outbound carrier legs.
    pub e164_destination: Option<String>,
    /// Number as dialled, on outbound carrier legs.
    pub original_number: Option<String>,
    /// The leg is a call-forward.
    pub call_forward: bool,
    /// ACDc agent (a user id) on queue-delivered legs.
    pub agent_id: Option<String>,
    /// ACDc queue on queue-delivered legs.
    pub queue_id: Option<String>,
    /// The caller's call id on ACDc agent legs.
    pub member_call_id: Option<String>,
    /// Caller asked for privacy.
    pub privacy_hide_number: bool,
    /// Recording ids carried in channel variables.
    pub recordings: Vec<String>,
    /// Prefix a callflow added to the caller-id number, when exported.
    pub cid_number_prefix: Option<String>,
    /// Prefix a callflow added to the caller-id name, when exported.
    pub cid_name_prefix: Option<String>,
}

/// One call event of one leg, decoded and reduced to what the assembler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// Which of the nine events.
    pub kind: EventKind,
    /// Tenant (Kazoo account) the leg belongs to.
    pub account_id: Option<String>,
    /// The leg's call id.
    pub call_id: String,
    /// Event time in Unix µs: numeric `msg_id`, else `timestamp`; `None` for PARK_* events.
    pub time_us: Option<i64>,
    /// Identity of this event within its leg (µs `msg_id`, or a hash of a hex one) for dedupe.
    pub fingerprint: u64,
    /// `channel_created_time` (Unix µs).
    pub created_us: Option<i64>,
    /// `call_direction`.
    pub direction: Option<Direction>,
    /// `caller_id_number` / `caller_id_name`.
    pub caller_number: Option<String>,
    /// See `caller_number`.
    pub caller_name: Option<String>,
    /// `callee_id_number` / `callee_id_name`.
    pub callee_number: Option<String>,
    /// See `callee_number`.
    pub callee_name: Option<String>,
    /// `other_leg_call_id`: the bridged peer or the originating leg.
    pub other_leg: Option<String>,
    /// `other_leg_destination_number`.
    pub other_leg_destination: Option<String>,
    /// The leg is a FreeSWITCH loopback half.
    pub loopback: bool,
    /// The other half of a loopback pair.
    pub loopback_other: Option<String>,
    /// User part of `request` (else `to`): the number this leg was sent to.
    pub request_user: Option<String>,
    /// User part of `presence_id`.
    pub presence_user: Option<String>,
    /// `hangup_cause` (DESTROY).
    pub hangup_cause: Option<String>,
    /// `billing_seconds` (DESTROY).
    pub billing_seconds: Option<i64>,
    /// `duration_seconds` (DESTROY).
    pub duration_seconds: Option<i64>,
    /// Other call ids this leg names as related: replaced-by, transfer history, ACDc member.
    pub related: Vec<String>,
    /// The event records a transfer (`transfer_history` or `replaced_by`).
    pub transfer: bool,
    /// Recording ids from the event's top level (5.x).
    pub recordings: Vec<String>,
    /// `parking_slot` (PARK_*).
    pub parking_slot: Option<String>,
    /// Channel variables.
    pub ccv: Ccvs,
    /// `custom_application_vars`, as text.
    pub cavs: Vec<(String, String)>,
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

/// One classified frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A call event.
    Event(Box<CallEvent>),
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
pub fn decode_frame(text: &str) -> Result<Frame, DecodeError> {
    let wire: WireFrame<'_> = serde_json::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        msg.truncate(120);
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
            let routing_account = wire
                .routing_key
                .as_deref()
                .and_then(|k| k.split('.').nth(1))
                .filter(|a| !a.is_empty() && *a != "*")
                .map(str::to_owned);
            let event = from_data(kind, data, routing_account)?;
            Ok(Frame::Event(Box::new(event)))
        }
        other => Err(DecodeError::UnknownAction(other.to_owned())),
    }
}

fn from_data(
    kind: EventKind,
    d: WireData<'_>,
    routing_account: Option<String>,
) -> Result<CallEvent, DecodeError> {
    let call_id = d
        .call_id
        .map(|s| s.into_owned())
        .ok_or(DecodeError::MissingCallId(kind.name()))?;
    let numeric_msg = d
        .msg_id
        .as_deref()
        .filter(|m| m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<i64>().ok());
    let time_us = event_time_us(numeric_msg, d.timestamp);
    let fingerprint = match (&numeric_msg, &d.msg_id) {
        (Some(m), _) => *m as u64,
        (None, Some(m)) => fnv1a(m.as_bytes()),
        (None, None) => time_us.unwrap_or(0) as u64,
    };
    let ccv_wire = d.custom_channel_vars.unwrap_or_default();
    let interaction_id = ccv_wire
        .call_interaction_id
        .as_deref()
        .or(d.call_interaction.as_ref().and_then(|i| i.id.as_deref()))
        .map(str::to_owned);
    let transfer = !d.transfer_history.is_empty() || d.replaced_by.is_some();
    let mut related: Vec<String> = d.transfer_history;
    related.extend(d.replaced_by.map(|s| s.into_owned()));
    related.extend(ccv_wire.member_call_id.as_deref().map(str::to_owned));
    let account_id = ccv_wire
        .account_id
        .as_deref()
        .map(str::to_owned)
        .or(routing_account);
    let ccv = ccvs(ccv_wire, interaction_id);
    let loopback = d.channel_is_loopback.unwrap_or(false)
        || d.channel_name
            .as_deref()
            .is_some_and(|n| n.starts_with("loopback/"));
    Ok(CallEvent {
        kind,
        account_id,
        call_id,
        time_us,
        fingerprint,
        created_us: d.channel_created_time.filter(|t| PLAUSIBLE_US.contains(t)),
        direction: match d.call_direction.as_deref() {
            Some("inbound") => Some(Direction::Inbound),
            Some("outbound") => Some(Direction::Outbound),
            _ => None,
        },
        caller_number: owned(d.caller_id_number),
        caller_name: owned(d.caller_id_name),
        callee_number: owned(d.callee_id_number),
        callee_name: owned(d.callee_id_name),
        other_leg: owned(d.other_leg_call_id),
        other_leg_destination: owned(d.other_leg_destination_number),
        loopback,
        loopback_other: owned(d.channel_loopback_other_leg_id),
        request_user: d.request.as_deref().or(d.to.as_deref()).and_then(user_part),
        presence_user: d.presence_id.as_deref().and_then(user_part),
        hangup_cause: owned(d.hangup_cause),
        billing_seconds: d.billing_seconds.filter(|s| *s >= 0),
        duration_seconds: d.duration_seconds.filter(|s| *s >= 0),
        related,
        transfer,
        recordings: d.media_recordings,
        parking_slot: owned(d.parking_slot),
        ccv,
        cavs: d.custom_application_vars.into_iter().collect(),
    })
}

fn ccvs(c: WireCcvs<'_>, interaction_id: Option<String>) -> Ccvs {
    let truthy = |v: &Option<std::borrow::Cow<'_, str>>| {
        v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    };
    let mut recordings = c.media_recordings;
    recordings.extend(c.media_recording_id.as_deref().map(str::to_owned));
    Ccvs {
        call_forward: truthy(&c.call_forward),
        privacy_hide_number: truthy(&c.privacy_hide_number)
            || truthy(&c.caller_privacy_hide_number),
        authorizing_id: owned(c.authorizing_id),
        authorizing_type: owned(c.authorizing_type),
        owner_id: owned(c.owner_id),
        username: owned(c.username),
        bridge_id: owned(c.bridge_id),
        interaction_id,
        resource_type: owned(c.resource_type),
        inception: owned(c.inception),
        e164_destination: owned(c.e164_destination),
        original_number: owned(c.original_number),
        agent_id: owned(c.agent_id),
        queue_id: owned(c.queue_id),
        member_call_id: owned(c.member_call_id),
        recordings,
        cid_number_prefix: owned(c.caller_id_number_prefix),
        cid_name_prefix: owned(c.caller_id_name_prefix),
    }
}

fn owned(s: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.map(|s| s.into_owned())
}

/// Event time: a numeric `msg_id` (µs) when it agrees with `timestamp` within a day, else
/// `timestamp` (Gregorian seconds); `None` when neither is usable.
pub fn event_time_us(numeric_msg_id: Option<i64>, gregorian_secs: Option<i64>) -> Option<i64> {
    let ts_us = gregorian_secs
        .and_then(|g| g.checked_sub(GREGORIAN_UNIX_OFFSET_SECS))
        .and_then(|u| u.checked_mul(1_000_000))
        .filter(|t| PLAUSIBLE_US.contains(t));
    let msg = numeric_msg_id.filter(|m| PLAUSIBLE_US.contains(m));
    match (msg, ts_us) {
        (Some(m), Some(t)) if (m - t).abs() <= 86_400_000_000 => Some(m),
        (Some(m), None) => Some(m),
        (_, t) => t,
    }
}

/// `user@realm` → `user` (a leading `sip:` is dropped).
fn user_part(s: &str) -> Option<String> {
    let s = s.strip_prefix("sip:").unwrap_or(s);
    let user = s.split('@').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_owned())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gregorian_matches_msg_id() {
        // README sample: 63610891956 → 2015-10-01 04:12:36 UTC, Msg-ID 1443672756993309.
        assert_eq!(
            event_time_us(Some(1_443_672_756_993_309), Some(63_610_891_956)),
            Some(1_443_672_756_993_309)
        );
        assert_eq!(
            event_time_us(None, Some(63_610_891_956)),
            Some(1_443_672_756_000_000)
        );
        // A msg_id far from the timestamp is not trusted.
        assert_eq!(
            event_time_us(Some(1_000_000_000_000_000), Some(63_610_891_956)),
            Some(1_443_672_756_000_000)
        );
        assert_eq!(event_time_us(Some(12), None), None);
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
        assert_eq!(e.time_us, None);
        assert_eq!(e.account_id.as_deref(), Some("acct1"));
        assert_eq!(e.parking_slot.as_deref(), Some("1"));
        assert_ne!(e.fingerprint, 0);
    }
}

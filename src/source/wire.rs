//! Lenient, borrowing decoder for Blackhole websocket text frames.
//!
//! Kazoo 4.3 sends `{"action":"event"|"reply", ...}` objects whose `data` keys are lower-case
//! with underscores (see `kazoo-events.md` §2.4–§4). Decoding here is deliberately forgiving:
//! every field is optional, numbers may arrive as strings and strings as numbers, unknown keys
//! are skipped without being materialised, and nothing panics on any byte input. Text that
//! needs no unescaping is borrowed from the frame, so a frame costs few allocations; the
//! owned, compact [`CallEvent`](super::CallEvent) is built from it afterwards.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The outer object of every frame, whatever its `action`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireFrame<'a> {
    /// `event`, `reply`, or anything else (ignored).
    #[serde(borrow)]
    pub action: Option<Cow<'a, str>>,
    /// Echoed `request_id` of a reply.
    #[serde(borrow)]
    pub request_id: Option<Cow<'a, str>>,
    /// `success` or `error` on replies.
    #[serde(borrow)]
    pub status: Option<Cow<'a, str>>,
    /// Event name on event frames (same as `data.event_name`).
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    /// `call.{ACCOUNT_ID}.{EVENT}.{CALL_ID}`: a fallback source for the account id.
    #[serde(borrow)]
    pub routing_key: Option<Cow<'a, str>>,
    /// The payload: a call event for events, reply data for replies. Boxed: it is large, and
    /// moving it by value costs more than the allocation.
    #[serde(borrow)]
    pub data: Option<Box<WireData<'a>>>,
}

/// `data` of an event or reply frame. Reply-only keys (`subscribed`, `errors`) and call-event
/// keys share one struct so a frame is parsed exactly once.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireData<'a> {
    /// Reply: bindings now subscribed.
    #[serde(deserialize_with = "lenient_str_list")]
    pub subscribed: Vec<String>,
    /// Reply: error messages.
    #[serde(deserialize_with = "lenient_str_list")]
    pub errors: Vec<String>,
    /// Reply: `pong` for pings.
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub response: Option<Cow<'a, str>>,

    #[serde(borrow, deserialize_with = "lenient_str")]
    pub event_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub call_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub msg_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_i64")]
    pub timestamp: Option<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub channel_created_time: Option<i64>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub call_direction: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub caller_id_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub caller_id_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub callee_id_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub callee_id_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub other_leg_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub other_leg_destination_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub channel_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_bool")]
    pub channel_is_loopback: Option<bool>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub channel_loopback_other_leg_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub request: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub to: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub presence_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub hangup_cause: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub hangup_code: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_i64")]
    pub billing_seconds: Option<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub duration_seconds: Option<i64>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub replaced_by: Option<Cow<'a, str>>,
    /// Only the call ids named inside the history are kept.
    #[serde(deserialize_with = "transfer_history_ids")]
    pub transfer_history: Vec<String>,
    /// 5.x top-level recordings list (strings, or objects carrying an id).
    #[serde(deserialize_with = "recording_list")]
    pub media_recordings: Vec<String>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub parking_slot: Option<Cow<'a, str>>,
    /// 5.x `call_interaction.id`.
    #[serde(borrow)]
    pub call_interaction: Option<WireInteraction<'a>>,
    /// Boxed, like `data` itself, to keep the structs cheap to move.
    #[serde(borrow)]
    pub custom_channel_vars: Option<Box<WireCcvs<'a>>>,
    #[serde(deserialize_with = "string_map")]
    pub custom_application_vars: BTreeMap<String, String>,
}

/// 5.x `call_interaction` object; only its id matters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireInteraction<'a> {
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub id: Option<Cow<'a, str>>,
}

/// The custom channel variables postcall reads (normalised names, values usually strings).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireCcvs<'a> {
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub account_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub authorizing_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub authorizing_type: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub owner_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub bridge_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub call_interaction_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub inception: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub e164_destination: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub original_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub call_forward: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub agent_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub queue_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub member_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub privacy_hide_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub caller_privacy_hide_number: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub media_recording_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "recording_list")]
    pub media_recordings: Vec<String>,
    /// Routing prefixes, when a callflow exports them (`prepend_cid`).
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub caller_id_number_prefix: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient_str")]
    pub caller_id_name_prefix: Option<Cow<'a, str>>,
}

// === lenient scalar helpers ===

/// A string, or a number/bool rendered as text; anything else is skipped as absent.
fn lenient_str<'de, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
    'de: 'a,
{
    d.deserialize_any(LenientStr)
        .map(|v| v.filter(|s| !s.is_empty()))
}

struct LenientStr;

impl<'de> Visitor<'de> for LenientStr {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or scalar")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(if v { "true" } else { "false" })))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// An integer, or a string holding one (`"1715700600123456"`, `"31"`); anything else is absent.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or a string holding one")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((v.is_finite() && v.abs() < 9.0e18).then_some(v as i64))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse::<i64>().ok())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            LenientStr.visit_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            LenientStr.visit_map(map).map(|_| None)
        }
    }
    d.deserialize_any(V)
}

/// `true`/`false`, or the strings `"true"`/`"false"` that channel variables use.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s = lenient_str(d)?;
    Ok(s.map(|s| s.eq_ignore_ascii_case("true")))
}

/// A list of strings; non-string items are skipped; a single string becomes one item.
fn lenient_str_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = serde_json::Value::deserialize(d).map_err(de::Error::custom)?;
    Ok(strings_in(&v, &[]))
}

/// Recording ids: a list of strings or of objects with an id-like key, or one
/// comma-separated string.
fn recording_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = serde_json::Value::deserialize(d).map_err(de::Error::custom)?;
    let mut out = Vec::new();
    match &v {
        serde_json::Value::String(s) => out.extend(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        _ => out = strings_in(&v, &["id", "media_id", "recording_id", "_id"]),
    }
    Ok(out)
}

/// Strings of a JSON array (or the one string), reading `keys` out of object items.
fn strings_in(v: &serde_json::Value, keys: &[&str]) -> Vec<String> {
    use serde_json::Value;
    let one = |item: &Value| -> Option<String> {
        match item {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(o) => keys
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .map(str::to_owned),
            _ => None,
        }
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// `transfer_history`: an object keyed by epoch whose values name `call_id`s.
fn transfer_history_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde_json::Value;
    let v = Value::deserialize(d).map_err(de::Error::custom)?;
    let mut out = Vec::new();
    let mut visit = |item: &Value| {
        if let Some(o) = item.as_object() {
            for k in ["call_id", "target_call_id", "other_leg_call_id"] {
                if let Some(s) = o.get(k).and_then(Value::as_str) {
                    out.push(s.to_owned());
                }
            }
        }
    };
    match &v {
        Value::Object(o) => o.values().for_each(&mut visit),
        Value::Array(a) => a.iter().for_each(&mut visit),
        _ => {}
    }
    Ok(out)
}

/// `custom_application_vars`: values kept as text (non-strings as compact JSON).
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde_json::Value;
    let v = Value::deserialize(d).map_err(de::Error::custom)?;
    let Value::Object(o) = v else {
        return Ok(BTreeMap::new());
    };
    Ok(o.into_iter()
        .filter_map(|(k, v)| {
            let s = match v {
                Value::Null => return None,
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some((k, s))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_lenient() {
        let f: WireFrame = serde_json::from_str(
            r#"{"action":"event","data":{"timestamp":"63882919800","msg_id":1715700600123456,
               "billing_seconds":"31","channel_is_loopback":"true","call_id":12345,
               "caller_id_name":{"x":1},"custom_channel_vars":{"account_id":"a","owner_id":true},
               "custom_application_vars":{"Support":"step1","n":3,"nil":null}}}"#,
        )
        .unwrap();
        let d = f.data.unwrap();
        assert_eq!(d.timestamp, Some(63_882_919_800));
        assert_eq!(d.msg_id.as_deref(), Some("1715700600123456"));
        assert_eq!(d.billing_seconds, Some(31));
        assert_eq!(d.channel_is_loopback, Some(true));
        assert_eq!(d.call_id.as_deref(), Some("12345"));
        assert_eq!(d.caller_id_name, None);
        assert_eq!(
            d.custom_channel_vars.unwrap().owner_id.as_deref(),
            Some("true")
        );
        assert_eq!(
            d.custom_application_vars.get("n").map(String::as_str),
            Some("3")
        );
        assert!(!d.custom_application_vars.contains_key("nil"));
    }

    #[test]
    fn recordings_and_history() {
        let f: WireFrame = serde_json::from_str(
            r#"{"data":{"media_recordings":["r1",{"id":"r2"},5],
               "custom_channel_vars":{"media_recordings":"r3, r4"},
               "transfer_history":{"1715700600":{"call_id":"x","type":"blind"}}}}"#,
        )
        .unwrap();
        let d = f.data.unwrap();
        assert_eq!(d.media_recordings, ["r1", "r2"]);
        assert_eq!(
            d.custom_channel_vars.unwrap().media_recordings,
            ["r3", "r4"]
        );
        assert_eq!(d.transfer_history, ["x"]);
    }
}

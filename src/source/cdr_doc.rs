//! One leg CDR document as Kazoo's `cdr` app stores it, read back as the `CHANNEL_DESTROY` it
//! was written from.
//!
//! Kazoo 4.3 (`applications/cdr/src/cdr_channel_destroy.erl`) stores the normalised
//! `CHANNEL_DESTROY` event of each leg, changed in a few places: private CCVs (`_…`, `pvt_…`)
//! move to the top level; `recording_url`, `call_priority`, `e164_destination` and a true
//! `is_conference` leave the CCVs for the top level; the CCV `call_interaction_id` is removed
//! and becomes top-level `interaction_id`, `interaction_key` and `interaction_time`; `_id` is
//! `YYYYMM-<call_id>` and `pvt_*` fields are added. Everything else (`msg_id`, `timestamp`,
//! `channel_created_time`, caller/callee ids, `other_leg_call_id`, `duration_seconds`,
//! `billing_seconds`, CCVs, …) is the event's own value.
//!
//! [`leg_event`] undoes those changes and decodes the result exactly as a live frame's `data`
//! is decoded, so the assembler builds the same leg from either. Because `msg_id` is kept, the
//! event from a CDR has the live DESTROY's time and fingerprint: fed to an assembler that saw
//! the live DESTROY, it is a duplicate and changes nothing. A leg built only from its CDR
//! starts at its end − `duration_seconds` (or `channel_created_time` when stored) and answers
//! at its end − `billing_seconds` (see `session::leg`). Nothing in a leg CDR tells hold, park,
//! or when bridges happened.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::event::{event_time, from_data, CallEvent, EventKind};
use super::wire::WireData;

/// Why a stored document cannot be read as a leg CDR. Each variant has a stable
/// [`reason`](Self::reason) label for logs and metrics.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CdrDocError {
    /// The document is not a JSON object.
    #[error("CDR document is not a JSON object")]
    NotAnObject,
    /// `pvt_type` says the document is something else.
    #[error("document {id:?} has pvt_type {pvt_type:?}, not \"cdr\"")]
    NotACdr {
        /// The document's `_id`/`id`, when it has one.
        id: Option<String>,
        /// Its `pvt_type`.
        pvt_type: String,
    },
    /// No `call_id`: the leg cannot be named.
    #[error("CDR document {id:?} has no call_id")]
    MissingCallId {
        /// The document's `_id`/`id`, when it has one.
        id: Option<String>,
    },
    /// Neither `timestamp` nor `pvt_created` is a plausible time: the leg's end is unknown.
    #[error("CDR document for call {call_id:?} has no usable timestamp or pvt_created")]
    MissingTime {
        /// The leg's call id.
        call_id: String,
    },
    /// A field has a shape no Kazoo version writes (e.g. `custom_channel_vars` not an object).
    #[error("CDR document {id:?} is malformed: {message}")]
    Malformed {
        /// The document's `_id`/`id`, when it has one.
        id: Option<String>,
        /// The decoder's message.
        message: String,
    },
}

impl CdrDocError {
    /// Stable metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::NotACdr { .. } => "not_a_cdr",
            Self::MissingCallId { .. } => "missing_call_id",
            Self::MissingTime { .. } => "missing_time",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// Turns one stored leg CDR document (as `GET /v2/accounts/{A}/cdrs/{cdr_id}` or
/// `/cdrs/legs/{interaction_id}` returns it) into the `CHANNEL_DESTROY` event it was stored
/// from, flagged [`from_cdr`](CallEvent::from_cdr). Text is borrowed from `doc`.
///
/// The end time is the event time as for a live frame (numeric `msg_id`, else `timestamp`);
/// when the document has neither, `pvt_created` (when Kazoo wrote it, right after the leg
/// ended). The tenant is the CCV `account_id`, else `pvt_account_id`. The interaction id is
/// top-level `interaction_id` (the CCV Kazoo removed).
///
/// # Errors
/// A [`CdrDocError`] says why the document is not a usable leg CDR.
pub fn leg_event(doc: &Value) -> Result<CallEvent<'_>, CdrDocError> {
    let obj = doc.as_object().ok_or(CdrDocError::NotAnObject)?;
    let doc_id = || {
        obj.get("_id")
            .or_else(|| obj.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let Some(t) = obj.get("pvt_type").and_then(Value::as_str) {
        if t != "cdr" {
            return Err(CdrDocError::NotACdr {
                id: doc_id(),
                pvt_type: t.to_owned(),
            });
        }
    }
    let mut data = WireData::deserialize(doc).map_err(|e| CdrDocError::Malformed {
        id: doc_id(),
        message: e.to_string(),
    })?;
    let Some(call_id) = data.call_id.clone() else {
        return Err(CdrDocError::MissingCallId { id: doc_id() });
    };
    let numeric_msg = data
        .msg_id
        .as_deref()
        .filter(|m| m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<i64>().ok());
    if event_time(numeric_msg, data.timestamp).is_none() {
        data.timestamp = obj.get("pvt_created").and_then(lenient_i64);
        if event_time(numeric_msg, data.timestamp).is_none() {
            return Err(CdrDocError::MissingTime {
                call_id: call_id.into_owned(),
            });
        }
    }
    let top_str = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Cow::Borrowed)
    };
    let ccvs = data
        .custom_channel_vars
        .get_or_insert_with(Default::default);
    if ccvs.call_interaction_id.is_none() {
        ccvs.call_interaction_id = top_str("interaction_id");
    }
    if ccvs.e164_destination.is_none() {
        ccvs.e164_destination = top_str("e164_destination");
    }
    if ccvs.account_id.is_none() {
        ccvs.account_id = top_str("pvt_account_id").map(modb_account);
    }
    let mut ev = from_data(EventKind::Destroy, Box::new(data), None)
        .map_err(|_| CdrDocError::MissingCallId { id: doc_id() })?;
    ev.from_cdr = true;
    Ok(ev)
}

/// `pvt_account_id` is the account id; some stored documents carry the month database's
/// suffix (`<account>-YYYYMM`), which is dropped.
fn modb_account(id: Cow<'_, str>) -> Cow<'_, str> {
    match id {
        Cow::Borrowed(s) => Cow::Borrowed(strip_month(s)),
        Cow::Owned(s) => Cow::Owned(strip_month(&s).to_owned()),
    }
}

fn strip_month(s: &str) -> &str {
    match s.rsplit_once('-') {
        Some((account, month)) if month.len() == 6 && month.bytes().all(|b| b.is_ascii_digit()) => {
            account
        }
        _ => s,
    }
}

fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::StreamTime;
    use crate::source::Direction;

    /// 2600hz/kazoo `applications/cdr/priv/couchdb/fixtures/cdr.json`, branch 4.3, commit
    /// 223893d0ba0268b87451f2ff1d803614999a03eb (verbatim): a stored CDR of the 2013 shape,
    /// without `timestamp`, `duration_seconds` or interaction fields.
    const KAZOO_FIXTURE_CDR: &str = r#"{
        "app_name": "ecallmgr",
        "app_version": "0.8.0",
        "call_direction": "inbound",
        "call_id": "ZjM1ODg3NTNhNTI4NmM5ZTA3MmFjZWYzMWJmZGNkZjc",
        "caller_id_name": "callerid_number",
        "caller_id_number": "callerid_number",
        "custom_channel_vars": {
            "account_id": "7f89565344e3e6302df60168420e9265",
            "authorizing_id": "81d406796c370b29a3cdc3713720ed61",
            "authorizing_type": "device",
            "owner_id": "c119a4487f26920476ad6dec74471768",
            "realm": "account_realm",
            "username": "account_username"
        },
        "event_category": "call_detail",
        "event_name": "cdr",
        "handling_server_name": "kazoo.local",
        "msg_id": "2fd859f5a2e561d1909c0ad3b7c80991",
        "node": "ecallmgr@kazoo.local",
        "pvt_account_db": "account%2F7f%2F89%2F565344e3e6302df60168420e9265-201307",
        "pvt_account_id": "7f89565344e3e6302df60168420e9265-201307",
        "pvt_created": 63542353959,
        "pvt_modified": 63542353959,
        "pvt_type": "cdr",
        "pvt_vsn": 2,
        "request": "*97@accountrealm.com",
        "server_id": ""
    }"#;

    /// The document `pqc_cb_cdrs:create_cdr/7` writes (2600hz/kazoo
    /// `core/kazoo_proper/src/pqc_cb_cdrs.erl`, branch 4.3, commit 223893d0…): its keys and
    /// constant values as in the source; the ids and times it draws at random are fixed here
    /// (call id `rand_hex(6)`, interaction key `rand_hex(4)`, interaction time in May 2024).
    fn pqc_cdr() -> Value {
        json!({
            "_id": "202405-5a1c0e9b7d24",
            "call_id": "5a1c0e9b7d24",
            "interaction_id": "63882853200-9f3e51c2",
            "interaction_key": "9f3e51c2",
            "interaction_time": 63_882_853_200_i64,
            "custom_channel_vars": {"owner_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9"},
            "call_direction": "inbound",
            "request": "2600@hertz.com",
            "to": "capt@crunch.com",
            "from": "cereal@killer.com",
            "ringing_seconds": 3,
            "billing_seconds": 6,
            "duration_seconds": 9,
            "timestamp": 63_882_853_200_i64,
            "pvt_type": "cdr",
            "pvt_account_id": "3b8a2f0c4d5e6f708192a3b4c5d6e7f8",
            "pvt_account_db": "account%2F3b%2F8a%2F2f0c4d5e6f708192a3b4c5d6e7f8-202405",
            "pvt_created": 63_882_853_200_i64,
            "pvt_modified": 63_882_853_200_i64
        })
    }

    fn unix_us(gregorian: i64) -> i64 {
        (gregorian - crate::source::GREGORIAN_UNIX_OFFSET_SECS) * 1_000_000
    }

    #[test]
    fn kazoo_documents_read_as_destroy_events() {
        let fixture: Value = serde_json::from_str(KAZOO_FIXTURE_CDR).unwrap();
        let e = leg_event(&fixture).unwrap();
        assert_eq!(e.kind, EventKind::Destroy);
        assert!(e.from_cdr);
        assert_eq!(e.call_id, "ZjM1ODg3NTNhNTI4NmM5ZTA3MmFjZWYzMWJmZGNkZjc");
        assert_eq!(
            e.account_id.as_deref(),
            Some("7f89565344e3e6302df60168420e9265")
        );
        // No `timestamp`: the end is when Kazoo wrote the document.
        assert_eq!(e.time.map(StreamTime::as_us), Some(unix_us(63_542_353_959)));
        assert_eq!(e.direction, Some(Direction::Inbound));
        assert_eq!(e.request_user.as_deref(), Some("*97"));
        assert_eq!(
            e.ccv.owner_id.as_deref(),
            Some("c119a4487f26920476ad6dec74471768")
        );
        assert_eq!(e.ccv.authorizing_type.as_deref(), Some("device"));
        assert_eq!((e.duration_seconds, e.billing_seconds), (None, None));
        assert_eq!(e.ccv.interaction_id, None);

        let pqc = pqc_cdr();
        let e = leg_event(&pqc).unwrap();
        assert_eq!(e.call_id, "5a1c0e9b7d24");
        // No CCV account_id: `pvt_account_id`.
        assert_eq!(
            e.account_id.as_deref(),
            Some("3b8a2f0c4d5e6f708192a3b4c5d6e7f8")
        );
        assert_eq!(
            e.ccv.interaction_id.as_deref(),
            Some("63882853200-9f3e51c2")
        );
        assert_eq!(e.time.map(StreamTime::as_us), Some(unix_us(63_882_853_200)));
        assert_eq!((e.duration_seconds, e.billing_seconds), (Some(9), Some(6)));
        assert_eq!(e.request_user.as_deref(), Some("2600"));
        assert_eq!(
            e.ccv.owner_id.as_deref(),
            Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
        );
    }

    /// Kazoo's own CHANNEL_DESTROY (2600hz/kazoo `applications/blackhole/doc/README.md`, 4.3,
    /// commit 223893d0…, as committed in `fixtures/capture_bh_readme_star97_destroy_only.jsonl`),
    /// stored the way `cdr_channel_destroy.erl` stores it, reads back as the event the live
    /// frame gives, but for the CDR flag and the interaction id the `cdr` app made up for it.
    #[test]
    #[cfg(feature = "sim")]
    fn a_stored_kazoo_destroy_reads_back_as_the_live_event() {
        let line = include_str!("../../fixtures/capture_bh_readme_star97_destroy_only.jsonl")
            .lines()
            .find(|l| l.contains("CHANNEL_DESTROY"))
            .unwrap();
        let crate::source::Frame::Event(live) = crate::source::decode_frame(line).unwrap() else {
            panic!("event expected")
        };
        let doc = crate::sim::cdrs::document(line, live.time.unwrap().as_us()).unwrap();
        assert_eq!(doc["_id"], "201510-at6dmu4ffk97vnlp6qfq");
        let mut stored = leg_event(&doc).unwrap();
        assert!(stored.from_cdr);
        assert_eq!(
            stored.ccv.interaction_id.as_deref(),
            doc["interaction_id"].as_str()
        );
        stored.from_cdr = false;
        stored.ccv.interaction_id = None;
        assert_eq!(stored, *live);
    }

    #[test]
    fn unusable_documents_are_refused_with_a_reason() {
        let fixture: Value = serde_json::from_str(KAZOO_FIXTURE_CDR).unwrap();
        let without = |keys: &[&str]| {
            let mut d = fixture.clone();
            for k in keys {
                d.as_object_mut().unwrap().remove(*k);
            }
            d
        };
        let mut bad_ccvs = fixture.clone();
        bad_ccvs["custom_channel_vars"] = json!("account_id=x");
        let mut device = fixture.clone();
        device["pvt_type"] = json!("device");
        let cases = [
            (json!([fixture.clone()]), "not_an_object"),
            (device, "not_a_cdr"),
            (without(&["call_id"]), "missing_call_id"),
            (without(&["pvt_created"]), "missing_time"),
            (bad_ccvs, "malformed"),
        ];
        for (doc, reason) in cases {
            let e = leg_event(&doc).unwrap_err();
            assert_eq!(e.reason(), reason, "{e}");
        }
        // An implausible `timestamp` falls back to `pvt_created`, like a missing one.
        let mut d = pqc_cdr();
        d["timestamp"] = json!(12);
        assert_eq!(
            leg_event(&d).unwrap().time.map(StreamTime::as_us),
            Some(unix_us(63_882_853_200))
        );
    }
}

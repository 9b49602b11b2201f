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

use super::event::{event_time_us, from_data, CallEvent, EventKind};
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
    if event_time_us(numeric_msg, data.timestamp).is_none() {
        data.timestamp = obj.get("pvt_created").and_then(lenient_i64);
        if event_time_us(numeric_msg, data.timestamp).is_none() {
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

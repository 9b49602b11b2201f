//! The leg CDR documents Kazoo's `cdr` app would store for a stream of call events.
//!
//! This follows Kazoo 4.3's source, not postcall's assembler: `applications/cdr/src/
//! cdr_channel_destroy.erl` (`handle_req/2`, `prepare_and_save/3` and its routines),
//! `cdr_util.erl` (`get_cdr_doc_id/2`, `save_cdr/2`), `kzd_cdrs:create_doc_id/3` and
//! `kz_doc:update_pvt_parameters/3` (2600hz/kazoo, branch 4.3, commit
//! 223893d0ba0268b87451f2ff1d803614999a03eb). The input is the `data` of each
//! `CHANNEL_DESTROY` frame, which is the normalised AMQP event the `cdr` app receives.
//!
//! Per DESTROY, in Kazoo's order:
//! 1. skipped when `application_name` is `milliwatt` (the default `ignore_apps`), or when the
//!    leg is a loopback half that bowed out (`channel_is_loopback`, `channel_loopback_bowout`
//!    and `channel_loopback_bowout_execute` true, and a `NORMAL…` or no hangup cause or a leg
//!    other than `B`), or when the CCVs carry no `account_id` (the anonymous CDR database is
//!    not written by default, `store_anonymous` false);
//! 2. private CCVs (`_…`, `pvt_…`) move to the top level;
//! 3. `recording_url`, `call_priority`, `e164_destination` leave the CCVs for the top level,
//!    and `is_conference` too when true;
//! 4. the CCV `call_interaction_id` is removed and becomes `interaction_id`, `interaction_key`
//!    (after the `-`) and `interaction_time` (the 11 digits before it); `_id` is
//!    `YYYYMM-<call_id>` from the interaction time;
//! 5. `pvt_type` `cdr`, `pvt_vsn` 2, `pvt_account_id`, `pvt_account_db` (the MODB of the
//!    interaction time), `pvt_created` and `pvt_modified` (when the `cdr` app handled the event:
//!    here the frame's send time);
//! 6. a second DESTROY of the same leg hits a conflict on `_id` and is dropped.
//!
//! Two deliberate differences: a DESTROY without a `call_interaction_id` gets
//! `<its timestamp>-<8 hex from the call id>` where Kazoo uses the clock and random hex
//! (`CALL_INTERACTION_DEFAULT`), so output stays deterministic; and `pvt_node` and
//! `pvt_document_hash` (Erlang node name, CouchDB bookkeeping) are not written.

use serde_json::{Map, Value};

use super::SimFrame;
use crate::source::{fnv1a, GREGORIAN_UNIX_OFFSET_SECS};

/// Why the `cdr` app stores no document for a DESTROY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Not a `CHANNEL_DESTROY` frame.
    NotDestroy,
    /// `application_name` is `milliwatt`.
    Milliwatt,
    /// A loopback half that bowed out.
    LoopbackBowout,
    /// No `account_id` CCV: Kazoo would write the anonymous CDR database, off by default.
    NoAccount,
    /// The frame is not JSON or has no `call_id`/`timestamp`.
    Unreadable,
}

/// The documents Kazoo stores for `frames` (any Blackhole stream: scenarios, mixes, captures),
/// in the order they are written: one per leg, from its first `CHANNEL_DESTROY`.
pub fn documents(frames: &[SimFrame]) -> Vec<Value> {
    stored(frames.iter().map(|f| (f.text.as_str(), f.time_us)))
}

/// The documents Kazoo stores for the mix `spec`: its calls as they happened in the PBX, so a
/// DESTROY that a fault call's stream loses still has its CDR. Frames are generated and
/// dropped one at a time; only the documents are kept.
pub fn mix_documents(spec: super::MixSpec) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    super::mix::Mix::undamaged(spec)
        .filter_map(|f| document(&f.text, f.time_us).ok())
        .filter(|d| seen.insert(conflict_key(d)))
        .collect()
}

fn stored<'a>(frames: impl Iterator<Item = (&'a str, i64)>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    frames
        .filter_map(|(text, t)| document(text, t).ok())
        .filter(|d| seen.insert(conflict_key(d)))
        .collect()
}

/// What a second save of the same leg conflicts on: the document id in the account's MODB.
fn conflict_key(d: &Value) -> (Option<String>, Option<String>) {
    (
        d["pvt_account_db"].as_str().map(str::to_owned),
        d["_id"].as_str().map(str::to_owned),
    )
}

/// The document stored for one frame handled by the `cdr` app at `written_us` (unix µs).
///
/// # Errors
/// [`NotStored`] when Kazoo stores nothing for it.
pub fn document(frame_text: &str, written_us: i64) -> Result<Value, NotStored> {
    let frame: Value = serde_json::from_str(frame_text).map_err(|_| NotStored::Unreadable)?;
    let Some(Value::Object(mut d)) = frame.get("data").cloned() else {
        return Err(NotStored::Unreadable);
    };
    if d.get("event_name").and_then(Value::as_str) != Some("CHANNEL_DESTROY") {
        return Err(NotStored::NotDestroy);
    }
    if d.get("application_name").and_then(Value::as_str) == Some("milliwatt") {
        return Err(NotStored::Milliwatt);
    }
    if bowed_out(&d) {
        return Err(NotStored::LoopbackBowout);
    }
    let mut ccvs = match d.remove("custom_channel_vars") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let account_id = ccvs
        .get("account_id")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .ok_or(NotStored::NoAccount)?;
    let call_id = d
        .get("call_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(NotStored::Unreadable)?;
    let timestamp = d
        .get("timestamp")
        .and_then(|t| t.as_i64().or_else(|| t.as_str()?.parse().ok()))
        .ok_or(NotStored::Unreadable)?;
    // update_ccvs: private keys to the top level.
    let private: Vec<String> = ccvs
        .keys()
        .filter(|k| k.starts_with('_') || k.starts_with("pvt_"))
        .cloned()
        .collect();
    for k in private {
        if let Some(v) = ccvs.remove(&k) {
            d.insert(k, v);
        }
    }
    // maybe_leak_ccv: recording_url, call_priority, e164_destination; is_conference if true.
    for k in ["recording_url", "call_priority", "e164_destination"] {
        if let Some(v) = ccvs.remove(k) {
            d.insert(k.to_owned(), v);
        }
    }
    if ccvs.get("is_conference").is_some_and(is_true) {
        d.insert("is_conference".into(), Value::Bool(true));
        ccvs.remove("is_conference");
    }
    // set_interaction.
    let interaction = ccvs
        .remove("call_interaction_id")
        .and_then(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| format!("{}-{:08x}", timestamp, fnv1a(call_id.as_bytes()) as u32));
    let (time, key) = interaction
        .split_at_checked(11)
        .filter(|(t, rest)| t.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('-'))
        .map(|(t, rest)| (t.parse::<i64>().unwrap_or(timestamp), rest[1..].to_owned()))
        .unwrap_or((timestamp, String::new()));
    let yyyymm = year_month(time).ok_or(NotStored::Unreadable)?;
    let created = written_us.div_euclid(1_000_000) + GREGORIAN_UNIX_OFFSET_SECS;
    d.insert("custom_channel_vars".into(), Value::Object(ccvs));
    d.insert("_id".into(), Value::String(format!("{yyyymm}-{call_id}")));
    d.insert("interaction_time".into(), Value::from(time));
    d.insert("interaction_key".into(), Value::String(key));
    d.insert("interaction_id".into(), Value::String(interaction));
    d.insert("pvt_type".into(), Value::from("cdr"));
    d.insert("pvt_vsn".into(), Value::from(2));
    d.insert(
        "pvt_account_db".into(),
        Value::String(modb(&account_id, &yyyymm)),
    );
    d.insert("pvt_account_id".into(), Value::String(account_id));
    d.insert("pvt_created".into(), Value::from(created));
    d.insert("pvt_modified".into(), Value::from(created));
    Ok(Value::Object(d))
}

fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `cdr_channel_destroy:maybe_ignore_loopback/1` (with `ignore_loopback_bowout` at its
/// default, true).
fn bowed_out(d: &Map<String, Value>) -> bool {
    let flag = |k: &str| d.get(k).is_some_and(is_true);
    let normal = match d.get("hangup_cause").and_then(Value::as_str) {
        None => true,
        Some(c) => c.starts_with("NORMAL"),
    };
    flag("channel_is_loopback")
        && flag("channel_loopback_bowout")
        && flag("channel_loopback_bowout_execute")
        && (normal || d.get("channel_loopback_leg").and_then(Value::as_str) != Some("B"))
}

/// `YYYYMM` of a Gregorian-seconds time (`calendar:gregorian_seconds_to_datetime/1`).
pub fn year_month(gregorian_secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(gregorian_secs.checked_sub(GREGORIAN_UNIX_OFFSET_SECS)?, 0)
        .map(|t| t.format("%Y%m").to_string())
}

/// `kz_util:format_account_id(AccountId, Timestamp)`: `account%2Fab%2Fcd%2Frest-YYYYMM`.
fn modb(account_id: &str, yyyymm: &str) -> String {
    if account_id.len() < 5 || !account_id.is_ascii() {
        return format!("{account_id}-{yyyymm}");
    }
    format!(
        "account%2F{}%2F{}%2F{}-{yyyymm}",
        &account_id[..2],
        &account_id[2..4],
        &account_id[4..]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "4b8c6fec4b2597882c0390202d195419";

    /// A Blackhole CHANNEL_DESTROY frame around `data` (merged into a minimal event).
    fn destroy(extra: Value) -> String {
        let mut data = json!({
            "event_name": "CHANNEL_DESTROY",
            "call_id": "leg-1",
            "msg_id": "1714521590000000",
            "timestamp": 63_881_740_790_i64,
            "hangup_cause": "NORMAL_CLEARING",
            "billing_seconds": 20,
            "duration_seconds": 30,
            "custom_channel_vars": {
                "account_id": ACCOUNT,
                "call_interaction_id": "63881740760-1a2b3c4d",
                "e164_destination": "+15551230000",
                "pvt_secret": "moved",
                "owner_id": "u1"
            }
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                data.as_object_mut().unwrap().remove(k);
            } else {
                data[k] = v.clone();
            }
        }
        json!({"action": "event", "name": "CHANNEL_DESTROY", "data": data}).to_string()
    }

    #[test]
    fn a_destroy_is_stored_as_cdr_channel_destroy_stores_it() {
        // 2024-04-30T23:59:20Z interaction, DESTROY at 2024-04-30T23:59:50Z, written 2 s later.
        let written = 1_714_521_592_000_000;
        let d = document(&destroy(json!({})), written).unwrap();
        assert_eq!(d["_id"], "202404-leg-1");
        assert_eq!(d["interaction_id"], "63881740760-1a2b3c4d");
        assert_eq!(d["interaction_key"], "1a2b3c4d");
        assert_eq!(d["interaction_time"], 63_881_740_760_i64);
        assert_eq!(d["custom_channel_vars"].get("call_interaction_id"), None);
        assert_eq!(d["e164_destination"], "+15551230000");
        assert_eq!(d["custom_channel_vars"].get("e164_destination"), None);
        assert_eq!(d["pvt_secret"], "moved");
        assert_eq!(d["custom_channel_vars"]["owner_id"], "u1");
        assert_eq!(d["custom_channel_vars"]["account_id"], ACCOUNT);
        assert_eq!(d["pvt_type"], "cdr");
        assert_eq!(d["pvt_account_id"], ACCOUNT);
        assert_eq!(
            d["pvt_account_db"],
            "account%2F4b%2F8c%2F6fec4b2597882c0390202d195419-202404"
        );
        assert_eq!(d["pvt_created"], 63_881_740_792_i64);
        // The event's own fields are kept as they were.
        assert_eq!(
            (d["billing_seconds"].clone(), d["duration_seconds"].clone()),
            (json!(20), json!(30))
        );
        assert_eq!(d["msg_id"], "1714521590000000");
    }

    /// `_id` and MODB follow the interaction time, not the DESTROY's (the month-boundary
    /// caveat `cdr_channel_destroy:prepare_and_save/3` documents).
    #[test]
    fn the_month_comes_from_the_interaction_time() {
        let may = json!({"timestamp": 63_881_740_900_i64});
        let d = document(&destroy(may), 1_714_521_700_000_000).unwrap();
        assert_eq!(d["_id"], "202404-leg-1");
        // Without an interaction id, Kazoo makes one up at write time.
        let mut no_interaction = serde_json::from_str::<Value>(&destroy(json!({}))).unwrap();
        no_interaction["data"]["custom_channel_vars"]
            .as_object_mut()
            .unwrap()
            .remove("call_interaction_id");
        let d = document(&no_interaction.to_string(), 1_714_521_592_000_000).unwrap();
        assert!(d["interaction_id"]
            .as_str()
            .unwrap()
            .starts_with("63881740790-"));
        assert_eq!(d["interaction_time"], 63_881_740_790_i64);
    }

    #[test]
    fn what_kazoo_does_not_store_is_skipped() {
        let bowout = json!({
            "channel_is_loopback": true, "channel_loopback_bowout": "true",
            "channel_loopback_bowout_execute": true, "channel_loopback_leg": "A"
        });
        let mut b_leg_failed = bowout.clone();
        b_leg_failed["channel_loopback_leg"] = json!("B");
        b_leg_failed["hangup_cause"] = json!("ORIGINATOR_CANCEL");
        let mut no_account = serde_json::from_str::<Value>(&destroy(json!({}))).unwrap();
        no_account["data"]["custom_channel_vars"]
            .as_object_mut()
            .unwrap()
            .remove("account_id");
        let t = 1_714_521_592_000_000;
        assert_eq!(
            document(&destroy(json!({"application_name": "milliwatt"})), t),
            Err(NotStored::Milliwatt)
        );
        assert_eq!(
            document(&destroy(bowout), t),
            Err(NotStored::LoopbackBowout)
        );
        assert!(document(&destroy(b_leg_failed), t).is_ok());
        assert_eq!(
            document(&no_account.to_string(), t),
            Err(NotStored::NoAccount)
        );
        assert_eq!(
            document(&destroy(json!({"event_name": "CHANNEL_ANSWER"})), t),
            Err(NotStored::NotDestroy)
        );
        assert_eq!(
            document(&destroy(json!({"timestamp": null})), t),
            Err(NotStored::Unreadable)
        );
    }

    #[test]
    fn a_second_destroy_of_a_leg_is_a_conflict() {
        let first = SimFrame {
            time_us: 1,
            text: destroy(json!({})),
        };
        let second = SimFrame {
            time_us: 2,
            text: destroy(json!({"hangup_cause": "LATER"})),
        };
        let other = SimFrame {
            time_us: 3,
            text: destroy(json!({"call_id": "leg-2"})),
        };
        let docs = documents(&[first, second, other]);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["hangup_cause"], "NORMAL_CLEARING");
        assert_eq!(docs[1]["_id"], "202404-leg-2");
    }
}

//! `postcall schema`: the JSON Schema (draft 2020-12) of the webhook payload, paste-able into
//! Azure Logic Apps' "When a HTTP request is received" or a Zapier/CRM mapping.
//!
//! The CDR's properties are derived from the [`Cdr`] type itself — every field filled in,
//! serialised, each value's JSON type read back — so the schema cannot drift from what is
//! sent; `required` lists the fields a CDR always carries. Descriptions follow the product page.

use serde_json::{json, Map, Value};

use crate::cdr::{CallType, Cdr, Direction, DirectoryMatch, Party};

/// Product-page description of each CDR field.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "id",
        "Session id: stable for the call, across replays and re-sends.",
    ),
    ("dType", "CDR record type: \"CloudSessionCdr\"."),
    ("sVer", "CDR version: 1."),
    (
        "pbxId",
        "Id of the communications platform the CDR is from.",
    ),
    ("pbxName", "Configured name of the communications platform."),
    ("tz", "TZ identifier of the call times."),
    (
        "start",
        "Start of the call session (RFC 3339 with the tz offset).",
    ),
    ("answer", "When the call was first answered."),
    ("end", "End of the call session."),
    ("dur", "Duration in seconds."),
    ("ring", "Ring time in seconds."),
    ("talk", "Talk time in seconds."),
    ("hold", "Hold time in seconds."),
    ("park", "Park time in seconds."),
    (
        "lost",
        "The caller gave up after ringing longer than the short-ring threshold: 1/0.",
    ),
    ("lostinPark", "The caller hung up while parked: 1/0."),
    (
        "aban",
        "The caller gave up within the short-ring threshold: 1/0.",
    ),
    ("ans", "The call was answered: 1/0."),
    (
        "short",
        "Answered with talk + hold under the short-call threshold: 1/0.",
    ),
    ("cause", "Clear-down cause."),
    (
        "dir",
        "Direction: 0 unknown, 1 internal, 2 incoming, 3 outgoing, 4 both (trunk to trunk).",
    ),
    ("type", "Type: 0 unknown, 1 internal, 2 external."),
    ("t2t", "Trunk-to-trunk call: 1/0."),
    (
        "cliNum",
        "Caller id number (E.164 when it is a public number).",
    ),
    ("cliName", "Caller name."),
    ("cliLoc", "Caller location."),
    ("cliArea", "Caller area code."),
    ("cliState", "Caller state (US only)."),
    ("cliCtry", "Caller country."),
    ("ddiNum", "Dialled number (DID) in E.164."),
    ("ddiName", "DID name."),
    ("rteID", "Prefix added to the caller id number by routing."),
    ("rteName", "Prefix added to the caller name by routing."),
    ("fRngGroupName", "First rang group name."),
    ("lRngGroupName", "Last rang group name."),
    ("ansGroupName", "Answering group name."),
    ("hasRec", "The call was recorded: 1/0."),
    ("rate", "A rate was applied: 1/0."),
    ("rateCost", "Cost of the call."),
    ("rateBand", "Band of the rate."),
    ("rateName", "Name of the rate."),
    ("recordingIds", "Ids of the call's recordings."),
    (
        "directoryMatches",
        "Contacts matched to the caller, strongest match first.",
    ),
    (
        "tags",
        "Key/value tags of the call (callflow variables and system tags).",
    ),
];

const ROLES: [(&str, &str); 4] = [
    ("fRng", "First rang"),
    ("lRng", "Last rang"),
    ("ans", "Answering"),
    ("lAns", "Last answering"),
];

fn party_description(key: &str) -> Option<String> {
    let (prefix, role) = ROLES.iter().find(|(p, _)| {
        key.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    })?;
    let rest = &key[prefix.len()..];
    let what = match rest {
        "DevNum" => "device number (SIP username)",
        "DevName" => "device name",
        "UsrNum" => "user number (extension)",
        "UsrName" => "user name",
        "AgtNum" => "agent number",
        "AgtName" => "agent name",
        _ => return None,
    };
    Some(format!("{role} {what}."))
}

fn full_party() -> Party {
    let s = || Some("x".to_owned());
    Party {
        dev_num: s(),
        dev_name: s(),
        usr_num: s(),
        usr_name: s(),
        agt_num: s(),
        agt_name: s(),
    }
}

/// A CDR with every optional field filled (its serialisation has every key there is).
fn full_cdr() -> Cdr {
    let s = || Some("x".to_owned());
    Cdr {
        id: String::new(),
        d_type: String::new(),
        s_ver: 1,
        pbx_id: s(),
        pbx_name: s(),
        tz: String::new(),
        start: String::new(),
        answer: s(),
        end: String::new(),
        dur: 0,
        ring: 0,
        talk: 0,
        hold: 0,
        park: 0,
        lost: 0,
        lostin_park: 0,
        aban: 0,
        ans: 0,
        short: 0,
        cause: s(),
        dir: Direction::Unknown,
        call_type: CallType::Unknown,
        t2t: 0,
        cli_num: s(),
        cli_name: s(),
        cli_loc: s(),
        cli_area: s(),
        cli_state: s(),
        cli_ctry: s(),
        ddi_num: s(),
        ddi_name: s(),
        first_rang: full_party().into(),
        last_rang: full_party().into(),
        answering: full_party().into(),
        last_answering: full_party().into(),
        rte_id: s(),
        rte_name: s(),
        f_rng_group_name: s(),
        l_rng_group_name: s(),
        ans_group_name: s(),
        has_rec: 0,
        rate: 0,
        rate_cost: Some(0.5),
        rate_band: s(),
        rate_name: s(),
        recording_ids: Vec::new(),
        directory_matches: Vec::new(),
        tags: Default::default(),
    }
}

/// A CDR with every optional field empty (its serialisation has exactly the required keys).
fn bare_cdr() -> Cdr {
    let mut c = full_cdr();
    let none = Party::default;
    c.pbx_id = None;
    c.pbx_name = None;
    c.answer = None;
    c.cause = None;
    for f in [
        &mut c.cli_num,
        &mut c.cli_name,
        &mut c.cli_loc,
        &mut c.cli_area,
        &mut c.cli_state,
        &mut c.cli_ctry,
        &mut c.ddi_num,
        &mut c.ddi_name,
        &mut c.rte_id,
        &mut c.rte_name,
        &mut c.f_rng_group_name,
        &mut c.l_rng_group_name,
        &mut c.ans_group_name,
        &mut c.rate_band,
        &mut c.rate_name,
    ] {
        *f = None;
    }
    c.rate_cost = None;
    c.first_rang = none().into();
    c.last_rang = none().into();
    c.answering = none().into();
    c.last_answering = none().into();
    c
}

fn property(key: &str, sample: &Value) -> Value {
    let description = DESCRIPTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, d)| (*d).to_owned())
        .or_else(|| party_description(key))
        .unwrap_or_default();
    let mut p = match (key, sample) {
        ("dir", _) => {
            json!({"type": "integer", "enum": Direction::ALL.iter().map(|d| d.code()).collect::<Vec<_>>()})
        }
        ("type", _) => {
            json!({"type": "integer", "enum": CallType::ALL.iter().map(|t| t.code()).collect::<Vec<_>>()})
        }
        ("lost" | "lostinPark" | "aban" | "ans" | "short" | "t2t" | "hasRec" | "rate", _) => {
            json!({"type": "integer", "enum": [0, 1]})
        }
        ("start" | "answer" | "end", _) => json!({"type": "string", "format": "date-time"}),
        ("recordingIds", _) => json!({"type": "array", "items": {"type": "string"}}),
        ("directoryMatches", _) => {
            json!({"type": "array", "items": {"$ref": "#/$defs/directoryMatch"}})
        }
        ("tags", _) => json!({"type": "object", "additionalProperties": {"type": "string"}}),
        (_, Value::String(_)) => json!({"type": "string"}),
        (_, Value::Number(n)) if n.is_f64() => json!({"type": "number"}),
        (_, Value::Number(_)) => json!({"type": "integer", "minimum": 0}),
        _ => json!({}),
    };
    p["description"] = Value::String(description);
    p
}

/// The CDR object's schema.
pub fn cdr_schema() -> Value {
    let full = serde_json::to_value(full_cdr()).unwrap_or_default();
    let bare = serde_json::to_value(bare_cdr()).unwrap_or_default();
    let mut props = Map::new();
    if let Value::Object(m) = &full {
        for (k, v) in m {
            props.insert(k.clone(), property(k, v));
        }
    }
    let required: Vec<Value> = bare
        .as_object()
        .map(|m| m.keys().map(|k| Value::String(k.clone())).collect())
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// The whole payload's schema: `{triggerId, id, tenantId, cdr, customData}`.
pub fn payload_schema() -> Value {
    let m = DirectoryMatch {
        dir_name: String::new(),
        dir_id: String::new(),
        dir_type: String::new(),
        contact_id: String::new(),
        fields: Default::default(),
    };
    let match_keys: Vec<String> = serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    let mut match_props = Map::new();
    for k in &match_keys {
        match_props.insert(
            k.clone(),
            if k == "fields" {
                json!({"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Contact fields: title, fullName, companyName, jobTitle, phone1–phone4, email, crmId, field1–field10."})
            } else {
                json!({"type": "string"})
            },
        );
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "postcall webhook payload",
        "type": "object",
        "properties": {
            "triggerId": {"type": "string", "description": "Id of the trigger that fired."},
            "id": {"type": "string", "description": "Owning user id of the trigger, else the tenant id."},
            "tenantId": {"type": "string", "description": "Tenant (Kazoo account) id."},
            "cdr": {"$ref": "#/$defs/cdr"},
            "customData": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "The trigger's additional key/value data."},
        },
        "required": ["triggerId", "id", "tenantId", "cdr", "customData"],
        "additionalProperties": false,
        "$defs": {
            "cdr": cdr_schema(),
            "directoryMatch": {
                "type": "object",
                "properties": match_props,
                "required": match_keys,
                "additionalProperties": false,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_is_described_and_typed() {
        let s = cdr_schema();
        let props = s["properties"].as_object().unwrap();
        assert!(props.len() > 60, "{}", props.len());
        for (k, p) in props {
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{k} undocumented"
            );
            assert!(p.get("type").is_some(), "{k} untyped");
        }
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for k in [
            "id",
            "dType",
            "dur",
            "lost",
            "dir",
            "type",
            "recordingIds",
            "tags",
        ] {
            assert!(required.contains(&k), "{k}");
        }
        for k in ["answer", "cliNum", "ansDevName", "rateCost"] {
            assert!(!required.contains(&k), "{k}");
        }
    }
}

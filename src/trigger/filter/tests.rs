//! Filter semantics as tables: (field, op, value, expected) against fixed CDRs.

use serde_json::{json, Value};

use super::*;

/// An external incoming call, answered, with tags, a recording and a directory match. Every
/// optional field is set, so the accessor table can be checked against the serde names.
pub(crate) fn full_cdr() -> Cdr {
    let mut v = json!({
        "id": "5f0c8a4e-1111-4222-8333-444455556666",
        "dType": "CloudSessionCdr", "sVer": 1,
        "pbxId": "pbx-1", "pbxName": "Kazoo prod", "tz": "Europe/London",
        "start": "2024-05-29T09:37:35+01:00", "answer": "2024-05-29T09:37:40+01:00",
        "end": "2024-05-29T09:38:45+01:00",
        "dur": 70, "ring": 5, "talk": 60, "hold": 5, "park": 0,
        "lost": 0, "lostinPark": 0, "aban": 0, "ans": 1, "short": 0,
        "cause": "NORMAL_CLEARING", "dir": 2, "type": 2, "t2t": 0
    });
    let more = json!({
        "cliNum": "+447000000001", "cliName": "ACME Ltd", "cliLoc": "United Kingdom",
        "cliArea": "7000", "cliState": "NA", "cliCtry": "GB",
        "ddiNum": "+441610000000", "ddiName": "Sales line",
        "rteID": "9", "rteName": "Sales:",
        "fRngGroupName": "Sales", "lRngGroupName": "Sales", "ansGroupName": "Sales",
        "hasRec": 1, "rate": 1, "rateCost": 0.25, "rateBand": "UK mobile", "rateName": "GB-MOB",
        "recordingIds": ["rec-1", "rec-2"],
        "directoryMatches": [{"dirName": "My Global", "dirId": "dir-1",
            "dirType": "DirectoryContactMatch", "contactId": "c-1",
            "fields": {"fullName": "Jane Roe", "companyName": "ACME"}}],
        "tags": {"Support": "step1", "voicemail": "1"}
    });
    for (k, x) in more.as_object().unwrap() {
        v[k] = x.clone();
    }
    for (i, role) in ["fRng", "lRng", "ans", "lAns"].iter().enumerate() {
        for (j, part) in [
            "DevNum", "DevName", "UsrNum", "UsrName", "AgtNum", "AgtName",
        ]
        .iter()
        .enumerate()
        {
            v[format!("{role}{part}")] = json!(format!("{role}-{part}-{i}{j}"));
        }
    }
    serde_json::from_value(v).unwrap()
}

/// An internal call, unanswered, with nothing optional set.
fn bare_cdr() -> Cdr {
    serde_json::from_value(json!({
        "id": "00000000-0000-0000-0000-000000000001", "dType": "CloudSessionCdr", "sVer": 1,
        "tz": "UTC", "start": "2024-01-01T00:00:00+00:00", "end": "2024-01-01T00:00:09+00:00",
        "dur": 9, "ring": 9, "talk": 0, "hold": 0, "park": 0, "lost": 0, "lostinPark": 0,
        "aban": 0, "ans": 0, "short": 0, "dir": 1, "type": 1, "t2t": 0, "hasRec": 0, "rate": 0,
        "recordingIds": [], "directoryMatches": [], "tags": {}
    }))
    .unwrap()
}

fn eval(cdr: &Cdr, field: &str, op: &str, value: Option<Value>) -> bool {
    let op = Op::parse(op).unwrap_or_else(|| panic!("op {op}"));
    Filter::compile(field, op, value.as_ref())
        .unwrap_or_else(|e| panic!("{field} {op:?} {value:?}: {e}"))
        .matches(cdr)
}

#[test]
fn semantics_table() {
    let full = full_cdr();
    let bare = bare_cdr();
    // (field, op, value, on full, on bare)
    let table: Vec<(&str, &str, Option<Value>, bool, bool)> = vec![
        // enum names and codes
        ("type", "eq", Some(json!("External")), true, false),
        ("type", "eq", Some(json!("internal")), false, true),
        ("type", "eq", Some(json!(2)), true, false),
        ("type", "ne", Some(json!("External")), false, true),
        ("dir", "eq", Some(json!("Incoming")), true, false),
        ("dir", "eq", Some(json!("Both")), false, false),
        ("dir", "in", Some(json!(["Incoming", "Both"])), true, false),
        (
            "dir",
            "not_in",
            Some(json!(["Incoming", "Both"])),
            false,
            true,
        ),
        ("dir", "eq", Some(json!("Internal")), false, true),
        ("dir", "ge", Some(json!(2)), true, false),
        // flags: numbers or booleans
        ("ans", "eq", Some(json!(true)), true, false),
        ("ans", "eq", Some(json!(0)), false, true),
        ("hasRec", "ne", Some(json!(false)), true, false),
        // numbers
        ("dur", "gt", Some(json!(60)), true, false),
        ("dur", "gt", Some(json!(70)), false, false),
        ("dur", "ge", Some(json!(70)), true, false),
        ("ring", "lt", Some(json!(9)), true, false),
        ("ring", "le", Some(json!(9)), true, true),
        ("talk", "in", Some(json!([0, 60])), true, true),
        ("rateCost", "gt", Some(json!(0.2)), true, false),
        ("rateCost", "ne", Some(json!(0.25)), false, true),
        ("rateCost", "exists", None, true, false),
        ("rateCost", "exists", Some(json!(false)), false, true),
        // text
        ("ddiNum", "eq", Some(json!("+441610000000")), true, false),
        ("ddiNum", "ne", Some(json!("+441610000000")), false, true),
        ("cliNum", "starts_with", Some(json!("+44")), true, false),
        ("cliNum", "ends_with", Some(json!("0001")), true, false),
        ("cliName", "contains", Some(json!("ACME")), true, false),
        ("cliName", "contains", Some(json!("acme")), false, false),
        ("cliName", "regex", Some(json!("(?i)^acme")), true, false),
        ("cliName", "regex", Some(json!("Ltd$")), true, false),
        (
            "cause",
            "in",
            Some(json!(["USER_BUSY", "NORMAL_CLEARING"])),
            true,
            false,
        ),
        ("cause", "not_in", Some(json!(["USER_BUSY"])), true, true),
        ("answer", "exists", None, true, false),
        ("answer", "exists", Some(json!(false)), false, true),
        ("id", "exists", None, true, true),
        ("clinum", "eq", Some(json!("+447000000001")), true, false),
        (
            "ansUsrName",
            "eq",
            Some(json!("ans-UsrName-23")),
            true,
            false,
        ),
        (
            "lRngDevName",
            "starts_with",
            Some(json!("lRng-")),
            true,
            false,
        ),
        // tags
        ("tags.Support", "eq", Some(json!("step1")), true, false),
        ("tags.support", "exists", None, false, false),
        ("tags.voicemail", "exists", None, true, false),
        ("tags.voicemail", "ne", Some(json!("1")), false, true),
        ("tags.voicemail", "exists", Some(json!(false)), false, true),
        ("tags", "exists", None, true, false),
        // lists: any element
        ("recordingIds", "eq", Some(json!("rec-2")), true, false),
        ("recordingIds", "ne", Some(json!("rec-2")), false, true),
        ("recordingIds", "exists", None, true, false),
        (
            "recordingIds",
            "starts_with",
            Some(json!("rec-")),
            true,
            false,
        ),
        ("directoryMatches", "exists", None, true, false),
        (
            "directoryMatches.dirName",
            "eq",
            Some(json!("My Global")),
            true,
            false,
        ),
        (
            "directoryMatches.companyName",
            "contains",
            Some(json!("AC")),
            true,
            false,
        ),
        (
            "directoryMatches.fields.fullName",
            "eq",
            Some(json!("Jane Roe")),
            true,
            false,
        ),
        ("directoryMatches.crmId", "exists", None, false, false),
    ];
    for (field, op, value, on_full, on_bare) in table {
        let desc = format!("{field} {op} {value:?}");
        assert_eq!(
            eval(&full, field, op, value.clone()),
            on_full,
            "full: {desc}"
        );
        assert_eq!(eval(&bare, field, op, value), on_bare, "bare: {desc}");
    }
}

#[test]
fn compile_errors_name_the_wrong_part() {
    // (field, op, value, part, message fragment)
    let table: Vec<(&str, Op, Option<Value>, FilterPart, &str)> = vec![
        (
            "cliNumber",
            Op::Eq,
            Some(json!("1")),
            FilterPart::Field,
            "unknown field",
        ),
        ("tags.", Op::Exists, None, FilterPart::Field, "tag name"),
        (
            "dir",
            Op::Eq,
            Some(json!("Inbound")),
            FilterPart::Value,
            "Incoming",
        ),
        (
            "type",
            Op::Eq,
            Some(json!("Both")),
            FilterPart::Value,
            "External",
        ),
        (
            "dur",
            Op::Contains,
            Some(json!("1")),
            FilterPart::Op,
            "text fields",
        ),
        (
            "cliNum",
            Op::Gt,
            Some(json!(1)),
            FilterPart::Op,
            "numeric fields",
        ),
        (
            "cliNum",
            Op::Eq,
            Some(json!(44)),
            FilterPart::Value,
            "expected a string",
        ),
        (
            "dur",
            Op::Eq,
            Some(json!("ten")),
            FilterPart::Value,
            "expected a number",
        ),
        (
            "dur",
            Op::Eq,
            Some(json!(true)),
            FilterPart::Value,
            "expected a number",
        ),
        ("cause", Op::In, Some(json!([])), FilterPart::Value, "empty"),
        (
            "cause",
            Op::In,
            Some(json!("X")),
            FilterPart::Value,
            "expected a list",
        ),
        (
            "cliName",
            Op::Regex,
            Some(json!("(")),
            FilterPart::Value,
            "invalid regex",
        ),
        ("cliName", Op::Eq, None, FilterPart::Value, "missing"),
        (
            "tags",
            Op::Eq,
            Some(json!("x")),
            FilterPart::Op,
            "only takes `exists`",
        ),
        (
            "answer",
            Op::Exists,
            Some(json!("yes")),
            FilterPart::Value,
            "true or false",
        ),
    ];
    for (field, op, value, part, fragment) in table {
        let e = Filter::compile(field, op, value.as_ref()).unwrap_err();
        assert_eq!(e.part, part, "{field} {op:?}: {e}");
        assert!(e.message.contains(fragment), "{field} {op:?}: {e}");
    }
}

/// The typed accessors agree with the CDR's serde form: every key the CDR serialises is a
/// filter field, and `eq` with the serialised value holds (and `ne` does not).
#[test]
fn every_serialised_field_is_filterable_and_reads_the_same_value() {
    let cdr = full_cdr();
    let Value::Object(map) = serde_json::to_value(&cdr).unwrap() else {
        panic!("object")
    };
    let names: Vec<&str> = field_names().collect();
    for (key, value) in &map {
        assert!(names.contains(&key.as_str()), "{key} is not a filter field");
        match value {
            Value::String(_) | Value::Number(_) => {
                assert!(
                    eval(&cdr, key, "eq", Some(value.clone())),
                    "{key} eq {value}"
                );
                assert!(
                    !eval(&cdr, key, "ne", Some(value.clone())),
                    "{key} ne {value}"
                );
            }
            Value::Array(items) => {
                if let Some(Value::String(first)) = items.first() {
                    assert!(eval(&cdr, key, "eq", Some(json!(first))), "{key}");
                }
                assert!(eval(&cdr, key, "exists", None), "{key}");
            }
            Value::Object(tags) => {
                for (k, v) in tags {
                    assert!(eval(&cdr, &format!("{key}.{k}"), "eq", Some(v.clone())));
                }
            }
            other => panic!("{key}: unexpected {other}"),
        }
    }
    // And every filter field is something the CDR can carry.
    for name in names {
        assert!(map.contains_key(name), "{name} is not a CDR field");
    }
}

#[test]
fn op_names_round_trip() {
    for (name, op) in Op::ALL {
        assert_eq!(Op::parse(name), Some(op));
        assert_eq!(op.name(), name);
    }
    assert_eq!(Op::parse("NOT_IN"), Some(Op::NotIn));
    assert_eq!(Op::parse("like"), None);
}

/// `actual` reads what the CDR serialises for every scalar field (and `null` for an omitted
/// one), so an explanation shows the value the receiver would see.
#[test]
fn actual_is_the_serialised_value() {
    let full = full_cdr();
    let bare = bare_cdr();
    for cdr in [&full, &bare] {
        let map = serde_json::to_value(cdr).unwrap();
        for name in field_names() {
            let f = Filter::compile(name, Op::Exists, None).unwrap();
            let want = match map.get(name) {
                None => Value::Null,
                Some(Value::Array(items)) if name == "directoryMatches" => {
                    items.iter().map(|m| m["dirId"].clone()).collect()
                }
                Some(Value::Object(tags)) => tags.keys().map(|k| json!(k)).collect(),
                Some(v) => v.clone(),
            };
            assert_eq!(f.actual(cdr), want, "{name}");
        }
    }
    let f = Filter::compile("directoryMatches.companyName", Op::Exists, None).unwrap();
    assert_eq!(f.actual(&full), json!(["ACME"]));
    let f = Filter::compile("tags.Support", Op::Exists, None).unwrap();
    assert_eq!(f.actual(&full), json!("step1"));
}

/// The first failing condition in the order written, with the CDR's value; names for
/// `dir`/`type` codes; `None` exactly when every condition holds (the same answer as
/// `matches`).
#[test]
fn first_failure_names_the_condition_and_the_cdrs_value() {
    let compile =
        |f: &str, op: &str, v: Value| Filter::compile(f, Op::parse(op).unwrap(), Some(&v)).unwrap();
    let filters = vec![
        compile("type", "eq", json!("External")),
        compile("ans", "eq", json!(0)),
        compile("cliCtry", "eq", json!("GB")),
    ];
    let full = full_cdr();
    let fail = first_failure(&filters, &full).expect("answered, so ans eq 0 fails");
    assert_eq!(fail.filter.field_name(), "ans");
    assert_eq!(fail.actual, json!(1));
    assert_eq!(fail.to_string(), "ans eq 0 — the CDR has 1");
    let bare = bare_cdr();
    let fail = first_failure(&filters, &bare).unwrap();
    assert_eq!(
        fail.to_string(),
        "type eq \"External\" — the CDR has 1 (Internal)"
    );
    let absent = [compile("cliCtry", "eq", json!("GB"))];
    assert_eq!(
        first_failure(&absent, &bare).unwrap().to_string(),
        "cliCtry eq \"GB\" — the CDR has absent"
    );
    let holds = [
        compile("dir", "in", json!(["Incoming", "Both"])),
        compile("cliCtry", "eq", json!("GB")),
    ];
    assert!(first_failure(&holds, &full).is_none());
    for cdr in [&full, &bare] {
        for fs in [&filters[..], &absent[..], &holds[..]] {
            assert_eq!(
                first_failure(fs, cdr).is_none(),
                fs.iter().all(|f| f.matches(cdr))
            );
        }
    }
}

/// The console's filter builder offers what the validator accepts: numeric fields take the
/// comparisons, text fields the text operators, `tags`/`directoryMatches` only `exists`, and
/// the code fields their names (PRODUCT.md §4, the seed's `dir` and `type` codes).
#[test]
fn catalog_is_what_the_validator_accepts() {
    let cat = super::catalog();
    let get = |n: &str| {
        cat.iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let all: Vec<&str> = Op::ALL.iter().map(|(n, _)| *n).collect();
    let numeric = ["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "exists"];
    let text = [
        "eq",
        "ne",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "ends_with",
        "exists",
        "regex",
    ];
    assert_eq!(get("dir").ops, numeric);
    assert_eq!(
        get("dir").names,
        ["Unknown", "Internal", "Incoming", "Outgoing", "Both"]
    );
    assert_eq!(get("type").names, ["Unknown", "Internal", "External"]);
    assert_eq!(get("talk").ops, numeric);
    assert!(get("talk").names.is_empty());
    assert_eq!(get("cliNum").ops, text);
    assert_eq!(get("tags.<key>").ops, text);
    assert_eq!(get("directoryMatches.<key>").ops, text);
    assert_eq!(get("tags").ops, ["exists"]);
    assert_eq!(get("recordingIds").ops, text);
    // Every field the validator names is in the catalog, and no operator outside Op::ALL.
    for n in super::field_names() {
        assert!(cat.iter().any(|f| f.name == n), "{n}");
    }
    assert!(cat.iter().all(|f| f.ops.iter().all(|o| all.contains(o))));
    // And each offered (field, operator) compiles with a value of the field's kind, while an
    // operator left out is refused by the validator.
    for f in &cat {
        let probe = f.name.replace("<key>", "dirName");
        for (name, op) in Op::ALL {
            let v = match (op, f.kind) {
                (Op::Exists, _) => serde_json::json!(true),
                (
                    Op::In | Op::NotIn,
                    super::FieldKind::Number | super::FieldKind::Flag | super::FieldKind::Code,
                ) => serde_json::json!([1]),
                (Op::In | Op::NotIn, _) => serde_json::json!(["x"]),
                (_, super::FieldKind::Number | super::FieldKind::Flag | super::FieldKind::Code) => {
                    serde_json::json!(1)
                }
                _ => serde_json::json!("x"),
            };
            let ok = Filter::compile(&probe, op, Some(&v)).is_ok();
            assert_eq!(ok, f.ops.contains(&name), "{} {name}", f.name);
        }
    }
}

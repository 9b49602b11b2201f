//! `postcall schema`: the JSON Schema of the webhook payload, for Azure Logic Apps' "When a
//! HTTP request is received", Power Automate, Zapier or a CRM mapping.
//!
//! The schema is derived (`schemars`) from the types that are serialised into the payload —
//! [`crate::delivery::payload`]'s payload object and [`Cdr`] — and each field's description is
//! that field's doc comment, so every field is defined once and the schema cannot drift from
//! what is sent. Fields that serialisation may omit (unknown optional text) are not
//! `required`; postcall never sends `null`, so no field is nullable.
//!
//! Two dialects:
//! - [`Dialect::Draft4`] (the default of `postcall schema`): one self-contained schema with no
//!   `$ref` and no definitions, using only draft-4 keywords (`const` becomes a one-value
//!   `enum`). The Logic Apps designer reads a draft-4-like dialect and does not resolve
//!   `$ref` fully (descriptions behind a reference are lost).
//! - [`Dialect::Draft2020_12`]: the same schema in the 2020-12 dialect, with shared parts
//!   under `$defs`.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::cdr::Cdr;
use crate::delivery::payload::Payload;

/// `$schema` of the draft-4 form.
pub const DRAFT4: &str = "http://json-schema.org/draft-04/schema#";

/// Which JSON Schema dialect to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Inline, draft-4 keywords only (what low-code designers read fully).
    #[default]
    Draft4,
    /// JSON Schema 2020-12 with `$defs`.
    Draft2020_12,
}

/// Every keyword a draft-4 schema object may carry (draft-04 core and validation), less
/// `$ref` and `definitions`, which the inline form never uses.
pub const DRAFT4_KEYWORDS: &[&str] = &[
    "$schema",
    "id",
    "title",
    "description",
    "default",
    "type",
    "enum",
    "format",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "items",
    "additionalItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "dependencies",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// Formats kept: the standard ones the payload uses. Numeric widths (`uint64`, `double`, …)
/// that `schemars` adds are not JSON Schema formats.
const FORMATS: &[&str] = &["date-time"];

/// The webhook payload's schema: `{triggerId, id, tenantId, cdr, customData}`.
pub fn payload_schema(dialect: Dialect) -> Value {
    let settings = match dialect {
        Dialect::Draft4 => SchemaSettings::draft07().with(|s| s.inline_subschemas = true),
        Dialect::Draft2020_12 => SchemaSettings::draft2020_12(),
    }
    .for_serialize();
    let schema = settings
        .into_generator()
        .into_root_schema_for::<Payload<'static, Cdr>>();
    let mut v = schema.to_value();
    tidy(&mut v, dialect);
    if let Value::Object(root) = &mut v {
        root.insert("title".into(), "postcall webhook payload".into());
        if dialect == Dialect::Draft4 {
            root.insert("$schema".into(), DRAFT4.into());
        }
    }
    v
}

/// Rewrites every schema object below `v`: descriptions as one plain line, no `null` types (postcall omits unknown fields
/// instead), only standard formats, and for draft 4 `const` as a one-value `enum` and no
/// keyword draft 4 lacks.
fn tidy(v: &mut Value, dialect: Dialect) {
    let Value::Object(o) = v else { return };
    if let Some(Value::Array(types)) = o.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let t = types.remove(0);
            o.insert("type".into(), t);
        }
    }
    if let Some(Value::String(d)) = o.get_mut("description") {
        // Doc comments wrap lines and quote names in backticks; designers show text as is.
        *d = d.replace('\n', " ").replace('`', "");
    }
    if o.get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !FORMATS.contains(&f))
    {
        o.remove("format");
    }
    if dialect == Dialect::Draft4 {
        if let Some(c) = o.remove("const") {
            o.insert("enum".into(), Value::Array(vec![c]));
        }
        o.retain(|k, _| DRAFT4_KEYWORDS.contains(&k.as_str()));
    }
    for (k, sub) in o.iter_mut() {
        match k.as_str() {
            // Maps of name → schema.
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                if let Value::Object(m) = sub {
                    m.values_mut().for_each(|s| tidy(s, dialect));
                }
            }
            "items" | "additionalProperties" | "additionalItems" | "not" => tidy(sub, dialect),
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(a) = sub {
                    a.iter_mut().for_each(|s| tidy(s, dialect));
                }
            }
            _ => {}
        }
    }
}

/// The CDR object's schema (the `cdr` property of the draft-4 payload schema).
pub fn cdr_schema() -> Value {
    payload_schema(Dialect::Draft4)["properties"]["cdr"].clone()
}

/// Every property path the schema describes, with its description (`cdr.cliNum`,
/// `cdr.directoryMatches[].dirName`), in schema order. For docs and tests.
pub fn described_fields(schema: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, s: &Value, out: &mut Vec<(String, String)>) {
        let props = s.get("properties").and_then(Value::as_object);
        for (k, p) in props.into_iter().flat_map(Map::iter) {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let d = p.get("description").and_then(Value::as_str).unwrap_or("");
            out.push((path.clone(), d.to_owned()));
            walk(&path, p, out);
            if let Some(items) = p.get("items") {
                walk(&format!("{path}[]"), items, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", schema, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_schemas(v: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
        let Value::Object(o) = v else { return };
        f(o);
        for (k, sub) in o {
            match k.as_str() {
                "properties" | "patternProperties" | "$defs" | "definitions" => {
                    sub.as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .for_each(|s| walk_schemas(s, f));
                }
                "items" | "additionalProperties" | "not" => walk_schemas(sub, f),
                "allOf" | "anyOf" | "oneOf" => sub
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|s| walk_schemas(s, f)),
                _ => {}
            }
        }
    }

    /// The default form is one inline schema with draft-4 keywords only: no `$ref`,
    /// `$defs`, `definitions` or `const` anywhere (the text itself is searched too).
    #[test]
    fn the_default_form_is_inline_draft4() {
        let s = payload_schema(Dialect::Draft4);
        let text = s.to_string();
        for word in ["$ref", "$defs", "definitions", "\"const\"", "\"null\""] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        assert_eq!(s["$schema"], DRAFT4);
        let mut objects = 0;
        walk_schemas(&s, &mut |o| {
            objects += 1;
            for k in o.keys() {
                assert!(DRAFT4_KEYWORDS.contains(&k.as_str()), "keyword {k}");
            }
        });
        assert!(objects > 70, "{objects}");
        assert_eq!(
            s["properties"]["cdr"]["properties"]["dType"]["enum"],
            serde_json::json!(["CloudSessionCdr"])
        );
        // The 2020-12 form shares the contact item through `$defs`.
        let t = payload_schema(Dialect::Draft2020_12);
        assert_eq!(t["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(t.to_string().contains("$ref"));
    }

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
        assert_eq!(
            props["lAnsUsrNum"]["description"],
            "Last answering user number (the owner's extension)."
        );
        assert_eq!(props["lost"]["enum"], serde_json::json!([0, 1]));
        assert_eq!(props["dir"]["enum"], serde_json::json!([0, 1, 2, 3, 4]));
        assert_eq!(props["start"]["format"], "date-time");
    }

    /// The `dir` and `type` descriptions name every code with the name filters accept.
    #[test]
    fn code_descriptions_name_every_code() {
        let s = cdr_schema();
        let dir = s["properties"]["dir"]["description"].as_str().unwrap();
        for d in crate::cdr::Direction::ALL {
            assert!(dir.contains(&format!("{} {}", d.code(), d.name())), "{dir}");
        }
        let ty = s["properties"]["type"]["description"].as_str().unwrap();
        for t in crate::cdr::CallType::ALL {
            assert!(ty.contains(&format!("{} {}", t.code(), t.name())), "{ty}");
        }
    }
}

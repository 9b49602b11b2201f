//! Console-managed triggers between the HTML form, the stored document and the validated
//! [`Trigger`]: the form becomes a trigger document of the same structure as a JSON trigger
//! document's entries, and that document goes through [`parse_document`] — the validation
//! every trigger file goes through — whose errors (with their field paths) are shown beside
//! the form's fields.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::trigger::file::{parse_document, BuildOptions, DocFormat};
use crate::trigger::filter::{field_kind, FieldKind};
use crate::trigger::Trigger;

/// The origin of every console-managed trigger (shown where a file trigger shows its path).
pub const ORIGIN: &str = "console";

/// Errors by form field (`action.url`, `filter[1].value`; `""` for the whole trigger).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Validates one trigger document exactly as a trigger file's entry is validated.
///
/// # Errors
/// Every problem, keyed by its field path inside the trigger.
pub fn validate(doc: &Value, opts: BuildOptions) -> Result<Trigger, FieldErrors> {
    let text = json!({ "trigger": [doc] }).to_string();
    match parse_document(&text, ORIGIN, DocFormat::Json, opts) {
        Ok(mut ts) if ts.len() == 1 => Ok(ts.remove(0)),
        Ok(_) => Err(FieldErrors::from([(
            String::new(),
            vec!["not one trigger".into()],
        )])),
        Err(e) => Err(field_errors(&e)),
    }
}

/// The validator's errors keyed by field path inside the trigger.
pub fn field_errors(e: &crate::trigger::TriggerErrors) -> FieldErrors {
    let mut out = FieldErrors::new();
    for err in &e.0 {
        let key = err
            .path
            .strip_prefix("trigger[0]")
            .map(|p| p.trim_start_matches('.'))
            .unwrap_or("");
        // Paths that are not a field of the form (a duplicate id) go to the top.
        let key = if key == "id" { "" } else { key };
        out.entry(key.to_owned())
            .or_default()
            .push(err.message.clone());
    }
    out
}

/// The errors on one line: `action.url: must be https://…; filter[0].value: …`.
pub fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(k, v)| {
            let k = if k.is_empty() { "trigger" } else { k };
            format!("{k}: {}", v.join("; "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A posted form: every `name=value` pair in order (repeated names are rows).
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_owned()
    }
}

/// One typed-in value as the JSON a trigger file would hold, read by the field's kind: a
/// number for numeric fields, `true`/`false` for flags, a name for codes, text otherwise.
fn scalar(kind: Option<FieldKind>, text: &str) -> Value {
    let number = || {
        text.parse::<i64>().map(Value::from).ok().or_else(|| {
            text.parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
        })
    };
    match kind {
        Some(FieldKind::Number | FieldKind::Code) => {
            number().unwrap_or_else(|| Value::String(text.to_owned()))
        }
        Some(FieldKind::Flag) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => number().unwrap_or_else(|| Value::String(text.to_owned())),
        },
        _ => Value::String(text.to_owned()),
    }
}

/// The value of a filter row as JSON: a list for `in`/`not_in` (comma-separated), a boolean
/// for `exists` (empty = `true`, so the value is left out), else one value.
fn filter_value(field: &str, op: &str, text: &str) -> Option<Value> {
    let kind = field_kind(field);
    match op {
        "exists" if text.is_empty() => None,
        "exists" => Some(match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        }),
        "in" | "not_in" => Some(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| scalar(kind, s))
                .collect(),
        )),
        _ => Some(scalar(kind, text)),
    }
}

/// The trigger document the form describes. `previous` is the stored document when editing:
/// its signing secret is kept unless a new one is typed or removal is asked for (the form
/// never shows a secret).
pub fn doc_from_form(form: &Form, id: &str, tenant: &str, previous: Option<&Value>) -> Value {
    let mut doc = Map::new();
    doc.insert("id".into(), json!(id));
    doc.insert("tenant".into(), json!(tenant));
    doc.insert("enabled".into(), json!(form.get("enabled").is_some()));
    let user = form.text("user");
    if !user.is_empty() {
        doc.insert("user".into(), json!(user));
    }
    let (fields, ops, values) = (form.all("f_field"), form.all("f_op"), form.all("f_value"));
    let filters: Vec<Value> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.trim().is_empty())
        .map(|(i, f)| {
            let f = f.trim();
            let op = ops.get(i).copied().unwrap_or("eq");
            let mut row = json!({ "field": f, "op": op });
            if let Some(v) = filter_value(f, op, values.get(i).copied().unwrap_or("").trim()) {
                row["value"] = v;
            }
            row
        })
        .collect();
    doc.insert("filter".into(), Value::Array(filters));
    let mut action = Map::new();
    action.insert("url".into(), json!(form.text("url")));
    let method = form.text("method").to_ascii_uppercase();
    action.insert("method".into(), json!(method));
    if method != "GET" {
        action.insert("format".into(), json!(form.text("format")));
    }
    let retries = form.text("retries");
    action.insert(
        "retries".into(),
        retries
            .parse::<i64>()
            .map_or_else(|_| json!(retries), Value::from),
    );
    let data: Map<String, Value> = form
        .all("data_key")
        .iter()
        .zip(form.all("data_value"))
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim().to_owned(), json!(v)))
        .collect();
    if !data.is_empty() {
        action.insert("data".into(), Value::Object(data));
    }
    let typed = form.text("secret");
    let kept = previous
        .and_then(|p| p.pointer("/action/secret"))
        .filter(|_| form.get("clear_secret").is_none())
        .cloned();
    if !typed.is_empty() {
        action.insert("secret".into(), json!(typed));
    } else if let Some(s) = kept {
        action.insert("secret".into(), s);
    }
    if form.get("allow_http").is_some() {
        action.insert("allow_http".into(), json!(true));
    }
    doc.insert("action".into(), Value::Object(action));
    Value::Object(doc)
}

/// One filter row as the form shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FilterRow {
    /// Field name.
    pub field: String,
    /// Operator name.
    pub op: String,
    /// The value as typed (a list comma-separated).
    pub value: String,
}

/// A trigger document as the form shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    /// Id (GUID).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Enabled.
    pub enabled: bool,
    /// Owning user, or empty.
    pub user: String,
    /// Filter rows.
    pub filters: Vec<FilterRow>,
    /// Webhook URL.
    pub url: String,
    /// GET, POST or PUT.
    pub method: String,
    /// json or form.
    pub format: String,
    /// Retries as typed.
    pub retries: String,
    /// Additional data rows.
    pub data: Vec<(String, String)>,
    /// A signing secret is set.
    pub has_secret: bool,
    /// `allow_http`.
    pub allow_http: bool,
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the form shows for `doc`.
pub fn view(doc: &Value) -> FormView {
    let s = |p: &str| doc.pointer(p).map(as_text).unwrap_or_default();
    FormView {
        id: s("/id"),
        tenant: s("/tenant"),
        enabled: doc.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        user: s("/user"),
        filters: doc
            .get("filter")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .map(|r| FilterRow {
                        field: r.get("field").map(as_text).unwrap_or_default(),
                        op: r.get("op").map(as_text).unwrap_or_default(),
                        value: r.get("value").map(as_text).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        url: s("/action/url"),
        method: doc
            .pointer("/action/method")
            .map_or_else(|| "POST".into(), as_text),
        format: doc
            .pointer("/action/format")
            .map_or_else(|| "json".into(), as_text),
        retries: doc.pointer("/action/retries").map_or_else(
            || crate::trigger::file::DEFAULT_RETRIES.to_string(),
            as_text,
        ),
        data: doc
            .pointer("/action/data")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
            .unwrap_or_default(),
        has_secret: doc.pointer("/action/secret").is_some(),
        allow_http: doc
            .pointer("/action/allow_http")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// A new trigger's form: enabled, POST JSON, the default retries, no filter.
pub fn blank(id: &str, tenant: &str) -> FormView {
    view(&json!({ "id": id, "tenant": tenant }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c";

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// A form with two conditions becomes a trigger the validator accepts, with typed values
    /// (a name list for `dir`, a number for `ans`, text for `cliNum`).
    #[test]
    fn form_to_trigger() {
        let f = form(&[
            ("enabled", "on"),
            ("f_field", "dir"),
            ("f_op", "in"),
            ("f_value", "Incoming, Both"),
            ("f_field", "ans"),
            ("f_op", "eq"),
            ("f_value", "0"),
            ("f_field", "cliNum"),
            ("f_op", "starts_with"),
            ("f_value", "+44"),
            ("f_field", ""),
            ("f_op", "eq"),
            ("f_value", ""),
            ("url", "https://hooks.example/missed?sig=x"),
            ("method", "put"),
            ("format", "form"),
            ("retries", "3"),
            ("data_key", "source"),
            ("data_value", "console"),
            ("data_key", ""),
            ("data_value", ""),
        ]);
        let doc = doc_from_form(&f, "g1", TENANT, None);
        assert_eq!(doc["filter"][0]["value"], json!(["Incoming", "Both"]));
        assert_eq!(doc["filter"][1]["value"], json!(0));
        assert_eq!(doc["filter"][2]["value"], json!("+44"));
        let t = validate(&doc, BuildOptions::default()).unwrap();
        assert_eq!((t.filters.len(), t.action.retries, t.enabled), (3, 3, true));
        assert_eq!(t.action.custom_data["source"], "console");
        assert_eq!(&*t.origin, ORIGIN);
        // The form shows what it was given.
        let v = view(&doc);
        assert_eq!(v.filters[0].value, "Incoming, Both");
        assert_eq!((v.method.as_str(), v.format.as_str()), ("PUT", "form"));
    }

    /// The validator's own messages come back keyed by the form's fields.
    #[test]
    fn errors_beside_their_fields() {
        let f = form(&[
            ("f_field", "dir"),
            ("f_op", "eq"),
            ("f_value", "Inbound"),
            ("f_field", "cliNum"),
            ("f_op", "gt"),
            ("f_value", "5"),
            ("url", "http://hooks.example/"),
            ("method", "POST"),
            ("format", "json"),
            ("retries", "11"),
        ]);
        let e = validate(
            &doc_from_form(&f, "g1", TENANT, None),
            BuildOptions::default(),
        )
        .unwrap_err();
        assert!(
            e["filter[0].value"][0].starts_with("unknown name \"Inbound\""),
            "{e:?}"
        );
        assert_eq!(e["filter[1].op"], ["`gt` applies to numeric fields only"]);
        assert!(e["action.url"][0].starts_with("must be https://"), "{e:?}");
        assert_eq!(e["action.retries"], ["11 is out of range (0 to 10)"]);
        let bad_tenant = validate(
            &doc_from_form(&f, "g1", "acme", None),
            BuildOptions::default(),
        )
        .unwrap_err();
        assert!(bad_tenant.contains_key("tenant"));
    }

    /// The secret is never shown; an edit without a new one keeps it, removal drops it.
    #[test]
    fn secrets_are_kept_not_shown() {
        let base = [
            ("url", "https://h.example/"),
            ("method", "POST"),
            ("format", "json"),
            ("retries", "1"),
        ];
        let mut with = base.to_vec();
        with.push(("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let first = doc_from_form(&form(&with), "g", TENANT, None);
        assert!(view(&first).has_secret);
        let kept = doc_from_form(&form(&base), "g", TENANT, Some(&first));
        assert_eq!(kept["action"]["secret"], first["action"]["secret"]);
        assert!(validate(&kept, BuildOptions::default())
            .unwrap()
            .action
            .secret
            .is_some());
        let mut clear = base.to_vec();
        clear.push(("clear_secret", "on"));
        assert!(
            doc_from_form(&form(&clear), "g", TENANT, Some(&first))["action"]
                .get("secret")
                .is_none()
        );
        assert!(!serde_json::to_string(&view(&first))
            .unwrap()
            .contains("whsec_"));
    }
}

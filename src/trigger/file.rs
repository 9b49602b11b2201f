//! The trigger document (TOML in files, TOML or JSON from the remote source) and its
//! validation into [`Trigger`]s and a [`TriggerSet`].
//!
//! ```toml
//! [[trigger]]
//! id = "7d1f2a4e-0c3b-4e5f-9a8b-1c2d3e4f5a6b"   # unique across every source
//! tenant = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"  # Kazoo account id
//! # user = "a1b2…"                              # owning user: only sessions they took part in
//! # enabled = true
//! filter = [
//!   { field = "type", op = "eq", value = "External" },
//!   { field = "dir", op = "in", value = ["Incoming", "Both"] },
//! ]
//! [trigger.action]
//! url = "https://example.com/hook"
//! method = "POST"          # GET, POST or PUT (default POST)
//! format = "json"          # json or form; POST and PUT only (default json)
//! retries = 1              # 0-10
//! # secret = "whsec_…"     # Standard Webhooks signing secret
//! # allow_http = false
//! [trigger.action.data]    # sent as customData
//! hook = "post call"
//! ```
//!
//! Every problem is reported (not just the first), each with the source, the trigger id and
//! the field path (`trigger[2].action.url`). Secrets are never echoed and URLs never printed
//! (they may carry signed query parameters).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::filter::{Filter, Op};
use super::model::{Action, Format, Method, SigningSecret, Trigger, TriggerSet};

/// Largest number of retries a trigger may ask for (the seed's 0–10).
pub const MAX_RETRIES: u8 = 10;
/// Retries when the document does not say (the seed's default).
pub const DEFAULT_RETRIES: u8 = 1;

/// One problem in a trigger document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TriggerError {
    /// The file path, or the remote URL without its query string.
    pub origin: String,
    /// The trigger's id, when it has one.
    pub trigger_id: Option<String>,
    /// Field path, e.g. `trigger[2].filter[0].value` (empty for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(id) = &self.trigger_id {
            write!(f, ": trigger {id:?}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while building a set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TriggerErrors(pub Vec<TriggerError>);

impl fmt::Display for TriggerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// How a document is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocFormat {
    /// TOML (files; remote answers not labelled JSON).
    Toml,
    /// JSON (remote answers with a JSON content type): the same structure.
    Json,
}

/// Options that apply to every trigger of a build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// `[triggers] allow_http`: accept `http://` URLs for every trigger.
    pub allow_http: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    #[serde(default)]
    trigger: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    id: Value,
    tenant: Value,
    #[serde(default)]
    user: Option<Value>,
    #[serde(default)]
    enabled: Option<Value>,
    #[serde(default)]
    filter: Vec<Value>,
    action: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    field: Value,
    op: Value,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    url: Value,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    retries: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    secret: Option<Value>,
    #[serde(default)]
    allow_http: Option<Value>,
}

/// Collects the problems of one trigger.
struct Ctx<'a> {
    origin: &'a Arc<str>,
    id: Option<String>,
    base: String,
    errors: &'a mut Vec<TriggerError>,
}

impl Ctx<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let path = if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}.{path}", self.base)
        };
        self.errors.push(TriggerError {
            origin: self.origin.to_string(),
            trigger_id: self.id.clone(),
            path,
            message: message.into(),
        });
    }

    fn string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.err(path, "must not be empty");
                None
            }
            _ => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    fn bool(&mut self, path: &str, v: Option<&Value>, default: bool) -> bool {
        match v {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(path, "must be true or false");
                default
            }
        }
    }
}

/// A serde message on one line, without the values it quotes.
fn one_line(e: impl fmt::Display) -> String {
    crate::config::parse_error::without_values(&e.to_string())
}

/// Parses and validates one document; `origin` names it in errors.
///
/// # Errors
/// Every problem, each with origin, trigger id and field path.
pub fn parse_document(
    text: &str,
    origin: &str,
    format: DocFormat,
    opts: BuildOptions,
) -> Result<Vec<Trigger>, TriggerErrors> {
    let origin: Arc<str> = origin.into();
    let doc_err = |message: String| {
        TriggerErrors(vec![TriggerError {
            origin: origin.to_string(),
            trigger_id: None,
            path: String::new(),
            message,
        }])
    };
    let doc: RawDoc = match format {
        DocFormat::Toml => toml::from_str(text)
            .map_err(|e| doc_err(crate::config::parse_error::toml_message(text, &e)))?,
        DocFormat::Json => serde_json::from_str(text)
            .map_err(|e| doc_err(crate::config::parse_error::json_message(&e)))?,
    };
    let mut errors = Vec::new();
    let mut triggers = Vec::new();
    for (i, raw) in doc.trigger.into_iter().enumerate() {
        if let Some(t) = validate_trigger(&origin, i, raw, opts, &mut errors) {
            triggers.push(t);
        }
    }
    if let Some(e) = duplicate_ids(triggers.iter().map(|t| (&*t.origin, t.id.as_str()))) {
        errors.extend(e);
    }
    if errors.is_empty() {
        Ok(triggers)
    } else {
        Err(TriggerErrors(errors))
    }
}

fn validate_trigger(
    origin: &Arc<str>,
    index: usize,
    raw: Value,
    opts: BuildOptions,
    errors: &mut Vec<TriggerError>,
) -> Option<Trigger> {
    let id = raw
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned);
    let mut cx = Ctx {
        origin,
        id,
        base: format!("trigger[{index}]"),
        errors,
    };
    let raw: RawTrigger = match serde_json::from_value(raw) {
        Ok(r) => r,
        Err(e) => {
            cx.err("", one_line(e));
            return None;
        }
    };
    let before = cx.errors.len();
    let id = cx.string("id", &raw.id);
    if let Some(id) = &id {
        if id.len() > 128 || id.chars().any(char::is_control) {
            cx.err(
                "id",
                "must be at most 128 characters, without control characters",
            );
        }
    }
    let tenant = cx.string("tenant", &raw.tenant);
    if let Some(t) = &tenant {
        if !crate::config::is_account_id(t) {
            cx.err(
                "tenant",
                format!("{t:?} is not a Kazoo account id (32 lowercase hex digits)"),
            );
        }
    }
    let user = raw.user.as_ref().and_then(|u| cx.string("user", u));
    let enabled = cx.bool("enabled", raw.enabled.as_ref(), true);
    let mut filters = Vec::with_capacity(raw.filter.len());
    for (j, f) in raw.filter.into_iter().enumerate() {
        let path = format!("filter[{j}]");
        let f: RawFilter = match serde_json::from_value(f) {
            Ok(f) => f,
            Err(e) => {
                cx.err(&path, one_line(e));
                continue;
            }
        };
        let field = cx.string(&format!("{path}.field"), &f.field);
        let op = match &f.op {
            Value::String(s) => Op::parse(s).or_else(|| {
                let names: Vec<&str> = Op::ALL.iter().map(|(n, _)| *n).collect();
                cx.err(
                    &format!("{path}.op"),
                    format!("unknown operator; one of {}", names.join(", ")),
                );
                None
            }),
            _ => {
                cx.err(&format!("{path}.op"), "must be a string");
                None
            }
        };
        if let (Some(field), Some(op)) = (field, op) {
            match Filter::compile(&field, op, f.value.as_ref()) {
                Ok(c) => filters.push(c),
                Err(e) => cx.err(&format!("{path}.{}", e.part.key()), e.message),
            }
        }
    }
    let action = validate_action(&mut cx, raw.action, opts);
    if cx.errors.len() > before {
        return None;
    }
    Some(Trigger {
        id: id?,
        tenant_id: tenant?,
        user_id: user,
        enabled,
        filters,
        action: action?,
        origin: origin.clone(),
    })
}

fn validate_action(cx: &mut Ctx<'_>, raw: Value, opts: BuildOptions) -> Option<Action> {
    let raw: RawAction = match serde_json::from_value(raw) {
        Ok(r) => r,
        Err(e) => {
            cx.err("action", one_line(e));
            return None;
        }
    };
    let allow_http = cx.bool("action.allow_http", raw.allow_http.as_ref(), false);
    let url = cx.string("action.url", &raw.url).and_then(|u| {
        match parse_url(&u, allow_http || opts.allow_http) {
            Ok(u) => Some(u),
            Err(m) => {
                cx.err("action.url", m);
                None
            }
        }
    });
    let method = match raw.method.as_ref() {
        None => Some(Method::Post),
        Some(v) => {
            cx.string("action.method", v)
                .and_then(|m| match m.to_ascii_uppercase().as_str() {
                    "GET" => Some(Method::Get),
                    "POST" => Some(Method::Post),
                    "PUT" => Some(Method::Put),
                    _ => {
                        cx.err("action.method", "must be one of GET, POST, PUT");
                        None
                    }
                })
        }
    };
    let format = match (raw.format.as_ref(), method) {
        (None, Some(Method::Get)) => Some(Format::Form),
        (None, _) => Some(Format::Json),
        (Some(_), Some(Method::Get)) => {
            cx.err(
                "action.format",
                "only for POST and PUT; GET always sends the payload form-encoded in the query string",
            );
            None
        }
        (Some(v), _) => {
            cx.string("action.format", v)
                .and_then(|f| match f.to_ascii_lowercase().as_str() {
                    "json" => Some(Format::Json),
                    "form" => Some(Format::Form),
                    _ => {
                        cx.err("action.format", "must be json or form");
                        None
                    }
                })
        }
    };
    let retries = match raw.retries.as_ref() {
        None => Some(DEFAULT_RETRIES),
        Some(v) => match v.as_i64() {
            Some(n) if (0..=i64::from(MAX_RETRIES)).contains(&n) => u8::try_from(n).ok(),
            Some(n) => {
                cx.err(
                    "action.retries",
                    format!("{n} is out of range (0 to {MAX_RETRIES})"),
                );
                None
            }
            None => {
                cx.err("action.retries", "must be a whole number from 0 to 10");
                None
            }
        },
    };
    let mut custom_data = BTreeMap::new();
    match raw.data {
        None => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        custom_data.insert(k, s);
                    }
                    _ => cx.err(&format!("action.data.{k}"), "must be a string"),
                }
            }
        }
        Some(_) => cx.err("action.data", "must be a table of string values"),
    }
    let secret = match raw.secret.as_ref() {
        None => None,
        // Never echo the value, not even a prefix of it.
        Some(Value::String(s)) => match SigningSecret::parse(s) {
            Ok(s) => Some(s),
            Err(m) => {
                cx.err("action.secret", m);
                return None;
            }
        },
        Some(_) => {
            cx.err("action.secret", "must be a string `whsec_<base64>`");
            return None;
        }
    };
    Some(Action {
        url: url?,
        method: method?,
        format: format?,
        retries: retries?,
        custom_data,
        secret,
        allow_http: allow_http || opts.allow_http,
    })
}

/// Parses a webhook or remote-source URL. Messages never contain the URL.
pub(crate) fn parse_url(text: &str, allow_http: bool) -> Result<hyper::Uri, String> {
    // Both parsers must accept it: delivery encodes with `url`, the client sends a `hyper::Uri`.
    url::Url::parse(text).map_err(|_| "not a valid URL".to_owned())?;
    let uri: hyper::Uri = text.parse().map_err(|_| "not a valid URL".to_owned())?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => {
            return Err("must be https:// (http:// needs `allow_http = true`)".into());
        }
        _ => return Err("must be an absolute https:// URL".into()),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err("has no host".into()),
    }
}

/// Errors for ids defined more than once, across all given `(origin, id)` pairs.
fn duplicate_ids<'a>(ids: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Vec<TriggerError>> {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut errors = Vec::new();
    for (origin, id) in ids {
        if let Some(prev) = first.insert(id, origin) {
            errors.push(TriggerError {
                origin: origin.to_owned(),
                trigger_id: Some(id.to_owned()),
                path: "id".into(),
                message: format!("duplicate id (also defined in {prev})"),
            });
            first.insert(id, prev);
        }
    }
    (!errors.is_empty()).then_some(errors)
}

/// Joins the triggers of several documents into one set.
///
/// # Errors
/// An id defined in more than one document.
pub fn build_set(docs: Vec<Vec<Trigger>>) -> Result<TriggerSet, TriggerErrors> {
    let all: Vec<Trigger> = docs.into_iter().flatten().collect();
    if let Some(e) = duplicate_ids(all.iter().map(|t| (&*t.origin, t.id.as_str()))) {
        return Err(TriggerErrors(e));
    }
    Ok(TriggerSet::from_triggers(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallTime;

    const OK: &str = r#"
[[trigger]]
id = "t1"
tenant = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"
filter = [{ field = "type", op = "eq", value = "External" }]
[trigger.action]
url = "https://example.com/hook?sig=abc"
[trigger.action.data]
hook = "post call"

[[trigger]]
id = "t2"
tenant = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"
user = "u1"
enabled = false
[trigger.action]
url = "https://example.com/get"
method = "get"
retries = 10
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#;

    fn parse(text: &str) -> Result<Vec<Trigger>, TriggerErrors> {
        parse_document(text, "t.toml", DocFormat::Toml, BuildOptions::default())
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn with_action(action: &str) -> String {
        format!("[[trigger]]\nid = \"x\"\ntenant = \"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"\n[trigger.action]\n{action}\n")
    }

    #[test]
    fn valid_document_and_defaults() {
        let ts = parse(OK).unwrap();
        assert_eq!(ts.len(), 2);
        let a = &ts[0].action;
        assert_eq!(
            (a.method, a.format, a.retries),
            (Method::Post, Format::Json, 1)
        );
        assert_eq!(a.custom_data["hook"], "post call");
        assert!(ts[0].enabled && a.secret.is_none());
        let b = &ts[1];
        assert_eq!(b.action.method, Method::Get);
        assert_eq!(b.action.format, Format::Form);
        assert_eq!(b.action.retries, 10);
        assert!(!b.enabled);
        assert_eq!(b.payload_id(), "u1");
        assert_eq!(b.action.secret.as_ref().unwrap().key().len(), 24);
        // Debug never shows the secret or the signed query string.
        let dbg = format!("{ts:?}");
        assert!(!dbg.contains("MfKQ9") && !dbg.contains("sig=abc"), "{dbg}");
    }

    #[test]
    fn a_match_becomes_a_delivery_job_without_the_secret() {
        let set = build_set(vec![parse(OK).unwrap()]).unwrap();
        let t = set.get("t2").unwrap();
        let e = t.action.endpoint();
        assert_eq!(
            (e.method, e.format, e.retries),
            (Method::Get, Format::Form, 10)
        );
        assert_eq!(e.url, "https://example.com/get");
        // Signed, but the secret stays with the trigger (signed at send time).
        assert!(e.signed);
        assert!(!serde_json::to_string(&e).unwrap().contains("MfKQ9"));
        let mut session = crate::session::ClosedSession {
            cdr: serde_json::from_value(serde_json::json!({
                "id": "s1", "dType": "CloudSessionCdr", "sVer": 1, "tz": "UTC",
                "start": "2024-01-01T00:00:00+00:00", "end": "2024-01-01T00:00:09+00:00",
                "dur": 9, "ring": 9, "talk": 0, "hold": 0, "park": 0, "lost": 0,
                "lostinPark": 0, "aban": 0, "ans": 0, "short": 0, "dir": 1, "type": 2,
                "t2t": 0, "hasRec": 0, "rate": 0, "recordingIds": [],
                "directoryMatches": [], "tags": {}
            }))
            .unwrap(),
            tenant_id: Some("3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c".into()),
            user_ids: vec!["u9".into()],
            start_us: 0,
            end_us: 9_000_000,
            billable: Vec::new(),
        };
        let cdr = serde_json::value::to_raw_value(&session.cdr).unwrap();
        let jobs: Vec<_> = set
            .matches(&session)
            .map(|m| m.job(&session, &cdr, WallTime::from_us(42)))
            .collect();
        assert_eq!(jobs.len(), 1, "t2 is disabled");
        let j = &jobs[0];
        assert_eq!(j.trigger_id, "t1");
        assert_eq!(j.webhook_id, crate::delivery::webhook_id("s1", "t1"));
        let payload: serde_json::Value = serde_json::from_str(j.payload.get()).unwrap();
        assert_eq!(payload["id"], "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c");
        assert_eq!(payload["tenantId"], "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c");
        assert_eq!(payload["customData"]["hook"], "post call");
        assert_eq!(payload["cdr"]["id"], "s1");
        assert_eq!((j.attempts, j.next_attempt_us, j.created_us), (0, 42, 42));
        session.tenant_id = Some("other".into());
        assert_eq!(set.matches(&session).count(), 0);
    }

    #[test]
    fn json_documents_share_the_structure() {
        let json = r#"{"trigger":[{"id":"j","tenant":"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c","filter":[{"field":"dir","op":"in","value":["Incoming","Both"]}],
            "action":{"url":"https://x.example/h","method":"PUT","format":"form"}}]}"#;
        let ts = parse_document(json, "remote", DocFormat::Json, BuildOptions::default()).unwrap();
        assert_eq!(ts[0].action.format, Format::Form);
        assert_eq!(ts[0].filters.len(), 1);
    }

    #[test]
    fn action_rules() {
        // (action body, error fragment); every message names file, trigger and field path.
        let table = [
            (
                "url = \"http://x.example/\"",
                "action.url: must be https:// (http:// needs `allow_http = true`)",
            ),
            (
                "url = \"ftp://x.example/\"",
                "action.url: must be an absolute https:// URL",
            ),
            ("url = \"https:///nohost\"", "action.url: not a valid URL"),
            (
                "url = \"https://x.example/\"\nmethod = \"DELETE\"",
                "action.method: must be one of GET, POST, PUT",
            ),
            (
                "url = \"https://x.example/\"\nmethod = \"GET\"\nformat = \"json\"",
                "action.format: only for POST and PUT",
            ),
            (
                "url = \"https://x.example/\"\nformat = \"xml\"",
                "action.format: must be json or form",
            ),
            (
                "url = \"https://x.example/\"\nretries = 11",
                "action.retries: 11 is out of range (0 to 10)",
            ),
            (
                "url = \"https://x.example/\"\nretries = -1",
                "action.retries: -1 is out of range",
            ),
            (
                "url = \"https://x.example/\"\nretries = 1.5",
                "action.retries: must be a whole number",
            ),
            (
                "url = \"https://x.example/\"\ndata = { n = 1 }",
                "action.data.n: must be a string",
            ),
            (
                "url = \"https://x.example/\"\nsecret = \"abc\"",
                "action.secret: must start with `whsec_`",
            ),
            (
                "url = \"https://x.example/\"\nsecret = \"whsec_!!!\"",
                "action.secret: the part after `whsec_` is not valid base64",
            ),
            (
                "url = \"https://x.example/\"\nsecret = \"whsec_c2hvcnQ=\"",
                "action.secret: the key is 5 bytes",
            ),
            (
                "url = \"https://x.example/\"\nmetod = \"GET\"",
                "action: unknown field `metod`",
            ),
        ];
        for (action, fragment) in table {
            let errs = errors(&with_action(action));
            let want = format!("t.toml: trigger \"x\": trigger[0].{fragment}");
            assert!(
                errs.iter().any(|e| e.starts_with(&want)),
                "{action}: {errs:?}"
            );
        }
        assert!(parse(&with_action(
            "url = \"http://x.example/\"\nallow_http = true"
        ))
        .is_ok());
        let global = BuildOptions { allow_http: true };
        let ts = parse_document(
            &with_action("url = \"http://x.example/\""),
            "t",
            DocFormat::Toml,
            global,
        )
        .unwrap();
        assert!(ts[0].action.allow_http);
    }

    #[test]
    fn secrets_and_urls_never_appear_in_errors() {
        let text =
            with_action("url = \"http://x.example/h?sig=TOPSECRET\"\nsecret = \"whsec_TOPSECRET\"");
        let all = errors(&text).join("\n");
        assert!(!all.contains("TOPSECRET"), "{all}");
    }

    /// A tenant that is not a Kazoo account id would never match a session: an error.
    #[test]
    fn tenants_are_kazoo_account_ids() {
        for bad in [
            "acme",
            "3B1F0A9C6E2D4F8A9B7C5D3E1F2A4B6C",
            "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6",
        ] {
            let text = format!(
                "[[trigger]]\nid = \"x\"\ntenant = \"{bad}\"\n[trigger.action]\nurl = \"https://x.example/\"\n"
            );
            let errs = errors(&text);
            assert_eq!(
                errs,
                [format!(
                    "t.toml: trigger \"x\": trigger[0].tenant: \"{bad}\" is not a Kazoo account id (32 lowercase hex digits)"
                )]
            );
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
[[trigger]]
id = "bad"
tenant = ""
filter = [
  { field = "dir", op = "eq", value = "Inbound" },
  { field = "cliNum", op = "like", value = "x" },
  { field = "cliNum", op = "eq", value = "x", extra = 1 },
]
[trigger.action]
url = "https://x.example/"

[[trigger]]
tenant = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"
[trigger.action]
url = "https://x.example/"

[[trigger]]
id = "dup"
tenant = "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c"
[trigger.action]
url = "https://x.example/"

[[trigger]]
id = "dup"
tenant = "9ed5a7c3b1f04e2d8c6a5b3f1e0d2c4a"
[trigger.action]
url = "https://x.example/"
"#;
        let errs = errors(text);
        let want = [
            "t.toml: trigger \"bad\": trigger[0].tenant: must not be empty",
            "t.toml: trigger \"bad\": trigger[0].filter[0].value: unknown name \"Inbound\"",
            "t.toml: trigger \"bad\": trigger[0].filter[1].op: unknown operator;",
            "t.toml: trigger \"bad\": trigger[0].filter[2]: unknown field `extra`",
            "t.toml: trigger[1]: missing field `id`",
            "t.toml: trigger \"dup\": id: duplicate id (also defined in t.toml)",
        ];
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for (e, w) in errs.iter().zip(want) {
            assert!(e.starts_with(w), "{e}\n  wanted {w}");
        }
    }

    #[test]
    fn bad_syntax_and_unknown_top_level_keys() {
        let e = errors("[[trigger]\n");
        assert!(e[0].starts_with("t.toml: "), "{e:?}");
        let e = errors("[[triggers]]\nid = \"x\"\n");
        assert!(e[0].contains("unknown field `triggers`"), "{e:?}");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn ids_are_unique_across_documents() {
        let a = parse(OK).unwrap();
        let b = parse_document(OK, "other.toml", DocFormat::Toml, BuildOptions::default()).unwrap();
        let e = build_set(vec![a, b]).unwrap_err().to_string();
        assert!(
            e.contains("other.toml: trigger \"t1\": id: duplicate id (also defined in t.toml)"),
            "{e}"
        );
    }
}

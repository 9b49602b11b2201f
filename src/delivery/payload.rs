//! The webhook request for one (CDR, trigger): `{triggerId, id, tenantId, cdr, customData}`
//! encoded as JSON, as form data with bracket keys, or as a GET query merged into the URL's
//! own query string. Pure.
//!
//! Form and query encoding flatten nested values with bracket keys — `cdr[cliNum]`,
//! `cdr[recordingIds][0]`, `cdr[directoryMatches][0][fullName]`, `customData[k]` — numbers as
//! JSON writes them, booleans `true`/`false`, `null` as an empty value. The URL's existing
//! parameters (Logic Apps' `api-version`, `sp`, `sv`, `sig`) are kept byte for byte, in order.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// HTTP method of a trigger action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Query string only.
    Get,
    /// Body.
    Post,
    /// Body.
    Put,
}

/// Body format for POST and PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded` with bracket keys.
    Form,
}

/// A request ready to send (and to sign: `body` is exactly what goes on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Final URL (for GET, with the payload merged into the query).
    pub url: String,
    /// `Content-Type`, absent for GET.
    pub content_type: Option<&'static str>,
    /// Body bytes (empty for GET).
    pub body: Vec<u8>,
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The URL does not parse.
    #[error("invalid URL: {0}")]
    Url(String),
}

/// A post-call webhook: one call session for one trigger.
// The doc comment of each field is its description in `postcall schema` (`crate::schema`).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = false))]
pub(crate) struct Payload<'a, C: Serialize + ?Sized> {
    /// The unique id of the trigger the webhook request is fired for.
    trigger_id: &'a str,
    /// The id of the entity the trigger belongs to: the owning user's id for a user's
    /// trigger, else the tenant id.
    id: &'a str,
    /// The customer tenant id (Kazoo account id) the call is associated with.
    tenant_id: &'a str,
    /// The call data: one session CDR.
    cdr: &'a C,
    /// The trigger's additional payload data as key/value pairs (empty when none is
    /// configured).
    custom_data: &'a std::collections::BTreeMap<String, String>,
}

/// The payload object as JSON text, ready to send (the CDR is usually a pre-serialised
/// [`RawValue`], shared by every trigger of the session).
pub fn payload<C: Serialize + ?Sized>(
    trigger_id: &str,
    id: &str,
    tenant_id: &str,
    cdr: &C,
    custom: &std::collections::BTreeMap<String, String>,
) -> Box<RawValue> {
    let p = Payload {
        trigger_id,
        id,
        tenant_id,
        cdr,
        custom_data: custom,
    };
    serde_json::value::to_raw_value(&p).expect("a payload always serialises")
}

/// Encodes `payload` for `method`/`format` against `url`. JSON bodies are the payload text
/// as is; form data and queries are built from it.
///
/// # Errors
/// The URL does not parse.
pub fn encode(
    url: &str,
    method: Method,
    format: Format,
    payload: &RawValue,
) -> Result<Encoded, EncodeError> {
    let tree = || serde_json::from_str::<Value>(payload.get()).unwrap_or(Value::Null);
    match (method, format) {
        (Method::Get, _) => {
            let mut u = url::Url::parse(url).map_err(|e| EncodeError::Url(e.to_string()))?;
            let pairs = flatten(&tree());
            if !pairs.is_empty() {
                let mut q = u.query_pairs_mut();
                for (k, v) in &pairs {
                    q.append_pair(k, v);
                }
            }
            Ok(Encoded {
                url: u.into(),
                content_type: None,
                body: Vec::new(),
            })
        }
        (_, Format::Json) => Ok(Encoded {
            url: url.to_owned(),
            content_type: Some("application/json"),
            body: payload.get().as_bytes().to_vec(),
        }),
        (_, Format::Form) => {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in flatten(&tree()) {
                s.append_pair(&k, &v);
            }
            Ok(Encoded {
                url: url.to_owned(),
                content_type: Some("application/x-www-form-urlencoded"),
                body: s.finish().into_bytes(),
            })
        }
    }
}

/// Bracket-key pairs of a JSON value, in document order.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn walk(v: &Value, key: String, out: &mut Vec<(String, String)>) {
    let child = |k: &str| {
        if key.is_empty() {
            k.to_owned()
        } else {
            format!("{key}[{k}]")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                walk(x, child(k), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, child(&i.to_string()), out);
            }
        }
        Value::Null => out.push((key, String::new())),
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Box<RawValue> {
        let custom = [("crm".to_owned(), "hub spot".to_owned())].into();
        payload(
            "t1",
            "u1",
            "acct",
            &json!({"cliNum": "+14155550123", "dur": 98, "recordingIds": ["r1", "r2"], "answer": null,
                    "directoryMatches": [{"fullName": "Ann"}], "tags": {"department": "sales"}}),
            &custom,
        )
    }

    #[test]
    fn json_body_is_the_payload() {
        let e = encode("https://x.test/h", Method::Post, Format::Json, &sample()).unwrap();
        assert_eq!(e.content_type, Some("application/json"));
        let back: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(sample().get()).unwrap());
        assert_eq!(
            back.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["triggerId", "id", "tenantId", "cdr", "customData"]
        );
        assert_eq!(back["customData"]["crm"], "hub spot");
    }

    #[test]
    fn form_uses_bracket_keys() {
        let e = encode("https://x.test/h", Method::Put, Format::Form, &sample()).unwrap();
        let body = String::from_utf8(e.body).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.as_str());
        assert_eq!(get("triggerId"), Some("t1"));
        assert_eq!(get("cdr[cliNum]"), Some("+14155550123"));
        assert_eq!(get("cdr[dur]"), Some("98"));
        assert_eq!(get("cdr[recordingIds][0]"), Some("r1"));
        assert_eq!(get("cdr[recordingIds][1]"), Some("r2"));
        assert_eq!(get("cdr[answer]"), Some(""));
        assert_eq!(get("cdr[directoryMatches][0][fullName]"), Some("Ann"));
        assert_eq!(get("cdr[tags][department]"), Some("sales"));
        assert_eq!(get("customData[crm]"), Some("hub spot"));
        assert!(body.contains("cdr%5BcliNum%5D=%2B14155550123"), "{body}");
    }

    #[test]
    fn get_merges_into_the_existing_query() {
        let url = "https://prod-00.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-10-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Ab%2Bc";
        let e = encode(url, Method::Get, Format::Json, &sample()).unwrap();
        assert!(e.body.is_empty() && e.content_type.is_none());
        assert!(
            e.url.starts_with(url),
            "existing parameters kept byte for byte: {}",
            e.url
        );
        let u = url::Url::parse(&e.url).unwrap();
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(q[3], ("sig".into(), "Ab+c".into()));
        assert!(q.contains(&("cdr[cliNum]".into(), "+14155550123".into())));
        assert_eq!(e.url.matches('?').count(), 1);
        assert!(matches!(
            encode("not a url", Method::Get, Format::Json, &sample()),
            Err(EncodeError::Url(_))
        ));
    }
}

//! Kazoo's stored leg CDRs as the fake Crossbar serves them, with Kazoo 4.3's behaviour
//! (`applications/crossbar/src/modules/cb_cdrs.erl`, `crossbar_view.erl`, `api_util.erl`;
//! `kazoo-events.md` §5.2a):
//!
//! - `GET /v2/accounts/{A}/cdrs`: summary rows of the documents whose `pvt_created` is within
//!   `created_from..=created_to` (Gregorian seconds; defaults: to = now, from = to − 2 682 000),
//!   newest first (`ascending=true` flips), `page_size` rows (default 50), `next_start_key`
//!   opaque (base64url) and `start_key` inclusive; 400 when to < from or the range is longer
//!   than 2 682 000 s. Chunked by default (`{"data":[` + rows + a trailer whose values are
//!   strings, in several HTTP chunks), the plain envelope with `is_chunked=false` or when there
//!   are no rows. A row's `timestamp` is the document's `timestamp` − `duration_seconds`, as a
//!   string; absent fields are empty strings.
//! - `GET /v2/accounts/{A}/cdrs/legs/{id}`: the whole documents of one interaction (an
//!   interaction id, or a CDR id whose interaction is looked up first), paged, plain envelope;
//!   404 for an unknown CDR id or an id of neither shape.
//! - `GET /v2/accounts/{A}/cdrs/{cdr_id}`: one document's public fields (`_…` and `pvt_…`
//!   dropped, `id` added), 404 when absent.
//!
//! Faults queued in [`CdrFault`] apply to the next CDR requests, one each, so a test can make
//! Crossbar fail, stall or cut connections on demand.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::http::{Reply, Served};

/// Kazoo's longest `/cdrs` range.
pub const MAX_RANGE_SECS: i64 = 2_682_000;
const GREGORIAN: i64 = 62_167_219_200;

/// One failure to inject into the next CDR request.
#[derive(Debug, Clone)]
pub enum CdrFault {
    /// Answer with this status and Kazoo's error envelope.
    Status(u16),
    /// Answer correctly, after this long.
    Slow(Duration),
    /// Close the connection without answering.
    Drop,
    /// Start a chunked answer, then close the connection.
    DropMidBody,
}

/// Stored leg CDR documents per account, plus injected faults.
#[derive(Default)]
pub struct CdrStore {
    /// Documents by account (`pvt_account_id`), in the order added.
    pub docs: BTreeMap<String, Vec<Value>>,
    /// Faults for the next CDR requests, first first.
    pub faults: VecDeque<CdrFault>,
    /// CDR requests served (faulty ones included).
    pub requests: usize,
    /// Answer listings with the plain envelope even when chunked is asked for (as when
    /// there are no rows), to test a client on both.
    pub plain: bool,
    /// Rows per page when the request names no `page_size` (Kazoo: 50).
    pub default_page_size: Option<usize>,
}

impl CdrStore {
    /// Adds documents, each to the account in its `pvt_account_id`.
    pub fn add(&mut self, docs: impl IntoIterator<Item = Value>) {
        for d in docs {
            let account = d["pvt_account_id"].as_str().unwrap_or_default().to_owned();
            self.docs.entry(account).or_default().push(d);
        }
    }

    /// Answers `GET /v2/accounts/{account}/cdrs[/rest…]?query`.
    pub fn serve(&mut self, account: &str, rest: &[&str], query: &str) -> Served {
        self.requests += 1;
        let q = parse_query(query);
        let (served, slow) = match self.faults.pop_front() {
            Some(CdrFault::Status(code)) => return Served::Reply(error(code, "injected failure")),
            Some(CdrFault::Drop) => return Served::Drop(None),
            Some(CdrFault::DropMidBody) => {
                let head = Reply::json(200, &json!({})).with_header("x-fault", "cut");
                return Served::DropMidBody(head, Bytes::from_static(b"{\"data\":[{\"id\":"));
            }
            Some(CdrFault::Slow(d)) => (self.route(account, rest, &q), Some(d)),
            None => (self.route(account, rest, &q), None),
        };
        match (served, slow) {
            (Served::Reply(mut r), Some(d)) => {
                r.delay = Some(d);
                Served::Reply(r)
            }
            (Served::Chunked(mut r, c), Some(d)) => {
                r.delay = Some(d);
                Served::Chunked(r, c)
            }
            (s, _) => s,
        }
    }

    fn route(&self, account: &str, rest: &[&str], q: &BTreeMap<String, String>) -> Served {
        let docs = self.docs.get(account).map(Vec::as_slice).unwrap_or(&[]);
        match rest {
            [] => listing(docs, q, self.plain, self.default_page_size),
            ["legs", id] => legs(docs, id, q, self.default_page_size),
            [id] => match docs.iter().find(|d| d["_id"] == *id) {
                Some(d) => Served::Reply(Reply::json(
                    200,
                    &json!({"data": public_fields(d), "status": "success"}),
                )),
                None => Served::Reply(bad_identifier(id)),
            },
            _ => Served::Reply(error(404, "not found")),
        }
    }
}

fn error(code: u16, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({"data": {"message": message}, "error": code.to_string(), "message": message, "status": "error"}),
    )
}

fn bad_identifier(id: &str) -> Reply {
    Reply::json(
        404,
        &json!({"data": {"cause": id, "message": "bad identifier"}, "error": "404", "message": "bad_identifier", "status": "error"}),
    )
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

/// The view key a document sorts and pages by: (`pvt_created`, `_id`).
fn key(d: &Value) -> (i64, String) {
    (
        int(&d["pvt_created"]).unwrap_or(0),
        d["_id"].as_str().unwrap_or_default().to_owned(),
    )
}

fn encode_key(k: &(i64, String)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([k.0, k.1]).to_string())
}

fn decode_key(s: &str) -> Option<(i64, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v[0].as_i64()?, v[1].as_str()?.to_owned()))
}

fn page_size(q: &BTreeMap<String, String>, default: Option<usize>) -> Result<usize, Reply> {
    match q.get("page_size") {
        None => Ok(default.unwrap_or(50)),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| error(400, "page_size must be a positive integer")),
    }
}

fn listing(
    docs: &[Value],
    q: &BTreeMap<String, String>,
    plain: bool,
    default_size: Option<usize>,
) -> Served {
    let now = chrono::Utc::now().timestamp() + GREGORIAN;
    let num = |k: &str| q.get(k).map(|v| v.parse::<i64>());
    let to = match num("created_to") {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(_)) => return Served::Reply(error(400, "created_to must be an integer")),
    };
    let from = match num("created_from") {
        None => to - MAX_RANGE_SECS,
        Some(Ok(f)) => f,
        Some(Err(_)) => return Served::Reply(error(400, "created_from must be an integer")),
    };
    if to < from {
        return Served::Reply(validation(
            "created_to",
            "date_range",
            "created_to is prior to created_from",
        ));
    }
    if to - from > MAX_RANGE_SECS {
        return Served::Reply(validation(
            "created_from",
            "date_range",
            &format!("created_to is more than {MAX_RANGE_SECS} seconds from created_from"),
        ));
    }
    let size = match page_size(q, default_size) {
        Ok(n) => n,
        Err(r) => return Served::Reply(r),
    };
    let ascending = q.get("ascending").is_some_and(|v| v == "true");
    let mut rows: Vec<&Value> = docs
        .iter()
        .filter(|d| (from..=to).contains(&key(d).0))
        .collect();
    rows.sort_by_key(|d| key(d));
    if !ascending {
        rows.reverse();
    }
    if let Some(start) = q.get("start_key") {
        let Some(start) = decode_key(start) else {
            return Served::Reply(error(400, "invalid start_key"));
        };
        rows.retain(|d| {
            if ascending {
                key(d) >= start
            } else {
                key(d) <= start
            }
        });
    }
    let next = rows.get(size).map(|d| encode_key(&key(d)));
    let start_key = rows.first().map(|d| encode_key(&key(d)));
    let page: Vec<Value> = rows.iter().take(size).map(|d| summary(d)).collect();
    let chunked = q.get("is_chunked").is_none_or(|v| v != "false");
    if plain || !chunked || page.is_empty() {
        let mut body = json!({"data": page, "page_size": page.len(), "status": "success"});
        if let Some(n) = next {
            body["next_start_key"] = json!(n);
        }
        if let Some(s) = start_key {
            body["start_key"] = json!(s);
        }
        return Served::Reply(Reply::json(200, &body));
    }
    // api_util:create_json_chunk_response/4 and close_chunk_json_envelope/2.
    let mut chunks = vec![Bytes::from_static(b"{\"data\":[")];
    for (i, row) in page.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        chunks.push(Bytes::from(format!("{sep}{row}")));
    }
    let mut trailer = vec![("page_size", page.len().to_string())];
    trailer.extend(next.map(|n| ("next_start_key", n)));
    trailer.extend(start_key.map(|s| ("start_key", s)));
    trailer.push(("status", "success".into()));
    trailer.push(("request_id", "test-crossbar".into()));
    trailer.push((
        "timestamp",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    ));
    trailer.push(("version", "4.3.0".into()));
    let trailer: Vec<String> = trailer
        .into_iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    chunks.push(Bytes::from(format!("], {}}}", trailer.join(","))));
    let head = Reply::json(200, &json!({}));
    Served::Chunked(head, chunks)
}

fn validation(field: &str, rule: &str, message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"data": {field: {rule: {"message": message}}}, "error": "400", "message": "validation error", "status": "error"}),
    )
}

/// A `cb_cdrs` listing row (`?COLUMNS`, the fields a client uses), strings where Kazoo
/// writes strings.
fn summary(d: &Value) -> Value {
    let s = |v: &Value| match v {
        Value::String(s) => Value::String(s.clone()),
        Value::Null => Value::String(String::new()),
        other => other.clone(),
    };
    let ccv = &d["custom_channel_vars"];
    let duration = int(&d["duration_seconds"]).unwrap_or(0);
    let start = int(&d["timestamp"]).unwrap_or(0) - duration;
    json!({
        "id": s(&d["_id"]),
        "call_id": s(&d["call_id"]),
        "caller_id_number": s(&d["caller_id_number"]),
        "caller_id_name": s(&d["caller_id_name"]),
        "callee_id_number": s(&d["callee_id_number"]),
        "callee_id_name": s(&d["callee_id_name"]),
        "duration_seconds": s(&d["duration_seconds"]),
        "billing_seconds": s(&d["billing_seconds"]),
        "timestamp": start.to_string(),
        "hangup_cause": s(&d["hangup_cause"]),
        "other_leg_call_id": s(&d["other_leg_call_id"]),
        "owner_id": s(&ccv["owner_id"]),
        "to": s(&d["to"]),
        "from": s(&d["from"]),
        "direction": s(&d["call_direction"]),
        "request": s(&d["request"]),
        "authorizing_id": s(&ccv["authorizing_id"]),
        "unix_timestamp": (start - GREGORIAN).to_string(),
        "bridge_id": s(&ccv["bridge_id"]),
        "interaction_id": s(&d["interaction_id"]),
    })
}

fn legs(
    docs: &[Value],
    id: &str,
    q: &BTreeMap<String, String>,
    default_size: Option<usize>,
) -> Served {
    let is_cdr_id =
        id.len() > 7 && id.as_bytes()[6] == b'-' && id[..6].bytes().all(|b| b.is_ascii_digit());
    let is_interaction =
        id.len() > 12 && id.as_bytes()[11] == b'-' && id[..11].bytes().all(|b| b.is_ascii_digit());
    let interaction = if is_cdr_id {
        match docs.iter().find(|d| d["_id"] == id) {
            Some(d) => d["interaction_id"].as_str().unwrap_or_default().to_owned(),
            None => return Served::Reply(error(404, "could not find legs for supplied id")),
        }
    } else if is_interaction {
        id.to_owned()
    } else {
        return Served::Reply(bad_identifier(id));
    };
    let size = match page_size(q, default_size) {
        Ok(n) => n,
        Err(r) => return Served::Reply(r),
    };
    let mut rows: Vec<&Value> = docs
        .iter()
        .filter(|d| d["interaction_id"] == interaction.as_str())
        .collect();
    rows.sort_by_key(|d| key(d));
    if let Some(start) = q.get("start_key") {
        let Some(start) = decode_key(start) else {
            return Served::Reply(error(400, "invalid start_key"));
        };
        rows.retain(|d| key(d) >= start);
    }
    let mut body = json!({
        "data": rows.iter().take(size).map(|d| (*d).clone()).collect::<Vec<_>>(),
        "page_size": rows.len().min(size),
        "status": "success",
    });
    if let Some(n) = rows.get(size) {
        body["next_start_key"] = json!(encode_key(&key(n)));
    }
    Served::Reply(Reply::json(200, &body))
}

/// `kz_doc:public_fields/1`: private keys dropped, `id` added.
fn public_fields(d: &Value) -> Value {
    let mut out: Map<String, Value> = d
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with('_') && !k.starts_with("pvt_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("id".into(), d["_id"].clone());
    Value::Object(out)
}

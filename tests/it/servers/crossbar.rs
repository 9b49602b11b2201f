//! A fake Crossbar (Kazoo's REST API) on 127.0.0.1:0, serving the simulator's demo PBX:
//! `PUT /v2/api_auth` issues JWT-shaped tokens with an `exp` claim, every other call needs a
//! valid `X-Auth-Token`, listings are paged two items at a time with `next_start_key`.
//! Stored leg CDRs (`/cdrs`, `/cdrs/legs/…`, `/cdrs/{id}`) are served from
//! [`CrossbarState::cdrs`] with Kazoo's filters, paging and envelopes, and can fail on demand
//! (see `cdr_store.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};

use super::cdr_store::CdrStore;
use super::http::{HttpServer, Recorded, Reply, Served};
use postcall::sim::Pbx;

/// Mutable state a test can steer.
#[derive(Default)]
pub struct CrossbarState {
    /// The API key `api_auth` accepts.
    pub api_key: String,
    /// Lifetime of issued tokens (seconds).
    pub token_ttl_secs: i64,
    /// Tokens issued, in order.
    pub issued: Vec<String>,
    /// Tokens accepted on API calls (static tokens can be added).
    pub valid: HashSet<String>,
    /// Active channel call ids per account (`GET …/channels`).
    pub channels: HashMap<String, Vec<String>>,
    /// Paths requested, in order.
    pub paths: Vec<String>,
    /// Stored leg CDRs and the faults to inject into CDR requests.
    pub cdrs: CdrStore,
}

/// A running fake Crossbar.
pub struct Crossbar {
    /// The HTTP server.
    pub server: HttpServer,
    /// Its state.
    pub state: Arc<Mutex<CrossbarState>>,
}

impl Crossbar {
    /// Starts one serving `pbx`.
    pub async fn start(pbx: Pbx, api_key: &str, token_ttl_secs: i64) -> Self {
        let state = Arc::new(Mutex::new(CrossbarState {
            api_key: api_key.into(),
            token_ttl_secs,
            ..CrossbarState::default()
        }));
        let st = state.clone();
        let server = HttpServer::start_served(None, move |r| serve(&pbx, &st, r)).await;
        Self { server, state }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Number of token exchanges so far.
    pub fn exchanges(&self) -> usize {
        self.state.lock().unwrap().issued.len()
    }
}

fn jwt(exp: i64, n: usize) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig{n}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(json!({"exp": exp, "n": n}).to_string())
    )
}

fn page(items: Vec<Value>, uri: &str) -> Reply {
    let start: usize = uri
        .split("start_key=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = (start + 2).min(items.len());
    let mut body = json!({"data": items[start.min(end)..end], "status": "success"});
    if end < items.len() {
        body["next_start_key"] = json!(end.to_string());
    }
    Reply::json(200, &body)
}

/// CDR requests (after the token check) go to the store; everything else to [`route`].
fn serve(pbx: &Pbx, state: &Mutex<CrossbarState>, r: &Recorded) -> Served {
    let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
    let parts: Vec<&str> = path
        .trim_start_matches("/v2/accounts/")
        .split('/')
        .collect();
    if path.starts_with("/v2/accounts/") && parts.get(1) == Some(&"cdrs") {
        let mut st = state.lock().unwrap();
        st.paths.push(r.uri.clone());
        if !r
            .header("x-auth-token")
            .is_some_and(|t| st.valid.contains(t))
        {
            return Served::Reply(Reply::json(
                401,
                &json!({"status":"error","error":"401","message":"invalid_credentials"}),
            ));
        }
        return st.cdrs.serve(parts[0], &parts[2..], query);
    }
    Served::Reply(route(pbx, state, r))
}

fn route(pbx: &Pbx, state: &Mutex<CrossbarState>, r: &Recorded) -> Reply {
    let mut st = state.lock().unwrap();
    let path = r.uri.split('?').next().unwrap_or("").to_owned();
    st.paths.push(r.uri.clone());
    if path == "/v2/api_auth" {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if r.method != hyper::Method::PUT || body["data"]["api_key"] != st.api_key.as_str() {
            return Reply::json(
                401,
                &json!({"status":"error","error":"401","message":"invalid credentials","data":{"message":"invalid credentials"}}),
            );
        }
        let n = st.issued.len();
        let token = jwt(chrono::Utc::now().timestamp() + st.token_ttl_secs, n);
        st.issued.push(token.clone());
        st.valid.insert(token.clone());
        return Reply::json(
            200,
            &json!({"auth_token": token, "status":"success", "data": {"account_id": pbx.accounts[0].id}}),
        );
    }
    if !r
        .header("x-auth-token")
        .is_some_and(|t| st.valid.contains(t))
    {
        return Reply::json(
            401,
            &json!({"status":"error","error":"401","message":"invalid_credentials"}),
        );
    }
    let parts: Vec<&str> = path
        .trim_start_matches("/v2/accounts/")
        .split('/')
        .collect();
    let Some(acct) = pbx.accounts.iter().find(|a| a.id == parts[0]) else {
        return Reply::json(404, &json!({"status":"error","message":"bad identifier"}));
    };
    match parts.get(1).copied() {
        None => Reply::json(200, &json!({"data": {"id": acct.id, "name": acct.name, "timezone": acct.timezone}, "status":"success"})),
        Some("devices") => page(acct.devices.iter().map(|d| json!({"id": d.id, "name": d.name, "username": d.username, "owner_id": d.owner_id, "device_type": d.device_type})).collect(), &r.uri),
        Some("users") => page(acct.users.iter().map(|u| json!({"id": u.id, "first_name": u.first_name, "last_name": u.last_name, "presence_id": u.extension, "email": u.email})).collect(), &r.uri),
        Some("queues") => page(vec![json!({"id": acct.queue.id, "name": acct.queue.name})], &r.uri),
        Some("groups") => page(vec![json!({"id": acct.ring_group.id, "name": acct.ring_group.name})], &r.uri),
        Some("phone_numbers") => {
            let numbers: serde_json::Map<String, Value> = acct.dids.iter().map(|d| (d.number.clone(), json!({"name": d.name, "state": "in_service"}))).collect();
            Reply::json(200, &json!({"data": {"numbers": numbers}, "status":"success"}))
        }
        Some("channels") => page(st.channels.get(&acct.id).cloned().unwrap_or_default().into_iter().map(|c| json!({"uuid": c, "answered": true})).collect(), &r.uri),
        Some("descendants") => page(pbx.accounts.iter().skip(1).map(|a| json!({"id": a.id, "name": a.name})).collect(), &r.uri),
        _ => Reply::json(404, &json!({"status":"error","message":"not found"})),
    }
}

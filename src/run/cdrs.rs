//! The CDR journal on the admin listener (the running sidecar holds the store, so this is how
//! the journal is read and re-sent while it runs). Authentication is [`super::admin`]'s:
//! every `/cdrs` path needs the token when one is set (CDRs are personal data), re-sends
//! always need it.
//!
//! - `GET /cdrs?tenant=T&from=T1&to=T2&limit=N&after=C`: one page, oldest first
//!   (`{"entries": [...], "next": C|null}`; `limit` 1–1000, default 100);
//! - `GET /cdrs/{id}`: the entry with the state of each delivery;
//! - `POST /cdrs/{id}/resend?trigger=TID`: its deliveries again, through the current triggers;
//! - `POST /cdrs/resend?from=T1&to=T2&tenant=T&trigger=TID&after=C`: catch-up (only
//!   deliveries that never existed), up to [`PAGES_PER_REQUEST`] pages of
//!   [`RESEND_PAGE`] sessions; `next` says where to continue.
//!
//! Times are RFC 3339 or a duration ago (`2h`), as on the command line.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};

use super::metrics::Registry;
use crate::clock::WallTime;
use crate::delivery::journal::{
    cursor_text, parse_cursor, parse_time, ListFilter, ResendReport, ResendTarget,
};
use crate::delivery::OutboxError;

/// Sessions per re-send transaction.
pub const RESEND_PAGE: usize = 200;
/// Pages one `POST /cdrs/resend` works through before answering with `next`.
pub const PAGES_PER_REQUEST: usize = 10;

const TEXT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn json(v: &serde_json::Value) -> Response<Full<Bytes>> {
    reply(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn bad(message: String) -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, TEXT, message + "\n")
}

fn failed(e: &OutboxError) -> Response<Full<Bytes>> {
    match e {
        OutboxError::NotFound(_) => reply(StatusCode::NOT_FOUND, TEXT, "no such CDR\n"),
        e => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
    }
}

/// Whether `path` is one of the journal's routes (authentication is decided on this).
pub fn is_cdrs_path(path: &str) -> bool {
    path == "/cdrs" || path.starts_with("/cdrs/")
}

/// What a `/cdrs` path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    List,
    One(&'a str),
    ResendOne(&'a str),
    ResendWindow,
}

fn parse_route<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
    let rest = path.strip_prefix("/cdrs")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match (method, parts.as_slice()) {
        (&Method::GET, []) => Some(Route::List),
        (&Method::POST, ["resend"]) => Some(Route::ResendWindow),
        (&Method::GET, [id]) if !id.is_empty() => Some(Route::One(id)),
        (&Method::POST, [id, "resend"]) if !id.is_empty() => Some(Route::ResendOne(id)),
        _ => None,
    }
}

/// Whether the request changes state (re-sends need the token and a same-origin request).
pub fn is_write(method: &Method) -> bool {
    method != Method::GET
}

fn query(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn window(q: &HashMap<String, String>, limit: usize) -> Result<ListFilter, String> {
    let now = WallTime::now().as_us();
    let time = |k: &str| {
        q.get(k)
            .map(|t| parse_time(t, now).map_err(|e| format!("{k}: {e}")))
            .transpose()
    };
    let after = match q.get("after") {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| format!("after: {c:?} is not a cursor"))?),
        None => None,
    };
    Ok(ListFilter {
        tenant: q.get("tenant").cloned(),
        from_us: time("from")?,
        to_us: time("to")?,
        limit,
        after,
    })
}

/// Serves a `/cdrs` request (already authenticated).
pub async fn serve(
    reg: &Registry,
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
) -> Response<Full<Bytes>> {
    let Some(route) = parse_route(method, path) else {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found\n");
    };
    let Some(engine) = reg.engine.as_ref() else {
        return reply(StatusCode::NOT_FOUND, TEXT, "no journal\n");
    };
    let outbox = engine.outbox();
    let q = query(raw_query);
    match route {
        Route::List => {
            let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) if (1..=1000).contains(&n) => n,
                Some(_) => return bad("limit: must be 1 to 1000".into()),
            };
            let filter = match window(&q, limit) {
                Ok(f) => f,
                Err(e) => return bad(e),
            };
            match outbox.journal_list(filter).await {
                Ok(page) => json(&serde_json::json!({
                    "entries": page.entries.iter().map(|e| e.to_json(None)).collect::<Vec<_>>(),
                    "next": page.next.as_ref().map(cursor_text),
                })),
                Err(e) => failed(&e),
            }
        }
        Route::One(id) => match outbox.journal_get(id).await {
            Ok(Some(r)) => json(&r.to_json()),
            Ok(None) => reply(StatusCode::NOT_FOUND, TEXT, "no such CDR\n"),
            Err(e) => failed(&e),
        },
        Route::ResendOne(id) => {
            resend(
                reg,
                ResendTarget::One(id.to_owned()),
                q.get("trigger").cloned(),
                1,
            )
            .await
        }
        Route::ResendWindow => {
            if !q.contains_key("from") || !q.contains_key("to") {
                return bad("from and to are required".into());
            }
            match window(&q, RESEND_PAGE) {
                Ok(f) => {
                    resend(
                        reg,
                        ResendTarget::Window(f),
                        q.get("trigger").cloned(),
                        PAGES_PER_REQUEST,
                    )
                    .await
                }
                Err(e) => bad(e),
            }
        }
    }
}

/// Re-sends through the running trigger set, page by page, then wakes the engine.
async fn resend(
    reg: &Registry,
    mut target: ResendTarget,
    trigger: Option<String>,
    pages: usize,
) -> Response<Full<Bytes>> {
    let (Some(engine), Some(triggers)) = (reg.engine.as_ref(), reg.triggers.as_ref()) else {
        return reply(StatusCode::NOT_FOUND, TEXT, "no trigger set\n");
    };
    let set = triggers.load_full();
    if let Some(t) = &trigger {
        if set.get(t).is_none() {
            return reply(StatusCode::NOT_FOUND, TEXT, "no such trigger\n");
        }
    }
    let mut total = ResendReport::default();
    for _ in 0..pages {
        let (t, set, trig) = (target.clone(), set.clone(), trigger.clone());
        let r = engine
            .outbox()
            .journal_resend(t, set, trig, WallTime::now())
            .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => return failed(&e),
        };
        engine.queued(r.lanes.iter().cloned());
        total.add(&r);
        total.next.clone_from(&r.next);
        match (&mut target, r.next) {
            (ResendTarget::Window(f), Some(next)) => f.after = Some(next),
            _ => break,
        }
    }
    let mut v = serde_json::to_value(&total).unwrap_or_default();
    v["next"] = serde_json::json!(total.next.as_ref().map(cursor_text));
    json(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(parse_route(&g, "/cdrs"), Some(Route::List));
        assert_eq!(parse_route(&g, "/cdrs/abc"), Some(Route::One("abc")));
        assert_eq!(
            parse_route(&p, "/cdrs/abc/resend"),
            Some(Route::ResendOne("abc"))
        );
        assert_eq!(parse_route(&p, "/cdrs/resend"), Some(Route::ResendWindow));
        for (m, bad) in [
            (&g, "/cdrs/"),
            (&g, "/cdrs//"),
            (&p, "/cdrs"),
            (&p, "/cdrs//resend"),
            (&g, "/cdrs/a/b"),
            (&g, "/cdrsx"),
            (&p, "/cdrs/a/resend/x"),
        ] {
            assert_eq!(parse_route(m, bad), None, "{m} {bad}");
        }
        assert!(is_cdrs_path("/cdrs") && is_cdrs_path("/cdrs/x") && !is_cdrs_path("/cdrsx"));
    }
}

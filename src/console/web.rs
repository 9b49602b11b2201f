//! The console's HTTP side: who may see it, CSRF, reading forms, turning a [`Reply`] into a
//! response with the security headers.
//!
//! - With an admin token, a request is authenticated by `Authorization: Bearer <token>` or by
//!   the session cookie the login form sets: `HMAC-SHA256(SHA-256(token), …)`, so it is
//!   derived from the token (a changed token ends every session; nothing is kept server-side)
//!   and never is the token. HttpOnly, SameSite=Strict, `Path=/console`.
//! - Without a token (possible on a loopback bind only, see
//!   [`crate::run::admin::AdminOptions::validate`]) the console is open; a random session
//!   cookie is issued so forms still carry a per-session CSRF token.
//! - Every POST needs `csrf` = `HMAC(process key, session)` in its form and a same-origin
//!   request (`Origin` naming this host, `Sec-Fetch-Site` same-origin or none) — the admin
//!   listener's check for state-changing requests.
//! - Every answer: `Content-Security-Policy` (own scripts and styles only, no framing),
//!   `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`, `Cache-Control: no-store`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::pages::{self, Ctx, Reply};
use super::triggers::Form;
use super::Console;

/// The session cookie's name.
const COOKIE: &str = "postcall_console";
/// Largest form body read.
const MAX_FORM: usize = 64 * 1024;

/// What the admin listener found out about a console request before handing it over (its
/// `Host` was already checked).
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The request carries the admin token as a bearer token.
    pub bearer: bool,
    /// SHA-256 of the configured admin token, if there is one.
    pub token: Option<[u8; 32]>,
    /// The request comes from this origin (see the admin listener's check).
    pub same_origin: bool,
}

/// Whether `path` belongs to the console.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Compares through digests, so the time taken tells nothing about the expected value.
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// The session cookie value of a token holder.
fn token_session(token: &[u8; 32]) -> String {
    hex(&mac(token, b"postcall console session v1"))
}

fn cookie(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(value: &str, max_age: Option<u32>) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict{age}")
}

fn is_session_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(Reply::Status(status, body.to_owned()), None)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Serves a console request.
pub async fn handle<B>(
    console: Option<&Arc<Console>>,
    access: Access,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(c) = console else {
        return text(
            StatusCode::NOT_FOUND,
            "the console does not run in this process\n",
        );
    };
    let (parts, body) = req.into_parts();
    let segs: Vec<String> = parts
        .uri
        .path()
        .trim_start_matches("/console")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let method = parts.method.clone();
    if let (&Method::GET, ["static", name]) = (&method, segs.as_slice()) {
        return respond(pages::asset(name), None);
    }
    let given = cookie(&parts.headers);
    let session = match &access.token {
        Some(t) => {
            let expected = token_session(t);
            match given {
                Some(g) if same(&g, &expected) => Some(g),
                _ if access.bearer => Some("bearer".to_owned()),
                _ => None,
            }
        }
        None => given.filter(|g| is_session_id(g)),
    };
    let form = if method == Method::POST {
        match Limited::new(body, MAX_FORM).collect().await {
            Ok(b) => Form::parse(&b.to_bytes()),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large or cut off\n"),
        }
    } else {
        Form::default()
    };
    if segs.as_slice() == ["login"] {
        return login(c, &access, &method, &form);
    }
    let (session, new_cookie) = match (session, &access.token) {
        (Some(s), _) => (s, None),
        (None, Some(_)) if method == Method::GET => {
            return respond(Reply::Redirect("/console/login".into()), None);
        }
        (None, Some(_)) => return text(StatusCode::UNAUTHORIZED, "log in first\n"),
        (None, None) => {
            let s = hex(&super::random_key());
            let cookie = set_cookie(&s, None);
            (s, Some(cookie))
        }
    };
    let csrf = hex(&mac(&c.key, session.as_bytes()))[..32].to_owned();
    if method == Method::POST {
        let token_ok = form.get("csrf").is_some_and(|t| same(t, &csrf));
        if !access.same_origin || !token_ok {
            return text(
                StatusCode::FORBIDDEN,
                "refused: cross-origin request or a missing/stale form token; reload the page\n",
            );
        }
        if segs.as_slice() == ["logout"] {
            return respond(
                Reply::Redirect("/console/login".into()),
                Some(set_cookie("", Some(0))),
            );
        }
    }
    let ctx = Ctx {
        csrf,
        logout: access.token.is_some() && session != "bearer",
    };
    let reply = pages::route(c, &ctx, &method, &segs, &query, form).await;
    respond(reply, new_cookie)
}

/// `GET /console/login` (the form) and `POST /console/login` (the token → the session
/// cookie). Without a token there is nothing to log in to.
fn login(c: &Console, access: &Access, method: &Method, form: &Form) -> Response<Full<Bytes>> {
    let Some(token) = &access.token else {
        return respond(Reply::Redirect("/console/tenants".into()), None);
    };
    if *method == Method::POST {
        if !access.same_origin {
            return text(StatusCode::FORBIDDEN, "cross-origin request refused\n");
        }
        let given = form.get("token").unwrap_or("").trim();
        if <[u8; 32]>::from(Sha256::digest(given.as_bytes())) == *token {
            return respond(
                Reply::Redirect("/console/tenants".into()),
                Some(set_cookie(&token_session(token), None)),
            );
        }
        return respond(pages::login_page(c, Some("wrong token")), None);
    }
    respond(pages::login_page(c, None), None)
}

/// The response for `reply`, with the security headers and `cookie` set.
fn respond(reply: Reply, cookie: Option<String>) -> Response<Full<Bytes>> {
    let (status, ctype, body, location) = match reply {
        Reply::Html(status, html) => (status, "text/html; charset=utf-8", Bytes::from(html), None),
        Reply::Json(v) => (
            StatusCode::OK,
            "application/json",
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            None,
        ),
        Reply::Asset(ctype, body) => (StatusCode::OK, ctype, Bytes::from_static(body), None),
        Reply::Status(status, msg) => (status, "text/plain; charset=utf-8", Bytes::from(msg), None),
        Reply::Redirect(to) => (
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            Bytes::new(),
            Some(to),
        ),
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let mut put = |k: header::HeaderName, v: &str| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    put(header::CONTENT_TYPE, ctype);
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    put(header::X_FRAME_OPTIONS, "DENY");
    // Not `no-referrer`: with it Chrome sends `Origin: null` on form posts, which the
    // same-origin check refuses.
    put(header::REFERRER_POLICY, "same-origin");
    put(header::CACHE_CONTROL, "no-store");
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(to) = location {
        put(header::LOCATION, &to);
    }
    if let Some(c) = cookie {
        put(header::SET_COOKIE, &c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn console(dir: &std::path::Path) -> Arc<Console> {
        let outbox = Arc::new(crate::delivery::Outbox::open(&dir.join("o.redb")).unwrap());
        let http = crate::net::HttpClient::new(
            crate::net::tls::client_config(None).unwrap(),
            &Default::default(),
        );
        let engine = crate::delivery::Engine::new(outbox.clone(), http, Default::default());
        let reloader =
            crate::trigger::Reloader::new(crate::trigger::TriggerSources::files(Vec::new()))
                .unwrap();
        Console::start(
            Arc::new(super::super::store::RedbTriggers::new(outbox)),
            reloader,
            engine,
            None,
        )
        .await
        .unwrap()
    }

    /// No path, method, cookie or form makes the console panic, and without the token
    /// nothing but the login form and the static files is served.
    #[tokio::test]
    async fn odd_requests_are_answered_and_need_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path()).await;
        let token: [u8; 32] = Sha256::digest(b"0123456789abcdef").into();
        let paths = [
            "/console",
            "/console/",
            "/console//",
            "/console/tenants",
            "/console/tenants/",
            "/console/tenants/x",
            "/console/tenants/x/triggers",
            "/console/tenants/x/triggers/new",
            "/console/tenants/x/triggers/%ff%fe",
            "/console/tenants/x/triggers/y/test?n=-1",
            "/console/tenants/x/triggers/y/test?n=99999999999999999999",
            "/console/tenants/x/triggers/y/log",
            "/console/tenants/x/triggers/y/delete",
            "/console/dead//resend",
            "/console/dead/x/purge",
            "/console/static/../../etc/passwd",
            "/console/static/console.css",
            "/console/counters.json",
            "/console/new?tenant=",
            "/console/new?tenant=a%2Fb",
            "/console/login",
            "/console/logout",
            "/console/deliveries?webhook=%00",
        ];
        for p in paths {
            for method in ["GET", "POST", "PUT", "DELETE"] {
                for (bearer, tok) in [(false, None), (true, Some(token)), (false, Some(token))] {
                    let req = Request::builder()
                        .method(method)
                        .uri(p)
                        .header(header::COOKIE, "postcall_console=zz; postcall_console=")
                        .body(Full::new(Bytes::from_static(
                            b"csrf=x&f_field=dir&f_op=&url=%",
                        )))
                        .unwrap();
                    let access = Access {
                        bearer,
                        token: tok,
                        same_origin: true,
                    };
                    let r = handle(Some(&c), access, req).await;
                    let s = r.status().as_u16();
                    assert!((200..500).contains(&s), "{method} {p}: {s}");
                    let open = p.starts_with("/console/static/") || p == "/console/login";
                    if tok.is_some() && !bearer && !open {
                        assert!(s == 303 || s == 401, "{method} {p} without the token: {s}");
                    }
                    assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
                }
            }
        }
    }

    #[test]
    fn cookies_and_sessions() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; postcall_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        let t1 = token_session(&[1; 32]);
        assert!(is_session_id(&t1));
        assert_ne!(t1, token_session(&[2; 32]), "a new token ends old sessions");
        assert!(set_cookie("x", None).contains("HttpOnly; SameSite=Strict"));
        assert!(
            is_console_path("/console")
                && is_console_path("/console/x")
                && !is_console_path("/consolex")
        );
    }
}

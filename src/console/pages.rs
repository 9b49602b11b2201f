//! The console's pages: one function per page or action, each rendering a template or
//! redirecting (POST-redirect-GET).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper::{Method, StatusCode};
use minijinja::Environment;
use serde::Serialize;
use serde_json::{json, Value};

use super::store::StoredTrigger;
use super::triggers::{self, FieldErrors, Form, ORIGIN};
use super::Console;
use crate::clock::WallTime;
use crate::delivery::attempts::AttemptQuery;
use crate::session::ClosedSession;
use crate::trigger::model::{redacted_url, Match};
use crate::trigger::{Trigger, TriggerSet, Verdict};

/// What a page answers.
pub(super) enum Reply {
    /// An HTML page.
    Html(StatusCode, String),
    /// JSON (the live counters).
    Json(Value),
    /// A static file.
    Asset(&'static str, &'static [u8]),
    /// A plain-text status.
    Status(StatusCode, String),
    /// `303 See Other` to this path.
    Redirect(String),
}

/// Per-request values every page needs.
pub(super) struct Ctx {
    /// The session's CSRF token (a hidden field of every form).
    pub csrf: String,
    /// Show "log out" (a token holder logged in with the form).
    pub logout: bool,
}

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("tenants.html", include_str!("templates/tenants.html")),
    ("tenant.html", include_str!("templates/tenant.html")),
    ("trigger.html", include_str!("templates/trigger.html")),
    ("test.html", include_str!("templates/test.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The template environment (HTML auto-escaping for `.html` templates).
pub(super) fn templates() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        env.add_template(name, src)?;
    }
    env.add_filter("time", |us: i64| time(us));
    Ok(env)
}

/// `2026-11-28T11:42:07Z` for µs since the epoch.
fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The static files.
pub(super) fn asset(name: &str) -> Reply {
    match name {
        "console.css" => Reply::Asset(
            "text/css; charset=utf-8",
            include_bytes!("static/console.css"),
        ),
        "console.js" => Reply::Asset(
            "text/javascript; charset=utf-8",
            include_bytes!("static/console.js"),
        ),
        _ => Reply::Status(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn render(c: &Console, ctx: &Ctx, status: StatusCode, name: &str, mut v: Value) -> Reply {
    v["csrf"] = json!(ctx.csrf);
    v["logout"] = json!(ctx.logout);
    v["counters"] = counters(c);
    let page = minijinja::Value::from(minijinja::value::Serde(&v));
    match c.env.get_template(name).and_then(|t| t.render(page)) {
        Ok(html) => Reply::Html(status, html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            Reply::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "template error (see the log)\n".into(),
            )
        }
    }
}

fn error(c: &Console, ctx: &Ctx, status: StatusCode, message: &str) -> Reply {
    render(
        c,
        ctx,
        status,
        "error.html",
        json!({ "title": "Error", "message": message }),
    )
}

/// The login form.
pub(super) fn login_page(c: &Console, problem: Option<&str>) -> Reply {
    let status = if problem.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let ctx = Ctx {
        csrf: String::new(),
        logout: false,
    };
    render(
        c,
        &ctx,
        status,
        "login.html",
        json!({ "title": "Log in", "problem": problem }),
    )
}

/// Dispatches an authenticated request (CSRF already checked for POST).
pub(super) async fn route(
    c: &Console,
    ctx: &Ctx,
    method: &Method,
    segs: &[&str],
    query: &HashMap<String, String>,
    form: Form,
) -> Reply {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match segs {
        [] if get => Reply::Redirect("/console/tenants".into()),
        ["counters.json"] if get => Reply::Json(counters(c)),
        ["tenants"] if get => tenants(c, ctx),
        ["new"] if get => match query.get("tenant").map(|t| t.trim()) {
            Some(t) if !t.is_empty() => {
                Reply::Redirect(format!("/console/tenants/{}/triggers/new", enc(t)))
            }
            _ => Reply::Redirect("/console/tenants".into()),
        },
        ["tenants", t] if get => tenant(c, ctx, t),
        ["tenants", t, "triggers", "new"] if get => {
            let id = uuid::Uuid::new_v4().to_string();
            edit_form(
                c,
                ctx,
                StatusCode::OK,
                t,
                &id,
                true,
                &triggers::blank(&id, t),
                &FieldErrors::new(),
                None,
            )
        }
        ["tenants", t, "triggers"] if post => create(c, ctx, t, &form).await,
        ["tenants", t, "triggers", id] if get => {
            trigger(c, ctx, t, id, query.contains_key("saved")).await
        }
        ["tenants", t, "triggers", id] if post => save(c, ctx, t, id, &form).await,
        ["tenants", t, "triggers", id, action @ ("enable" | "disable")] if post => {
            toggle(c, ctx, t, id, *action == "enable").await
        }
        ["tenants", t, "triggers", id, "delete"] if post => delete(c, ctx, t, id).await,
        ["tenants", t, "triggers", id, "test"] if get => {
            let n = query
                .get("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(super::TEST_CDRS)
                .clamp(1, 500);
            test(c, ctx, t, id, n, None).await
        }
        ["tenants", t, "triggers", id, "test-webhook"] if post => test_webhook(c, ctx, t, id).await,
        ["tenants", t, "triggers", id, "log"] if get => deliveries(c, ctx, Some(id), None).await,
        ["deliveries"] if get => {
            deliveries(
                c,
                ctx,
                query.get("trigger").map(String::as_str),
                query.get("webhook").map(String::as_str),
            )
            .await
        }
        ["dead", id, "resend"] if post => resend(c, ctx, id, &form).await,
        ["dead", id, "purge"] if post => purge(c, ctx, id, &form).await,
        _ => error(c, ctx, StatusCode::NOT_FOUND, "No such page."),
    }
}

/// What a path segment keeps as is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Open sessions, closed sessions per minute, deliveries by outcome.
fn counters(c: &Console) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let now = WallTime::now().as_us();
    let (open, closed) = match &c.driver {
        Some(d) => {
            let a = d.assembler.lock().map(|a| a.closed + a.forced).unwrap_or(0);
            (Some(d.open_sessions.load(Relaxed)), Some(a))
        }
        None => (None, None),
    };
    let per_minute = closed.and_then(|total| {
        let mut q = c
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.back().is_none_or(|(t, _)| now - t >= 1_000_000) {
            q.push_back((now, total));
        }
        while q.len() > 600 || q.front().is_some_and(|(t, _)| now - t > 300_000_000) {
            q.pop_front();
        }
        // The oldest sample of the last minute; the rate once at least 5 s are covered.
        let (t0, n0) = *q.iter().find(|(t, _)| now - t <= 60_000_000)?;
        let span = now - t0;
        (span >= 5_000_000).then(|| ((total - n0) as f64 * 60_000_000.0 / span as f64).round())
    });
    let e = &c.engine.counters;
    json!({
        "openSessions": open,
        "closedSessions": closed,
        "closedPerMinute": per_minute,
        "delivered": e.delivered.load(Relaxed),
        "retried": e.retried.load(Relaxed),
        "dead": e.dead.load(Relaxed),
        "pending": c.engine.outbox().pending_gauge(),
        "deadLetters": c.engine.outbox().dead_gauge(),
        "attempts": e.attempts.load(Relaxed),
    })
}

/// One condition as written: `dir in ["Incoming","Both"]`.
fn condition(f: &crate::trigger::filter::Filter) -> String {
    format!("{} {} {}", f.field_name(), f.op().name(), f.expected())
}

#[derive(Serialize)]
struct TriggerRow {
    id: String,
    origin: String,
    console: bool,
    enabled: bool,
    user: Option<String>,
    conditions: Vec<String>,
    action: String,
    signed: bool,
    retries: u8,
    format: String,
    data: Vec<(String, String)>,
}

fn row(t: &Trigger) -> TriggerRow {
    TriggerRow {
        id: t.id.clone(),
        origin: t.origin.to_string(),
        console: &*t.origin == ORIGIN,
        enabled: t.enabled,
        user: t.user_id.clone(),
        conditions: t.filters.iter().map(condition).collect(),
        action: request_line(t),
        signed: t.action.secret.is_some(),
        retries: t.action.retries,
        format: format!("{:?}", t.action.format).to_lowercase(),
        data: t
            .action
            .custom_data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// `POST https://hooks.example/calls?[redacted]`.
fn request_line(t: &Trigger) -> String {
    let m = match t.action.method {
        crate::trigger::Method::Get => "GET",
        crate::trigger::Method::Post => "POST",
        crate::trigger::Method::Put => "PUT",
    };
    format!("{m} {}", redacted_url(&t.action.url))
}

fn tenants(c: &Console, ctx: &Ctx) -> Reply {
    let set = c.reloader.current();
    let mut by: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for t in set.triggers() {
        let e = by.entry(t.tenant_id.as_str()).or_default();
        if &*t.origin == ORIGIN {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        e.2 += usize::from(t.enabled);
    }
    let rows: Vec<Value> = by
        .iter()
        .map(|(t, (console, other, enabled))| json!({"tenant": t, "console": console, "other": other, "enabled": enabled}))
        .collect();
    render(
        c,
        ctx,
        StatusCode::OK,
        "tenants.html",
        json!({ "title": "Tenants", "tenants": rows }),
    )
}

fn tenant(c: &Console, ctx: &Ctx, tenant: &str) -> Reply {
    let set = c.reloader.current();
    let rows: Vec<TriggerRow> = set
        .triggers()
        .iter()
        .filter(|t| t.tenant_id == tenant)
        .map(|t| row(t))
        .collect();
    render(
        c,
        ctx,
        StatusCode::OK,
        "tenant.html",
        json!({ "title": format!("Tenant {tenant}"), "tenant": tenant, "triggers": rows }),
    )
}

/// The trigger form (create or edit).
#[allow(clippy::too_many_arguments)]
fn edit_form(
    c: &Console,
    ctx: &Ctx,
    status: StatusCode,
    tenant: &str,
    id: &str,
    new: bool,
    view: &triggers::FormView,
    errors: &FieldErrors,
    notice: Option<&str>,
) -> Reply {
    // Derived once: it compiles a probe filter per field and operator.
    static CATALOG: std::sync::OnceLock<Vec<crate::trigger::filter::FieldSpec>> =
        std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(crate::trigger::filter::catalog);
    let ops: Vec<&str> = crate::trigger::filter::Op::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect();
    // The form shows every row given plus three empty ones to fill in.
    let mut filters = view.filters.clone();
    filters.extend((0..3).map(|_| triggers::FilterRow {
        field: String::new(),
        op: "eq".into(),
        value: String::new(),
    }));
    let mut data = view.data.clone();
    data.extend((0..2).map(|_| (String::new(), String::new())));
    render(
        c,
        ctx,
        status,
        "trigger.html",
        json!({ "title": if new { "New trigger".to_owned() } else { format!("Trigger {id}") }, "tenant": tenant, "id": id, "new": new, "editable": true, "form": view, "filters": filters, "data": data, "errors": errors, "notice": notice, "catalog_json": serde_json::to_string(&catalog).unwrap_or_default(), "catalog": catalog, "ops": ops, "action": if new { format!("/console/tenants/{}/triggers", enc(tenant)) } else { format!("/console/tenants/{}/triggers/{}", enc(tenant), enc(id)) } }),
    )
}

async fn stored(c: &Console) -> Result<Vec<StoredTrigger>, String> {
    c.store.list().await.map_err(|e| e.to_string())
}

/// One change to the console's triggers.
enum Change {
    Put(Box<(StoredTrigger, Trigger)>),
    Delete(String),
}

/// Applies `change` live (through the reloader, so the set is validated whole) and then
/// durably; if the store fails, the live set goes back to what the store holds.
async fn apply(c: &Console, change: Change) -> Result<(), FieldErrors> {
    let mut seen = c.writes.lock().await;
    let opts = c.reloader.build_options();
    let top = |m: String| FieldErrors::from([(String::new(), vec![m])]);
    let mut now_stored = c.store.list().await.map_err(|e| top(e.to_string()))?;
    let current = super::validate_all(now_stored.clone(), opts).map_err(|e| top(e.to_string()))?;
    let mut next: Vec<Trigger> = current.clone();
    match &change {
        Change::Put(p) => match next.iter_mut().find(|x| x.id == p.1.id) {
            Some(x) => *x = p.1.clone(),
            None => next.push(p.1.clone()),
        },
        Change::Delete(id) => next.retain(|x| &x.id != id),
    }
    set_live(c, next)
        .await
        .map_err(|e| triggers::field_errors(&e))?;
    let stored = match change {
        Change::Put(p) => {
            let put = p.0.clone();
            let r = c.store.put(p.0).await;
            match now_stored.iter_mut().find(|x| x.id == put.id) {
                Some(x) => *x = put,
                None => {
                    now_stored.push(put);
                    now_stored.sort_by(|a, b| a.id.cmp(&b.id));
                }
            }
            r
        }
        Change::Delete(id) => {
            now_stored.retain(|x| x.id != id);
            c.store.delete(id).await.map(drop)
        }
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "console trigger change not stored; the live set is put back");
        if let Err(back) = set_live(c, current).await {
            tracing::error!(error = %back, "cannot put the live trigger set back");
        }
        return Err(top(format!("not saved: {e}")));
    }
    // The live set is now built from what the store holds (`Console::catch_up` compares).
    *seen = now_stored;
    Ok(())
}

async fn set_live(
    c: &Console,
    triggers: Vec<Trigger>,
) -> Result<(), crate::trigger::TriggerErrors> {
    let r = c.reloader.clone();
    match tokio::task::spawn_blocking(move || r.set_console(triggers)).await {
        Ok(r) => r,
        Err(e) => Err(crate::trigger::TriggerErrors(vec![
            crate::trigger::TriggerError {
                origin: ORIGIN.into(),
                trigger_id: None,
                path: String::new(),
                message: e.to_string(),
            },
        ])),
    }
}

/// Validates `doc` and applies it, or shows the form again with the errors.
async fn put(c: &Console, ctx: &Ctx, tenant: &str, id: &str, new: bool, doc: Value) -> Reply {
    let view = triggers::view(&doc);
    let result = match triggers::validate(&doc, c.reloader.build_options()) {
        Ok(t) => {
            let s = StoredTrigger {
                id: id.to_owned(),
                tenant: tenant.to_owned(),
                doc,
                updated_us: WallTime::now().as_us(),
            };
            apply(c, Change::Put(Box::new((s, t)))).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Reply::Redirect(format!(
            "/console/tenants/{}/triggers/{}?saved",
            enc(tenant),
            enc(id)
        )),
        Err(errors) => edit_form(
            c,
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            tenant,
            id,
            new,
            &view,
            &errors,
            None,
        ),
    }
}

async fn create(c: &Console, ctx: &Ctx, tenant: &str, form: &Form) -> Reply {
    // The id is the GUID the blank form was given (kept when the form comes back with errors).
    let id = match form.get("id").map(uuid::Uuid::parse_str) {
        Some(Ok(u)) => u.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    if c.reloader.current().get(&id).is_some() {
        return error(
            c,
            ctx,
            StatusCode::CONFLICT,
            "A trigger with this id exists already.",
        );
    }
    put(
        c,
        ctx,
        tenant,
        &id,
        true,
        triggers::doc_from_form(form, &id, tenant, None),
    )
    .await
}

async fn find(c: &Console, tenant: &str, id: &str) -> Result<Option<StoredTrigger>, String> {
    Ok(stored(c)
        .await?
        .into_iter()
        .find(|s| s.id == id && s.tenant == tenant))
}

/// A trigger not managed here: 403 if another source defines it, else 404.
fn not_editable(c: &Console, ctx: &Ctx, tenant: &str, id: &str) -> Reply {
    match c.reloader.current().get(id) {
        Some(t) if t.tenant_id == tenant => error(
            c,
            ctx,
            StatusCode::FORBIDDEN,
            &format!(
                "This trigger is defined in {} and is read-only here.",
                t.origin
            ),
        ),
        _ => error(c, ctx, StatusCode::NOT_FOUND, "No such trigger."),
    }
}

async fn save(c: &Console, ctx: &Ctx, tenant: &str, id: &str, form: &Form) -> Reply {
    match find(c, tenant, id).await {
        Ok(Some(s)) => {
            put(
                c,
                ctx,
                tenant,
                id,
                false,
                triggers::doc_from_form(form, id, tenant, Some(&s.doc)),
            )
            .await
        }
        Ok(None) => not_editable(c, ctx, tenant, id),
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn toggle(c: &Console, ctx: &Ctx, tenant: &str, id: &str, enabled: bool) -> Reply {
    match find(c, tenant, id).await {
        Ok(Some(mut s)) => {
            s.doc["enabled"] = json!(enabled);
            put(c, ctx, tenant, id, false, s.doc).await
        }
        Ok(None) => not_editable(c, ctx, tenant, id),
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn delete(c: &Console, ctx: &Ctx, tenant: &str, id: &str) -> Reply {
    match find(c, tenant, id).await {
        Ok(Some(_)) => match apply(c, Change::Delete(id.to_owned())).await {
            Ok(()) => Reply::Redirect(format!("/console/tenants/{}", enc(tenant))),
            Err(e) => error(
                c,
                ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                &triggers::describe(&e),
            ),
        },
        Ok(None) => not_editable(c, ctx, tenant, id),
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn trigger(c: &Console, ctx: &Ctx, tenant: &str, id: &str, saved: bool) -> Reply {
    let notice = saved.then_some("Saved: the trigger is live.");
    match find(c, tenant, id).await {
        Ok(Some(s)) => edit_form(
            c,
            ctx,
            StatusCode::OK,
            tenant,
            id,
            false,
            &triggers::view(&s.doc),
            &FieldErrors::new(),
            notice,
        ),
        Ok(None) => match c.reloader.current().get(id) {
            Some(t) if t.tenant_id == tenant => render(
                c,
                ctx,
                StatusCode::OK,
                "trigger.html",
                json!({ "title": format!("Trigger {id}"), "tenant": tenant, "id": id, "editable": false, "trigger": row(t) }),
            ),
            _ => error(c, ctx, StatusCode::NOT_FOUND, "No such trigger."),
        },
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// The running trigger `id` of `tenant`.
fn running(c: &Console, tenant: &str, id: &str) -> Option<Arc<Trigger>> {
    c.reloader
        .current()
        .get(id)
        .filter(|t| t.tenant_id == tenant)
        .cloned()
}

#[derive(Serialize)]
struct TestRow {
    start: String,
    id: String,
    summary: String,
    fires: bool,
    why: String,
}

/// `t` alone, enabled: the set a trigger is tested with (a disabled one as if enabled).
fn alone(t: &Trigger) -> TriggerSet {
    let mut t = t.clone();
    t.enabled = true;
    TriggerSet::from_triggers(vec![t])
}

/// Why the trigger of `set` ([`alone`]) does or does not fire for `session`, judged by the
/// matching code.
fn verdict(set: &TriggerSet, session: &ClosedSession) -> (bool, String) {
    match set.explain(session).into_iter().next().map(|(_, v)| v) {
        Some(Verdict::Fires) => (true, String::new()),
        Some(Verdict::Failed(f)) => (false, f.to_string()),
        Some(Verdict::NotOwner(u)) => (
            false,
            format!("owned by user {u}, who took no part in the call"),
        ),
        Some(Verdict::Disabled) | None => (false, "not evaluated".into()),
    }
}

#[derive(Serialize)]
struct Sent {
    request: String,
    webhook_id: String,
    signed: bool,
    sample: String,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: String,
    error: Option<String>,
}

async fn test(
    c: &Console,
    ctx: &Ctx,
    tenant: &str,
    id: &str,
    n: usize,
    sent: Option<Sent>,
) -> Reply {
    let Some(t) = running(c, tenant, id) else {
        return error(
            c,
            ctx,
            StatusCode::NOT_FOUND,
            "No such trigger (saved triggers are tested as they run).",
        );
    };
    let owned = tenant.to_owned();
    let entries = match c.engine.outbox().journal_latest(owned, n).await {
        Ok(e) => e,
        Err(e) => return error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let set = alone(&t);
    let rows: Vec<TestRow> = entries
        .iter()
        .map(|e| {
            let (fires, why) = verdict(&set, &e.session);
            TestRow {
                start: e.session.cdr.start.clone(),
                id: e.session.cdr.id.clone(),
                summary: crate::summary::of_cdr(&e.session.cdr),
                fires,
                why,
            }
        })
        .collect();
    let firing = rows.iter().filter(|r| r.fires).count();
    render(
        c,
        ctx,
        StatusCode::OK,
        "test.html",
        json!({ "title": format!("Test {id}"), "tenant": tenant, "id": id, "n": n, "rows": rows, "firing": firing, "enabled": t.enabled, "trigger": row(&t), "sent": sent }),
    )
}

/// A sample session for a test webhook: the tenant's latest CDR, else the documented sample.
async fn sample(c: &Console, tenant: &str) -> Option<(ClosedSession, String)> {
    let owned = tenant.to_owned();
    if let Ok(Some(e)) = c
        .engine
        .outbox()
        .journal_latest(owned, 1)
        .await
        .map(|v| v.into_iter().next())
    {
        let what = format!("the tenant's latest CDR {}", e.session.cdr.id);
        return Some((e.session, what));
    }
    let doc: Value =
        serde_json::from_str(include_str!("../../docs/samples/payload.json")).unwrap_or_default();
    let cdr = match serde_json::from_value(doc["cdr"].clone()) {
        Ok(c) => c,
        // The sample is part of the build (and checked by the docs tests).
        Err(_) => return None,
    };
    let session = ClosedSession {
        cdr,
        tenant_id: Some(tenant.to_owned()),
        user_ids: Vec::new(),
        start_us: 0,
        end_us: 0,
        billable: Vec::new(),
    };
    Some((
        session,
        "the documented sample CDR (docs/samples/payload.json)".into(),
    ))
}

async fn test_webhook(c: &Console, ctx: &Ctx, tenant: &str, id: &str) -> Reply {
    let Some(t) = running(c, tenant, id) else {
        return error(c, ctx, StatusCode::NOT_FOUND, "No such trigger.");
    };
    let Some((session, what)) = sample(c, tenant).await else {
        return error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, "no sample CDR");
    };
    let cdr = match serde_json::value::to_raw_value(&session.cdr) {
        Ok(c) => c,
        Err(e) => return error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let m = Match {
        trigger: &t,
        payload_id: t.payload_id(),
    };
    let mut job = m.job(&session, &cdr, WallTime::now());
    // Its own webhook id: a receiver that de-duplicates must not take the test for the real
    // delivery of this CDR.
    job.webhook_id = format!("msg_test_{}", uuid::Uuid::new_v4().simple());
    let key = t.action.secret.as_ref().map(|s| s.signing_key().clone());
    let answer = c.engine.send_once(&job, key.as_ref()).await;
    let mut sent = Sent {
        request: request_line(&t),
        webhook_id: job.webhook_id.clone(),
        signed: key.is_some(),
        sample: what,
        status: None,
        headers: Vec::new(),
        body: String::new(),
        error: None,
    };
    match answer {
        Ok(r) => {
            sent.status = Some(r.status.as_u16());
            sent.headers = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            sent.body = String::from_utf8_lossy(&r.body).into_owned();
        }
        Err(e) => sent.error = Some(e.to_string()),
    }
    test(c, ctx, tenant, id, super::TEST_CDRS, Some(sent)).await
}

async fn deliveries(c: &Console, ctx: &Ctx, trigger: Option<&str>, webhook: Option<&str>) -> Reply {
    let attempts = c.engine.attempts.list(
        AttemptQuery {
            trigger_id: trigger,
            webhook_id: webhook,
            limit: 500,
        },
        WallTime::now(),
    );
    let dead: Vec<Value> = match c.engine.outbox().dead().await {
        Ok(jobs) => jobs
            .iter()
            .filter(|j| trigger.is_none_or(|t| j.trigger_id == t))
            .filter(|j| webhook.is_none_or(|w| j.webhook_id == w))
            .map(crate::delivery::Job::redacted)
            .collect(),
        Err(e) => return error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let title = match (trigger, webhook) {
        (_, Some(w)) => format!("Delivery log: webhook {w}"),
        (Some(t), None) => format!("Delivery log: trigger {t}"),
        (None, None) => "Delivery log".to_owned(),
    };
    render(
        c,
        ctx,
        StatusCode::OK,
        "deliveries.html",
        json!({ "title": title, "trigger": trigger, "webhook": webhook, "attempts": attempts, "dead": dead, "kept": c.engine.attempts.len(), "pruned": c.engine.attempts.pruned() }),
    )
}

/// Where to go back to after a dead-letter action: a console path the form names.
fn back(form: &Form) -> String {
    form.get("back")
        .filter(|b| b.starts_with("/console/") && !b.contains("//") && !b.contains('\\'))
        .unwrap_or("/console/deliveries")
        .to_owned()
}

async fn resend(c: &Console, ctx: &Ctx, id: &str, form: &Form) -> Reply {
    match c.engine.resend(id).await {
        Ok(_) => Reply::Redirect(back(form)),
        Err(crate::delivery::OutboxError::NotFound(_)) => {
            error(c, ctx, StatusCode::NOT_FOUND, "No such dead letter.")
        }
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn purge(c: &Console, ctx: &Ctx, id: &str, form: &Form) -> Reply {
    match c.engine.outbox().purge(Some(id)).await {
        Ok(_) => Reply::Redirect(back(form)),
        Err(crate::delivery::OutboxError::NotFound(_)) => {
            error(c, ctx, StatusCode::NOT_FOUND, "No such dead letter.")
        }
        Err(e) => error(c, ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

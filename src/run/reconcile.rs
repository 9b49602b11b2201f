//! `postcall reconcile`: the CDR journal against Kazoo's stored CDRs for a window, so an
//! operator can check postcall against their real PBX (see [`crate::backfill::reconcile`]
//! for what is compared).
//!
//! Kazoo's side is read through Crossbar as the backfill reads it. postcall's side is the
//! journal: opened directly when the sidecar is stopped, read through the running sidecar's
//! admin listener (`GET /cdrs`, with the admin token) while it holds the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

use crate::backfill::reconcile::{compare, kazoo_sessions, Report, Seen};
use crate::backfill::{CrossbarCdrs, Window};
use crate::config::PluginConfig;
use crate::delivery::journal::ListFilter;
use crate::delivery::pg::PgStore;
use crate::delivery::{Outbox, OutboxError, Storage};
use crate::net::Secret;

/// What to compare.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// Sessions that ended from here (Unix µs)…
    pub from_us: i64,
    /// …to here.
    pub to_us: i64,
    /// One account only (else every configured account).
    pub account: Option<String>,
    /// The running sidecar's admin listener, used when it holds the journal.
    pub admin: SocketAddr,
}

/// Compares the journal with Kazoo's stored CDRs for the window of `opts`.
///
/// # Errors
/// The configuration lacks what is needed (`[kazoo]` with `crossbar_url`), Kazoo's CDRs could
/// not be read, or the journal could be read neither directly nor through the admin listener.
pub async fn reconcile(
    cfg: &PluginConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    opts: &ReconcileOptions,
) -> anyhow::Result<Report> {
    let (settings, kazoo) = crate::config::validate_source(cfg, env).map_err(|problems| {
        anyhow::anyhow!(
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let tls = crate::net::tls::client_config(kazoo.ca_file.as_deref())?;
    let (crossbar, auth) = crate::run::live::crossbar_and_auth(&kazoo, tls);
    let crossbar = crossbar
        .context("reconcile reads Kazoo's CDRs through Crossbar: set kazoo.crossbar_url")?;
    let accounts = opts
        .account
        .clone()
        .map_or_else(|| kazoo.accounts.clone(), |a| vec![a]);
    let window = Window {
        from: opts.from_us.div_euclid(1_000_000),
        to: opts.to_us.div_euclid(1_000_000),
    };
    // Legs are listed by when Kazoo wrote them, a moment after they ended.
    let listed = Window {
        from: window.from - 60,
        to: window.to + 60,
    };
    let settings = Arc::new(settings);
    let kazoo_side = kazoo_sessions(
        Arc::new(CrossbarCdrs::new(crossbar, auth)),
        accounts,
        listed,
        cfg.backfill.options(),
        settings.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("Kazoo's stored CDRs could not be read: {e}"))?;
    // Journal entries are filed by start: a call that ended in the window started at most
    // the maximum session age before it.
    let filter = ListFilter {
        tenant: opts.account.clone(),
        from_us: Some(opts.from_us - settings.max_session_us),
        to_us: Some(opts.to_us + 1),
        limit: 1000,
        after: None,
    };
    let ours = journal_side(cfg, env, filter, opts.admin).await?;
    Ok(compare(window, &kazoo_side, &ours))
}

/// The journal's sessions for `filter`: from the store, or through the admin listener when
/// the running sidecar holds it.
async fn journal_side(
    cfg: &PluginConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    filter: ListFilter,
    admin: SocketAddr,
) -> anyhow::Result<Vec<Seen>> {
    if let Some(storage) = shared_store(cfg, env).await? {
        return from_storage(&storage, filter).await;
    }
    let path = cfg.delivery.outbox_path(&cfg.file);
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || Outbox::open(&path)).await?
    };
    match opened {
        Ok(store) => from_storage(&Storage::from(Arc::new(store)), filter).await,
        Err(OutboxError::InUse) => {
            let token = cfg.admin.options(&cfg.file, admin, env)?.token;
            from_admin(admin, token.as_ref(), filter).await.with_context(|| {
                format!("postcall is running and its admin listener {admin} could not be read (--admin)")
            })
        }
        Err(e) => Err(anyhow::anyhow!(
            "{}: cannot open the journal: {e}",
            path.display()
        )),
    }
}

/// The PostgreSQL store `[store]` names (shared with the running instances, so it is read
/// directly), or `None` for the embedded one.
async fn shared_store(
    cfg: &PluginConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> anyhow::Result<Option<Storage>> {
    let mut problems = Vec::new();
    let attempt = Duration::from_secs(cfg.delivery.attempt_timeout_secs);
    let pg = cfg.store.checked(&cfg.file, &env, attempt, &mut problems);
    if let Some(p) = problems.first() {
        anyhow::bail!("{p}");
    }
    let Some(pg) = pg else { return Ok(None) };
    let store = PgStore::connect(pg)
        .await
        .context("cannot open the PostgreSQL journal ([store])")?;
    Ok(Some(store.into_storage()))
}

async fn from_storage(storage: &Storage, mut filter: ListFilter) -> anyhow::Result<Vec<Seen>> {
    let mut out = Vec::new();
    loop {
        let page = storage.journal_list(filter.clone()).await?;
        out.extend(page.entries.iter().map(|e| {
            Seen::of(
                &e.session.cdr,
                e.session.tenant_id.as_deref(),
                e.session.end_us,
            )
        }));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return Ok(out),
        }
    }
}

async fn from_admin(
    admin: SocketAddr,
    token: Option<&Secret>,
    filter: ListFilter,
) -> anyhow::Result<Vec<Seen>> {
    let client =
        crate::net::HttpClient::new(crate::net::tls::client_config(None)?, &Default::default());
    let rfc = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default()
    };
    let mut after: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let mut uri = format!(
            "http://{admin}/cdrs?limit=1000&from={}&to={}",
            rfc(filter.from_us.unwrap_or(0)),
            rfc(filter.to_us.unwrap_or(i64::MAX / 2))
        );
        if let Some(t) = &filter.tenant {
            uri.push_str(&format!("&tenant={t}"));
        }
        if let Some(a) = &after {
            uri.push_str(&format!(
                "&after={}",
                url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()
            ));
        }
        let mut req = hyper::Request::get(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {}", t.expose()));
        }
        let r = client
            .send(req.body(Full::new(Bytes::new()))?, Duration::from_secs(30))
            .await?;
        anyhow::ensure!(
            r.status.is_success(),
            "GET /cdrs answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        );
        let page: Value = serde_json::from_slice(&r.body)?;
        for e in page["entries"].as_array().into_iter().flatten() {
            out.extend(seen_of_json(e));
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return Ok(out),
        }
    }
}

/// A session from the admin listener's journal entry JSON.
fn seen_of_json(e: &Value) -> Option<Seen> {
    let cdr: crate::cdr::Cdr = serde_json::from_value(e["cdr"].clone()).ok()?;
    Some(Seen::of(&cdr, e["tenantId"].as_str(), e["endUs"].as_i64()?))
}

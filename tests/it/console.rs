//! The operator's console (issue 17) on a running sidecar: a fake Blackhole, a real receiver
//! (`run::receiver`) and the admin listener, all on 127.0.0.1.
//!
//! - Over plain HTTP: the login, the session cookie, CSRF tokens and the same-origin check on
//!   forms, the `Host` check, a trigger created by a form that is live at once and still there
//!   after a restart.
//! - In a real headless Chromium driven through WebDriver (`fantoccini`): a trigger with two
//!   conditions created in the browser (a validation error shown beside its field first), seen
//!   firing in the delivery log on a simulated call, the failing condition of a call that does
//!   not match, a test webhook, a dead letter re-sent. Needs `POSTCALL_TEST_CHROMEDRIVER` and
//!   `POSTCALL_TEST_CHROMIUM` (set by `scripts/test`); without them the test says SKIPPED
//!   (and fails under `POSTCALL_TEST_REQUIRE=1`).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use postcall::config::PluginConfig;
use postcall::run::receiver::{Receiver, Reply};
use postcall::session::ClosedSession;

use crate::run::{accounts, demo_blackhole, start, start_with, TOKEN};

const ADMIN_TOKEN: &str = "console-admin-token-0123";

/// A scenario's frames and the session they make (its tenant, its CDR).
fn scenario(name: &str) -> (Vec<String>, ClosedSession) {
    let frames: Vec<String> = postcall::sim::scenario(name)
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .collect();
    let session =
        postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default())).remove(0);
    (frames, session)
}

/// Configuration: the fake Blackhole at `ws`, the admin token, `files` as the trigger file,
/// a journal that keeps the scenarios' 2024 CDRs.
fn config(dir: &std::path::Path, ws: &str, file: &str) -> PluginConfig {
    config_with(dir, ws, file, Some(ADMIN_TOKEN))
}

/// [`config`] with `token` as the admin token (none: the console is open on loopback).
fn config_with(dir: &std::path::Path, ws: &str, file: &str, token: Option<&str>) -> PluginConfig {
    std::fs::write(dir.join("triggers.toml"), file).unwrap();
    let quoted: Vec<String> = accounts().iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[cdr]\ngrace_secs = 1\n[kazoo]\nwebsocket_url = \"{ws}\"\naccounts = [{}]\nauth_token = \"{TOKEN}\"\ndirectory_refresh_secs = 0\n\
         [triggers]\nfiles = [\"triggers.toml\"]\nallow_http = true\n\
         [delivery]\ndata_dir = \"data\"\nallow_private = [\"127.0.0.1/32\"]\n\
         [journal]\nretention_days = 3650\n{}",
        quoted.join(", "),
        token.map(|t| format!("[admin]\ntoken = \"{t}\"\n")).unwrap_or_default()
    );
    let path = dir.join("plugin.toml");
    std::fs::write(&path, text).unwrap();
    PluginConfig::load(&path).unwrap()
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

/// One request to the admin listener with `headers` (and a form body for POST).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> Answer {
    let client = postcall::net::HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    if method == "POST" {
        b = b.header("content-type", "application/x-www-form-urlencoded");
    }
    let r = client
        .send(
            b.body(Full::new(Bytes::from(body))).unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    Answer {
        status: r.status.as_u16(),
        headers: r.headers,
        body: String::from_utf8_lossy(&r.body).into_owned(),
    }
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The login form, the cookie, CSRF and origin checks, and a form-made trigger that is live
/// at once and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_forms_need_login_csrf_and_same_origin() {
    let accts = accounts();
    let bh = demo_blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bh.url(), "");
    let run = start(cfg.clone()).await;
    let admin = run.started.admin;
    let host = admin.to_string();
    let origin = format!("http://{admin}");
    let tenant = &accts[0];

    // Not logged in: pages redirect to the login form, forms are refused.
    let r = call(admin, "GET", "/console/tenants", &[], &[]).await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().unwrap()),
        (303, "/console/login")
    );
    let page = format!("/console/tenants/{tenant}/triggers/new");
    assert_eq!(
        call(
            admin,
            "POST",
            &format!("/console/tenants/{tenant}/triggers"),
            &[],
            &[]
        )
        .await
        .status,
        401
    );
    // A rebound host name is refused before anything else.
    assert_eq!(
        call(admin, "GET", &page, &[("host", "evil.example")], &[])
            .await
            .status,
        403
    );
    // The wrong token does not log in; the right one sets the session cookie.
    assert_eq!(
        call(admin, "POST", "/console/login", &[], &[("token", "nope")])
            .await
            .status,
        401
    );
    let r = call(
        admin,
        "POST",
        "/console/login",
        &[("origin", &origin)],
        &[("token", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(r.status, 303);
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(ADMIN_TOKEN),
        "the cookie is derived from the token, not the token"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    // The bearer token works as well (scripts).
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(
        call(
            admin,
            "GET",
            "/console/tenants",
            &[("authorization", &bearer)],
            &[]
        )
        .await
        .status,
        200
    );

    let form = call(admin, "GET", &page, &[("cookie", &cookie)], &[]).await;
    assert_eq!(form.status, 200);
    let (csrf, guid) = (hidden(&form.body, "csrf"), hidden(&form.body, "id"));
    let fields = |csrf: &str, value: &str| -> Vec<(String, String)> {
        [
            ("csrf", csrf),
            ("id", guid.as_str()),
            ("enabled", "on"),
            ("f_field", "dir"),
            ("f_op", "in"),
            ("f_value", value),
            ("f_field", "talk"),
            ("f_op", "gt"),
            ("f_value", "30"),
            ("url", "http://127.0.0.1:9/hook"),
            ("method", "POST"),
            ("format", "json"),
            ("retries", "2"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let post = |csrf: String, value: &'static str, extra: Vec<(&'static str, String)>| {
        let cookie = cookie.clone();
        let path = format!("/console/tenants/{tenant}/triggers");
        let f = fields(&csrf, value);
        async move {
            let mut h: Vec<(&str, &str)> = vec![("cookie", &cookie)];
            h.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            call(admin, "POST", &path, &h, &pairs).await
        }
    };
    // Without the form's token, or from another origin: refused, nothing saved.
    assert_eq!(post("x".repeat(32), "Incoming", vec![]).await.status, 403);
    assert_eq!(
        post(
            csrf.clone(),
            "Incoming",
            vec![("origin", "http://evil.example".into())]
        )
        .await
        .status,
        403
    );
    assert_eq!(
        post(
            csrf.clone(),
            "Incoming",
            vec![("sec-fetch-site", "cross-site".into())]
        )
        .await
        .status,
        403
    );
    let reg = &run.started.registry;
    let set = || reg.triggers.as_ref().unwrap().load_full();
    assert!(set().get(&guid).is_none());
    // The validator's message beside the field, the form kept.
    let bad = post(
        csrf.clone(),
        "Incoming, Inbound",
        vec![("origin", origin.clone())],
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body
            .contains(r#"data-error-for="filter[0].value">unknown name &quot;Inbound&quot;"#),
        "{}",
        bad.body
    );
    // Same origin, the session's token: saved and live at once.
    let ok = post(
        csrf.clone(),
        "Incoming, Both",
        vec![("origin", origin.clone()), ("host", host.clone())],
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(
        ok.headers["location"].to_str().unwrap(),
        format!("/console/tenants/{tenant}/triggers/{guid}?saved")
    );
    let t = set().get(&guid).cloned().expect("live without a restart");
    assert_eq!(
        (t.filters.len(), t.action.retries, &*t.origin),
        (2, 2, "console")
    );
    assert_eq!(t.tenant_id, *tenant);
    run.stop().await;

    // Stored: the next start has it.
    let again = start(cfg).await;
    let t = again
        .started
        .registry
        .triggers
        .as_ref()
        .unwrap()
        .load_full();
    assert_eq!(t.get(&guid).map(|t| t.filters.len()), Some(2));
    again.stop().await;
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Enable/disable and delete, a file trigger read-only, a signed test webhook that verifies
/// with the Standard Webhooks library, a dead letter purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_manages_triggers_test_webhooks_and_dead_letters() {
    let bh = demo_blackhole().await;
    let got = Arc::new(Mutex::new(Vec::<(hyper::HeaderMap, Bytes)>::new()));
    let g = got.clone();
    let rx = Receiver::start(None, move |r| {
        g.lock().unwrap().push((r.headers.clone(), r.body.clone()));
        Reply::json(200, &serde_json::json!({"thanks": 1}))
            .with_header("x-receiver", "crm")
            .into()
    })
    .await
    .unwrap();
    let (_, session) = scenario("pstn_answered");
    let tenant = session.tenant_id.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = format!(
        "[[trigger]]\nid = \"file-t\"\ntenant = \"{tenant}\"\n[trigger.action]\nurl = \"http://127.0.0.1:9/x\"\n"
    );
    let run = start(config(dir.path(), &bh.url(), &file)).await;
    let admin = run.started.admin;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let set = || run.started.registry.triggers.as_ref().unwrap().load_full();

    let form = call(
        admin,
        "GET",
        &format!("/console/tenants/{tenant}/triggers/new"),
        &auth,
        &[],
    )
    .await;
    let (csrf, guid) = (hidden(&form.body, "csrf"), hidden(&form.body, "id"));
    let hook = format!("{}/hook", rx.url());
    let r = call(
        admin,
        "POST",
        &format!("/console/tenants/{tenant}/triggers"),
        &auth,
        &[
            ("csrf", &csrf),
            ("id", &guid),
            ("enabled", "on"),
            ("url", &hook),
            ("method", "POST"),
            ("format", "json"),
            ("retries", "1"),
            ("secret", SECRET),
            ("data_key", "crm"),
            ("data_value", "acme"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = call(
        admin,
        "GET",
        &format!("/console/tenants/{tenant}/triggers/{guid}"),
        &auth,
        &[],
    )
    .await;
    assert!(
        !page.body.contains(SECRET) && !page.body.contains("MfKQ9"),
        "the secret is never shown"
    );

    // A test webhook: signed by delivery's code, answered, the answer shown.
    let base = format!("/console/tenants/{tenant}/triggers/{guid}");
    let t = call(
        admin,
        "POST",
        &format!("{base}/test-webhook"),
        &auth,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(
        t.body.contains(r#"<b id="sent-status">200</b>"#),
        "{}",
        t.body
    );
    assert!(
        t.body.contains("x-receiver") && t.body.contains("{&quot;thanks&quot;:1}"),
        "{}",
        t.body
    );
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
        wh.verify(body, headers)
            .expect("the test webhook's signature verifies");
        assert!(headers["webhook-id"]
            .to_str()
            .unwrap()
            .starts_with("msg_test_"));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            (v["triggerId"].as_str(), v["customData"]["crm"].as_str()),
            (Some(guid.as_str()), Some("acme"))
        );
    }
    // Nothing was queued for it.
    assert_eq!(run.outbox().pending_gauge(), 0);

    // Disable, enable: live each time.
    let post = |path: String| {
        let csrf = csrf.clone();
        let bearer = bearer.clone();
        async move {
            call(
                admin,
                "POST",
                &path,
                &[("authorization", &bearer)],
                &[("csrf", &csrf)],
            )
            .await
        }
    };
    assert_eq!(post(format!("{base}/disable")).await.status, 303);
    assert!(!set().get(&guid).unwrap().enabled);
    assert_eq!(post(format!("{base}/enable")).await.status, 303);
    assert!(set().get(&guid).unwrap().enabled);

    // A file trigger is read-only here.
    let file_page = call(
        admin,
        "GET",
        &format!("/console/tenants/{tenant}/triggers/file-t"),
        &auth,
        &[],
    )
    .await;
    assert_eq!(file_page.status, 200);
    assert!(file_page.body.contains("triggers.toml") && file_page.body.contains("read-only"));
    for action in ["", "/disable", "/delete"] {
        let r = post(format!("/console/tenants/{tenant}/triggers/file-t{action}")).await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
    }
    assert!(set().get("file-t").unwrap().enabled);

    // A dead letter, purged from its page.
    let trigger = set().get("file-t").unwrap().clone();
    let cdr = serde_json::value::to_raw_value(&session.cdr).unwrap();
    let job = postcall::trigger::Match {
        trigger: &trigger,
        payload_id: trigger.payload_id(),
    }
    .job(&session, &cdr, postcall::clock::WallTime::from_us(1));
    let id = job.webhook_id.clone();
    run.outbox()
        .call(move |s| {
            s.enqueue(std::slice::from_ref(&job))?;
            s.complete(
                &job,
                postcall::delivery::Completion::Dead("HTTP 410".into()),
            )
        })
        .await
        .unwrap();
    let log = call(admin, "GET", "/console/deliveries", &auth, &[]).await;
    assert!(
        log.body.contains(&id) && log.body.contains("HTTP 410"),
        "{}",
        log.body
    );
    let r = post(format!("/console/dead/{id}/purge")).await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().unwrap()),
        (303, "/console/deliveries")
    );
    assert!(run
        .outbox()
        .call(postcall::delivery::Store::dead)
        .await
        .unwrap()
        .is_empty());

    // Delete: gone at once.
    assert_eq!(post(format!("{base}/delete")).await.status, 303);
    assert!(set().get(&guid).is_none());
    assert_eq!(call(admin, "GET", &base, &auth, &[]).await.status, 404);
    run.stop().await;
}

/// Without a token (loopback only) the console is open, but forms still need the session's
/// CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_without_token_still_checks_csrf() {
    let accts = accounts();
    let bh = demo_blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let run = start(config_with(dir.path(), &bh.url(), "", None)).await;
    let admin = run.started.admin;
    let tenant = &accts[0];
    let page = call(
        admin,
        "GET",
        &format!("/console/tenants/{tenant}/triggers/new"),
        &[],
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    let cookie = page.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (csrf, guid) = (hidden(&page.body, "csrf"), hidden(&page.body, "id"));
    let fields = [
        ("csrf", csrf.as_str()),
        ("id", &guid),
        ("enabled", "on"),
        ("url", "http://127.0.0.1:9/h"),
        ("method", "GET"),
        ("retries", "0"),
    ];
    let path = format!("/console/tenants/{tenant}/triggers");
    // The token without its session (another browser's), or no token: refused.
    assert_eq!(call(admin, "POST", &path, &[], &fields).await.status, 403);
    assert_eq!(
        call(admin, "POST", &path, &[("cookie", &cookie)], &fields[1..])
            .await
            .status,
        403
    );
    let r = call(admin, "POST", &path, &[("cookie", &cookie)], &fields).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let set = run.started.registry.triggers.as_ref().unwrap().load_full();
    assert_eq!(
        set.get(&guid).map(|t| t.action.method),
        Some(postcall::trigger::Method::Get)
    );
    run.stop().await;
}

/// A stored console trigger that no longer validates stops the start with its reason (its
/// webhooks would otherwise silently stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_stored_trigger_stops_the_start() {
    use postcall::console::store::{RedbTriggers, StoredTrigger, TriggerStore};
    let bh = demo_blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bh.url(), "");
    let outbox = dir.path().join("data").join("outbox.redb");
    {
        let store = RedbTriggers::new(Arc::new(postcall::delivery::Outbox::open(&outbox).unwrap()));
        let doc = serde_json::json!({"id": "g1", "tenant": "acme", "action": {"url": "https://h.example/"}});
        store
            .put(StoredTrigger {
                id: "g1".into(),
                tenant: "acme".into(),
                doc,
                updated_us: 0,
            })
            .await
            .unwrap();
    }
    let err = postcall::run::sidecar::run(cfg, crate::run::opts(), Default::default(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("console trigger g1")
            && err.contains("tenant: \"acme\" is not a Kazoo account id"),
        "{err}"
    );
}

/// Headless Chromium through chromedriver, both started here and stopped on drop.
struct Browser {
    client: Option<fantoccini::Client>,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (after saying so on stderr) when the paths are not given.
    async fn start() -> Option<Self> {
        const TEST: &str = "console::console_in_a_real_browser";
        let driver = crate::support::real_part("POSTCALL_TEST_CHROMEDRIVER", TEST, "ChromeDriver")?;
        let chromium = crate::support::real_part("POSTCALL_TEST_CHROMIUM", TEST, "Chromium")?;
        let port = crate::run::free_port().port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            client: None,
            driver: child,
            _profile: profile,
        };
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1360,1000",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ]
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: retried until it answers (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = fantoccini::ClientBuilder::new(
                hyper_util::client::legacy::connect::HttpConnector::new(),
            )
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&url)
            .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() > deadline => panic!("chromedriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        browser.client = Some(client);
        Some(browser)
    }

    fn c(&self) -> &fantoccini::Client {
        self.client.as_ref().unwrap()
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

use fantoccini::Locator;

/// The text of the first element matching `css`, waiting for it to appear (a click's page
/// load finishes after the click returns).
async fn text(b: &Browser, css: &str) -> String {
    match b
        .c()
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("{css}: {e}\n{}", b.c().source().await.unwrap_or_default()),
    }
}

/// Reloads `url` until the page's text satisfies `ok` (30 s at most).
async fn until(b: &Browser, url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        b.c().goto(url).await.unwrap();
        let body = text(b, "main").await;
        if ok(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (answered, answered_session) = scenario("pstn_answered");
    let (missed, missed_session) = scenario("caller_hangup_long_ring");
    let tenant = answered_session.tenant_id.clone().unwrap();
    assert_eq!(missed_session.tenant_id.as_deref(), Some(tenant.as_str()));
    assert_eq!((answered_session.cdr.ans, missed_session.cdr.ans), (1, 0));

    // The receiver: `/hook` takes everything; `/gone` refuses (400, final) until told to
    // take (status in `gone`), which makes the file trigger's delivery a dead letter first.
    let gone = Arc::new(AtomicU16::new(400));
    let hooks = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let (g, h) = (gone.clone(), hooks.clone());
    let rx = Receiver::start(None, move |r| {
        if r.uri.starts_with("/gone") {
            return Reply::status(g.load(Ordering::Relaxed)).into();
        }
        if let Ok(v) = serde_json::from_slice(&r.body) {
            h.lock().unwrap().push(v);
        }
        Reply::json(200, &serde_json::json!({"ok": true})).into()
    })
    .await
    .unwrap();
    let mut bh = demo_blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let file = format!(
        "[[trigger]]\nid = \"file-gone\"\ntenant = \"{tenant}\"\nfilter = [{{ field = \"ans\", op = \"eq\", value = 0 }}]\n[trigger.action]\nurl = \"{}/gone\"\nretries = 0\n",
        rx.url()
    );
    let cfg = config(dir.path(), &bh.url(), &file);
    let run = start_with(cfg, crate::run::opts()).await;
    bh.wait_subscribed(1).await;
    let base = format!("http://{}", run.started.admin);

    // Log in.
    b.c().goto(&format!("{base}/console/")).await.unwrap();
    assert!(b
        .c()
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/login"));
    b.c()
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    b.c()
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&b, "#tenants").await.contains(&tenant));

    // A new trigger for the tenant with two conditions; first with a name the validator
    // does not know, which comes back beside its field.
    b.c()
        .goto(&format!("{base}/console/tenants/{tenant}/triggers/new"))
        .await
        .unwrap();
    let guid = text(&b, "#guid").await;
    assert!(uuid::Uuid::parse_str(&guid).is_ok(), "{guid}");
    let rows = b.c().find_all(Locator::Css("tr.filter-row")).await.unwrap();
    let fill = |row: usize, field: &'static str, op: &'static str, value: &'static str| {
        let row = rows[row].clone();
        async move {
            row.find(Locator::Css(".f-field"))
                .await
                .unwrap()
                .send_keys(field)
                .await
                .unwrap();
            row.find(Locator::Css(&format!(".f-op option[value=\"{op}\"]")))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let v = row.find(Locator::Css(".f-value")).await.unwrap();
            v.clear().await.unwrap();
            v.send_keys(value).await.unwrap();
        }
    };
    fill(0, "type", "eq", "Outside").await;
    fill(1, "ans", "eq", "1").await;
    b.c()
        .find(Locator::Id("url"))
        .await
        .unwrap()
        .send_keys(&format!("{}/hook", rx.url()))
        .await
        .unwrap();
    let retries = b.c().find(Locator::Id("retries")).await.unwrap();
    retries.clear().await.unwrap();
    retries.send_keys("0").await.unwrap();
    b.c()
        .find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let problem = text(&b, "[data-error-for=\"filter[0].value\"]").await;
    assert!(
        problem.starts_with("unknown name \"Outside\"; one of Unknown, Internal, External"),
        "{problem}"
    );
    // The form came back as typed; fix the value.
    let v = b
        .c()
        .find(Locator::Css("tr.filter-row:nth-child(1) .f-value"))
        .await
        .unwrap();
    v.clear().await.unwrap();
    v.send_keys("External").await.unwrap();
    b.c()
        .find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&b, "#notice").await, "Saved: the trigger is live.");
    let url = b.c().current_url().await.unwrap();
    assert_eq!(
        url.path(),
        format!("/console/tenants/{tenant}/triggers/{guid}"),
        "the GUID is in the URL"
    );
    let set = run.started.registry.triggers.as_ref().unwrap().load_full();
    let t = set.get(&guid).expect("live");
    assert_eq!(
        t.filters
            .iter()
            .map(|f| f.field_name().to_owned())
            .collect::<Vec<_>>(),
        ["type", "ans"]
    );

    // Two calls: the answered one fires the new trigger, the missed one does not (it fires
    // the file trigger, whose receiver refuses: a dead letter).
    for f in answered.iter().chain(&missed) {
        bh.push(f);
    }
    let log = until(
        &b,
        &format!("{base}/console/tenants/{tenant}/triggers/{guid}/log"),
        "the delivery in the log",
        |p| p.contains("delivered"),
    )
    .await;
    assert!(log.contains(&guid) && log.contains("200"), "{log}");
    let first = b
        .c()
        .find(Locator::Css("#attempts tbody tr.delivered"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        first.contains("{\"ok\":true}"),
        "the answer's first bytes: {first}"
    );
    {
        let got = hooks.lock().unwrap();
        assert_eq!(got.len(), 1, "only the answered call fires it");
        assert_eq!(got[0]["triggerId"], guid.as_str());
        assert_eq!(got[0]["cdr"]["id"], answered_session.cdr.id.as_str());
    }

    // The same delivery on its own (per webhook).
    let wid = postcall::delivery::webhook_id(&answered_session.cdr.id, &guid);
    b.c()
        .goto(&format!("{base}/console/deliveries?webhook={wid}"))
        .await
        .unwrap();
    let rows = b
        .c()
        .find_all(Locator::Css("#attempts tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains(&wid));

    // Test the trigger against the journal: one fires, the other shows its failing condition.
    let test = until(
        &b,
        &format!("{base}/console/tenants/{tenant}/triggers/{guid}/test"),
        "both CDRs tested",
        |p| p.contains(&missed_session.cdr.id) && p.contains(&answered_session.cdr.id),
    )
    .await;
    assert!(test.contains("1 of 2 would fire"), "{test}");
    let why = text(&b, "#results tr.not .why").await;
    assert_eq!(why, "ans eq 1 — the CDR has 0");

    // The dead letter of the file trigger, re-sent once the receiver takes it.
    let dead = until(
        &b,
        &format!("{base}/console/deliveries"),
        "the dead letter",
        |p| p.contains("file-gone") && p.contains("HTTP 400"),
    )
    .await;
    assert!(dead.contains("re-send"), "{dead}");
    gone.store(204, Ordering::Relaxed);
    b.c()
        .find(Locator::Css("#dead button.resend"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &b,
        &format!("{base}/console/deliveries?trigger=file-gone"),
        "the re-sent delivery",
        |p| p.contains("No dead letter.") && p.contains("204"),
    )
    .await;

    // The live counters are refreshed by the page's script.
    b.c()
        .goto(&format!("{base}/console/tenants/{tenant}"))
        .await
        .unwrap();
    let delivered = b
        .c()
        .wait()
        .for_element(Locator::Css("[data-counter=\"delivered\"]"))
        .await
        .unwrap();
    assert!(delivered.text().await.unwrap().parse::<u64>().unwrap() >= 2);

    // One test webhook through the delivery code, its answer shown.
    b.c()
        .goto(&format!(
            "{base}/console/tenants/{tenant}/triggers/{guid}/test"
        ))
        .await
        .unwrap();
    b.c()
        .find(Locator::Id("send-test"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&b, "#sent-status").await, "200");
    assert_eq!(text(&b, "#sent-body").await, "{\"ok\":true}");
    assert!(text(&b, "#sent").await.contains("content-type"));
    {
        let got = hooks.lock().unwrap();
        assert_eq!(got.len(), 2, "the test webhook reached the receiver");
        assert_eq!(got[1]["triggerId"], guid.as_str());
        assert_eq!(got[1]["tenantId"], tenant.as_str());
    }

    // The screenshot in the README, when asked for.
    if let Ok(path) = std::env::var("POSTCALL_TEST_SCREENSHOT") {
        let png = b.c().screenshot().await.unwrap();
        std::fs::write(path, png).unwrap();
    }
    // Every page, for a reviewer's eyes, when asked for.
    if let Ok(dir) = std::env::var("POSTCALL_TEST_SCREENSHOTS_DIR") {
        for (name, path) in [
            ("tenants", "/console/tenants".to_owned()),
            ("tenant", format!("/console/tenants/{tenant}")),
            (
                "trigger",
                format!("/console/tenants/{tenant}/triggers/{guid}"),
            ),
            (
                "file-trigger",
                format!("/console/tenants/{tenant}/triggers/file-gone"),
            ),
            ("deliveries", "/console/deliveries".to_owned()),
        ] {
            b.c().goto(&format!("{base}{path}")).await.unwrap();
            let png = b.c().screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }
    b.close().await;
    run.stop().await;
}

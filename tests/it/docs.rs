//! The integration guide (`docs/integrations.md`) cannot drift from the code: its sample
//! payloads (`docs/samples/`) are generated here and compared byte for byte, its verification
//! snippets are the files in `docs/snippets/`, and those snippets are run — with the real
//! Standard Webhooks libraries (`standardwebhooks` on PyPI and npm) when they are installed —
//! against webhooks postcall signed and sent to a receiver. Without Python or Node and the
//! library, that part is skipped, and the skip is written to the terminal.
//!
//! Regenerate the samples after a deliberate change: `POSTCALL_WRITE_SAMPLES=1 cargo test
//! --test it docs::` (then review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use postcall::delivery::payload::{encode, payload};
use postcall::delivery::{webhook_id, DeliveryOptions, Endpoint, Engine, Format, Job, Method};
use postcall::net::guard::AddressGuard;
use postcall::net::http::HttpOptions;
use postcall::net::{HttpClient, Secret};
use serde_json::value::RawValue;

use crate::servers::http::{HttpServer, Recorded, Reply};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The samples' trigger id (a GUID, as the product page's portal gives).
const TRIGGER_ID: &str = "5d8f3c2a-9b1e-4f6a-8c7d-2e4b6a9f1c03";
/// A Logic Apps "When a HTTP request is received" URL (made up; the `sig` is a placeholder).
const LOGIC_APPS_URL: &str = "https://prod-12.westeurope.logic.azure.com:443/workflows/0c1dd5a3e9f84b7c/triggers/manual/paths/invoke?api-version=2016-10-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=YOUR-SIG";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The sample call: `fixtures/pstn_answered.jsonl` (a US caller answered by Maria Lopez)
/// enriched with the test contacts and rate deck, as the payload of a tenant-wide trigger with
/// the product page's example custom data.
fn sample_payload() -> Box<RawValue> {
    let cfg = postcall::config::PluginConfig::load(&repo("tests/data/enrich/plugin.toml")).unwrap();
    let settings = Arc::new(cfg.settings().unwrap());
    let (enricher, _) = postcall::enrich::SharedEnricher::load(cfg.enrich_sources().unwrap());
    let text = std::fs::read_to_string(repo("fixtures/pstn_answered.jsonl")).unwrap();
    let mut closed = postcall::replay::replay_str(&text, settings);
    assert_eq!(closed.len(), 1);
    let mut c = closed.remove(0);
    enricher.current().enrich_session(&mut c);
    let tenant = c.tenant_id.clone().unwrap();
    let custom = [("hook".to_owned(), "post call".to_owned())].into();
    payload(TRIGGER_ID, &tenant, &tenant, &c.cdr, &custom)
}

/// Every sample file and its content.
fn samples() -> Vec<(&'static str, String)> {
    let p = sample_payload();
    let json: serde_json::Value = serde_json::from_str(p.get()).unwrap();
    let form = encode(
        "https://crm.example.com/hooks/calls",
        Method::Post,
        Format::Form,
        &p,
    )
    .unwrap();
    let query = encode(LOGIC_APPS_URL, Method::Get, Format::Form, &p).unwrap();
    let schema = postcall::schema::payload_schema(postcall::schema::Dialect::Draft4);
    vec![
        (
            "docs/samples/payload.json",
            serde_json::to_string_pretty(&json).unwrap() + "\n",
        ),
        (
            "docs/samples/payload.form.txt",
            String::from_utf8(form.body).unwrap() + "\n",
        ),
        ("docs/samples/payload.query.txt", query.url + "\n"),
        (
            "docs/samples/schema.json",
            serde_json::to_string_pretty(&schema).unwrap() + "\n",
        ),
    ]
}

/// The files in `docs/samples/` are exactly what postcall sends (and `postcall schema`
/// prints) for the sample call.
#[test]
fn samples_are_what_postcall_sends() {
    let write = std::env::var_os("POSTCALL_WRITE_SAMPLES").is_some();
    for (rel, want) in samples() {
        let path = repo(rel);
        if write {
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is stale: regenerate with POSTCALL_WRITE_SAMPLES=1 cargo test --test it docs::"
        );
    }
    // The query sample kept the Logic Apps parameters, `sig` included, in front (the default
    // port `:443` is written implicitly, which is the same URL).
    let query = std::fs::read_to_string(repo("docs/samples/payload.query.txt")).unwrap();
    assert!(
        query.starts_with(&LOGIC_APPS_URL.replacen(":443", "", 1)),
        "{query}"
    );
    assert!(
        query.contains("&cdr%5BcliNum%5D=%2B14155550123&"),
        "{query}"
    );
    // And `postcall schema` prints the schema sample.
    let out = Command::new(env!("CARGO_BIN_EXE_postcall"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(repo("docs/samples/schema.json")).unwrap()
    );
}

/// The guide shows the snippet files verbatim (the tested code is the code shown).
#[test]
fn the_guide_shows_the_tested_snippets() {
    let guide = std::fs::read_to_string(repo("docs/integrations.md")).unwrap();
    for (file, lang) in [
        ("docs/snippets/verify_webhook.py", "python"),
        ("docs/snippets/verify_webhook.js", "js"),
    ] {
        let code = std::fs::read_to_string(repo(file)).unwrap();
        assert!(
            guide.contains(&format!("```{lang}\n{code}```")),
            "{file} is not shown verbatim in docs/integrations.md"
        );
    }
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(
        readme.contains("(docs/integrations.md)"),
        "README links the guide"
    );
}

/// Webhooks postcall signed and sent: JSON (POST), form data (PUT) and a query (GET), as the
/// receiver got them.
async fn signed_webhooks() -> Vec<Recorded> {
    let mut rx = HttpServer::start(None, |_| Reply::status(202)).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox =
        Arc::new(postcall::delivery::Outbox::open(&dir.path().join("outbox.redb")).unwrap());
    let tls = postcall::net::tls::client_config(None).unwrap();
    let guard = AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]);
    let http = HttpClient::with_guard(tls, &HttpOptions::default(), guard);
    let engine = Engine::new(outbox, http, DeliveryOptions::default());
    let key = postcall::delivery::sign::SigningKey::parse(&Secret::new(SECRET)).unwrap();
    engine.use_keys(Arc::new(postcall::delivery::StaticKeys(
        [(TRIGGER_ID.to_owned(), key)].into(),
    )));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(engine.clone().run(stop.clone()));
    let p = sample_payload();
    let jobs: Vec<Job> = [
        ("/json", Method::Post, Format::Json),
        ("/form", Method::Put, Format::Form),
        (
            "/query?api-version=2016-10-01&sig=abc",
            Method::Get,
            Format::Form,
        ),
    ]
    .iter()
    .enumerate()
    .map(|(n, (path, method, format))| Job {
        webhook_id: webhook_id(&format!("docs-{n}"), TRIGGER_ID),
        trigger_id: TRIGGER_ID.into(),
        endpoint: Endpoint {
            url: format!("{}{path}", rx.url()),
            method: *method,
            format: *format,
            retries: 0,
            signed: true,
        },
        payload: p.clone(),
        attempts: 0,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    })
    .collect();
    engine.enqueue(&jobs).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..jobs.len() {
        got.push(rx.next_request().await);
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    got.sort_by(|a, b| a.uri.cmp(&b.uri));
    got
}

/// A snippet runner: the command and its environment, or why it cannot run here.
fn runner(lang: &str) -> Result<(String, Vec<(String, String)>), String> {
    let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    match lang {
        "python" => {
            if ok(Command::new("python3").args(["-c", "import standardwebhooks"])) {
                Ok(("python3".into(), Vec::new()))
            } else {
                Err(
                    "python3 with the standardwebhooks package (pip install standardwebhooks)"
                        .into(),
                )
            }
        }
        _ => {
            // A global `npm install -g standardwebhooks` is found through NODE_PATH.
            let root = Command::new("npm")
                .args(["root", "-g"])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            let env = vec![("NODE_PATH".to_owned(), root)];
            let mut c = Command::new("node");
            c.args(["-e", "require('standardwebhooks')"]);
            c.envs(env.iter().map(|(k, v)| (k, v)));
            if ok(&mut c) {
                Ok(("node".into(), env))
            } else {
                Err(
                    "node with the standardwebhooks npm package (npm install -g standardwebhooks)"
                        .into(),
                )
            }
        }
    }
}

/// Runs `snippet` on a saved request: true when it says the signature is valid.
fn snippet_says_valid(
    (cmd, env): &(String, Vec<(String, String)>),
    snippet: &Path,
    secret: &str,
    body: &[u8],
    headers: &serde_json::Value,
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (b, h) = (dir.path().join("body"), dir.path().join("headers.json"));
    std::fs::write(&b, body).unwrap();
    std::fs::write(&h, headers.to_string()).unwrap();
    let out = Command::new(cmd)
        .arg(snippet)
        .arg(&b)
        .arg(&h)
        .env("WEBHOOK_SECRET", secret)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match (out.status.code(), said.as_str()) {
        (Some(0), "valid") => true,
        (Some(1), "INVALID") => false,
        _ => panic!(
            "{} failed: {said} {}",
            snippet.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The Python and Node snippets accept the webhooks postcall signed — JSON, form data, and
/// for GET the query string — and refuse a changed body or a wrong secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_snippets_accept_postcall_signatures() {
    let runners: Vec<(&str, &str, _)> = [
        ("python", "docs/snippets/verify_webhook.py"),
        ("node", "docs/snippets/verify_webhook.js"),
    ]
    .into_iter()
    .map(|(lang, file)| (lang, file, runner(lang)))
    .collect();
    for (_, file, r) in &runners {
        if let Err(what) = r {
            crate::support::skip_loudly(file, what);
        }
    }
    if runners.iter().all(|(_, _, r)| r.is_err()) {
        return;
    }
    let hooks = signed_webhooks().await;
    assert_eq!(hooks.len(), 3);
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    for (lang, file, r) in &runners {
        let Ok(r) = r else { continue };
        let snippet = repo(file);
        for h in &hooks {
            let headers: serde_json::Value =
                ["webhook-id", "webhook-timestamp", "webhook-signature"]
                    .iter()
                    .map(|k| (k.to_string(), serde_json::Value::from(h.header(k).unwrap())))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            // What was signed: the body, or for GET the query string as received.
            let signed: Vec<u8> = if h.method == hyper::Method::GET {
                h.uri.split_once('?').unwrap().1.as_bytes().to_vec()
            } else {
                h.body.to_vec()
            };
            assert!(!signed.is_empty());
            assert!(
                snippet_says_valid(r, &snippet, SECRET, &signed, &headers),
                "{lang}: {} {} not verified",
                h.method,
                h.uri
            );
            let mut changed = signed.clone();
            let last = changed.len() - 1;
            changed[last] ^= 1;
            assert!(
                !snippet_says_valid(r, &snippet, SECRET, &changed, &headers),
                "{lang}: a changed body passed"
            );
            assert!(
                !snippet_says_valid(r, &snippet, other, &signed, &headers),
                "{lang}: a wrong secret passed"
            );
        }
    }
}

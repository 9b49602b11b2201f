//! Triggers end to end: tenant isolation (property), reload under concurrent readers, file
//! watching and SIGHUP on real time, the remote source over real HTTPS on 127.0.0.1, and
//! `postcall check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::session::ClosedSession;
use postcall::trigger::file::parse_document;
use postcall::trigger::reload::{ReloadStatus, TriggerSources};
use postcall::trigger::remote::HttpFetcher;
use postcall::trigger::{BuildOptions, DocFormat, Reloader, TriggerSet};
use proptest::prelude::*;
use tokio::sync::{mpsc, watch};

use crate::servers::http::{HttpServer, Reply};
use crate::servers::tls::TestCa;
use crate::support::{fixture_files, postcall, replay_lines};

/// Every fixture's sessions (real CDRs of every kind).
fn sessions() -> &'static [ClosedSession] {
    static S: OnceLock<Vec<ClosedSession>> = OnceLock::new();
    S.get_or_init(|| {
        fixture_files()
            .iter()
            .flat_map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                replay_lines(&lines)
            })
            .collect()
    })
}

/// Filters that each hold for some fixture sessions and not for others.
const FILTERS: [&str; 10] = [
    r#"{ field = "type", op = "eq", value = "External" }"#,
    r#"{ field = "dir", op = "in", value = ["Incoming", "Both"] }"#,
    r#"{ field = "ans", op = "eq", value = true }"#,
    r#"{ field = "dur", op = "gt", value = 20 }"#,
    r#"{ field = "cliNum", op = "starts_with", value = "+1" }"#,
    r#"{ field = "tags.voicemail", op = "exists" }"#,
    r#"{ field = "cause", op = "ne", value = "NORMAL_CLEARING" }"#,
    r#"{ field = "ring", op = "le", value = 5 }"#,
    r#"{ field = "ddiNum", op = "regex", value = "^\\+1[0-9]{10}$" }"#,
    r#"{ field = "dir", op = "eq", value = "Outgoing" }"#,
];

// Kazoo account ids (32 lowercase hex digits): anything else is refused as a tenant.
const TENANTS: [&str; 3] = [
    "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c",
    "9ed5a7c3b1f04e2d8c6a5b3f1e0d2c4a",
    "c0ffee00c0ffee00c0ffee00c0ffee00",
];
const USERS: [&str; 4] = ["user-1", "user-2", "user-3", "user-4"];

/// (tenant, optional user, filter indexes, enabled)
type Spec = (usize, Option<usize>, Vec<usize>, bool);

fn document(specs: &[Spec]) -> String {
    let mut out = String::new();
    for (i, (tenant, user, filters, enabled)) in specs.iter().enumerate() {
        out.push_str(&format!(
            "[[trigger]]\nid = \"t{i}\"\ntenant = \"{}\"\nenabled = {enabled}\n",
            TENANTS[*tenant]
        ));
        if let Some(u) = user {
            out.push_str(&format!("user = \"{}\"\n", USERS[*u]));
        }
        let f: Vec<&str> = filters.iter().map(|j| FILTERS[*j]).collect();
        out.push_str(&format!("filter = [{}]\n", f.join(", ")));
        out.push_str(&format!(
            "[trigger.action]\nurl = \"https://hooks.example/{i}\"\n"
        ));
    }
    out
}

fn set_of(specs: &[Spec]) -> TriggerSet {
    let triggers = parse_document(
        &document(specs),
        "gen.toml",
        DocFormat::Toml,
        BuildOptions::default(),
    )
    .unwrap();
    postcall::trigger::file::build_set(vec![triggers]).unwrap()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..TENANTS.len(),
        proptest::option::of(0..USERS.len()),
        proptest::collection::vec(0..FILTERS.len(), 0..3),
        proptest::bool::weighted(0.9),
    )
}

fn session() -> impl Strategy<Value = ClosedSession> {
    (
        0..sessions().len(),
        proptest::option::of(0..TENANTS.len()),
        proptest::collection::vec(0..USERS.len(), 0..4),
    )
        .prop_map(|(i, tenant, users)| {
            let mut s = sessions()[i].clone();
            s.tenant_id = tenant.map(|t| TENANTS[t].to_owned());
            s.user_ids = users.iter().map(|u| USERS[*u].to_owned()).collect();
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A trigger only fires for its own tenant's sessions (whatever its filters), a user-owned
    /// one only when its user took part, once at most, with the owner as payload id; and the
    /// tenant index gives exactly the answer of checking every trigger.
    #[test]
    fn tenant_isolation(specs in proptest::collection::vec(spec(), 0..40), s in session()) {
        let set = set_of(&specs);
        let got: Vec<(String, String)> = set
            .matches(&s)
            .map(|m| (m.trigger.id.clone(), m.payload_id.to_owned()))
            .collect();
        for (id, payload_id) in &got {
            let t = set.get(id).unwrap();
            prop_assert!(t.enabled);
            prop_assert_eq!(Some(&t.tenant_id), s.tenant_id.as_ref());
            match &t.user_id {
                Some(u) => {
                    prop_assert!(s.user_ids.contains(u));
                    prop_assert_eq!(payload_id, u);
                }
                None => prop_assert_eq!(payload_id, &t.tenant_id),
            }
            prop_assert!(t.filters_match(&s.cdr));
        }
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), got.len(), "a trigger fired twice");
        let mut reference: Vec<(String, String)> = set
            .matches_unindexed(&s)
            .map(|m| (m.trigger.id.clone(), m.payload_id.to_owned()))
            .collect();
        reference.sort();
        prop_assert_eq!(sorted, reference);
    }

    /// `explain` (what `postcall explain` prints) agrees with matching: every trigger of the
    /// session's tenant is listed once, those that fire are exactly the reference's, and each
    /// other one has the reason that applies — disabled, an owner not in the call, or the
    /// first condition in the order written that fails, with the value the CDR serialises.
    #[test]
    fn explain_agrees_with_matching(specs in proptest::collection::vec(spec(), 0..40), s in session()) {
        use postcall::trigger::Verdict;
        let set = set_of(&specs);
        let reference: Vec<String> = set.matches_unindexed(&s).map(|m| m.trigger.id.clone()).collect();
        let verdicts = set.explain(&s);
        let own: Vec<&str> = set
            .triggers()
            .iter()
            .filter(|t| Some(&t.tenant_id) == s.tenant_id.as_ref())
            .map(|t| t.id.as_str())
            .collect();
        let listed: Vec<&str> = verdicts.iter().map(|(t, _)| t.id.as_str()).collect();
        prop_assert_eq!(listed, own);
        let cdr = serde_json::to_value(&s.cdr).unwrap();
        for (t, v) in &verdicts {
            let fires = reference.contains(&t.id);
            match v {
                Verdict::Fires => prop_assert!(fires),
                Verdict::Disabled => prop_assert!(!fires && !t.enabled),
                Verdict::NotOwner(u) => {
                    prop_assert!(!fires && t.enabled);
                    prop_assert!(!s.user_ids.iter().any(|x| x == u));
                }
                Verdict::Failed(f) => {
                    prop_assert!(!fires && t.enabled);
                    let at = t.filters.iter().position(|x| std::ptr::eq(x, f.filter)).unwrap();
                    prop_assert!(t.filters[..at].iter().all(|x| x.matches(&s.cdr)));
                    prop_assert!(!f.filter.matches(&s.cdr));
                    let name = f.filter.field_name();
                    if !name.contains('.') {
                        let want = cdr.get(name).cloned().unwrap_or(serde_json::Value::Null);
                        prop_assert_eq!(&f.actual, &want, "{}", name);
                    }
                }
            }
        }
    }

    /// Another tenant's trigger never fires, even one without filters.
    #[test]
    fn other_tenants_match_nothing(s in session(), user in proptest::option::of(0..USERS.len())) {
        let own = s.tenant_id.as_deref();
        let specs: Vec<Spec> = (0..TENANTS.len())
            .filter(|t| Some(TENANTS[*t]) != own)
            .map(|t| (t, user, Vec::new(), true))
            .collect();
        let set = set_of(&specs);
        prop_assert_eq!(set.matches(&s).count(), 0);
    }
}

#[test]
fn fixtures_cover_both_outcomes_of_every_filter() {
    // Otherwise the property above could pass with filters that never (or always) hold.
    for f in FILTERS {
        let doc = format!(
            "[[trigger]]\nid = \"x\"\ntenant = \"{}\"\nfilter = [{f}]\n[trigger.action]\nurl = \"https://h.example/\"\n",
            TENANTS[0]
        );
        let t = parse_document(&doc, "f", DocFormat::Toml, BuildOptions::default()).unwrap();
        let hits = sessions()
            .iter()
            .filter(|s| t[0].filters_match(&s.cdr))
            .count();
        assert!(
            hits > 0 && hits < sessions().len(),
            "{f}: {hits} of {}",
            sessions().len()
        );
    }
}

fn doc(generation: u64, n: usize, tenant: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[trigger]]\nid = \"g{generation}-{i}\"\ntenant = \"{tenant}\"\n[trigger.action]\nurl = \"https://h.example/{i}\"\n"
            )
        })
        .collect()
}

/// Replaces `path` the way an editor or a deploy does: a complete file renamed into place.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn quiet_sources(files: Vec<PathBuf>) -> TriggerSources {
    TriggerSources {
        watch: None,
        sighup: false,
        ..TriggerSources::files(files)
    }
}

/// Readers match sessions while sets are swapped (and invalid changes rejected): every
/// session is matched against exactly one whole set, and generations only move forward.
#[test]
fn reload_under_concurrent_readers() {
    const PER_SET: usize = 20;
    const RELOADS: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, doc(0, PER_SET, TENANTS[0])).unwrap();
    let reloader = Reloader::new(quiet_sources(vec![file.clone()])).unwrap();
    let shared = reloader.shared();
    let mut session = sessions()[0].clone();
    session.tenant_id = Some(TENANTS[0].into());
    let session = Arc::new(session);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (shared, stop, session) = (shared.clone(), stop.clone(), session.clone());
            std::thread::spawn(move || {
                let (mut processed, mut last_gen) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let set = shared.load();
                    let ids: Vec<&str> = set
                        .matches(&session)
                        .map(|m| m.trigger.id.as_str())
                        .collect();
                    assert_eq!(ids.len(), PER_SET, "a session lost matches");
                    let generation =
                        |id: &str| -> u64 { id[1..id.find('-').unwrap()].parse().unwrap() };
                    let g = generation(ids[0]);
                    assert!(
                        ids.iter().all(|id| generation(id) == g),
                        "torn set: {ids:?}"
                    );
                    assert!(g >= last_gen, "went back from {last_gen} to {g}");
                    last_gen = g;
                    processed += 1;
                }
                (processed, last_gen)
            })
        })
        .collect();
    for g in 1..=RELOADS {
        if g % 5 == 0 {
            // An invalid change in the middle: rejected, the running set stays.
            replace(&file, &doc(g, PER_SET, ""));
            assert!(reloader.reload().is_err());
        }
        replace(&file, &doc(g, PER_SET, TENANTS[0]));
        reloader.reload().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (processed, last_gen) = r.join().unwrap();
        assert!(processed > 0);
        assert!(last_gen <= RELOADS);
    }
    let st = reloader.status().borrow().clone();
    assert_eq!((st.generation, st.rejected), (RELOADS + 1, RELOADS / 5));
}

async fn wait(
    status: &mut watch::Receiver<ReloadStatus>,
    what: &str,
    f: impl FnMut(&ReloadStatus) -> bool,
) {
    let ok = tokio::time::timeout(Duration::from_secs(10), status.wait_for(f))
        .await
        .map(|r| r.is_ok());
    assert_eq!(ok, Ok(true), "waiting for {what}: {:?}", *status.borrow());
}

fn ids(set: &TriggerSet) -> Vec<String> {
    set.triggers().iter().map(|t| t.id.clone()).collect()
}

#[tokio::test]
async fn watched_file_changes_are_picked_up_and_bad_ones_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, doc(1, 1, TENANTS[0])).unwrap();
    let sources = TriggerSources {
        watch: Some(Duration::from_millis(20)),
        ..quiet_sources(vec![file.clone()])
    };
    let reloader = Reloader::new(sources).unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (_tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(reloader.clone().run(None::<HttpFetcher>, rx, shutdown));
    let mut status = reloader.status();
    wait(&mut status, "the loop", |s| s.running).await;

    replace(&file, &doc(2, 2, TENANTS[0]));
    wait(&mut status, "generation 2", |s| s.generation == 2).await;
    assert_eq!(ids(&reloader.current()), ["g2-0", "g2-1"]);

    replace(&file, &doc(3, 1, TENANTS[0]).replace("https://", "ftp://"));
    wait(&mut status, "a rejection", |s| s.rejected == 1).await;
    let err = status.borrow().last_error.clone().unwrap().to_string();
    assert!(
        err.contains("trigger \"g3-0\": trigger[0].action.url"),
        "{err}"
    );
    assert_eq!(ids(&reloader.current()), ["g2-0", "g2-1"]);

    replace(&file, &doc(4, 1, TENANTS[0]));
    wait(&mut status, "generation 3", |s| s.generation == 3).await;
    assert_eq!(ids(&reloader.current()), ["g4-0"]);
    stop.cancel();
    task.await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, doc(1, 1, TENANTS[0])).unwrap();
    let sources = TriggerSources {
        sighup: true,
        ..quiet_sources(vec![file.clone()])
    };
    let reloader = Reloader::new(sources).unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (_tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(reloader.clone().run(None::<HttpFetcher>, rx, shutdown));
    let mut status = reloader.status();
    // `running` is published after the SIGHUP handler is installed, so the signal cannot
    // hit the default action (terminate).
    wait(&mut status, "the loop", |s| s.running).await;
    std::fs::write(&file, doc(2, 1, TENANTS[0])).unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait(&mut status, "the reload", |s| s.generation >= 2).await;
    assert_eq!(ids(&reloader.current()), ["g2-0"]);
    stop.cancel();
    task.await.unwrap();
}

/// The remote document over real HTTPS (test CA): fetched at start, then conditionally;
/// 304 keeps the set, a changed document (JSON this time) replaces it.
#[tokio::test]
async fn remote_source_over_https_with_etags() {
    let ca = TestCa::new();
    let current: Arc<Mutex<(String, &'static str, &'static str)>> = Arc::new(Mutex::new((
        doc(1, 1, TENANTS[0]),
        "\"v1\"",
        "application/toml",
    )));
    let served = current.clone();
    let mut server = HttpServer::start(Some(&ca), move |r| {
        let (body, etag, ctype) = served.lock().unwrap().clone();
        if r.header("if-none-match") == Some(etag) {
            return Reply::status(304).with_header("etag", etag);
        }
        Reply {
            body: body.into(),
            ..Reply::status(200)
        }
        .with_header("etag", etag)
        .with_header("content-type", ctype)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.toml");
    std::fs::write(&file, doc(0, 1, TENANTS[0]).replace("g0-0", "local")).unwrap();
    let sources = TriggerSources {
        refresh: Duration::from_millis(50),
        retry: Duration::from_millis(50),
        ..quiet_sources(vec![file])
    };
    let reloader = Reloader::new(sources).unwrap();
    let url: hyper::Uri = format!("{}/triggers?token=SECRET", server.url())
        .parse()
        .unwrap();
    let client = postcall::net::HttpClient::new(ca.client(), &Default::default());
    let fetcher = HttpFetcher::new(client, url, Duration::from_secs(5));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (_tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(reloader.clone().run(Some(fetcher), rx, shutdown));
    let mut status = reloader.status();

    wait(&mut status, "the first document", |s| s.generation == 2).await;
    assert_eq!(ids(&reloader.current()), ["local", "g1-0"]);
    let first = server.next_request().await;
    assert_eq!(first.uri, "/triggers?token=SECRET");
    assert_eq!(first.header("if-none-match"), None);
    let second = server.next_request().await;
    assert_eq!(second.header("if-none-match"), Some("\"v1\""));
    wait(&mut status, "a 304", |s| s.remote_polls >= 2).await;
    assert_eq!(status.borrow().generation, 2, "304 does not rebuild");

    let json = r#"{"trigger":[{"id":"json-1","tenant":"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c","action":{"url":"https://h.example/j"}}]}"#;
    *current.lock().unwrap() = (json.to_owned(), "\"v2\"", "application/json; charset=utf-8");
    wait(&mut status, "the second document", |s| s.generation == 3).await;
    assert_eq!(ids(&reloader.current()), ["local", "json-1"]);

    // An invalid remote document is rejected and named without its query string.
    *current.lock().unwrap() = (doc(3, 1, ""), "\"v3\"", "application/toml");
    wait(&mut status, "a rejection", |s| s.rejected == 1).await;
    let err = status.borrow().last_error.clone().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "{}/triggers?[redacted]: trigger \"g3-0\"",
            server.url()
        )),
        "{err}"
    );
    assert!(!err.contains("SECRET"));
    assert_eq!(ids(&reloader.current()), ["local", "json-1"]);
    stop.cancel();
    task.await.unwrap();
}

#[test]
fn check_validates_trigger_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    // `check` validates for `run`, which needs a `[kazoo]` section.
    std::fs::write(
        &cfg,
        "[triggers]\nfiles = [\"t.toml\", \"u.toml\"]\n[kazoo]\nwebsocket_url = \"ws://127.0.0.1:9/\"\naccounts = [\"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"]\nauth_token = \"t\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("t.toml"), doc(1, 2, TENANTS[0])).unwrap();
    std::fs::write(dir.path().join("u.toml"), doc(2, 1, TENANTS[1])).unwrap();
    let out = postcall(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 3 triggers"));

    let bad = doc(2, 1, TENANTS[1]).replace("https://h.example/0", "http://h.example/0?sig=SECRET")
        + "[trigger.action.data]\nn = 1\n";
    std::fs::write(dir.path().join("u.toml"), bad).unwrap();
    let out = postcall(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let u = dir.path().join("u.toml").display().to_string();
    assert!(
        err.contains(&format!(
            "{u}: trigger \"g2-0\": trigger[0].action.url: must be https://"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{u}: trigger \"g2-0\": trigger[0].action.data.n: must be a string"
        )),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
}

/// The trigger file example in `plugin.toml` (commented out there) is a valid document.
#[test]
fn plugin_toml_trigger_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let example: String = text
        .lines()
        .skip_while(|l| !l.contains("---8<--- trigger file"))
        .skip(1)
        .take_while(|l| !l.contains("--->8---"))
        .map(|l| {
            l.strip_prefix('#')
                .unwrap_or(l)
                .strip_prefix(' ')
                .unwrap_or("")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let triggers = parse_document(
        &example,
        "plugin.toml example",
        DocFormat::Toml,
        BuildOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert!(triggers.len() >= 2, "{example}");
    let by_id: BTreeMap<&str, _> = triggers.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(by_id.len(), triggers.len());
}

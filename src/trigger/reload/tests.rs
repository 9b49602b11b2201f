//! Reloader: rejected changes keep the running set; the remote poll loop under paused time
//! with an in-memory fetcher.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::trigger::remote::FetchError;

fn doc(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "[[trigger]]\nid = \"{id}\"\ntenant = \"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"\n[trigger.action]\nurl = \"https://h.example/{id}\"\n"
            )
        })
        .collect()
}

fn ids(set: &TriggerSet) -> Vec<String> {
    set.triggers().iter().map(|t| t.id.clone()).collect()
}

fn sources(files: Vec<PathBuf>) -> TriggerSources {
    TriggerSources {
        watch: None,
        sighup: false,
        ..TriggerSources::files(files)
    }
}

#[test]
fn invalid_change_keeps_the_previous_set_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&a, doc(&["a1"])).unwrap();
    std::fs::write(&b, doc(&["b1"])).unwrap();
    let r = Reloader::new(sources(vec![a.clone(), b.clone()])).unwrap();
    let before = r.current();
    assert_eq!(ids(&before), ["a1", "b1"]);

    // b becomes valid, a invalid in the same round: nothing of the round is applied.
    std::fs::write(&b, doc(&["b1", "b2"])).unwrap();
    std::fs::write(&a, doc(&["a1"]).replace("https://", "http://")).unwrap();
    let e = r.reload().unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].origin, a.display().to_string());
    assert_eq!(e.0[0].trigger_id.as_deref(), Some("a1"));
    assert_eq!(e.0[0].path, "trigger[0].action.url");
    assert!(Arc::ptr_eq(&before, &r.current()), "the running set stays");
    let st = r.status().borrow().clone();
    assert_eq!((st.generation, st.rejected), (1, 1));
    assert!(st.last_error.is_some());

    // A duplicate id across files is rejected too.
    std::fs::write(&a, doc(&["a1", "b2"])).unwrap();
    let e = r.reload().unwrap_err().to_string();
    assert!(e.contains("\"b2\": id: duplicate id"), "{e}");
    assert!(Arc::ptr_eq(&before, &r.current()));

    // A missing file is a problem, not an empty document.
    std::fs::remove_file(&a).unwrap();
    let e = r.reload().unwrap_err().to_string();
    assert!(e.contains("a.toml: cannot read"), "{e}");

    std::fs::write(&a, doc(&["a1"])).unwrap();
    r.reload().unwrap();
    assert_eq!(ids(&r.current()), ["a1", "b1", "b2"]);
    let st = r.status().borrow().clone();
    assert_eq!((st.generation, st.rejected), (2, 3));
    assert!(st.last_error.is_none());
}

#[test]
fn an_invalid_initial_set_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, "[[trigger]]\nid = 1\n").unwrap();
    let e = Reloader::new(sources(vec![a])).unwrap_err().to_string();
    assert!(e.contains("a.toml: trigger[0]"), "{e}");
}

#[test]
fn watch_rebuilds_on_content_change_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, doc(&["a1"])).unwrap();
    let r = Reloader::new(sources(vec![a.clone()])).unwrap();
    assert!(!r.rebuild_if_changed().unwrap(), "nothing changed");
    // Same content, new inode and mtime (an editor's write-and-rename): no rebuild.
    let tmp = dir.path().join("a.tmp");
    std::fs::write(&tmp, doc(&["a1"])).unwrap();
    std::fs::rename(&tmp, &a).unwrap();
    assert!(!r.rebuild_if_changed().unwrap());
    assert_eq!(r.status().borrow().generation, 1);
    std::fs::write(&tmp, doc(&["a2"])).unwrap();
    std::fs::rename(&tmp, &a).unwrap();
    assert!(r.rebuild_if_changed().unwrap());
    assert_eq!(ids(&r.current()), ["a2"]);
}

type Script = VecDeque<Result<Fetched, FetchError>>;

/// Answers from a script and records each request's time and validators.
#[derive(Clone, Default)]
struct FakeFetcher {
    script: Arc<Mutex<Script>>,
    calls: Arc<Mutex<Vec<(tokio::time::Instant, Validators)>>>,
}

impl TriggerFetcher for FakeFetcher {
    async fn fetch(&self, v: &Validators) -> Result<Fetched, FetchError> {
        self.calls
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), v.clone()));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Fetched::NotModified))
    }

    fn origin(&self) -> String {
        "https://remote.example/triggers".into()
    }
}

fn new_doc(text: String, etag: &str) -> Result<Fetched, FetchError> {
    Ok(Fetched::New {
        body: text,
        format: DocFormat::Toml,
        validators: Validators {
            etag: Some(etag.into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        },
    })
}

#[tokio::test(start_paused = true)]
async fn remote_poll_is_conditional_retries_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, doc(&["file1"])).unwrap();
    let mut src = sources(vec![a]);
    src.refresh = Duration::from_secs(600);
    src.retry = Duration::from_secs(30);
    let r = Reloader::new(src).unwrap();
    let fake = FakeFetcher::default();
    *fake.script.lock().unwrap() = VecDeque::from([
        new_doc(doc(&["r1"]), "\"a\""),
        Ok(Fetched::NotModified),
        Err(FetchError::Status(hyper::StatusCode::SERVICE_UNAVAILABLE)),
        new_doc(
            doc(&["r2"]).replace("3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c", ""),
            "\"b\"",
        ),
        new_doc(doc(&["r3"]), "\"c\""),
    ]);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (_req_tx, req_rx) = mpsc::channel(1);
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(r.clone().run(Some(fake.clone()), req_rx, shutdown));
    let mut status = r.status();

    status.wait_for(|s| s.generation == 2).await.unwrap();
    assert_eq!(ids(&r.current()), ["file1", "r1"]);
    status
        .wait_for(|s| s.remote_polls + s.remote_failures == 4)
        .await
        .unwrap();
    // The invalid document was rejected: the set with r1 stays, the problem names the remote.
    assert_eq!(ids(&r.current()), ["file1", "r1"]);
    let st = status.borrow().clone();
    assert_eq!(st.rejected, 1);
    let err = st.last_error.unwrap().to_string();
    assert!(
        err.starts_with("https://remote.example/triggers: trigger \"r2\": trigger[0].tenant"),
        "{err}"
    );
    status.wait_for(|s| s.generation == 3).await.unwrap();
    assert_eq!(ids(&r.current()), ["file1", "r3"]);
    stop.cancel();
    task.await.unwrap();

    let calls = fake.calls.lock().unwrap().clone();
    let at: Vec<u64> = calls.iter().map(|(t, _)| (*t - start).as_secs()).collect();
    // At once, then every 600 s; the failure is retried after 30 s.
    assert_eq!(at, [0, 600, 1200, 1230, 1830]);
    let etags: Vec<Option<&str>> = calls.iter().map(|(_, v)| v.etag.as_deref()).collect();
    assert_eq!(
        etags,
        [
            None,
            Some("\"a\""),
            Some("\"a\""),
            Some("\"a\""),
            Some("\"b\"")
        ]
    );
    assert!(calls[1].1.last_modified.is_some());
    let st = status.borrow().clone();
    assert_eq!((st.remote_polls, st.remote_failures), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn requests_reload_and_shutdown_stops_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, doc(&["a1"])).unwrap();
    let r = Reloader::new(sources(vec![a.clone()])).unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (req_tx, req_rx) = mpsc::channel(1);
    let task = tokio::spawn(r.clone().run(None::<FakeFetcher>, req_rx, shutdown));
    let mut status = r.status();
    std::fs::write(&a, doc(&["a2"])).unwrap();
    req_tx.send(()).await.unwrap();
    status.wait_for(|s| s.generation == 2).await.unwrap();
    assert_eq!(ids(&r.current()), ["a2"]);
    stop.cancel();
    task.await.unwrap();
    assert!(!status.borrow().running);
}

/// Console triggers are one more source of the same set: published at once, kept across file
/// reloads, and a clash with a file's id is refused with the previous console triggers kept.
#[test]
fn console_triggers_join_the_set_live() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, doc(&["a1"])).unwrap();
    let r = Reloader::new(sources(vec![a.clone()])).unwrap();
    let console = |ids: &[&str]| {
        crate::trigger::file::parse_document(
            &doc(ids),
            "console",
            DocFormat::Toml,
            BuildOptions::default(),
        )
        .unwrap()
    };
    r.set_console(console(&["c1"])).unwrap();
    assert_eq!(ids(&r.current()), ["a1", "c1"]);
    std::fs::write(&a, doc(&["a1", "a2"])).unwrap();
    r.reload().unwrap();
    assert_eq!(
        ids(&r.current()),
        ["a1", "a2", "c1"],
        "a file reload keeps them"
    );
    let e = r
        .set_console(console(&["c1", "a2"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate id"), "{e}");
    assert_eq!(ids(&r.current()), ["a1", "a2", "c1"]);
    r.reload().unwrap();
    assert_eq!(
        ids(&r.current()),
        ["a1", "a2", "c1"],
        "the refused change was not kept"
    );
    r.set_console(Vec::new()).unwrap();
    assert_eq!(ids(&r.current()), ["a1", "a2"]);
}

//! Storage faults injected under the real redb outbox on a temp dir (no tmpfs or privileges
//! needed, so they run everywhere CI runs): a full disk, a failing device on writes or on
//! syncs, a corrupted file. The errors are typed, the outbox reopens by itself once the
//! device is healthy again, and nothing written before the fault is lost.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::delivery::{
    Completion, DeliveryOptions, Endpoint, Engine, Fault, Faults, Format, Job, Method, Outbox,
    OutboxError, OutboxOptions,
};
use postcall::net::guard::AddressGuard;
use postcall::net::http::HttpOptions;
use postcall::net::HttpClient;

use crate::servers::http::{HttpServer, Recorded, Reply};

fn job(id: &str, url: &str) -> Job {
    Job {
        webhook_id: id.into(),
        trigger_id: "t".into(),
        endpoint: Endpoint {
            url: url.into(),
            method: Method::Post,
            format: Format::Json,
            retries: 3,
            signed: false,
        },
        payload: serde_json::value::to_raw_value(&serde_json::json!({"id": id})).unwrap(),
        attempts: 0,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    }
}

/// An outbox in `dir` through the fault switch `faults`, without a disk reserve.
pub(crate) fn open(dir: &tempfile::TempDir, faults: &Faults) -> Outbox {
    Outbox::open_with(
        &dir.path().join("outbox.redb"),
        OutboxOptions {
            reserve_bytes: 0,
            faults: faults.clone(),
        },
    )
    .unwrap()
}

const URL: &str = "https://a.test/h";
const LANE: &str = "https://a.test:443";

fn ids(jobs: &[Job]) -> BTreeSet<String> {
    jobs.iter().map(|j| j.webhook_id.clone()).collect()
}

#[test]
fn a_full_disk_is_a_typed_error_and_the_outbox_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let o = open(&dir, &faults);
    assert_eq!(o.enqueue(&[job("a", URL), job("b", URL)]).unwrap(), 2);

    faults.set(Fault::NoSpace);
    let e = o.enqueue(&[job("c", URL)]).unwrap_err();
    assert!(e.is_disk_full(), "{e:?}");
    assert!(e.needs_reopen(), "{e:?}");
    assert!(matches!(e, OutboxError::Io(_)), "{e:?}");

    // Space is back: the next operation reopens the database, nothing written before the
    // fault is lost and nothing of the failed write is there.
    faults.set(Fault::None);
    let (due, _) = o.due(LANE, 1, 10, &BTreeSet::new()).unwrap();
    assert_eq!(ids(&due), ["a".to_owned(), "b".to_owned()].into());
    assert_eq!(o.enqueue(&[job("c", URL)]).unwrap(), 1);
    drop(o);
    let o = open(&dir, &faults);
    assert_eq!(o.pending_len().unwrap(), 3);
}

#[test]
fn a_failed_write_leaves_the_outcome_unrecorded_and_the_job_pending() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let o = open(&dir, &faults);
    o.enqueue(&[job("a", URL)]).unwrap();
    let (due, _) = o.due(LANE, 1, 10, &BTreeSet::new()).unwrap();

    faults.set(Fault::WriteError);
    let e = o
        .complete(&due[0], Completion::Delivered)
        .expect_err("the outcome cannot be recorded");
    assert!(
        e.needs_reopen() && !e.is_disk_full() && !e.is_fatal(),
        "{e:?}"
    );
    // While the device still fails, reads fail too (typed), never panic.
    if let Err(e) = o.pending_len() {
        assert!(e.needs_reopen() && !e.is_fatal(), "{e:?}");
    }
    faults.set(Fault::None);
    assert_eq!(o.pending_len().unwrap(), 1, "still pending");
    o.complete(&due[0], Completion::Delivered).unwrap();
    assert_eq!(o.pending_len().unwrap(), 0);
}

/// A failed sync leaves the outcome unknown (the data may have reached the file): the error
/// is typed, the outbox reopens, and writing the same thing again is harmless (enqueue keeps
/// one job per webhook id; recording an outcome twice is the same as once).
#[test]
fn a_failed_sync_is_typed_and_repeating_the_write_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let o = open(&dir, &faults);
    faults.set(Fault::SyncError);
    let e = o.enqueue(&[job("a", URL)]).unwrap_err();
    assert!(
        e.needs_reopen() && !e.is_disk_full() && !e.is_fatal(),
        "{e:?}"
    );
    faults.set(Fault::None);
    o.enqueue(&[job("a", URL)]).unwrap();
    assert_eq!(o.pending_len().unwrap(), 1);
    let (due, _) = o.due(LANE, 1, 10, &BTreeSet::new()).unwrap();
    faults.set(Fault::SyncError);
    assert!(o
        .complete(&due[0], Completion::Delivered)
        .unwrap_err()
        .needs_reopen());
    faults.set(Fault::None);
    o.complete(&due[0], Completion::Delivered).unwrap();
    assert_eq!(o.pending_len().unwrap(), 0);
    drop(o);
    assert_eq!(open(&dir, &faults).pending_len().unwrap(), 0);
}

#[test]
fn a_corrupted_file_is_reported_as_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let o = Outbox::open(&path).unwrap();
        o.enqueue(&[job("a", URL)]).unwrap();
    }
    // The header's magic number overwritten: not a redb file any more.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..9].copy_from_slice(b"garbage!!");
    std::fs::write(&path, &bytes).unwrap();
    let e = Outbox::open(&path).unwrap_err();
    assert!(matches!(e, OutboxError::Corrupted(_)), "{e:?}");
    assert!(e.is_fatal() && !e.needs_reopen(), "{e:?}");
}

#[test]
fn a_file_open_elsewhere_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let _first = Outbox::open(&path).unwrap();
    let e = Outbox::open(&path).unwrap_err();
    assert!(matches!(e, OutboxError::InUse), "{e:?}");
}

/// The engine delivering through a device that fails on and off: every job arrives, none is
/// dead-lettered, the failures are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_failing_device() {
    let got = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let g = got.clone();
    let server = HttpServer::start(None, move |r| {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        g.lock()
            .unwrap()
            .insert(v["id"].as_str().unwrap_or("").to_owned());
        Reply::status(200)
    })
    .await;
    let url = format!("{}/h", server.url());
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let outbox = Arc::new(open(&dir, &faults));
    let http = HttpClient::with_guard(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions::default(),
        AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]),
    );
    let opts = DeliveryOptions {
        retry_unit: Duration::from_millis(40),
        ..DeliveryOptions::default()
    };
    let engine = Engine::new(outbox.clone(), http, opts);
    let (stop, task) = running(&engine);

    let mut expected = BTreeSet::new();
    let mut refused = 0;
    for round in 0..6 {
        // Every other round the device fails while jobs are written and delivered.
        let fault = [
            Fault::None,
            Fault::WriteError,
            Fault::None,
            Fault::SyncError,
        ][round % 4];
        faults.set(fault);
        for n in 0..20 {
            let id = format!("r{round}-{n}");
            match engine.enqueue(&[job(&id, &url)]).await {
                Ok(_) => {
                    expected.insert(id);
                }
                Err(e) => {
                    assert!(e.needs_reopen(), "{e:?}");
                    refused += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.set(Fault::None);
    assert!(refused > 0, "the injected faults reached the outbox");
    drained(&outbox).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(outbox.dead_len().unwrap(), 0);
    let got = got.lock().unwrap().clone();
    assert!(
        got.is_superset(&expected),
        "lost: {:?}",
        expected.difference(&got).collect::<Vec<_>>()
    );
    println!(
        "storage faults: {} jobs accepted, {refused} refused while the device failed, all delivered",
        expected.len()
    );
}

/// Storage work never runs on the async worker: with the device stalled mid-write and a
/// runtime of one thread, another task still runs while `enqueue` waits for the outbox.
/// (With the store called on the worker, the only thread would be stuck in the write; a
/// watchdog thread resumes the device after a while so such a failure ends.)
#[test]
fn a_stalled_device_does_not_stall_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let outbox = Arc::new(open(&dir, &faults));
    let http = HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions::default(),
    );
    let engine = Engine::new(outbox.clone(), http, DeliveryOptions::default());
    let ran_while_held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    faults.hold();
    let (f, r) = (faults.clone(), released.clone());
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        r.store(true, std::sync::atomic::Ordering::SeqCst);
        f.resume();
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = engine.clone();
        let write = tokio::spawn(async move { e.enqueue(&[job("a", URL)]).await });
        // Let the write reach the owner thread and stall there.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let (faults, seen, released) = (faults.clone(), ran_while_held.clone(), released.clone());
        tokio::spawn(async move {
            seen.store(
                !released.load(std::sync::atomic::Ordering::SeqCst),
                std::sync::atomic::Ordering::SeqCst,
            );
            faults.resume();
        })
        .await
        .unwrap();
        assert_eq!(write.await.unwrap().unwrap(), 1);
    });
    assert!(
        ran_while_held.load(std::sync::atomic::Ordering::SeqCst),
        "another task ran while the outbox write was stalled"
    );
    assert_eq!(outbox.pending_len().unwrap(), 1);
    let _ = watchdog;
}

/// An engine on `outbox` delivering to loopback, one attempt at a time.
fn one_at_a_time(outbox: Arc<Outbox>) -> Arc<Engine> {
    let http = HttpClient::with_guard(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions::default(),
        AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()]),
    );
    Engine::new(
        outbox,
        http,
        DeliveryOptions {
            retry_unit: Duration::from_millis(40),
            max_in_flight: 1,
            max_in_flight_per_endpoint: 1,
            ..DeliveryOptions::default()
        },
    )
}

/// A receiver, and a one-at-a-time engine over a faulty outbox on a temp dir (kept while the
/// rig lives).
struct EngineRig {
    server: HttpServer,
    url: String,
    faults: Faults,
    outbox: Arc<Outbox>,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn engine_rig(reply: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> EngineRig {
    let server = HttpServer::start(None, reply).await;
    let url = format!("{}/h", server.url());
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let outbox = Arc::new(open(&dir, &faults));
    let engine = one_at_a_time(outbox.clone());
    EngineRig {
        server,
        url,
        faults,
        outbox,
        engine,
        _dir: dir,
    }
}

/// Runs `engine` until the returned token is cancelled.
fn running(engine: &Arc<Engine>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    (stop.clone(), tokio::spawn(engine.clone().run(stop)))
}

/// Waits until `outbox` has no pending job.
async fn drained(outbox: &Outbox) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !outbox.pending_len().is_ok_and(|n| n == 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the outbox drained");
}

/// Resumes a held device when dropped (a failing test must not leave the owner stuck).
struct Resume(Faults);

impl Drop for Resume {
    fn drop(&mut self) {
        self.0.resume();
    }
}

/// An attempt's slot is free as soon as its answer is in: with the device stalled, the
/// first outcome waits for its commit while the next fresh jobs (held in memory, so no
/// outbox read either) are attempted. When the device resumes every outcome is stored and
/// each job was attempted once. (The receiver answers after 200 ms, so the device is held
/// before the first answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_wait_for_their_commit_without_holding_attempt_slots() {
    let EngineRig {
        mut server,
        url,
        faults,
        outbox,
        engine,
        _dir,
    } = engine_rig(|_| Reply {
        delay: Some(Duration::from_millis(200)),
        ..Reply::status(200)
    })
    .await;
    let (stop, task) = running(&engine);
    // A first delivery: the engine has read the outbox's lanes at its start by then.
    engine.enqueue(&[job("warm-up", &url)]).await.unwrap();
    assert_eq!(
        server.next_request().await.header("webhook-id"),
        Some("warm-up")
    );
    drained(&outbox).await;
    let jobs: Vec<Job> = (0..3).map(|n| job(&format!("j{n}"), &url)).collect();
    assert_eq!(engine.enqueue(&jobs).await.unwrap(), 3);
    faults.hold(); // every write from now on waits: no outcome can be stored
    let resume = Resume(faults.clone());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = server.next_request().await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        seen.push(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        ["j0", "j1", "j2"],
        "attempted in order while no outcome was stored"
    );
    assert_eq!(
        outbox.pending_gauge(),
        3,
        "no outcome stored while the device is held"
    );
    drop(resume);
    drained(&outbox).await;
    stop.cancel();
    task.await.unwrap();
    assert!(
        server
            .next_request_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no job attempted twice"
    );
    assert_eq!(
        engine
            .counters
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}

/// An outcome the outbox could not store leaves the job pending as it was, and the engine
/// (which attempted it from memory) goes back to the outbox for it: it is attempted again
/// once the device is healthy, and only then leaves the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_that_could_not_be_stored_is_attempted_again() {
    let EngineRig {
        mut server,
        url,
        faults,
        outbox,
        engine,
        _dir,
    } = engine_rig(|_| Reply::status(200)).await;
    engine.enqueue(&[job("once", &url)]).await.unwrap();
    faults.set(Fault::WriteError);
    let (stop, task) = running(&engine);
    let first = server.next_request().await;
    assert_eq!(first.header("webhook-id"), Some("once"));
    tokio::time::timeout(Duration::from_secs(10), async {
        while engine
            .counters
            .store_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the outcome's write failed");
    faults.set(Fault::None);
    let again = server.next_request().await;
    assert_eq!(again.header("webhook-id"), Some("once"), "attempted again");
    drained(&outbox).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(outbox.dead_len().unwrap(), 0);
}

/// A batch the outbox refused is never attempted (nothing is handed over before it is
/// durable): the job written after it, on the same lane, is the first request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_outbox_refused_is_not_attempted() {
    let EngineRig {
        mut server,
        url,
        faults,
        outbox,
        engine,
        _dir,
    } = engine_rig(|_| Reply::status(200)).await;
    let (stop, task) = running(&engine);
    faults.set(Fault::WriteError);
    let refused = engine
        .enqueue(&[job("refused-1", &url), job("refused-2", &url)])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    faults.set(Fault::None);
    engine.enqueue(&[job("written", &url)]).await.unwrap();
    let first = server.next_request().await;
    assert_eq!(first.header("webhook-id"), Some("written"));
    drained(&outbox).await;
    stop.cancel();
    task.await.unwrap();
    let late = server.next_request_within(Duration::from_millis(200)).await;
    assert!(
        late.is_none(),
        "{:?} attempted",
        late.as_ref().and_then(|r| r.header("webhook-id"))
    );
}

/// A write the outbox refused may still be in the file (a sync that failed after the write
/// reached it), so the engine goes back to the outbox for its lane — at once, even when it
/// was idle, asleep until its next stored job (an hour with none). A job written beside the
/// engine, which it does not know of, shows the read: it is attempted right after the refused
/// write. (Before the fix the idle engine slept through it: the disk-full fault run lost its
/// held sessions about one run in five.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_wakes_an_idle_engine_to_read_its_lanes() {
    let EngineRig {
        mut server,
        url,
        faults,
        outbox,
        engine,
        _dir,
    } = engine_rig(|_| Reply::status(200)).await;
    let (stop, task) = running(&engine);
    engine.enqueue(&[job("warm-up", &url)]).await.unwrap();
    assert_eq!(
        server.next_request().await.header("webhook-id"),
        Some("warm-up")
    );
    drained(&outbox).await;
    // Written around the engine: nothing tells it, and it sleeps on.
    let (o, beside) = (outbox.clone(), job("beside", &url));
    tokio::task::spawn_blocking(move || o.enqueue(&[beside]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        server
            .next_request_within(Duration::from_millis(300))
            .await
            .is_none(),
        "the idle engine does not poll the embedded outbox"
    );
    faults.set(Fault::WriteError);
    let refused = engine.enqueue(&[job("refused", &url)]).await;
    assert!(refused.is_err(), "{refused:?}");
    faults.set(Fault::None);
    assert_eq!(
        server.next_request().await.header("webhook-id"),
        Some("beside"),
        "the lane was read after the refused write"
    );
    drained(&outbox).await;
    stop.cancel();
    task.await.unwrap();
}

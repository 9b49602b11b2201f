//! Fault runs (bounded in time, loopback only). Each prints one report line — CDRs expected,
//! delivered, dead-lettered, lost — and fails unless nothing was lost. The 10 000-call load run
//! is `#[ignore]`d (minutes in a debug build); `scripts/faults` runs everything in release.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::run::{
    demo_blackhole, free_port, get, opts, spawn_binary, start, start_with, stream,
    write_config_with, Running,
};
use crate::servers::blackhole::Blackhole;
use crate::servers::http::{HttpServer, Reply};

/// A receiver that records the session ids it accepts, per path; `down` answers 503,
/// `delay` slows every answer.
#[derive(Clone, Default)]
struct Receiver {
    down: Arc<AtomicBool>,
    got: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl Receiver {
    async fn start(&self, delay: Option<Duration>) -> HttpServer {
        let me = self.clone();
        HttpServer::start(None, move |r| {
            if me.down.load(Ordering::Relaxed) {
                return Reply::status(503);
            }
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = v["cdr"]["id"].as_str().unwrap_or("").to_owned();
            me.got
                .lock()
                .unwrap()
                .entry(r.uri.clone())
                .or_default()
                .insert(id);
            Reply {
                delay,
                ..Reply::status(200)
            }
        })
        .await
    }

    fn delivered(&self, path: &str) -> BTreeSet<String> {
        self.got
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    async fn wait_for(&self, path: &str, expected: &BTreeSet<String>, limit: Duration) {
        let t = Instant::now();
        while !self.delivered(path).is_superset(expected) && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A fake Blackhole, a receiver (down or up) on `/calls`, and a configuration for both with
/// `extra` sections.
struct Rig {
    bh: Blackhole,
    rx: Receiver,
    _server: HttpServer,
    _dir: tempfile::TempDir,
    cfg: postcall::config::PluginConfig,
}

impl Rig {
    async fn new(receiver_down: bool, extra: &str) -> Self {
        let bh = demo_blackhole().await;
        let rx = Receiver::default();
        rx.down.store(receiver_down, Ordering::Relaxed);
        let server = rx.start(None).await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{}/calls", server.url());
        let cfg = write_config_with(dir.path(), &bh.url(), &[&url], extra);
        Self {
            bh,
            rx,
            _server: server,
            _dir: dir,
            cfg,
        }
    }
}

fn report(name: &str, expected: &BTreeSet<String>, delivered: &BTreeSet<String>, dead: usize) {
    let lost = expected.difference(delivered).count().saturating_sub(dead);
    println!(
        "fault run {name}: CDRs expected {}, delivered {}, dead-lettered {dead}, lost {lost}",
        expected.len(),
        delivered.intersection(expected).count()
    );
    assert_eq!(lost, 0, "{name}: CDRs lost");
    assert_eq!(dead, 0, "{name}: nothing should have failed for good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_back() {
    // The server and the directory live as long as their bindings.
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(true, "").await;
    let run = start(cfg).await;
    bh.wait_subscribed(1).await;
    let (frames, expected) = stream(40, 21, 2_000);
    for f in &frames {
        bh.push(f);
    }
    // Every session is in the outbox while the receiver is down…
    let engine = run.started.registry.engine.clone().unwrap();
    let t = Instant::now();
    while engine.outbox().embedded().unwrap().pending_len().unwrap() < expected.len() as u64
        && t.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        engine.outbox().embedded().unwrap().pending_len().unwrap(),
        expected.len() as u64
    );
    // …and all of it arrives once it is back.
    rx.down.store(false, Ordering::Relaxed);
    rx.wait_for("/calls", &expected, Duration::from_secs(30))
        .await;
    let dead = engine.outbox().embedded().unwrap().dead_len().unwrap() as usize;
    drop(engine);
    run.stop().await;
    report(
        "receiver down then back",
        &expected,
        &rx.delivered("/calls"),
        dead,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_dropped_repeatedly() {
    // The server and the directory live as long as their bindings.
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(false, "").await;
    let run = start(cfg).await;
    let source = run.started.registry.source.clone().unwrap();
    let (frames, expected) = stream(60, 22, 2_000);
    let chunks = 6;
    for (n, chunk) in frames.chunks(frames.len().div_ceil(chunks)).enumerate() {
        bh.wait_subscribed(n as u64 + 1).await;
        // Wait for the client's own view too (it subscribes every account before reading on).
        let mut status = source.status.subscribe();
        let s = source.clone();
        status
            .wait_for(|_| s.connections.load(Ordering::Relaxed) > n as u64)
            .await
            .unwrap();
        for f in chunk {
            bh.push(f);
        }
        // A marker frame shows the chunk was read before the drop.
        bh.push(r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#);
        let reg = run.started.registry.clone();
        let want = format!(
            "postcall_frames_skipped_total{{reason=\"missing_call_id\"}} {}",
            n + 1
        );
        let t = Instant::now();
        while !reg.render().contains(&want) && t.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bh.drop_all();
    }
    bh.wait_subscribed(chunks as u64 + 1).await;
    rx.wait_for("/calls", &expected, Duration::from_secs(30))
        .await;
    let dead = run.outbox().dead_len().unwrap() as usize;
    assert!(source.disconnects.load(Ordering::Relaxed) >= chunks as u64);
    run.stop().await;
    report(
        "websocket dropped repeatedly",
        &expected,
        &rx.delivered("/calls"),
        dead,
    );
}

/// The `postcall` binary, killed with SIGKILL while its outbox holds a backlog, then
/// restarted on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_killed_mid_backlog_and_restarted() {
    // The server and the directory live as long as their bindings.
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(true, "").await;
    let spawn = |admin| spawn_binary(&cfg, admin);
    let admin = free_port();
    let mut child = spawn(admin);
    bh.wait_subscribed(1).await;
    let (frames, expected) = stream(50, 23, 2_000);
    for f in &frames {
        bh.push(f);
    }
    let pending = format!("postcall_outbox_pending {}", expected.len());
    let t = Instant::now();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(2), get(admin, "/metrics")).await;
        if matches!(&m, Ok((200, text)) if text.contains(&pending)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "backlog never built up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    rx.down.store(false, Ordering::Relaxed);
    let admin = free_port();
    let mut child = spawn(admin);
    rx.wait_for("/calls", &expected, Duration::from_secs(60))
        .await;
    let (_, metrics) = get(admin, "/metrics").await;
    let dead: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("postcall_outbox_dead "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    child.kill().unwrap();
    child.wait().unwrap();
    report(
        "sidecar killed -9 mid-backlog",
        &expected,
        &rx.delivered("/calls"),
        dead,
    );
}

/// The outbox on a 2 MiB file system: writes fail with ENOSPC, the failure is logged and
/// counted, sessions are held and retried, and once space is freed everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_the_outbox_path() {
    let mnt = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=2m",
            "tmpfs",
            mnt.path().to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!(
            "fault run disk full: skipped (cannot mount a small tmpfs here; needs CAP_SYS_ADMIN)"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_owned());

    let extra = format!(
        "[delivery]\ndata_dir = \"{}\"\nallow_private = [\"127.0.0.1/32\"]\ndisk_reserve_kib = 256\n",
        mnt.path().display()
    );
    // The server and the directory live as long as their bindings.
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(true, &extra).await;
    let run = start(cfg).await;
    bh.wait_subscribed(1).await;
    let (frames, expected) = stream(1_000, 24, 200);
    for f in &frames {
        bh.push(f);
    }
    let errors = wait_for_enqueue_errors(&run, "the small file system never filled up").await;
    // The operator frees space (here: the file system grows) and the receiver is back: the
    // outbox reopens after its I/O errors and the held sessions follow.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m", mnt.path().to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount");
    rx.down.store(false, Ordering::Relaxed);
    rx.wait_for("/calls", &expected, Duration::from_secs(120))
        .await;
    let dead = run.outbox().dead_len().unwrap() as usize;
    run.stop().await;
    println!("fault run disk full: {errors} outbox write failures reported and retried");
    report("disk full", &expected, &rx.delivered("/calls"), dead);
}

/// The same through the storage layer, so it runs everywhere: the outbox's disk is full
/// (injected `ENOSPC`) while a stream of calls arrives, the failures are logged and counted,
/// sessions are held and retried, and once space is back everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_injected_under_the_outbox() {
    let extra = "[delivery]\nallow_private = [\"127.0.0.1/32\"]\n";
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(true, extra).await;
    let faults = postcall::delivery::Faults::default();
    let run = start_with(
        cfg,
        postcall::run::sidecar::RunOptions {
            outbox_faults: faults.clone(),
            ..opts()
        },
    )
    .await;
    bh.wait_subscribed(1).await;
    faults.set(postcall::delivery::Fault::NoSpace);
    let (frames, expected) = stream(200, 25, 5);
    for f in &frames {
        bh.push(f);
    }
    let errors = wait_for_enqueue_errors(&run, "the injected full disk was never seen").await;
    faults.set(postcall::delivery::Fault::None);
    rx.down.store(false, Ordering::Relaxed);
    rx.wait_for("/calls", &expected, Duration::from_secs(120))
        .await;
    let dead = run.outbox().dead_gauge() as usize;
    run.stop().await;
    println!("fault run injected disk full: {errors} outbox write failures reported and retried");
    report(
        "injected disk full",
        &expected,
        &rx.delivered("/calls"),
        dead,
    );
}

/// The outbox's file can no longer be read (injected: reads fail, writes fail, reopening finds
/// it corrupted), which waiting cannot fix: the run stops on its own with [`OutboxFailed`]
/// naming the file, and saves the sessions it holds. Started again with the file moved aside,
/// it delivers every call the broken outbox never took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_outbox_stops_the_run_and_keeps_its_sessions() {
    let extra = "[delivery]\nallow_private = [\"127.0.0.1/32\"]\n";
    let Rig {
        mut bh,
        rx,
        cfg,
        _server,
        _dir,
    } = Rig::new(false, extra).await;
    let faults = postcall::delivery::Faults::default();
    let run = start_with(
        cfg.clone(),
        postcall::run::sidecar::RunOptions {
            outbox_faults: faults.clone(),
            ..opts()
        },
    )
    .await;
    bh.wait_subscribed(1).await;
    let (before, delivered_before) = stream(10, 31, 5);
    for f in &before {
        bh.push(f);
    }
    rx.wait_for("/calls", &delivered_before, Duration::from_secs(60))
        .await;
    assert!(rx.delivered("/calls").is_superset(&delivered_before));
    // The outcomes of those deliveries are recorded too before the file turns unreadable
    // (else that write is the one that fails, before the later calls have come in).
    let outbox = run.outbox().clone();
    let t = std::time::Instant::now();
    while outbox.pending_gauge() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "outcomes never recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    faults.set(postcall::delivery::Fault::Unreadable);
    let (after, expected) = stream(10, 32, 5);
    for f in &after {
        bh.push(f);
    }
    let ended = tokio::time::timeout(Duration::from_secs(60), run.task)
        .await
        .expect("the run stops on its own")
        .unwrap();
    let failed = ended
        .expect_err("the run ends with an error")
        .downcast::<postcall::run::sidecar::OutboxFailed>()
        .expect("typed as a failed outbox");
    assert!(failed.error.contains("corrupted"), "{failed}");
    let saved = failed.report.saved_open + failed.report.saved_closed;
    assert_eq!(saved, expected.len(), "every later call saved: {failed}");

    // The operator moves the broken file aside; the next start delivers what was saved.
    let outbox = failed.path.clone();
    std::fs::rename(&outbox, outbox.with_extension("broken")).unwrap();
    let again = start(cfg).await;
    rx.wait_for("/calls", &expected, Duration::from_secs(60))
        .await;
    again.stop().await;
    println!("fault run corrupted outbox: stopped with {saved} sessions saved, all delivered after the restart");
    report("corrupted outbox", &expected, &rx.delivered("/calls"), 0);
}

/// 10 000 calls in progress at once, delivered to a fast and a slow (20 ms) endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load run: minutes in a debug build; run by scripts/faults"]
async fn ten_thousand_concurrent_calls_with_a_slow_endpoint() {
    let mut bh = demo_blackhole().await;
    let rx = Receiver::default();
    let fast = rx.start(None).await;
    let slow = rx.start(Some(Duration::from_millis(20))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(
        dir.path(),
        &bh.url(),
        &[
            &format!("{}/fast", fast.url()),
            &format!("{}/slow", slow.url()),
        ],
        "",
    );
    let run = start(cfg).await;
    bh.wait_subscribed(1).await;
    // Arrivals 1 ms apart: every call overlaps every other.
    let (frames, expected) = stream(10_000, 25, 1);
    let t = Instant::now();
    let sent = AtomicU64::new(0);
    for f in &frames {
        bh.push(f);
        sent.fetch_add(1, Ordering::Relaxed);
    }
    rx.wait_for("/fast", &expected, Duration::from_secs(600))
        .await;
    let fast_done = t.elapsed();
    rx.wait_for("/slow", &expected, Duration::from_secs(900))
        .await;
    let slow_done = t.elapsed();
    let dead = run.outbox().dead_len().unwrap() as usize;
    run.stop().await;
    println!(
        "fault run load: {} frames; fast endpoint complete after {:.1} s, slow endpoint after {:.1} s",
        frames.len(),
        fast_done.as_secs_f64(),
        slow_done.as_secs_f64()
    );
    report(
        "10 000 concurrent calls, fast endpoint",
        &expected,
        &rx.delivered("/fast"),
        dead,
    );
    report(
        "10 000 concurrent calls, slow endpoint",
        &expected,
        &rx.delivered("/slow"),
        dead,
    );
}

/// Waits (60 s at most) until the running sidecar has reported outbox write failures, checks
/// they are exported in `/metrics`, and returns how many there were.
async fn wait_for_enqueue_errors(run: &Running, never: &str) -> u64 {
    let counters = run.started.registry.run.clone().unwrap();
    let t = Instant::now();
    while counters.enqueue_errors.load(Ordering::Relaxed) == 0
        && t.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors = counters.enqueue_errors.load(Ordering::Relaxed);
    assert!(errors > 0, "{never}");
    let (_, metrics) = get(run.started.admin, "/metrics").await;
    assert!(
        metrics.contains("postcall_enqueue_errors_total"),
        "{metrics}"
    );
    errors
}

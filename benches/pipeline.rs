//! `cargo bench --bench pipeline`: decode + assemble throughput against a bare serde_json scan
//! of the same frames, and resident memory per open leg (PRODUCT.md §7).
//!
//! Each figure is measured side by side in one run and printed as a ratio; nothing here
//! asserts a time. `POSTCALL_BENCH_CALLS` sets the stream size (default 100 000 calls).

use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The system allocator, counting bytes: memory per open leg is measured as what the program
/// holds live, independent of how the allocator keeps freed pages.
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes held: `stats_alloc` already books a reallocation's growth in `bytes_allocated` and
/// its shrinking in `bytes_deallocated` (`bytes_reallocated` is the same change again).
fn live_bytes() -> i64 {
    let s = ALLOCATOR.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

use postcall::clock::WallTime;
use postcall::session::{Assembler, Settings};
use postcall::sim::{self, MixSpec};
use postcall::source::{decode_frame, Frame};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Frames of `legs` simulated calls without their DESTROYs: every leg stays open.
fn open_frames(legs: usize) -> Vec<String> {
    sim::mix(MixSpec {
        calls: legs as u64,
        seed: 7,
        mean_gap_ms: 1,
        ..MixSpec::default()
    })
    .map(|f| f.text)
    .filter(|f| !f.contains("CHANNEL_DESTROY"))
    .collect()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let calls: u64 = std::env::var("POSTCALL_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = Instant::now();
    let frames: Vec<String> = sim::mix(MixSpec {
        calls,
        seed: 42,
        mean_gap_ms: 200,
        ..MixSpec::default()
    })
    .map(|f| f.text)
    .collect();
    let bytes: usize = frames.iter().map(String::len).sum();
    println!(
        "stream: {calls} calls, {} frames, {:.1} MB (generated in {:.1} s)",
        frames.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // `POSTCALL_BENCH_ONLY=scan|decode|assemble` runs that one phase over and over (for a
    // profiler: `perf record`, `valgrind --tool=callgrind --toggle-collect=pipeline::only*`).
    if let Ok(phase) = std::env::var("POSTCALL_BENCH_ONLY") {
        only(&phase, &frames);
        return;
    }

    // 1. Bare scan: the cost of reading every frame once.
    let (scan_s, scanned) = best_of(3, || {
        frames
            .iter()
            .filter(|f| serde_json::from_str::<serde::de::IgnoredAny>(f).is_ok())
            .count()
    });
    // simd-json's parse of the same frames into its tape (with its run-time choice of SIMD
    // code): copied into a reused buffer first, since it unescapes in place. A decoder built
    // on it would start from this.
    let (simd_s, simd_ok) = best_of(3, || {
        let mut buf = Vec::new();
        let mut buffers = simd_json::Buffers::default();
        let mut tape = simd_json::Tape::null();
        let mut ok = 0usize;
        for f in &frames {
            buf.clear();
            buf.extend_from_slice(f.as_bytes());
            let len = buf.len();
            buf.resize(len + simd_json::INPUT_PADDING, 0);
            let mut t = tape.reset();
            ok += usize::from(
                simd_json::fill_tape_padded(&mut buf, len, &mut buffers, &mut t).is_ok(),
            );
            tape = t.reset();
        }
        ok
    });
    assert_eq!(simd_ok, frames.len());
    // Decode alone, to see where the time goes.
    let (dec_s, _) = best_of(3, || {
        frames
            .iter()
            .filter(|f| matches!(decode_frame(f), Ok(Frame::Event(_))))
            .count()
    });
    // 2. Decode + assemble: the real work, CDRs built.
    let settings = Arc::new(Settings::default());
    // The finished run is handed out so that freeing it happens after the clock stops: the
    // timing is the stream's work, not the teardown of a finished run.
    let (asm_s, cdrs) = best_of(3, || assemble(&frames, &settings));
    let cdrs = cdrs.0;
    assert_eq!(scanned, frames.len());
    let mb = bytes as f64 / 1e6;
    println!(
        "serde_json IgnoredAny scan : {:>8.0} frames/s  {:>7.1} MB/s",
        frames.len() as f64 / scan_s,
        mb / scan_s
    );
    println!(
        "decode + assemble + CDRs   : {:>8.0} frames/s  {:>7.1} MB/s  ({cdrs} CDRs)",
        frames.len() as f64 / asm_s,
        mb / asm_s
    );
    println!(
        "decode only                : {:>8.0} frames/s",
        frames.len() as f64 / dec_s
    );
    println!(
        "simd-json tape parse only  : {:>8.0} frames/s  ({:.2} x the scan's time; {} code)",
        frames.len() as f64 / simd_s,
        simd_s / scan_s,
        simd_json::Deserializer::algorithm()
    );
    println!(
        "ratio (target >= 60 %)     : {:.0} %",
        100.0 * scan_s / asm_s
    );

    // 3. Memory per open leg: hold 100 000 legs open (no DESTROY).
    let target_legs = 100_000usize;
    let open = open_frames(target_legs);
    let open_bytes: usize = open.iter().map(String::capacity).sum::<usize>()
        + open.capacity() * std::mem::size_of::<String>();
    let before = rss_bytes();
    let live_before = live_bytes();
    let mut asm = Assembler::new(settings.clone());
    let mut out = Vec::new();
    for f in &open {
        if asm.open_legs() >= target_legs {
            break;
        }
        if let Ok(Frame::Event(ev)) = decode_frame(f) {
            let now = ev.time.or(asm.stream_time()).unwrap_or_default();
            asm.apply(&ev, now.as_processing_time());
        }
    }
    drop(open);
    asm.poll(WallTime::from_us(i64::MIN), &mut out);
    let after = rss_bytes();
    // The frames were allocated before `live_before` and are freed by now: add them back.
    let live = live_bytes() - live_before + open_bytes as i64;
    let legs = asm.open_legs();
    println!(
        "assembler alone: open legs {legs}, sessions {}: resident {:.1} MB → {:.0} bytes per leg, live {:.0} bytes per leg (target <= 2048)",
        asm.open_sessions(),
        (after.saturating_sub(before)) as f64 / 1e6,
        after.saturating_sub(before) as f64 / legs.max(1) as f64,
        live as f64 / legs.max(1) as f64
    );

    drop(out);

    // 5. The same through the driver, the path `run` uses: frames as the websocket client
    // hands them over (owned text on a bounded channel), decoded, checked against the ingest
    // limits and folded in by the driver task. Frames are made first (the simulator holds
    // every call in flight while it generates); the bytes of the frames handed over are added
    // back, since they are freed once folded.
    let frames = open_frames(target_legs);
    let before = live_bytes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (driven_legs, driven_sessions, during) = runtime.block_on(async {
        use postcall::run::driver::{drive, DriverCounters, DriverOptions};
        use postcall::source::blackhole::SourceMsg;
        use std::sync::atomic::Ordering::Relaxed;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let (_settings_tx, settings_rx) = tokio::sync::watch::channel(settings.clone());
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(1024);
        let counters = Arc::new(DriverCounters::default());
        let driver = tokio::spawn(drive(
            None,
            settings_rx,
            rx,
            out_tx,
            DriverOptions {
                tick: std::time::Duration::from_millis(20),
                tenants: Default::default(),
                channels: None,
                // Room for every leg of the measurement in each tenant.
                limits: postcall::source::limits::IngestLimits {
                    max_open_legs_per_tenant: target_legs,
                    ..Default::default()
                },
                backfill: None,
            },
            counters.clone(),
            shutdown,
        ));
        tokio::spawn(async move { while out_rx.recv().await.is_some() {} });
        let mut frames = frames.into_iter();
        let mut handed_over = 0usize;
        for text in frames.by_ref() {
            let at = WallTime::now();
            handed_over += text.capacity();
            if tx.send(SourceMsg::Frame { text, at }).await.is_err() {
                break;
            }
            if counters.open_legs.load(Relaxed) as usize >= target_legs {
                break;
            }
        }
        while tx.capacity() < tx.max_capacity() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let during = live_bytes() + handed_over as i64;
        drop(frames);
        stop.cancel();
        drop(tx);
        let asm = driver.await.expect("driver");
        (asm.open_legs(), asm.open_sessions(), during)
    });
    drop(runtime);
    println!(
        "through the driver: open legs {driven_legs}, sessions {driven_sessions}: live {:.1} MB → {:.0} bytes per leg (target <= 2048)",
        (during - before) as f64 / 1e6,
        (during - before) as f64 / driven_legs.max(1) as f64
    );

    // 4. Stop and start with those sessions open: snapshot + save (what SIGTERM does), then
    // load + restore (what the next start does), through the real state file.
    let dir = std::env::temp_dir().join(format!("postcall-bench-{}", std::process::id()));
    let path = postcall::run::state::state_path(&dir);
    let sessions = asm.open_sessions();
    let t = Instant::now();
    let saved = postcall::run::state::SavedState {
        open: asm.snapshot(),
        closed: Vec::new(),
    };
    postcall::run::state::save(&path, &saved).expect("state saved");
    let save_s = t.elapsed().as_secs_f64();
    drop(saved);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let t = Instant::now();
    let loaded = postcall::run::state::load(&path)
        .expect("state read")
        .expect("state present");
    let restored = Assembler::restore(settings, loaded.open);
    let load_s = t.elapsed().as_secs_f64();
    assert_eq!(restored.open_sessions(), sessions);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "stop/start with {sessions} open sessions ({legs} legs): save {save_s:.2} s, \
         load + restore {load_s:.2} s, {:.1} MB on disk",
        size as f64 / 1e6
    );
}

/// One phase alone, many times (`POSTCALL_BENCH_ROUNDS`, default 10), for a profiler.
#[inline(never)]
fn only(phase: &str, frames: &[String]) {
    let rounds: usize = std::env::var("POSTCALL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let settings = Arc::new(Settings::default());
    let mut n = 0usize;
    for _ in 0..rounds {
        n += match phase {
            "scan" => only_scan(frames),
            "decode" => only_decode(frames),
            "assemble" => assemble(frames, &settings).0,
            other => panic!("POSTCALL_BENCH_ONLY: no phase {other:?} (scan, decode, assemble)"),
        };
    }
    println!("{phase}: {rounds} rounds, {n} results");
}

#[inline(never)]
fn only_scan(frames: &[String]) -> usize {
    frames
        .iter()
        .filter(|f| serde_json::from_str::<serde::de::IgnoredAny>(f).is_ok())
        .count()
}

#[inline(never)]
fn only_decode(frames: &[String]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(decode_frame(f), Ok(Frame::Event(_))))
        .count()
}

/// Decodes and assembles every frame, building every CDR; returns how many, and the finished
/// assembler and CDRs (for the caller to free).
#[inline(never)]
fn assemble(
    frames: &[String],
    settings: &Arc<Settings>,
) -> (usize, Assembler, Vec<postcall::session::ClosedSession>) {
    let mut asm = Assembler::new(settings.clone());
    let mut out = Vec::new();
    let mut n = 0usize;
    for f in frames {
        if let Ok(Frame::Event(ev)) = decode_frame(f) {
            let now = ev.time.or(asm.stream_time()).unwrap_or_default();
            asm.apply(&ev, now.as_processing_time());
            asm.poll(now.as_processing_time(), &mut out);
            n += out.len();
            out.clear();
        }
    }
    asm.flush(&mut out);
    (n + out.len(), asm, out)
}

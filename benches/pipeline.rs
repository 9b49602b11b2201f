//! `cargo bench --bench pipeline`: decode + assemble throughput against a bare serde_json scan
//! of the same frames, and resident memory per open leg (PRODUCT.md §7).
//!
//! Each figure is measured side by side in one run and printed as a ratio; nothing here
//! asserts a time. `POSTCALL_BENCH_CALLS` sets the stream size (default 100 000 calls).

use std::sync::Arc;
use std::time::Instant;

use postcall::session::{Assembler, Settings};
use postcall::sim::{self, MixSpec};
use postcall::source::{decode_frame, Frame};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
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

    // 1. Bare scan: the cost of reading every frame once.
    let (scan_s, scanned) = best_of(3, || {
        frames
            .iter()
            .filter(|f| serde_json::from_str::<serde::de::IgnoredAny>(f).is_ok())
            .count()
    });
    // Decode alone, to see where the time goes.
    let (dec_s, _) = best_of(3, || {
        frames
            .iter()
            .filter(|f| matches!(decode_frame(f), Ok(Frame::Event(_))))
            .count()
    });
    // 2. Decode + assemble: the real work, CDRs built.
    let settings = Arc::new(Settings::default());
    let (asm_s, cdrs) = best_of(3, || {
        let mut asm = Assembler::new(settings.clone());
        let mut out = Vec::new();
        let mut n = 0usize;
        for f in &frames {
            if let Ok(Frame::Event(ev)) = decode_frame(f) {
                let now = ev.time_us.or(asm.stream_time()).unwrap_or_default();
                asm.apply(&ev, now);
                asm.poll(now, &mut out);
                n += out.len();
                out.clear();
            }
        }
        asm.flush(&mut out);
        n + out.len()
    });
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
        "ratio (target >= 60 %)     : {:.0} %",
        100.0 * scan_s / asm_s
    );

    // 3. Memory per open leg: hold 100 000 legs open (no DESTROY).
    let target_legs = 100_000usize;
    let open: Vec<String> = sim::mix(MixSpec {
        calls: target_legs as u64,
        seed: 7,
        mean_gap_ms: 1,
        ..MixSpec::default()
    })
    .map(|f| f.text)
    .filter(|f| !f.contains("CHANNEL_DESTROY"))
    .collect();
    let before = rss_bytes();
    let mut asm = Assembler::new(settings.clone());
    let mut out = Vec::new();
    for f in &open {
        if asm.open_legs() >= target_legs {
            break;
        }
        if let Ok(Frame::Event(ev)) = decode_frame(f) {
            let now = ev.time_us.or(asm.stream_time()).unwrap_or_default();
            asm.apply(&ev, now);
        }
    }
    drop(open);
    asm.poll(i64::MIN, &mut out);
    let after = rss_bytes();
    let legs = asm.open_legs();
    println!(
        "open legs {legs}, sessions {}: resident {:.1} MB → {:.0} bytes per leg (target <= 2048)",
        asm.open_sessions(),
        (after.saturating_sub(before)) as f64 / 1e6,
        after.saturating_sub(before) as f64 / legs.max(1) as f64
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

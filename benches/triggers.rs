//! Trigger matching with 10 000 triggers per CDR (PRODUCT.md §4).
//!
//! `cargo bench --bench triggers` prints, side by side in one run:
//! - **spread**: 10 000 triggers over 100 tenants; the tenant index against checking every
//!   trigger (`matches_unindexed`), with the speed-up;
//! - **one tenant**: all 10 000 triggers belong to the session's tenant, so every one is
//!   evaluated: the raw cost of the compiled filters, first with conditions drawn from a
//!   small shared pool (each distinct condition is evaluated once per CDR), then with one
//!   condition per trigger that no other trigger shares, against the same set checked
//!   without index or memo.
//!
//! Sessions are the replayed fixtures (real CDRs). No timing is asserted anywhere.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postcall::replay::Replay;
use postcall::session::{ClosedSession, Settings};
use postcall::trigger::file::{build_set, parse_document};
use postcall::trigger::{BuildOptions, DocFormat, TriggerSet};

const TRIGGERS: usize = 10_000;

const FILTERS: [&str; 8] = [
    r#"{ field = "type", op = "eq", value = "External" }"#,
    r#"{ field = "dir", op = "in", value = ["Incoming", "Both"] }"#,
    r#"{ field = "ans", op = "eq", value = true }"#,
    r#"{ field = "dur", op = "gt", value = 20 }"#,
    r#"{ field = "cliNum", op = "starts_with", value = "+1" }"#,
    r#"{ field = "tags.voicemail", op = "exists" }"#,
    r#"{ field = "cause", op = "ne", value = "NORMAL_CLEARING" }"#,
    r#"{ field = "ddiNum", op = "regex", value = "^\\+1[0-9]{10}$" }"#,
];

fn sessions() -> Vec<ClosedSession> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut r = Replay::new(Arc::new(Settings::default()));
        for line in std::fs::read_to_string(f).expect("fixture").lines() {
            r.feed_line(line);
        }
        out.extend(r.finish().0);
    }
    out
}

/// `TRIGGERS` triggers over `tenants` tenants; one in ten user-owned; 1–3 filters each from
/// a shared pool, plus (when `distinct`) one condition with a value of its own (a DID or a
/// caller prefix), so the per-session memo of shared conditions cannot answer for it.
fn trigger_set(tenants: usize, distinct: bool) -> TriggerSet {
    let mut doc = String::new();
    for i in 0..TRIGGERS {
        let tenant = i % tenants;
        let own = if i % 2 == 0 {
            format!(r#"{{ field = "ddiNum", op = "eq", value = "+1312555{i:04}" }}"#)
        } else {
            format!(r#"{{ field = "cliNum", op = "starts_with", value = "+1{i:04}" }}"#)
        };
        let mut filters: Vec<&str> = (0..1 + i % 3)
            .map(|k| FILTERS[(i / 3 + k * 3) % FILTERS.len()])
            .collect();
        if distinct {
            filters.push(&own);
        }
        doc.push_str(&format!(
            "[[trigger]]\nid = \"t{i}\"\ntenant = \"{tenant:032x}\"\n{}filter = [{}]\n[trigger.action]\nurl = \"https://hooks.example/{i}\"\n",
            if i % 10 == 0 { format!("user = \"user-{}\"\n", i % 7) } else { String::new() },
            filters.join(", ")
        ));
    }
    let started = Instant::now();
    let triggers = parse_document(&doc, "bench", DocFormat::Toml, BuildOptions::default())
        .expect("valid triggers");
    let set = build_set(vec![triggers]).expect("unique ids");
    println!(
        "  built {TRIGGERS} triggers over {tenants} tenant(s) in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    set
}

struct Run {
    sessions: u64,
    matches: u64,
    elapsed: Duration,
}

impl Run {
    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }
}

fn run(sessions: &[ClosedSession], budget: Duration, f: impl Fn(&ClosedSession) -> usize) -> Run {
    // Warm up once over every session.
    for s in sessions {
        black_box(f(black_box(s)));
    }
    let started = Instant::now();
    let (mut n, mut matches) = (0u64, 0u64);
    while started.elapsed() < budget {
        for s in sessions {
            matches += f(black_box(s)) as u64;
            n += 1;
        }
    }
    Run {
        sessions: n,
        matches,
        elapsed: started.elapsed(),
    }
}

fn report(name: &str, r: &Run, evaluated_per_session: f64) {
    println!(
        "  {name:<28} {:>12.0} CDRs/s {:>14.0} matches/s {:>16.0} trigger evaluations/s",
        r.per_sec(r.sessions),
        r.per_sec(r.matches),
        r.per_sec(r.sessions) * evaluated_per_session
    );
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    let base = sessions();
    println!(
        "trigger matching: {} fixture sessions, {TRIGGERS} triggers",
        base.len()
    );

    // Spread: 100 tenants, sessions spread over them; users 0..7 take part.
    let tenants = 100;
    let spread: Vec<ClosedSession> = base
        .iter()
        .cycle()
        .take(base.len() * 10)
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            s.tenant_id = Some(format!("{:032x}", i % tenants));
            s.user_ids = vec![format!("user-{}", i % 7)];
            s
        })
        .collect();
    println!("spread: {TRIGGERS} triggers over {tenants} tenants");
    let set = trigger_set(tenants, false);
    let indexed = run(&spread, budget, |s| set.matches(s).count());
    let flat = run(&spread, budget, |s| set.matches_unindexed(s).count());
    assert_eq!(
        indexed.matches * flat.sessions,
        flat.matches * indexed.sessions,
        "both paths find the same matches"
    );
    report(
        "indexed (tenant, user)",
        &indexed,
        (TRIGGERS / tenants) as f64,
    );
    report("unindexed (every trigger)", &flat, TRIGGERS as f64);
    println!(
        "  ratio indexed / unindexed: {:.1}x CDRs/s",
        indexed.per_sec(indexed.sessions) / flat.per_sec(flat.sessions)
    );

    // One tenant: every trigger's filters are evaluated for every session.
    println!("one tenant: all {TRIGGERS} triggers evaluated per CDR");
    let set = trigger_set(1, false);
    let one: Vec<ClosedSession> = spread
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.tenant_id = Some(format!("{:032x}", 0));
            s
        })
        .collect();
    let all = run(&one, budget, |s| set.matches(s).count());
    report("shared conditions", &all, TRIGGERS as f64);
    println!(
        "    {:.1} µs per CDR against {TRIGGERS} triggers; {:.1} matches per CDR",
        1e6 / all.per_sec(all.sessions),
        all.matches as f64 / all.sessions as f64
    );
    let set = trigger_set(1, true);
    let distinct = run(&one, budget, |s| set.matches(s).count());
    let flat = run(&one, budget, |s| set.matches_unindexed(s).count());
    report("+ one distinct condition", &distinct, TRIGGERS as f64);
    report("  same, no index and no memo", &flat, TRIGGERS as f64);
    println!(
        "    {:.1} µs per CDR against {TRIGGERS} triggers; memo ratio {:.1}x",
        1e6 / distinct.per_sec(distinct.sessions),
        distinct.per_sec(distinct.sessions) / flat.per_sec(flat.sessions)
    );
}

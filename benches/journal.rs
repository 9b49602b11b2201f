//! `cargo bench --bench journal`: what the CDR journal costs, measured on the real store (redb
//! on disk, every write durable), side by side in one run:
//!
//! 1. time per closed session of the sink's write — batches of 64 sessions with one delivery
//!    job each, as the sidecar writes them under load — with the jobs alone (the outbox before
//!    the journal) and with the jobs and the sessions' journal entries in the same
//!    transaction;
//! 2. disk per CDR: the journal's stored bytes, and the file's size and growth when each
//!    batch's deliveries are done before the next (what stays is the journal).
//!
//! Sessions are realistic: the simulator's random call mix, assembled by the real assembler.
//! Nothing asserts a time.

use std::sync::Arc;
use std::time::Instant;

use postcall::delivery::journal::Encoded;
use postcall::delivery::{Completion, Endpoint, Format, Job, Method, Outbox};
use postcall::session::ClosedSession;

fn sessions(n: u64) -> Vec<ClosedSession> {
    let frames: Vec<String> = postcall::sim::mix(postcall::sim::MixSpec {
        calls: n,
        seed: 7,
        mean_gap_ms: 2_000,
        ..postcall::sim::MixSpec::default()
    })
    .map(|f| f.text)
    .collect();
    postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default()))
}

fn job(s: &ClosedSession) -> Job {
    let cdr = serde_json::value::to_raw_value(&s.cdr).unwrap();
    Job {
        webhook_id: postcall::delivery::webhook_id(&s.cdr.id, "bench"),
        trigger_id: "bench".into(),
        endpoint: Endpoint {
            url: "https://crm.example.com/hooks/calls".into(),
            method: Method::Post,
            format: Format::Json,
            retries: 3,
            signed: true,
        },
        payload: postcall::delivery::payload::payload(
            "bench",
            "u",
            s.tenant_id.as_deref().unwrap_or(""),
            &cdr,
            &Default::default(),
        ),
        attempts: 0,
        next_attempt_us: 0,
        created_us: 0,
        last_error: None,
    }
}

/// Writes `sessions` in batches of 64 (jobs, and journal entries when `journal`); returns µs
/// per session.
fn write(o: &Outbox, sessions: &[ClosedSession], journal: bool) -> f64 {
    let t = Instant::now();
    for batch in sessions.chunks(64) {
        let jobs: Vec<Job> = batch.iter().map(job).collect();
        let entries: Vec<Encoded> = if journal {
            batch
                .iter()
                .zip(&jobs)
                .map(|(s, j)| Encoded::of(s, std::slice::from_ref(j)).unwrap())
                .collect()
        } else {
            Vec::new()
        };
        o.call_blocking(move |st| st.enqueue_journaled(&jobs, &entries))
            .unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / sessions.len() as f64
}

fn main() {
    let n: u64 = std::env::var("POSTCALL_BENCH_CDRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let all = sessions(n);
    let n = all.len();
    let cdr_json: usize = all
        .iter()
        .map(|s| serde_json::to_vec(&s.cdr).unwrap().len())
        .sum();

    // 1. Time per session, jobs alone and jobs + journal, alternating rounds.
    let (mut plain, mut journaled) = (Vec::new(), Vec::new());
    for round in 0..5 {
        for with in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let o = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
            let us = write(&o, &all, with);
            if with {
                journaled.push(us);
            } else {
                plain.push(us);
            }
            eprintln!("round {round}: journal {with}: {us:.1} µs per session");
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, j) = (median(&mut plain), median(&mut journaled));

    // 2. Disk per CDR in the steady state: each batch's deliveries are done before the next
    //    batch is written (as with a healthy receiver), so the outbox stays small and what
    //    grows is the journal. Measured over a second pass of the same number of sessions
    //    (new ids), after the file's first growth.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let o = Outbox::open(&path).unwrap();
    let steady = |o: &Outbox, sessions: &[ClosedSession]| {
        for batch in sessions.chunks(64) {
            write(o, batch, true);
            let done: Vec<(Job, Completion)> = batch
                .iter()
                .map(|s| (job(s), Completion::Delivered))
                .collect();
            o.call_blocking(move |s| s.complete_many(&done)).unwrap();
        }
    };
    steady(&o, &all);
    let first = std::fs::metadata(&path).unwrap().len();
    let again: Vec<ClosedSession> = all
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.cdr.id = format!("{}-2", s.cdr.id);
            s
        })
        .collect();
    steady(&o, &again);
    let (entries, stored) = o.call_blocking(|s| s.journal_stats()).unwrap();
    assert_eq!(entries as usize, 2 * n);
    drop(o);
    let file = std::fs::metadata(&path).unwrap().len();

    println!("{n} sessions (simulated call mix), batches of 64, one delivery each");
    println!("| | |");
    println!("| --- | ---: |");
    println!("| outbox write, jobs only | {p:.1} µs per session |");
    println!("| outbox write, jobs + journal (one transaction) | {j:.1} µs per session |");
    println!(
        "| journal's extra cost | {:.1} µs per session ({:+.0} %) |",
        j - p,
        (j / p - 1.0) * 100.0
    );
    println!(
        "| CDR JSON (the webhook's `cdr`) | {} B per CDR |",
        cdr_json / n
    );
    println!(
        "| journal entry stored (session + deliveries) | {} B per CDR |",
        stored / entries.max(1)
    );
    println!(
        "| file size after {n} CDRs | {} B per CDR |",
        first / n as u64
    );
    println!(
        "| file growth over the next {n} CDRs | {} B per CDR |",
        (file - first) / n as u64
    );
}

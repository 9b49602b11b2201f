//! The storage boundary: the same behaviour tests on the embedded outbox (a redb file in a temp
//! dir) and on PostgreSQL (a throwaway cluster, see [`crate::servers::postgres`]), plus what
//! only a shared store has: claims that exclude other instances, leases that run out, outcomes
//! only from the lease holder, copies of one delivery from instances that saw the call
//! differently, and migrations applied once when instances start together.
//!
//! Without `POSTCALL_TEST_PG_BIN` the PostgreSQL half of each test is skipped (and says so).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use postcall::console::store::{for_storage, StoredTrigger};
use postcall::console::Console;
use postcall::delivery::journal::{
    DeliveryState, Encoded, JournalPolicy, ListFilter, ResendTarget,
};
use postcall::delivery::pg::{PgOptions, PgStore};
use postcall::delivery::{Completion, Job, Outbox, OutboxError, Storage};
use postcall::net::Secret;
use postcall::run::state::SavedState;
use postcall::session::ClosedSession;

use crate::servers::postgres::Postgres;

const T0: i64 = 1_795_856_400_000_000; // 2026-11-28T09:00:00Z
const LEASE: Duration = Duration::from_secs(30);
const LEASE_US: i64 = 30_000_000;

fn embedded(dir: &tempfile::TempDir) -> Storage {
    Storage::Embedded(Arc::new(
        Outbox::open(&dir.path().join("outbox.redb")).unwrap(),
    ))
}

pub(crate) fn pg_options(url: &str, instance: &str) -> PgOptions {
    PgOptions {
        url: Secret::new(url),
        ca_file: None,
        instance: instance.into(),
        lease: LEASE,
        poll: Duration::from_millis(200),
        pool_size: 4,
        op_timeout: Duration::from_secs(10),
    }
}

async fn postgres(pg: &Postgres, db: &str, instance: &str) -> Storage {
    let url = pg.database(db).await;
    PgStore::connect(pg_options(&url, instance))
        .await
        .unwrap()
        .into_storage()
}

/// Runs `check` on the embedded store, then on PostgreSQL when there is one.
macro_rules! on_both {
    ($name:literal, $check:ident) => {{
        let dir = tempfile::tempdir().unwrap();
        $check(embedded(&dir), "embedded").await;
        match Postgres::start($name) {
            Some(pg) => $check(postgres(&pg, "behaviour", "a").await, "postgres").await,
            None => {}
        }
    }};
}

fn job(id: &str, url: &str, due: i64) -> Job {
    serde_json::from_value(serde_json::json!({
        "webhook_id": id, "trigger_id": "t",
        "endpoint": {"url": url, "method": "POST", "format": "json", "retries": 3},
        "payload": {"id": id}, "attempts": 0, "next_attempt_us": due, "created_us": due
    }))
    .unwrap()
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.webhook_id.as_str()).collect()
}

const A: &str = "https://a.test/h";
const B: &str = "https://b.test:8443/h";
const LANE_A: &str = "https://a.test:443";

async fn lifecycle(s: Storage, name: &str) {
    let none = BTreeSet::new();
    let added = s
        .enqueue_journaled(
            vec![job("1", A, 10), job("2", A, 5), job("3", B, 7)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(added, 3, "{name}");
    let again = s
        .enqueue_journaled(vec![job("1", A, 99)], vec![])
        .await
        .unwrap();
    assert_eq!(again, 0, "{name}: the same webhook id once");
    assert_eq!(s.pending_len().await.unwrap(), 3);
    let lanes: Vec<String> = s.lanes().await.unwrap().into_iter().collect();
    assert_eq!(
        lanes,
        ["https://a.test:443", "https://b.test:8443"],
        "{name}"
    );

    let (due, next) = s.due(LANE_A.into(), 6, 10, none.clone()).await.unwrap();
    assert_eq!((ids(&due), next), (vec!["2"], Some(10)), "{name}");
    let busy: BTreeSet<String> = ["2".to_owned()].into();
    let (due, next) = s.due(LANE_A.into(), 20, 10, busy).await.unwrap();
    assert_eq!((ids(&due), next), (vec!["1"], None), "{name}");
    let mut one = due[0].clone();
    one.attempts = 1;
    let mut two = job("2", A, 5);
    two.attempts = 1;
    s.complete_many(vec![
        (one, Completion::RetryAt(30, "HTTP 503".into())),
        (two, Completion::Delivered),
    ])
    .await
    .unwrap();
    let (due, next) = s.due(LANE_A.into(), 20, 10, none.clone()).await.unwrap();
    assert_eq!((ids(&due), next), (vec![], Some(30)), "{name}");
    let (due, _) = s.due(LANE_A.into(), 40, 10, none.clone()).await.unwrap();
    assert_eq!(ids(&due), ["1"], "{name}");
    assert_eq!(due[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(due[0].attempts, 1);
    let mut one = due[0].clone();
    one.attempts = 2;
    s.complete_many(vec![(one, Completion::Dead("HTTP 400".into()))])
        .await
        .unwrap();
    assert_eq!(s.pending_len().await.unwrap(), 1, "{name}");
    assert_eq!(s.dead_len().await.unwrap(), 1, "{name}");
    let dead = s.dead().await.unwrap();
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 400"));
    assert_eq!(s.dead_one("1").await.unwrap().attempts, 2);
    assert!(matches!(
        s.dead_one("nope").await,
        Err(OutboxError::NotFound(_))
    ));

    let back = s
        .resend("1", postcall::clock::WallTime::from_us(50))
        .await
        .unwrap();
    assert_eq!((back.attempts, back.next_attempt_us), (0, 50), "{name}");
    assert!(s.dead().await.unwrap().is_empty());
    let (due, _) = s.due(LANE_A.into(), 50, 10, none.clone()).await.unwrap();
    assert_eq!(ids(&due), ["1"], "{name}");
    s.complete_many(vec![(due[0].clone(), Completion::Dead("x".into()))])
        .await
        .unwrap();
    assert!(matches!(
        s.purge(Some("nope")).await,
        Err(OutboxError::NotFound(_))
    ));
    assert_eq!(s.purge(None).await.unwrap(), 1, "{name}");

    let (due, _) = s
        .due("https://b.test:8443".into(), 7, 10, none.clone())
        .await
        .unwrap();
    assert_eq!(ids(&due), ["3"], "{name}");
    s.complete_many(vec![(due[0].clone(), Completion::Delivered)])
        .await
        .unwrap();
    assert_eq!(s.pending_len().await.unwrap(), 0, "{name}");
    assert!(s.lanes().await.unwrap().is_empty(), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_lifecycle_on_both_backends() {
    on_both!("stores::outbox_lifecycle_on_both_backends", lifecycle);
}

/// A real session (the `pstn_answered` fixture's), re-labelled.
fn session(id: &str, tenant: &str, start_us: i64) -> ClosedSession {
    let text = std::fs::read_to_string(crate::support::fixtures_dir().join("pstn_answered.jsonl"))
        .unwrap();
    let mut s = postcall::replay::replay_str(&text, Arc::new(Default::default())).remove(0);
    s.cdr.id = id.to_owned();
    s.tenant_id = Some(tenant.to_owned());
    s.end_us = start_us + (s.end_us - s.start_us);
    s.start_us = start_us;
    s
}

fn job_of(s: &ClosedSession, trigger: &str, url: &str) -> Job {
    let mut j = job(&postcall::delivery::webhook_id(&s.cdr.id, trigger), url, T0);
    j.trigger_id = trigger.into();
    j.payload = serde_json::value::to_raw_value(&s.cdr).unwrap();
    j
}

const TA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TB: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

async fn journal(s: Storage, name: &str) {
    let min = 60_000_000;
    let sessions: Vec<ClosedSession> = (0..6)
        .map(|i| session(&format!("s{i}"), [TA, TB][i % 2], T0 + i as i64 * min))
        .collect();
    let mut jobs = Vec::new();
    let mut entries = Vec::new();
    for ses in &sessions {
        let j = vec![job_of(ses, "t1", A)];
        entries.push(Encoded::of(ses, &j).unwrap());
        jobs.extend(j);
    }
    assert_eq!(s.enqueue_journaled(jobs, entries).await.unwrap(), 6);

    // A tenant's latest entries, newest first (the console tests a trigger on them).
    let latest = |v: Vec<postcall::delivery::JournalEntry>| -> Vec<String> {
        v.iter().map(|e| e.id().to_owned()).collect()
    };
    assert_eq!(
        latest(s.journal_latest(TB.into(), 2).await.unwrap()),
        ["s5", "s3"],
        "{name}"
    );
    assert_eq!(
        latest(s.journal_latest(TA.into(), 10).await.unwrap()),
        ["s4", "s2", "s0"],
        "{name}"
    );

    // Listing: a tenant's window, pages.
    let page = s
        .journal_list(ListFilter {
            tenant: Some(TB.into()),
            from_us: Some(T0 + min),
            to_us: Some(T0 + 5 * min),
            limit: 1,
            after: None,
        })
        .await
        .unwrap();
    let got: Vec<&str> = page.entries.iter().map(|e| e.id()).collect();
    assert_eq!(got, ["s1"], "{name}");
    let next = page.next.clone().expect("a second page");
    let page = s
        .journal_list(ListFilter {
            tenant: Some(TB.into()),
            from_us: Some(T0 + min),
            to_us: Some(T0 + 5 * min),
            limit: 5,
            after: Some(next),
        })
        .await
        .unwrap();
    let got: Vec<&str> = page.entries.iter().map(|e| e.id()).collect();
    assert_eq!((got, page.next), (vec!["s3"], None), "{name}");

    // Delivery states follow the outbox.
    let rec = s.journal_get("s0").await.unwrap().unwrap();
    assert_eq!(rec.deliveries[0].state, DeliveryState::Pending, "{name}");
    let (due, _) = s
        .due(LANE_A.into(), T0, 100, BTreeSet::new())
        .await
        .unwrap();
    assert_eq!(due.len(), 6);
    let done = due
        .iter()
        .map(|j| {
            let c = if j.webhook_id == rec.deliveries[0].webhook_id {
                Completion::Dead("HTTP 410".into())
            } else {
                Completion::Delivered
            };
            (j.clone(), c)
        })
        .collect();
    s.complete_many(done).await.unwrap();
    let rec = s.journal_get("s0").await.unwrap().unwrap();
    assert_eq!(rec.deliveries[0].state, DeliveryState::Dead, "{name}");
    let rec1 = s.journal_get("s1").await.unwrap().unwrap();
    assert_eq!(rec1.deliveries[0].state, DeliveryState::Delivered, "{name}");
    assert!(rec1.deliveries[0].at_us.is_some());

    // A delivered webhook id is not enqueued again when the session is built again.
    let again = job_of(&sessions[1], "t1", A);
    let e = Encoded::of(&sessions[1], std::slice::from_ref(&again)).unwrap();
    assert_eq!(
        s.enqueue_journaled(vec![again], vec![e]).await.unwrap(),
        0,
        "{name}"
    );

    // A backfilled copy never replaces the kept entry.
    let mut copy = session("s2", TA, T0 + 2 * min);
    copy.cdr.tags.insert("backfilled".into(), "1".into());
    copy.cdr
        .tags
        .insert("marker".into(), "backfilled-copy".into());
    s.journal_put(vec![Encoded::of(&copy, &[]).unwrap()])
        .await
        .unwrap();
    let kept = s.journal_get("s2").await.unwrap().unwrap();
    assert!(
        !kept.entry.session.cdr.tags.contains_key("marker"),
        "{name}"
    );

    // Re-sending one session sends its delivered delivery again, same webhook id.
    let set = triggers(&format!(
        "[[trigger]]\nid = \"t1\"\ntenant = \"{TB}\"\n[trigger.action]\nurl = \"{A}\"\n"
    ));
    let r = s
        .journal_resend(
            ResendTarget::One("s1".into()),
            set,
            None,
            postcall::clock::WallTime::from_us(T0 + 1),
        )
        .await
        .unwrap();
    assert_eq!((r.sessions, r.queued), (1, 1), "{name}");
    let rec1 = s.journal_get("s1").await.unwrap().unwrap();
    assert_eq!(rec1.deliveries[0].state, DeliveryState::Pending, "{name}");

    // Pruning by age, in batches.
    let policy = JournalPolicy {
        retention_us: 3 * min,
        max_bytes: u64::MAX / 2,
        batch: 2,
    };
    let p = s
        .journal_prune(postcall::clock::WallTime::from_us(T0 + 6 * min), policy)
        .await
        .unwrap();
    assert_eq!((p.by_age, p.more), (2, true), "{name}");
    let p = s
        .journal_prune(postcall::clock::WallTime::from_us(T0 + 6 * min), policy)
        .await
        .unwrap();
    assert_eq!((p.by_age, p.more, p.entries), (1, false, 3), "{name}");
    assert!(s.journal_get("s0").await.unwrap().is_none());
    // And by size: one entry's bytes left.
    let policy = JournalPolicy {
        retention_us: i64::MAX / 4,
        max_bytes: p.bytes / 3 + 1,
        batch: 10,
    };
    let p = s
        .journal_prune(postcall::clock::WallTime::from_us(T0 + 6 * min), policy)
        .await
        .unwrap();
    assert_eq!((p.by_size, p.entries), (2, 1), "{name}");
    assert!(
        s.journal_get("s5").await.unwrap().is_some(),
        "{name}: the newest stays"
    );
}

fn triggers(doc: &str) -> Arc<postcall::trigger::TriggerSet> {
    let t = postcall::trigger::file::parse_document(
        doc,
        "t.toml",
        postcall::trigger::DocFormat::Toml,
        postcall::trigger::BuildOptions { allow_http: true },
    )
    .unwrap();
    Arc::new(postcall::trigger::file::build_set(vec![t]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_on_both_backends() {
    on_both!("stores::journal_on_both_backends", journal);
}

async fn sessions(s: Storage, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        s.load_sessions(dir.path()).await.unwrap().is_none(),
        "{name}"
    );
    let mut asm = postcall::session::Assembler::new(Arc::default());
    let state = SavedState {
        open: asm.snapshot(),
        closed: vec![session("held", TA, T0)],
    };
    s.save_sessions(dir.path(), state).await.unwrap();
    let back = s.load_sessions(dir.path()).await.unwrap().unwrap();
    assert_eq!(back.closed[0].cdr.id, "held", "{name}");
    s.remove_sessions(dir.path()).await.unwrap();
    assert!(
        s.load_sessions(dir.path()).await.unwrap().is_none(),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_sessions_on_both_backends() {
    on_both!("stores::saved_sessions_on_both_backends", sessions);
}

/// Two instances on one database: a claim excludes the other until its lease runs out, then
/// the other takes it over; the first one's late outcome is not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_leases_and_takeover_between_two_instances() {
    let Some(pg) = Postgres::start("stores::claims_leases_and_takeover_between_two_instances")
    else {
        return;
    };
    let url = pg.database("claims").await;
    let a = PgStore::connect(pg_options(&url, "a")).await.unwrap();
    let b = PgStore::connect(pg_options(&url, "b")).await.unwrap();
    let (a, b) = (a.into_storage(), b.into_storage());
    let jobs: Vec<Job> = (0..10).map(|i| job(&format!("j{i}"), A, T0)).collect();
    // Both instances built the same deliveries: inserted once.
    assert_eq!(a.enqueue_journaled(jobs.clone(), vec![]).await.unwrap(), 10);
    assert_eq!(b.enqueue_journaled(jobs, vec![]).await.unwrap(), 0);
    let none = BTreeSet::new();
    let (got_a, _) = a.due(LANE_A.into(), T0, 6, none.clone()).await.unwrap();
    let (got_b, next_b) = b.due(LANE_A.into(), T0, 10, none.clone()).await.unwrap();
    assert_eq!((got_a.len(), got_b.len()), (6, 4));
    let seen_a: BTreeSet<&str> = ids(&got_a).into_iter().collect();
    assert!(
        ids(&got_b).iter().all(|id| !seen_a.contains(id)),
        "disjoint claims"
    );
    assert_eq!(next_b, Some(T0 + LEASE_US), "b waits for a's lease");
    // b finishes its own; a "dies" holding six.
    let done = got_b
        .iter()
        .map(|j| (j.clone(), Completion::Delivered))
        .collect();
    b.complete_many(done).await.unwrap();
    let (early, _) = b
        .due(LANE_A.into(), T0 + LEASE_US - 1, 10, none.clone())
        .await
        .unwrap();
    assert!(early.is_empty(), "a live lease is respected");
    let (taken, _) = b
        .due(LANE_A.into(), T0 + LEASE_US, 10, none.clone())
        .await
        .unwrap();
    assert_eq!(taken.len(), 6, "expired leases return to the pool");
    let pb = b.postgres().unwrap();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&pb.counters.claims), 10);
    assert_eq!(load(&pb.counters.lease_expiries), 6);
    assert_eq!(load(&pb.counters.takeovers), 6);
    // a comes back with a late outcome: not recorded, counted.
    let late = got_a
        .iter()
        .map(|j| (j.clone(), Completion::Dead("late".into())))
        .collect();
    a.complete_many(late).await.unwrap();
    let pa = a.postgres().unwrap();
    assert_eq!(load(&pa.counters.lost_completions), 6);
    assert_eq!(a.dead_len().await.unwrap(), 0);
    assert_eq!(a.pending_len().await.unwrap(), 6);
    let done = taken
        .iter()
        .map(|j| (j.clone(), Completion::Delivered))
        .collect();
    b.complete_many(done).await.unwrap();
    assert_eq!(a.pending_len().await.unwrap(), 0);
}

/// Instances that saw a call differently build different copies under one `webhook-id`: a
/// complete copy replaces a gapped one nobody has claimed; after a claim, or the other way
/// round, the stored copy stays. The journal keeps the complete entry too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_copy_replaces_a_gapped_one_only_before_any_attempt() {
    let Some(pg) =
        Postgres::start("stores::a_complete_copy_replaces_a_gapped_one_only_before_any_attempt")
    else {
        return;
    };
    let url = pg.database("copies").await;
    let a = PgStore::connect(pg_options(&url, "a"))
        .await
        .unwrap()
        .into_storage();
    let build = |id: &str, gap: bool| {
        let mut s = session(id, TA, T0);
        if gap {
            s.cdr.tags.insert("gap".into(), "1".into());
        }
        let j = job_of(&s, "t1", A);
        let e = Encoded::of(&s, std::slice::from_ref(&j)).unwrap();
        (j, e)
    };
    let gap_tag = |j: &Job| j.payload.get().contains("\"gap\"");
    // Gapped first, then complete: replaced.
    let (j, e) = build("x", true);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    let (j, e) = build("x", false);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    let (due, _) = a.due(LANE_A.into(), T0, 10, BTreeSet::new()).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(!gap_tag(&due[0]), "the complete copy is sent");
    let rec = a.journal_get("x").await.unwrap().unwrap();
    assert!(!rec.entry.session.cdr.tags.contains_key("gap"));
    // Complete first, then gapped: kept (delivery and journal).
    let (j, e) = build("y", false);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    let (j, e) = build("y", true);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    let rec = a.journal_get("y").await.unwrap().unwrap();
    assert!(!rec.entry.session.cdr.tags.contains_key("gap"));
    // Gapped, claimed (perhaps sent), then complete: the claimed copy stays.
    let (j, e) = build("z", true);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    let busy: BTreeSet<String> = due.iter().map(|j| j.webhook_id.clone()).collect();
    let (claimed, _) = a.due(LANE_A.into(), T0, 10, busy).await.unwrap();
    let z = claimed
        .iter()
        .find(|j| j.webhook_id == postcall::delivery::webhook_id("z", "t1"))
        .unwrap()
        .clone();
    assert!(gap_tag(&z));
    let (j, e) = build("z", false);
    a.enqueue_journaled(vec![j], vec![e]).await.unwrap();
    // Its lease runs out unrecorded: the copy anyone gets next is still the one claimed.
    let (again, _) = a
        .due(LANE_A.into(), T0 + LEASE_US, 10, BTreeSet::new())
        .await
        .unwrap();
    let z2 = again.iter().find(|j| j.webhook_id == z.webhook_id).unwrap();
    assert!(gap_tag(z2), "one body per webhook-id once attempted");
}

/// Instances starting together apply each migration once (the advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let Some(pg) = Postgres::start("stores::instances_starting_together_migrate_once") else {
        return;
    };
    let url = pg.database("migrations").await;
    let starts: Vec<_> = (0..4)
        .map(|i| {
            let o = pg_options(&url, &format!("i{i}"));
            tokio::spawn(async move { PgStore::connect(o).await })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT version FROM postcall_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> = postcall::delivery::pg::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(versions, expected);
}

fn stored_trigger(id: &str, url: &str, updated_us: i64) -> StoredTrigger {
    StoredTrigger {
        id: id.into(),
        tenant: TA.into(),
        doc: serde_json::json!({"id": id, "tenant": TA, "action": {"url": url}}),
        updated_us,
    }
}

/// The console's trigger store: put creates or replaces, list is by id, delete says whether
/// the trigger existed; a second handle on the same store (a reopened file, another
/// instance's connection) reads the same.
async fn console_triggers(s: Storage, name: &str) {
    let store = for_storage(&s);
    assert!(store.list().await.unwrap().is_empty(), "{name}");
    store
        .put(stored_trigger("g2", "https://b.example/", 1))
        .await
        .unwrap();
    store
        .put(stored_trigger("g1", "https://a.example/", 2))
        .await
        .unwrap();
    store
        .put(stored_trigger("g2", "https://b2.example/", 3))
        .await
        .unwrap();
    assert_eq!(
        store.list().await.unwrap(),
        [
            stored_trigger("g1", "https://a.example/", 2),
            stored_trigger("g2", "https://b2.example/", 3)
        ],
        "{name}"
    );
    assert!(store.delete("g1".into()).await.unwrap(), "{name}");
    assert!(!store.delete("g1".into()).await.unwrap(), "{name}");
    assert_eq!(
        for_storage(&s.clone()).list().await.unwrap(),
        [stored_trigger("g2", "https://b2.example/", 3)],
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_triggers_on_both_backends() {
    on_both!(
        "stores::console_triggers_on_both_backends",
        console_triggers
    );
}

async fn console_on(s: Storage) -> (Arc<Console>, Arc<postcall::trigger::Reloader>) {
    let http = postcall::net::HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let engine = postcall::delivery::Engine::with_storage(s.clone(), http, Default::default());
    let reloader =
        postcall::trigger::Reloader::new(postcall::trigger::TriggerSources::files(Vec::new()))
            .unwrap();
    let console = Console::start(for_storage(&s), reloader.clone(), engine, None)
        .await
        .unwrap();
    (console, reloader)
}

/// Two instances on one database, each with its console: a trigger one of them stores is
/// applied by the other when it catches up (and again only when something changed); a
/// deletion too; a stored set the other cannot validate leaves its running set alone. The
/// sidecar's `follow` task catches up on the store's poll interval, without a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_triggers_reach_the_other_instance() {
    let Some(pg) = Postgres::start("stores::console_triggers_reach_the_other_instance") else {
        return;
    };
    let url = pg.database("console").await;
    let a = PgStore::connect(pg_options(&url, "a")).await.unwrap();
    let b = PgStore::connect(pg_options(&url, "b")).await.unwrap();
    let (a, b) = (a.into_storage(), b.into_storage());
    let (_console_a, live_a) = console_on(a.clone()).await;
    let (console_b, live_b) = console_on(b).await;
    let store_a = for_storage(&a);

    store_a
        .put(stored_trigger("g1", "https://a.example/", 1))
        .await
        .unwrap();
    assert!(live_b.current().get("g1").is_none());
    assert!(console_b.catch_up().await.unwrap());
    assert_eq!(
        live_b.current().get("g1").unwrap().action.url.to_string(),
        "https://a.example/"
    );
    assert!(!console_b.catch_up().await.unwrap(), "nothing changed");
    assert!(live_a.current().get("g1").is_none(), "a follows on its own");

    // Not valid here (a tenant that is not an account id): b keeps what it runs.
    let mut bad = stored_trigger("g9", "https://a.example/", 2);
    bad.tenant = "acme".into();
    bad.doc["tenant"] = "acme".into();
    store_a.put(bad).await.unwrap();
    let err = console_b.catch_up().await.unwrap_err().to_string();
    assert!(err.contains("console trigger g9"), "{err}");
    assert!(live_b.current().get("g1").is_some());
    assert!(live_b.current().get("g9").is_none());
    store_a.delete("g9".into()).await.unwrap();

    // The follow task: a change made on a is applied on b without anyone asking.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut status = live_b.status();
    status.borrow_and_update();
    let follow = tokio::spawn(
        console_b
            .clone()
            .follow(Duration::from_millis(50), stop.clone()),
    );
    store_a.delete("g1".into()).await.unwrap();
    store_a
        .put(stored_trigger("g2", "https://b.example/", 3))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while live_b.current().get("g2").is_none() {
            status.changed().await.unwrap();
        }
    })
    .await
    .expect("b applies a's change");
    assert!(live_b.current().get("g1").is_none());
    stop.cancel();
    follow.await.unwrap();
}

/// TLS to PostgreSQL: against a server that accepts TLS clients only, the store connects with
/// `sslmode=require` and the server's CA in `[store] ca_file`, and works; without that CA the
/// server's certificate is refused (the public roots do not vouch for it), and a plaintext
/// client is turned away — so the working store really spoke TLS and checked the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgresql_checks_the_server() {
    let Some(pg) = Postgres::start("stores::tls_to_postgresql_checks_the_server") else {
        return;
    };
    let plain = pg.database("tls").await;
    let ca = crate::servers::tls::TestCa::new();
    pg.require_tls(&ca.chain_pem, &ca.key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let tls_url = plain.replace("sslmode=disable", "sslmode=require");

    let refused = |r: Result<PgStore, OutboxError>| match r {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    };
    let e = refused(PgStore::connect(pg_options(&plain, "a")).await);
    // The server itself refuses it (pg_hba.conf has no entry without encryption).
    assert!(e.contains("no encryption"), "{e}");
    let e = refused(PgStore::connect(pg_options(&tls_url, "a")).await);
    // rustls refuses the unknown issuer during the handshake.
    assert!(
        e.contains("TLS handshake") && e.contains("UnknownIssuer"),
        "{e}"
    );

    let mut opts = pg_options(&tls_url, "a");
    opts.ca_file = Some(ca_file);
    let store = PgStore::connect(opts).await.unwrap().into_storage();
    assert_eq!(store.pending_len().await.unwrap(), 0);
}

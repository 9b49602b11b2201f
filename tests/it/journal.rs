//! The CDR journal on a real redb file in a temp dir: list filters are range scans over the
//! entries written, `put` upserts by session id, pruning by age and size runs in bounded
//! batches against an injected clock, delivery states follow the outbox, a rebuilt session is
//! not delivered twice, a storage fault during a journal write is typed and leaves nothing,
//! and re-sending through a set with a newly added trigger creates exactly the missing
//! deliveries.

use std::collections::BTreeSet;
use std::sync::Arc;

use postcall::delivery::journal::{
    DeliveryState, Encoded, JournalEntry, JournalPolicy, ListFilter, ResendTarget,
};
use postcall::delivery::{
    webhook_id, Completion, Fault, Faults, Job, Journal, Outbox, OutboxError,
};
use postcall::session::ClosedSession;
use postcall::trigger::{BuildOptions, DocFormat, TriggerSet};

const T0: i64 = 1_795_856_400_000_000; // 2026-11-28T09:00:00Z
const MIN: i64 = 60_000_000;
const TENANTS: [&str; 3] = [
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "cccccccccccccccccccccccccccccccc",
];

/// A real session (the `pstn_answered` fixture's), re-labelled with `id`, `tenant` and a start
/// time; the journal stores whatever session it is given.
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

use crate::storage_faults::open;

/// Journal entries without deliveries.
fn put(o: &Outbox, sessions: &[ClosedSession]) {
    let entries: Vec<Encoded> = sessions
        .iter()
        .map(|s| Encoded::of(s, &[]).unwrap())
        .collect();
    o.call_blocking(move |st| st.enqueue_journaled(&[], &entries))
        .unwrap();
}

fn ids(entries: &[JournalEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id().to_owned()).collect()
}

fn list(o: &Outbox, filter: ListFilter) -> Vec<JournalEntry> {
    o.call_blocking(move |s| s.journal_list(&filter))
        .unwrap()
        .entries
}

/// Triggers in a TOML document (what `run` loads from its trigger files).
fn triggers(doc: &str) -> Arc<TriggerSet> {
    let t = postcall::trigger::file::parse_document(
        doc,
        "t.toml",
        DocFormat::Toml,
        BuildOptions { allow_http: true },
    )
    .unwrap();
    Arc::new(postcall::trigger::file::build_set(vec![t]).unwrap())
}

fn trigger(id: &str, tenant: &str) -> String {
    format!("[[trigger]]\nid = \"{id}\"\ntenant = \"{tenant}\"\n[trigger.action]\nurl = \"http://127.0.0.1:9/{id}\"\n\n")
}

/// The jobs `set` makes for `s` (the sidecar's sink does the same).
fn jobs_of(set: &TriggerSet, s: &ClosedSession) -> Vec<Job> {
    let cdr = serde_json::value::to_raw_value(&s.cdr).unwrap();
    set.matches(s)
        .map(|m| m.job(s, &cdr, postcall::clock::WallTime::from_us(T0)))
        .collect()
}

fn journal(o: &Outbox, sessions: &[ClosedSession], set: &TriggerSet) -> usize {
    let jobs: Vec<Job> = sessions.iter().flat_map(|s| jobs_of(set, s)).collect();
    let entries: Vec<Encoded> = sessions
        .iter()
        .map(|s| Encoded::of(s, &jobs_of(set, s)).unwrap())
        .collect();
    o.call_blocking(move |st| st.enqueue_journaled(&jobs, &entries))
        .unwrap()
}

#[test]
fn list_is_a_window_of_one_tenant_or_all_in_start_order_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir, &Faults::default());
    // 30 sessions one minute apart, tenants in turn; written out of order.
    let mut all: Vec<ClosedSession> = (0..30)
        .map(|i| session(&format!("s{i:02}"), TENANTS[i % 3], T0 + i as i64 * MIN))
        .collect();
    all.reverse();
    put(&o, &all);
    let every = list(
        &o,
        ListFilter {
            limit: 1000,
            ..ListFilter::default()
        },
    );
    let expected: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    assert_eq!(ids(&every), expected);

    // Tenant b between minute 4 (inclusive) and minute 20 (exclusive): 4, 7, …, 19.
    let window = ListFilter {
        tenant: Some(TENANTS[1].into()),
        from_us: Some(T0 + 4 * MIN),
        to_us: Some(T0 + 20 * MIN),
        limit: 1000,
        after: None,
    };
    let got = list(&o, window.clone());
    assert_eq!(ids(&got), ["s04", "s07", "s10", "s13", "s16", "s19"]);
    assert!(got
        .iter()
        .all(|e| e.session.tenant_id.as_deref() == Some(TENANTS[1])));

    // Pages of 4 add up to the same, in order.
    let mut paged = Vec::new();
    let mut f = ListFilter { limit: 4, ..window };
    loop {
        let g = f.clone();
        let page = o.call_blocking(move |s| s.journal_list(&g)).unwrap();
        assert!(page.entries.len() <= 4);
        paged.extend(ids(&page.entries));
        match page.next {
            Some(n) => f.after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, ["s04", "s07", "s10", "s13", "s16", "s19"]);

    // All tenants, a window; an empty window; a tenant nobody has.
    let got = list(
        &o,
        ListFilter {
            from_us: Some(T0 + 28 * MIN),
            limit: 10,
            ..ListFilter::default()
        },
    );
    assert_eq!(ids(&got), ["s28", "s29"]);
    let none = ListFilter {
        from_us: Some(T0 + 5 * MIN),
        to_us: Some(T0 + 5 * MIN),
        limit: 10,
        ..ListFilter::default()
    };
    assert!(list(&o, none).is_empty());
    let other = ListFilter {
        tenant: Some("dddddddddddddddddddddddddddddddd".into()),
        limit: 10,
        ..ListFilter::default()
    };
    assert!(list(&o, other).is_empty());
}

#[test]
fn put_replaces_an_entry_by_session_id_and_keeps_both_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let o = Arc::new(open(&dir, &Faults::default()));
    let j = Journal::new(o.clone(), JournalPolicy::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gapped = session("s1", TENANTS[0], T0);
        let d = |t: &str| postcall::delivery::journal::DeliveryRef {
            webhook_id: webhook_id("s1", t),
            trigger_id: t.into(),
        };
        let mut first = JournalEntry {
            session: gapped.clone(),
            deliveries: vec![d("t1")],
        };
        first.session.cdr.tags.insert("gap".into(), "1".into());
        j.put(first).await.unwrap();
        // The complete copy starts a minute earlier and matched another trigger.
        let complete = JournalEntry {
            session: session("s1", TENANTS[0], T0 - MIN),
            deliveries: vec![d("t2")],
        };
        j.put(complete.clone()).await.unwrap();
        let got = j.get("s1").await.unwrap().expect("entry");
        assert_eq!(got.entry.session, complete.session);
        let hooks: Vec<&str> = got
            .deliveries
            .iter()
            .map(|d| d.trigger_id.as_str())
            .collect();
        assert_eq!(hooks, ["t1", "t2"]);
        let all = j
            .list(ListFilter {
                limit: 10,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&all.entries), ["s1"], "one entry, indexed once");
        let old_slot = j
            .list(ListFilter {
                tenant: Some(TENANTS[0].into()),
                from_us: Some(T0),
                limit: 10,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert!(
            old_slot.entries.is_empty(),
            "the old start time is unindexed"
        );
        let (entries, _) = o.call_blocking(|s| s.journal_stats()).unwrap();
        assert_eq!(entries, 1);

        // A copy built from Kazoo's stored CDRs (tag `backfilled`, no hold or park) never
        // replaces what is kept; one that is not kept yet is.
        let mut backfilled = JournalEntry {
            session: session("s1", TENANTS[0], T0 - 2 * MIN),
            deliveries: vec![d("t3")],
        };
        backfilled
            .session
            .cdr
            .tags
            .insert("backfilled".into(), "1".into());
        j.put(backfilled.clone()).await.unwrap();
        let got = j.get("s1").await.unwrap().expect("entry");
        assert_eq!(got.entry.session, complete.session, "the kept copy stays");
        backfilled.session.cdr.id = "s2".into();
        j.put(backfilled.clone()).await.unwrap();
        let got = j
            .get("s2")
            .await
            .unwrap()
            .expect("a new backfilled entry is kept");
        assert_eq!(got.entry.session, backfilled.session);
    });
}

#[test]
fn pruning_drops_old_then_oldest_entries_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir, &Faults::default());
    let set = triggers(&trigger("t1", TENANTS[0]));
    // Ten sessions one day apart (day 0 … day 9), with a delivery each.
    let sessions: Vec<ClosedSession> = (0..10)
        .map(|i| session(&format!("d{i}"), TENANTS[0], T0 + i * 86_400_000_000))
        .collect();
    journal(&o, &sessions, &set);
    let (n, bytes) = o.call_blocking(|s| s.journal_stats()).unwrap();
    assert_eq!(n, 10);
    let per_entry = bytes / 10;

    // "Now" is day 10 with a 7-day retention: days 0, 1 and 2 are too old. Batches of 2.
    let now = T0 + 10 * 86_400_000_000;
    let policy = JournalPolicy {
        retention_us: 7 * 86_400_000_000,
        max_bytes: u64::MAX,
        batch: 2,
    };
    let p = o
        .call_blocking(move |s| s.journal_prune(now, &policy))
        .unwrap();
    assert_eq!((p.by_age, p.by_size, p.more, p.entries), (2, 0, true, 8));
    let p = o
        .call_blocking(move |s| s.journal_prune(now, &policy))
        .unwrap();
    assert_eq!((p.by_age, p.by_size, p.more, p.entries), (1, 0, false, 7));
    let p = o
        .call_blocking(move |s| s.journal_prune(now, &policy))
        .unwrap();
    assert_eq!((p.by_age, p.by_size, p.more), (0, 0, false));
    let left = list(
        &o,
        ListFilter {
            limit: 100,
            ..ListFilter::default()
        },
    );
    assert_eq!(ids(&left), ["d3", "d4", "d5", "d6", "d7", "d8", "d9"]);
    assert!(o.call_blocking(|s| s.journal_get("d2")).unwrap().is_none());

    // A size cap of about three entries: the oldest go first, a batch at a time.
    let policy = JournalPolicy {
        retention_us: i64::MAX,
        max_bytes: per_entry * 3 + per_entry / 2,
        batch: 3,
    };
    let p = o
        .call_blocking(move |s| s.journal_prune(now, &policy))
        .unwrap();
    assert_eq!((p.by_age, p.by_size, p.more, p.entries), (0, 3, true, 4));
    let p = o
        .call_blocking(move |s| s.journal_prune(now, &policy))
        .unwrap();
    assert_eq!((p.by_size, p.more, p.entries), (1, false, 3));
    assert!(p.bytes <= policy.max_bytes);
    let left = list(
        &o,
        ListFilter {
            limit: 100,
            ..ListFilter::default()
        },
    );
    assert_eq!(ids(&left), ["d7", "d8", "d9"]);
    // A pruned session's delivery is forgotten with it: once its job is done, rebuilding the
    // session enqueues it again.
    o.complete(&jobs_of(&set, &sessions[0])[0], Completion::Delivered)
        .unwrap();
    assert_eq!(journal(&o, &sessions[..1], &set), 1);
}

#[test]
fn delivery_states_follow_the_outbox_and_a_rebuilt_session_is_not_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir, &Faults::default());
    let set = triggers(&format!(
        "{}{}",
        trigger("t1", TENANTS[0]),
        trigger("t2", TENANTS[0])
    ));
    let s = session("s1", TENANTS[0], T0);
    assert_eq!(journal(&o, std::slice::from_ref(&s), &set), 2);
    let state = |o: &Outbox| -> Vec<(String, DeliveryState)> {
        let r = o.call_blocking(|st| st.journal_get("s1")).unwrap().unwrap();
        r.deliveries
            .into_iter()
            .map(|d| (d.trigger_id, d.state))
            .collect()
    };
    use DeliveryState::*;
    assert_eq!(state(&o), [("t1".into(), Pending), ("t2".into(), Pending)]);
    let jobs = jobs_of(&set, &s);
    o.complete(&jobs[0], Completion::Delivered).unwrap();
    o.complete(&jobs[1], Completion::Dead("HTTP 400".into()))
        .unwrap();
    assert_eq!(state(&o), [("t1".into(), Delivered), ("t2".into(), Dead)]);

    // The same session built again (a backfilled copy): nothing is enqueued twice.
    assert_eq!(journal(&o, std::slice::from_ref(&s), &set), 0);
    assert_eq!(o.pending_len().unwrap(), 0);

    o.resend(&jobs[1].webhook_id, T0).unwrap();
    assert_eq!(
        state(&o),
        [("t1".into(), Delivered), ("t2".into(), Pending)]
    );
    o.complete(&jobs[1], Completion::Dead("HTTP 400".into()))
        .unwrap();
    o.purge(None).unwrap();
    assert_eq!(state(&o), [("t1".into(), Delivered), ("t2".into(), Purged)]);

    // Restart keeps the journal and the states.
    drop(o);
    let o = open(&dir, &Faults::default());
    assert_eq!(state(&o), [("t1".into(), Delivered), ("t2".into(), Purged)]);
}

#[test]
fn a_storage_fault_during_a_journal_write_is_typed_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let o = open(&dir, &faults);
    let set = triggers(&trigger("t1", TENANTS[0]));
    let matched = session("m", TENANTS[0], T0);
    let unmatched = session("u", TENANTS[1], T0);
    for fault in [Fault::WriteError, Fault::NoSpace, Fault::SyncError] {
        faults.set(fault);
        let jobs: Vec<Job> = jobs_of(&set, &matched);
        let entries = vec![
            Encoded::of(&matched, &jobs).unwrap(),
            Encoded::of(&unmatched, &[]).unwrap(),
        ];
        let e = o
            .call_blocking(move |st| st.enqueue_journaled(&jobs, &entries))
            .unwrap_err();
        assert!(e.needs_reopen() && !e.is_fatal(), "{fault:?}: {e:?}");
        if fault == Fault::NoSpace {
            assert!(e.is_disk_full(), "{e:?}");
        }
        faults.set(Fault::None);
        if fault != Fault::SyncError {
            // Nothing of the failed transaction is there.
            assert!(o.call_blocking(|s| s.journal_get("m")).unwrap().is_none());
            assert!(o.call_blocking(|s| s.journal_get("u")).unwrap().is_none());
            assert_eq!(o.pending_len().unwrap(), 0);
        }
    }
    // Writing again once the device is healthy: both entries, one job, whatever the failed
    // sync left.
    journal(&o, &[matched, unmatched], &set);
    drop(o);
    let o = open(&dir, &faults);
    assert_eq!(o.pending_len().unwrap(), 1);
    let (n, _) = o.call_blocking(|s| s.journal_stats()).unwrap();
    assert_eq!(n, 2);
    assert!(matches!(
        o.call_blocking(|s| s.journal_resend(
            &ResendTarget::One("nope".into()),
            &TriggerSet::default(),
            None,
            T0
        )),
        Err(OutboxError::NotFound(_))
    ));
}

#[test]
fn resending_a_window_catches_a_new_trigger_up_once_and_one_cdr_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir, &Faults::default());
    let old = triggers(&trigger("t1", TENANTS[0]));
    let sessions: Vec<ClosedSession> = (0..7)
        .map(|i| session(&format!("s{i}"), TENANTS[i % 2], T0 + i as i64 * MIN))
        .collect();
    assert_eq!(journal(&o, &sessions, &old), 4, "tenant a's four sessions");
    for j in sessions.iter().flat_map(|s| jobs_of(&old, s)) {
        o.complete(&j, Completion::Delivered).unwrap();
    }

    // A trigger for tenant b is added, and one more for tenant a.
    let new = triggers(&format!(
        "{}{}{}",
        trigger("t1", TENANTS[0]),
        trigger("t2", TENANTS[1]),
        trigger("t3", TENANTS[0])
    ));
    let mut f = ListFilter {
        from_us: Some(T0),
        to_us: Some(T0 + 7 * MIN),
        limit: 2, // pages of two sessions
        ..ListFilter::default()
    };
    let mut total = postcall::delivery::journal::ResendReport::default();
    loop {
        let (t, set) = (ResendTarget::Window(f.clone()), new.clone());
        let r = o
            .call_blocking(move |s| s.journal_resend(&t, &set, None, T0))
            .unwrap();
        total.add(&r);
        match r.next {
            Some(n) => f.after = Some(n),
            None => break,
        }
    }
    assert_eq!(
        (total.sessions, total.queued, total.unchanged, total.revived),
        (7, 3 + 4, 4, 0),
        "t2 for b's three, t3 for a's four; t1's delivered ones left alone"
    );
    let (due, _) = o
        .due("http://127.0.0.1:9", T0 + 1, 100, &BTreeSet::new())
        .unwrap();
    let got: BTreeSet<String> = due.iter().map(|j| j.webhook_id.clone()).collect();
    let expected: BTreeSet<String> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| webhook_id(&s.cdr.id, if i % 2 == 1 { "t2" } else { "t3" }))
        .collect();
    assert_eq!(
        got, expected,
        "the deterministic webhook ids of the new pairs"
    );
    let r = o.call_blocking(|s| s.journal_get("s1")).unwrap().unwrap();
    assert_eq!(r.entry.deliveries.len(), 1);
    assert_eq!(r.deliveries[0].state, DeliveryState::Pending);

    // Once more: nothing new.
    let (t, set) = (
        ResendTarget::Window(ListFilter {
            limit: 100,
            ..ListFilter::default()
        }),
        new.clone(),
    );
    let r = o
        .call_blocking(move |s| s.journal_resend(&t, &set, None, T0))
        .unwrap();
    assert_eq!((r.queued, r.unchanged), (0, 11));

    // One CDR explicitly, for one trigger: the delivered t1 job goes out again, same id.
    let (t, set) = (ResendTarget::One("s0".into()), new);
    let r = o
        .call_blocking(move |s| s.journal_resend(&t, &set, Some("t1"), T0))
        .unwrap();
    assert_eq!((r.sessions, r.queued, r.unchanged), (1, 1, 0));
    let (due, _) = o
        .due("http://127.0.0.1:9", T0 + 1, 100, &BTreeSet::new())
        .unwrap();
    assert!(due.iter().any(|j| j.webhook_id == webhook_id("s0", "t1")));
}

mod sidecar {
    //! The journal through `postcall run` (fake Blackhole, real receivers on 127.0.0.1), the
    //! `cdrs` command and the admin endpoints.

    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use postcall::config::PluginConfig;
    use postcall::delivery::webhook_id;
    use postcall::sim::{self, MixSpec};

    use crate::run::{accounts, demo_blackhole, start, write_config_with};
    use crate::servers::http::{HttpServer, Reply};

    const ADMIN_TOKEN: &str = "journal-admin-token-0123";

    /// `(webhook-id, session id)` of every request a receiver got.
    type Seen = Arc<Mutex<Vec<(String, String)>>>;

    async fn receiver() -> (HttpServer, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let rx = HttpServer::start(None, move |r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            s.lock().unwrap().push((
                r.header("webhook-id").unwrap().to_owned(),
                v["cdr"]["id"].as_str().unwrap().to_owned(),
            ));
            Reply::status(200)
        })
        .await;
        (rx, seen)
    }

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    fn trigger(id: &str, tenant: &str, url: &str) -> String {
        format!("[[trigger]]\nid = \"{id}\"\ntenant = \"{tenant}\"\n[trigger.action]\nurl = \"{url}\"\nretries = 10\n\n")
    }

    fn cli(args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn admin(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        let client = postcall::net::HttpClient::new(
            postcall::net::tls::client_config(None).unwrap(),
            &Default::default(),
        );
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = client.send(req, Duration::from_secs(10)).await.unwrap();
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )
    }

    /// Every session `run` closes is journaled, matched or not, with its deliveries; the
    /// journal survives the restart; a trigger added while postcall is stopped catches up on
    /// the past calls through `cdrs resend --from --to`, each call delivered to it once with
    /// the deterministic webhook id and nothing sent again to the old trigger; while running,
    /// the CLI names the admin endpoint, and `/cdrs` serves the same behind the token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_journals_every_session_and_a_new_trigger_catches_up_once() {
        let accts = accounts();
        let mut bh = demo_blackhole().await;
        let (rx_a, seen_a) = receiver().await;
        let (rx_b, seen_b) = receiver().await;
        let dir = tempfile::tempdir().unwrap();
        let extra =
            format!("[journal]\nretention_days = 3650\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n");
        write_config_with(dir.path(), &bh.url(), &[&rx_a.url()], &extra);
        // Only the first account has a trigger: the other accounts' sessions match nothing.
        let url_a = format!("{}/a", rx_a.url());
        std::fs::write(
            dir.path().join("triggers.toml"),
            trigger("a", &accts[0], &url_a),
        )
        .unwrap();
        let config = dir.path().join("plugin.toml");
        let c = config.to_str().unwrap();

        let frames: Vec<String> = sim::mix(MixSpec {
            calls: 16,
            seed: 5,
            mean_gap_ms: 3_000,
            ..MixSpec::default()
        })
        .map(|f| f.text)
        .collect();
        let sessions =
            postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default()));
        let tenant_of: BTreeMap<String, String> = sessions
            .iter()
            .map(|s| (s.cdr.id.clone(), s.tenant_id.clone().unwrap()))
            .collect();
        let all: BTreeSet<String> = tenant_of.keys().cloned().collect();
        let matched: BTreeSet<String> = tenant_of
            .iter()
            .filter(|(_, t)| **t == accts[0])
            .map(|(id, _)| id.clone())
            .collect();
        assert!(
            !matched.is_empty() && matched.len() < all.len(),
            "both matched and unmatched sessions: {} of {}",
            matched.len(),
            all.len()
        );

        // 1. Live: every call in, the matched ones delivered, then stop.
        let run = start(PluginConfig::load(&config).unwrap()).await;
        bh.wait_subscribed(1).await;
        for f in &frames {
            bh.push(f);
        }
        let s = seen_a.clone();
        let m = matched.clone();
        wait_for("the matched sessions' webhooks", || {
            let got: BTreeSet<String> = s.lock().unwrap().iter().map(|x| x.1.clone()).collect();
            got == m
        })
        .await;
        // While it runs the store is held: the CLI says so and names the endpoint.
        let (ok, _, err) = cli(&["cdrs", "list", "--config", c]);
        assert!(
            !ok && err.contains("postcall is running") && err.contains("/cdrs"),
            "{err}"
        );
        run.stop().await;

        // 2. Stopped: the journal has every session, with the deliveries of the matched ones.
        let (ok, out, err) = cli(&["cdrs", "list", "--config", c]);
        assert!(ok, "{err}");
        let listed: BTreeSet<String> = out
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap().to_owned())
            .collect();
        assert_eq!(listed, all, "matched and unmatched sessions journaled");
        for line in out.lines() {
            let id = line.split('\t').nth(1).unwrap();
            let n = usize::from(matched.contains(id));
            assert!(line.ends_with(&format!("deliveries={n}")), "{line}");
        }
        let (ok, out, _) = cli(&["cdrs", "list", "--config", c, "--tenant", &accts[0]]);
        assert!(ok);
        let listed: BTreeSet<String> = out
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap().to_owned())
            .collect();
        assert_eq!(listed, matched);
        let one = matched.iter().next().unwrap();
        let (ok, out, err) = cli(&["cdrs", "show", one, "--config", c]);
        assert!(ok, "{err}");
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["cdr"]["id"], one.as_str());
        assert_eq!(shown["tenantId"], accts[0].as_str());
        assert_eq!(shown["deliveries"][0]["state"], "delivered");
        assert_eq!(
            shown["deliveries"][0]["webhookId"],
            webhook_id(one, "a").as_str()
        );

        // 3. A trigger for every account is added; the window's calls are caught up on.
        let url_b = format!("{}/b", rx_b.url());
        let mut doc = trigger("a", &accts[0], &url_a);
        for (n, a) in accts.iter().enumerate() {
            doc.push_str(&trigger(&format!("late-{n}"), a, &url_b));
        }
        std::fs::write(dir.path().join("triggers.toml"), doc).unwrap();
        let (ok, out, err) = cli(&[
            "cdrs",
            "resend",
            "--config",
            c,
            "--from",
            "2024-01-01T00:00:00Z",
            "--to",
            "0s",
        ]);
        assert!(ok, "{err}");
        assert_eq!(
            out.trim(),
            format!(
                "{} CDR(s): {} delivery(ies) queued, 0 dead letter(s) queued again, {} left as they were",
                all.len(),
                all.len(),
                matched.len()
            )
        );
        let (ok, out, _) = cli(&[
            "cdrs",
            "resend",
            "--config",
            c,
            "--from",
            "2024-01-01T00:00:00Z",
            "--to",
            "0s",
        ]);
        assert!(ok);
        assert!(
            out.contains(": 0 delivery(ies) queued"),
            "nothing twice: {out}"
        );

        let run = start(PluginConfig::load(&config).unwrap()).await;
        let s = seen_b.clone();
        let n = all.len();
        wait_for("the caught-up webhooks", || s.lock().unwrap().len() >= n).await;
        let expected: BTreeSet<(String, String)> = tenant_of
            .iter()
            .map(|(id, t)| {
                let n = accts.iter().position(|a| a == t).unwrap();
                (webhook_id(id, &format!("late-{n}")), id.clone())
            })
            .collect();

        // 4. The admin endpoints: the token is required; list, show, re-send one.
        let addr = run.started.admin;
        assert_eq!(admin(addr, "GET", "/cdrs", None).await.0, 401);
        assert_eq!(
            admin(addr, "GET", &format!("/cdrs/{one}"), None).await.0,
            401
        );
        assert_eq!(
            admin(
                addr,
                "POST",
                &format!("/cdrs/{one}/resend"),
                Some("wrong-token-0123456")
            )
            .await
            .0,
            401
        );
        let (status, body) = admin(
            addr,
            "GET",
            &format!(
                "/cdrs?tenant={}&from=2024-01-01T00:00:00Z&limit=1000",
                accts[0]
            ),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let listed: BTreeSet<String> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, matched);
        let (status, body) = admin(addr, "GET", &format!("/cdrs/{one}"), Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let states: Vec<&str> = v["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"].as_str().unwrap())
            .collect();
        assert_eq!(states.len(), 2, "{body}");
        assert_eq!(states[0], "delivered");
        assert_eq!(
            admin(addr, "GET", "/cdrs/no-such-id", Some(ADMIN_TOKEN))
                .await
                .0,
            404
        );
        let before_a = seen_a.lock().unwrap().len();
        let (status, body) = admin(
            addr,
            "POST",
            &format!("/cdrs/{one}/resend?trigger=a"),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["queued"], 1, "{body}");
        let s = seen_a.clone();
        wait_for("the explicit re-send", || {
            s.lock().unwrap().len() > before_a
        })
        .await;
        assert_eq!(
            seen_a.lock().unwrap()[before_a],
            (webhook_id(one, "a"), one.clone()),
            "sent again with the same webhook id"
        );
        // Catch-up over a window through the admin listener: late-0 has every call already.
        assert_eq!(
            admin(
                addr,
                "POST",
                "/cdrs/resend?from=2024-01-01T00:00:00Z",
                Some(ADMIN_TOKEN)
            )
            .await
            .0,
            400,
            "a window needs both ends"
        );
        let (status, body) = admin(
            addr,
            "POST",
            "/cdrs/resend?from=2024-01-01T00:00:00Z&to=0s&trigger=late-0",
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sessions"], all.len(), "{body}");
        assert_eq!(
            (v["queued"].as_u64(), v["unchanged"].as_u64()),
            (Some(0), Some(matched.len() as u64)),
            "{body}"
        );
        assert!(v["next"].is_null(), "{body}");
        run.stop().await;

        let got_b: Vec<(String, String)> = seen_b.lock().unwrap().clone();
        assert_eq!(got_b.len(), n, "each past call once to the new trigger");
        assert_eq!(got_b.into_iter().collect::<BTreeSet<_>>(), expected);
        assert_eq!(
            seen_a.lock().unwrap().len(),
            matched.len() + 1,
            "the old trigger got only the explicit re-send"
        );
    }

    /// The prune task of `run` drops what is past the retention (the simulator's calls are
    /// from 2024, the retention is a day), counts it in `/metrics` and leaves the journal
    /// empty, while the calls are still delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_prunes_in_the_background_and_counts_it() {
        let mut bh = demo_blackhole().await;
        let (rx, seen) = receiver().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config_with(
            dir.path(),
            &bh.url(),
            &[&rx.url()],
            "[journal]\nretention_days = 1\nprune_interval_secs = 1\n",
        );
        let frames: Vec<String> = sim::mix(MixSpec {
            calls: 6,
            seed: 9,
            mean_gap_ms: 3_000,
            ..MixSpec::default()
        })
        .map(|f| f.text)
        .collect();
        let n =
            postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default())).len();
        let run = start(cfg).await;
        bh.wait_subscribed(1).await;
        for f in &frames {
            bh.push(f);
        }
        let reg = run.started.registry.clone();
        let want = format!("postcall_journal_pruned_total{{reason=\"age\"}} {n}\n");
        wait_for("the pruned count", || {
            let m = reg.render();
            m.contains(&want) && m.contains("postcall_journal_entries 0\n")
        })
        .await;
        let m = reg.render();
        assert!(
            m.contains("postcall_journal_pruned_total{reason=\"size\"} 0"),
            "{m}"
        );
        assert!(m.contains("postcall_journal_prune_errors_total 0"), "{m}");
        let s = seen.clone();
        wait_for("the webhooks", || s.lock().unwrap().len() >= n).await;
        run.stop().await;
    }
}

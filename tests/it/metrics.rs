//! The whole `/metrics` exposition of a running sidecar with every part on (live source,
//! assembler, delivery, journal, backfill, admin), read by a parser nobody here wrote
//! (`prometheus-parse`) plus the OpenMetrics rules that parser leaves unchecked: a malformed
//! line, a sample outside its declared family, a family declared twice or a missing `# EOF`
//! fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use prometheus_parse::{LineInfo, SampleType, Scrape, Value};

use crate::backfill::{push_all, wait_delivered, Rig};
use crate::run::{start, Running};

/// Every metric family `/metrics` exports with every part running, with its type. The names
/// are the family names of OpenMetrics: a counter's samples add `_total`, a histogram's
/// `_bucket`, `_sum` and `_count`.
const FAMILIES: &[(&str, SampleType)] = &[
    ("postcall_backfill_lookups", SampleType::Counter),
    ("postcall_backfill_windows", SampleType::Counter),
    ("postcall_backfill_given_up", SampleType::Counter),
    ("postcall_backfill_requests", SampleType::Counter),
    ("postcall_backfill_errors", SampleType::Counter),
    ("postcall_backfill_interactions", SampleType::Counter),
    ("postcall_backfill_legs", SampleType::Counter),
    ("postcall_backfill_truncated", SampleType::Counter),
    ("postcall_backfill_retrying", SampleType::Gauge),
    ("postcall_admin_open_connections", SampleType::Gauge),
    ("postcall_admin_accept_errors", SampleType::Counter),
    ("postcall_admin_refused", SampleType::Counter),
    ("postcall_source_subscribed", SampleType::Gauge),
    ("postcall_source_connect_attempts", SampleType::Counter),
    ("postcall_source_connections", SampleType::Counter),
    ("postcall_source_disconnects", SampleType::Counter),
    ("postcall_source_frames", SampleType::Counter),
    ("postcall_source_subscribe_errors", SampleType::Counter),
    ("postcall_source_keepalive_timeouts", SampleType::Counter),
    ("postcall_source_oversize_frames", SampleType::Counter),
    ("postcall_source_pings_skipped", SampleType::Counter),
    ("postcall_frames_skipped", SampleType::Counter),
    ("postcall_events", SampleType::Counter),
    ("postcall_events_duplicate", SampleType::Counter),
    ("postcall_events_late", SampleType::Counter),
    ("postcall_events_refused", SampleType::Counter),
    ("postcall_events_clamped", SampleType::Counter),
    ("postcall_sessions_closed", SampleType::Counter),
    ("postcall_open_sessions", SampleType::Gauge),
    ("postcall_open_legs", SampleType::Gauge),
    ("postcall_resync_ended_legs", SampleType::Counter),
    ("postcall_resync_failures", SampleType::Counter),
    ("postcall_ingest_truncated", SampleType::Counter),
    ("postcall_ingest_dropped_values", SampleType::Counter),
    ("postcall_ingest_refused_events", SampleType::Counter),
    ("postcall_backfill_legs_folded", SampleType::Counter),
    ("postcall_backfill_legs_skipped", SampleType::Counter),
    ("postcall_trigger_matches", SampleType::Counter),
    ("postcall_sessions_unmatched", SampleType::Counter),
    ("postcall_enqueue_errors", SampleType::Counter),
    ("postcall_trigger_reloads", SampleType::Counter),
    ("postcall_deliveries_enqueued", SampleType::Counter),
    ("postcall_delivery_attempts", SampleType::Counter),
    ("postcall_deliveries", SampleType::Counter),
    ("postcall_delivery_retries", SampleType::Counter),
    ("postcall_outbox_errors", SampleType::Counter),
    ("postcall_delivery_attempts_lost", SampleType::Counter),
    (
        "postcall_first_attempt_latency_seconds",
        SampleType::Histogram,
    ),
    ("postcall_delivery_attempt_seconds", SampleType::Histogram),
    ("postcall_attempt_log_entries", SampleType::Gauge),
    ("postcall_attempt_log_pruned", SampleType::Counter),
    ("postcall_outbox_pending", SampleType::Gauge),
    ("postcall_outbox_dead", SampleType::Gauge),
    ("postcall_journal_entries", SampleType::Gauge),
    ("postcall_journal_bytes", SampleType::Gauge),
    ("postcall_journal_pruned", SampleType::Counter),
    ("postcall_journal_prune_errors", SampleType::Counter),
];

/// `k="v",…` with OpenMetrics label names and quoted values (the values here need no escapes).
fn labels_ok(labels: &str) -> bool {
    labels.split(',').all(|kv| {
        kv.split_once('=').is_some_and(|(k, v)| {
            let mut k = k.chars();
            k.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && v.len() >= 2
                && v.starts_with('"')
                && v.ends_with('"')
                && !v[1..v.len() - 1].contains('"')
        })
    })
}

/// The samples a family of type `t` named `family` may carry.
fn sample_of(family: &str, t: SampleType, sample: &str) -> bool {
    let suffixes: &[&str] = match t {
        SampleType::Counter => &["_total"],
        SampleType::Histogram => &["_bucket", "_sum", "_count"],
        _ => &[""],
    };
    suffixes
        .iter()
        .any(|s| sample.strip_suffix(s) == Some(family))
}

/// Reads the exposition line by line with `prometheus-parse`, checking what it does not:
/// every line is a HELP, TYPE, UNIT or sample line, each family is declared once (HELP then
/// TYPE) before its samples, samples belong to the family above them and carry a number and
/// no timestamp, and the text ends with `# EOF`. Returns the declared families and the
/// parsed scrape.
fn parse(text: &str) -> (BTreeMap<String, SampleType>, Scrape) {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no final # EOF:\n{text}"));
    let mut families = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut current: Option<(String, SampleType)> = None;
    for line in body.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { metric_name, .. } => {
                assert!(helped.insert(metric_name.to_owned()), "HELP twice: {line}");
            }
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type,
            } => {
                let name = metric_alias.unwrap_or(metric_name);
                assert!(helped.contains(&name), "TYPE before HELP: {line}");
                assert!(
                    families.insert(name.clone(), sample_type).is_none(),
                    "declared twice: {line}"
                );
                current = Some((name, sample_type));
            }
            LineInfo::Sample {
                metric_name,
                labels,
                value,
                timestamp,
            } => {
                let (family, t) = current.as_ref().expect("a sample before any TYPE");
                assert!(
                    sample_of(family, *t, metric_name),
                    "{metric_name} outside its family {family}"
                );
                assert!(timestamp.is_none(), "timestamp: {line}");
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
                assert!(v >= 0.0, "negative: {line}");
                assert!(labels.is_none_or(labels_ok), "labels: {line}");
            }
            _ => {
                let unit = current.as_ref().map(|(f, _)| format!("# UNIT {f} seconds"));
                assert_eq!(Some(line.to_owned()), unit, "not exposition text");
            }
        }
    }
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    (families, scrape)
}

/// One sample's value by its sample name and labels (`k=v`, unquoted).
fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is no single value"),
    }
}

/// Served as OpenMetrics text, the whole exposition parses, declares exactly the families
/// listed above, and its values agree with what the run did: the lost DESTROY scenario
/// (one backfill lookup, one call delivered) and the marker frame (one skipped frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_exposition_parses_with_every_family() {
    let mut rig = Rig::new().await;
    let frames = postcall::sim::scenario("missing_destroy").unwrap();
    rig.cb
        .state
        .lock()
        .unwrap()
        .cdrs
        .add(postcall::sim::scenario_cdrs("missing_destroy").unwrap());
    let text: Vec<&str> = frames.iter().map(|f| f.text.as_str()).collect();
    let id = postcall::replay::replay_str(&text.join("\n"), Arc::new(Default::default()))
        .pop()
        .unwrap()
        .cdr
        .id;
    let run: Running = start(rig.config("lost_destroy_after_secs = 1")).await;
    rig.bh.wait_subscribed(1).await;
    push_all(&rig.bh, &run, &frames, 1).await;
    wait_delivered(&rig.rx, &run, std::slice::from_ref(&id)).await;

    let client = postcall::net::HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let req = hyper::Request::get(format!("http://{}/metrics", run.started.admin))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = client.send(req, Duration::from_secs(5)).await.unwrap();
    run.stop().await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(
        r.headers[hyper::header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = String::from_utf8(r.body.to_vec()).unwrap();

    let (families, scrape) = parse(&text);
    let want: BTreeMap<String, SampleType> = FAMILIES
        .iter()
        .map(|(n, t)| ((*n).to_owned(), *t))
        .collect();
    assert_eq!(families, want, "{text}");
    assert_eq!(value(&scrape, "postcall_backfill_lookups_total", None), 1.0);
    assert_eq!(
        value(
            &scrape,
            "postcall_frames_skipped_total",
            Some(("reason", "missing_call_id"))
        ),
        1.0
    );
    let delivered = value(
        &scrape,
        "postcall_deliveries_total",
        Some(("outcome", "delivered")),
    );
    assert_eq!(delivered, 1.0, "{text}");
    assert_eq!(value(&scrape, "postcall_open_sessions", None), 0.0);
    // Each histogram: cumulative buckets ending at +Inf with its count.
    for h in [
        "postcall_first_attempt_latency_seconds",
        "postcall_delivery_attempt_seconds",
    ] {
        let buckets = scrape
            .samples
            .iter()
            .find_map(|s| match &s.value {
                Value::Histogram(b) if s.metric == h => Some(b.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no buckets of {h}"));
        assert!(buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count));
        let last = buckets.last().unwrap();
        assert!(last.less_than.is_infinite());
        assert_eq!(last.count, value(&scrape, &format!("{h}_count"), None));
        assert!(last.count >= 1.0, "{h}: {text}");
    }
}

/// The checks above refuse what a broken encoder could write: each change to a valid
/// exposition (the run shell's and the journal's families) makes `parse` fail.
#[test]
fn a_malformed_exposition_is_refused() {
    let reg = postcall::run::metrics::Registry {
        run: Some(Arc::default()),
        journal: Some(Arc::default()),
        ..Default::default()
    };
    let good = reg.render();
    parse(&good);
    let broken = [
        good.replace("# EOF\n", ""),
        good.replace("{result=\"applied\"}", "{result=applied}"),
        good.replace("postcall_enqueue_errors_total 0", "postcall_enqueue_error_total 0"),
        good.replace("postcall_journal_entries 0", "postcall_journal_entries zero"),
        good.replace("postcall_journal_bytes 0", "postcall_journal_bytes 0 1700000000"),
        good.replace(
            "# HELP postcall_journal_bytes",
            "# HELP postcall_journal_entries x\n# TYPE postcall_journal_entries gauge\n# HELP postcall_journal_bytes",
        ),
        good.replace("# TYPE postcall_journal_pruned counter\n", ""),
    ];
    for text in broken {
        assert_ne!(text, good, "the change applies");
        let refused = std::panic::catch_unwind(|| parse(&text)).is_err();
        assert!(refused, "accepted:\n{text}");
    }
}

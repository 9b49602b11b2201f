//! The whole sidecar (`run::sidecar::run`) against a fake Blackhole and a real receiver on
//! 127.0.0.1: a scripted call mix with a receiver outage and a restart in the middle loses no
//! CDR; the admin endpoints; the demo.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use postcall::config::PluginConfig;
use postcall::run::sidecar::{self, RunOptions, Started};
use postcall::sim::{self, MixSpec, Pbx, DEMO_SEED};
use tokio::sync::oneshot;

use crate::servers::blackhole::Blackhole;
use crate::servers::http::{HttpServer, Reply};

pub(crate) const TOKEN: &str = "e2e-token";

pub(crate) fn accounts() -> Vec<String> {
    Pbx::demo(DEMO_SEED)
        .accounts
        .iter()
        .map(|a| a.id.clone())
        .collect()
}

/// A fake Blackhole serving the demo PBX's accounts to [`TOKEN`].
pub(crate) async fn demo_blackhole() -> Blackhole {
    let accts = accounts();
    let refs: Vec<&str> = accts.iter().map(String::as_str).collect();
    Blackhole::start(&[TOKEN], &refs).await
}

fn write_config(dir: &std::path::Path, ws: &str, receiver: &str) -> PluginConfig {
    write_config_with(dir, ws, &[&format!("{receiver}/calls")], "")
}

/// A configuration for the fake Blackhole at `ws`: one JSON trigger per tenant and receiver
/// URL (retries 10), `extra` appended (more sections).
pub(crate) fn write_config_with(
    dir: &std::path::Path,
    ws: &str,
    receivers: &[&str],
    extra: &str,
) -> PluginConfig {
    let accts = accounts();
    let mut triggers = String::new();
    for (r, url) in receivers.iter().enumerate() {
        for (n, a) in accts.iter().enumerate() {
            triggers.push_str(&format!(
                "[[trigger]]\nid = \"r{r}-{n}\"\ntenant = \"{a}\"\n[trigger.action]\nurl = \"{url}\"\nmethod = \"POST\"\nformat = \"json\"\nretries = 10\n\n"
            ));
        }
    }
    std::fs::write(dir.join("triggers.toml"), triggers).unwrap();
    let quoted: Vec<String> = accts.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[cdr]\ngrace_secs = 1\n[kazoo]\nwebsocket_url = \"{ws}\"\naccounts = [{}]\nauth_token = \"{TOKEN}\"\ndirectory_refresh_secs = 0\n\
         [triggers]\nfiles = [\"triggers.toml\"]\nallow_http = true\n{extra}\n",
        quoted.join(", ")
    );
    let text = if extra.contains("[delivery]") {
        text
    } else {
        format!("{text}[delivery]\ndata_dir = \"data\"\nallow_private = [\"127.0.0.1/32\"]\n")
    };
    let path = dir.join("plugin.toml");
    std::fs::write(&path, &text).unwrap();
    PluginConfig::load(&path).unwrap()
}

pub(crate) fn opts() -> RunOptions {
    RunOptions {
        admin: "127.0.0.1:0".parse().unwrap(),
        retry_unit: Some(Duration::from_millis(100)),
        stop_deadline: Duration::from_secs(5),
        ..RunOptions::default()
    }
}

pub(crate) struct Running {
    pub(crate) stop: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<anyhow::Result<sidecar::RunReport>>,
    pub(crate) started: Started,
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The `postcall` binary running `cfg` with its admin listener on `admin`; its log goes to
/// `postcall.log` beside the configuration.
pub(crate) fn spawn_binary(cfg: &PluginConfig, admin: std::net::SocketAddr) -> std::process::Child {
    let log = std::fs::File::create(cfg.file.with_file_name("postcall.log")).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
        .args([
            "run",
            "--config",
            cfg.file.to_str().unwrap(),
            "--admin",
            &admin.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The frames of a simulated mix and the ids of the sessions replay makes of them.
pub(crate) fn stream(calls: u64, seed: u64, gap_ms: u64) -> (Vec<String>, BTreeSet<String>) {
    let frames: Vec<String> = sim::mix(MixSpec {
        calls,
        seed,
        mean_gap_ms: gap_ms,
        ..MixSpec::default()
    })
    .map(|f| f.text)
    .collect();
    let ids = postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default()))
        .into_iter()
        .map(|c| c.cdr.id)
        .collect();
    (frames, ids)
}

pub(crate) async fn start(cfg: PluginConfig) -> Running {
    start_with(cfg, opts()).await
}

pub(crate) async fn start_with(cfg: PluginConfig, opts: RunOptions) -> Running {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(sidecar::run(cfg, opts, shutdown, Some(tx)));
    match rx.await {
        Ok(started) => Running {
            stop,
            task,
            started,
        },
        Err(_) => panic!("sidecar did not start: {:?}", task.await),
    }
}

impl Running {
    /// The running sidecar's outbox.
    pub(crate) fn outbox(&self) -> &std::sync::Arc<postcall::delivery::Outbox> {
        self.started
            .registry
            .engine
            .as_ref()
            .unwrap()
            .outbox()
            .embedded()
            .unwrap()
    }

    pub(crate) async fn stop(self) -> sidecar::RunReport {
        self.stop.cancel();
        self.task.await.unwrap().unwrap()
    }
}

pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client = postcall::net::HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &Default::default(),
    );
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = client.send(req, Duration::from_secs(5)).await.unwrap();
    (
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_restart_lose_no_cdr() {
    let mut bh = demo_blackhole().await;
    // The receiver is down (503) until told otherwise; it records every session id it accepts.
    let up = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let (u, g) = (up.clone(), got.clone());
    let rx = HttpServer::start(None, move |r| {
        if !u.load(Ordering::Relaxed) {
            return Reply::status(503);
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        g.lock()
            .unwrap()
            .push(v["cdr"]["id"].as_str().unwrap().to_owned());
        Reply::status(200)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &bh.url(), &rx.url());

    // 30 calls; the first half of the frames before the restart, the rest after.
    let frames: Vec<String> = sim::mix(MixSpec {
        calls: 30,
        seed: 11,
        mean_gap_ms: 3_000,
        faults: true,
        ..MixSpec::default()
    })
    .map(|f| f.text)
    .collect();
    let expected: BTreeSet<String> =
        postcall::replay::replay_str(&frames.join("\n"), Arc::new(Default::default()))
            .into_iter()
            .map(|c| c.cdr.id)
            .collect();
    assert_eq!(expected.len(), 30);
    let half = frames.len() / 2;

    let first = start(cfg.clone()).await;
    bh.wait_subscribed(1).await;
    for f in &frames[..half] {
        bh.push(f);
    }
    // Wait until the first half is in (a frame that cannot decode marks the end).
    bh.push(r#"{"action":"event","name":"CHANNEL_CREATE","data":{}}"#);
    let reg = first.started.registry.clone();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !reg
            .render()
            .contains("postcall_frames_skipped_total{reason=\"missing_call_id\"} 1")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("first half processed");
    drop(reg);
    let report = first.stop().await;
    assert!(
        report.saved_open > 0,
        "calls in progress were saved: {report:?}"
    );

    // Restart: the receiver comes back, the rest of the stream arrives on the new socket.
    let second = start(cfg).await;
    up.store(true, Ordering::Relaxed);
    bh.wait_subscribed(2).await;
    for f in &frames[half..] {
        bh.push(f);
    }
    let g = got.clone();
    let exp = expected.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let seen: BTreeSet<String> = g.lock().unwrap().iter().cloned().collect();
            if seen.is_superset(&exp) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let seen: BTreeSet<String> = got.lock().unwrap().iter().cloned().collect();
        panic!("lost: {:?}", exp.difference(&seen).collect::<Vec<_>>())
    });
    let (status, metrics) = get(second.started.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("postcall_outbox_dead 0"), "{metrics}");
    second.stop().await;
    let seen: BTreeSet<String> = got.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen, expected, "every CDR delivered, nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let mut bh = demo_blackhole().await;
    let rx = HttpServer::start(None, |_| Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &bh.url(), &rx.url());
    let run = start(cfg).await;
    let admin = run.started.admin;
    assert_eq!(get(admin, "/healthz").await.0, 200);
    bh.wait_subscribed(1).await;
    let mut status = run
        .started
        .registry
        .source
        .as_ref()
        .unwrap()
        .status
        .subscribe();
    status
        .wait_for(|s| *s == postcall::source::blackhole::SourceStatus::Subscribed)
        .await
        .unwrap();
    assert_eq!(get(admin, "/readyz").await, (200, "ready\n".into()));
    let (_, m) = get(admin, "/metrics").await;
    for name in [
        "postcall_source_subscribed 1",
        "postcall_events_total",
        // No frame skipped yet: the family is declared, under its OpenMetrics name.
        "# TYPE postcall_frames_skipped counter",
        "postcall_open_sessions",
        "postcall_sessions_closed_total{how=\"normal\"}",
        "postcall_deliveries_total{outcome=\"delivered\"}",
        "postcall_outbox_pending",
        "postcall_outbox_dead",
        "postcall_source_disconnects_total",
        "postcall_trigger_reloads_total{result=\"applied\"}",
        "postcall_first_attempt_latency_seconds_bucket{le=\"0.01\"}",
    ] {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }
    assert_eq!(get(admin, "/nope").await.0, 404);
    // Losing the PBX makes the process unready.
    bh.mute_all();
    bh.drop_all();
    status
        .wait_for(|s| *s != postcall::source::blackhole::SourceStatus::Subscribed)
        .await
        .unwrap();
    assert_eq!(get(admin, "/readyz").await.0, 503);
    run.stop().await;
}

/// The demo: a banner explaining the three triggers with the admin URL, then one readable
/// line per webhook whose trigger, method, status and ring/talk seconds are those of the
/// request received; every call's JSON webhook is signed; `--json` objects carry the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_delivers_signed_webhooks_for_every_call() {
    use postcall::run::demo::{Shown, Webhook};
    let banners = Arc::new(Mutex::new(Vec::<(String, usize)>::new()));
    let hooks = Arc::new(Mutex::new(Vec::<Webhook>::new()));
    let (b, h) = (banners.clone(), hooks.clone());
    let stopped = CancellationToken::new();
    let _stop = stopped.clone();
    let report = postcall::run::demo::demo(
        postcall::run::demo::DemoOptions {
            calls: Some(12),
            seed: 3,
            speed: 300.0,
            mean_gap_ms: 5_000,
            admin: "127.0.0.1:0".parse().unwrap(),
        },
        move |shown| match shown {
            Shown::Banner(text) => b
                .lock()
                .unwrap()
                .push((text.to_owned(), h.lock().unwrap().len())),
            Shown::Webhook(w) => h.lock().unwrap().push(w.clone()),
        },
        stopped,
    )
    .await
    .unwrap();
    assert!(report.calls >= 12);

    let banners = banners.lock().unwrap().clone();
    assert_eq!(banners.len(), 1, "one banner");
    let (banner, before) = &banners[0];
    assert_eq!(*before, 0, "the banner comes before the first webhook");
    let admin = regex::Regex::new(r"admin +http://127\.0\.0\.1:([0-9]+)/").unwrap();
    let port: u16 = admin.captures(banner).expect(banner)[1].parse().unwrap();
    assert_ne!(port, 0, "the bound port, not the requested 0");
    for (id, why) in [
        ("demo-calls", "every call"),
        (
            "demo-missed",
            "type = External AND dir in [Incoming, Both] AND ans = 0",
        ),
        ("demo-mine", "owned by one user"),
    ] {
        assert!(
            banner.contains(id) && banner.contains(why),
            "{id}: {banner}"
        );
    }

    let got = hooks.lock().unwrap().clone();
    assert_eq!(report.not_shown, 0);
    assert_eq!(
        got.len() as u64,
        report.webhooks,
        "every webhook received is shown"
    );
    let line_re = regex::Regex::new(
        r"^\d\d:\d\d:\d\d  (demo-(?:calls|missed|mine)-\d+) +(POST|PUT|GET) +200  (?:Unknown|Internal|Incoming|Outgoing|Both) .+ → .+, (?:answered|answered \(short\)|lost|abandoned|voicemail|lost in park|not answered), ring (\d+) s, talk (\d+) s(  signed)?$",
    )
    .unwrap();
    let wh = standardwebhooks::Webhook::new(postcall::run::demo::DEMO_SECRET).unwrap();
    let mut ids = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for w in &got {
        let r = &w.received;
        let line = w.line();
        let c = line_re.captures(&line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(&c[2], r.method.as_str(), "{line}");
        // The line's fields are the payload's, wherever the encoding put them.
        let fields: Vec<(String, String)> = if r.method == hyper::Method::GET {
            url::form_urlencoded::parse(r.uri.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect()
        } else if r.uri == "/missed" {
            url::form_urlencoded::parse(&r.body).into_owned().collect()
        } else {
            Vec::new()
        };
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let json = w.json();
        assert_eq!(json["status"], 200);
        if r.uri == "/calls" {
            wh.verify(&r.body, &r.headers).expect("signed");
            assert!(c.get(5).is_some(), "{line}");
            let v = &json["payload"];
            assert_eq!(v["customData"]["source"], "postcall demo");
            assert_eq!(&c[1], v["triggerId"].as_str().unwrap());
            assert_eq!(c[3], v["cdr"]["ring"].to_string(), "{line}");
            assert_eq!(c[4], v["cdr"]["talk"].to_string(), "{line}");
            assert!(
                ids.insert(v["cdr"]["id"].as_str().unwrap().to_owned()),
                "one webhook per call"
            );
        } else {
            assert_eq!(c[1], field("triggerId").unwrap(), "{line}");
            assert_eq!(c[3], field("cdr[ring]").unwrap(), "{line}");
            assert_eq!(c[4], field("cdr[talk]").unwrap(), "{line}");
            assert!(json["payload"].is_string(), "form and query as sent");
        }
        if r.uri == "/missed" {
            assert_eq!(field("cdr[type]").as_deref(), Some("2"));
            assert_eq!(field("cdr[ans]").as_deref(), Some("0"));
            assert!(
                matches!(field("cdr[dir]").as_deref(), Some("2" | "4")),
                "{line}"
            );
        }
        kinds.insert(c[1].rsplit_once('-').unwrap().0.to_owned());
    }
    assert!(ids.len() >= 12);
    assert!(
        kinds.contains("demo-calls") && kinds.len() >= 2,
        "{kinds:?}"
    );
}

//! `postcall demo`: the whole product on one machine with no PBX. A simulated Blackhole
//! (`sim::server`) streams a steady mix of realistic calls over a real websocket, the sidecar
//! ([`super::sidecar::run`]) is connected to it exactly as to a PBX, and an embedded receiver
//! prints every webhook it is sent.
//!
//! The demo's triggers, per tenant: every call as signed JSON (`POST /calls`), missed incoming
//! calls as form data (`PUT /missed`), and one user's calls as a GET query (`GET /mine?...`);
//! the banner explains them from the same table the trigger file is written from.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use super::receiver::{Received, Receiver, Reply};
use super::sidecar::{self, RunOptions};
use crate::config::PluginConfig;
use crate::sim::server::SimServer;
use crate::sim::{self, MixSpec, Pbx, DEMO_SEED};

const TOKEN: &str = "demo-token";
/// The demo's signing secret (a public test value; never use it for real).
pub const DEMO_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this many calls were delivered (`None`: until stopped).
    pub calls: Option<u64>,
    /// Seed of the call mix.
    pub seed: u64,
    /// Simulated time runs this many times faster than real time.
    pub speed: f64,
    /// Mean gap between call arrivals in simulated milliseconds.
    pub mean_gap_ms: u64,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// What the demo saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoReport {
    /// Webhooks received, all triggers.
    pub webhooks: u64,
    /// Calls delivered to the every-call trigger.
    pub calls: u64,
    /// Webhooks received but not shown because the output fell behind by [`SHOW_QUEUE`].
    pub not_shown: u64,
}

/// Received webhooks waiting to be shown, at most.
pub const SHOW_QUEUE: usize = 1024;

/// One of the demo's triggers (each tenant gets all three): what the banner says and what the
/// trigger file holds come from here.
struct DemoTrigger {
    /// Id prefix; the tenant's index is appended.
    id: &'static str,
    method: &'static str,
    /// Path and query on the receiver.
    path: &'static str,
    /// `[trigger.action]` lines besides url and method.
    action: &'static str,
    /// `filter = …` line, or empty.
    filter: &'static str,
    /// Owned by the tenant's first user.
    owned: bool,
    /// The banner's explanation: what it matches and why it is there.
    why: &'static str,
}

const TRIGGERS: [DemoTrigger; 3] = [
    DemoTrigger {
        id: "demo-calls",
        method: "POST",
        path: "/calls",
        action: "format = \"json\"\nretries = 3\nsecret = \"DEMO_SECRET\"\n[trigger.action.data]\nsource = \"postcall demo\"\n",
        filter: "",
        owned: false,
        why: "every call of the tenant (no filter): signed JSON, as a CRM or Zapier's Catch Hook takes it",
    },
    DemoTrigger {
        id: "demo-missed",
        method: "PUT",
        path: "/missed",
        action: "format = \"form\"\nretries = 1\n",
        filter: "filter = [{ field = \"type\", op = \"eq\", value = \"External\" }, { field = \"dir\", op = \"in\", value = [\"Incoming\", \"Both\"] }, { field = \"ans\", op = \"eq\", value = 0 }]\n",
        owned: false,
        why: "type = External AND dir in [Incoming, Both] AND ans = 0: calls from outside that nobody answered (lost, abandoned, voicemail), as form data",
    },
    DemoTrigger {
        id: "demo-mine",
        method: "GET",
        path: "/mine?api-version=2016-10-01&sig=demo",
        action: "retries = 1\n",
        filter: "",
        owned: true,
        why: "owned by one user: only the calls that user took part in, as a query merged into a Logic Apps-style URL (its sig kept)",
    },
];

fn trigger_file(pbx: &Pbx, receiver: SocketAddr) -> String {
    let mut t = String::new();
    for (n, a) in pbx.accounts.iter().enumerate() {
        for d in &TRIGGERS {
            let user = match (d.owned, a.users.first()) {
                (false, _) => String::new(),
                (true, Some(u)) => format!("user = \"{}\"\n", u.id),
                (true, None) => continue,
            };
            let _ = write!(
                t,
                "\n[[trigger]]\nid = \"{}-{n}\"\ntenant = \"{}\"\n{user}{}[trigger.action]\nurl = \"http://{receiver}{}\"\nmethod = \"{}\"\n{}",
                d.id,
                a.id,
                d.filter,
                d.path,
                d.method,
                d.action.replace("DEMO_SECRET", DEMO_SECRET),
            );
        }
    }
    t
}

/// What the demo prints first: where everything runs (the console and the admin URL), the
/// three triggers each tenant has and why, and how to read the lines below.
pub fn banner(pbx: &Pbx, sim: &str, receiver: SocketAddr, admin: SocketAddr) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "postcall demo: simulated Kazoo PBX → websocket → postcall → webhooks to an embedded receiver");
    let _ = writeln!(
        b,
        "  PBX       {sim} (simulated Blackhole, {} tenants)",
        pbx.accounts.len()
    );
    let _ = writeln!(b, "  receiver  http://{receiver}");
    let _ = writeln!(
        b,
        "  console   http://{admin}/console/  (open it: tenants → triggers, test a trigger, delivery log, live counters)"
    );
    let _ = writeln!(
        b,
        "  admin     http://{admin}/  (/metrics, /healthz, /readyz, /deliveries/dead, /cdrs)"
    );
    let _ = writeln!(b, "Triggers of each tenant N (ids end in -N):");
    for d in &TRIGGERS {
        let path = d.path.split('?').next().unwrap_or(d.path);
        let _ = writeln!(b, "  {:<12} {:<4} {:<8} {}", d.id, d.method, path, d.why);
    }
    if let Some(u) = pbx.accounts.first().and_then(|a| a.users.first()) {
        let _ = writeln!(
            b,
            "  (demo-mine-0 belongs to {} {}, extension {})",
            u.first_name, u.last_name, u.extension
        );
    }
    let _ = writeln!(b, "Each webhook: time, trigger, method, status, caller → answering party, outcome, ring and talk seconds (--json: the payloads).");
    b
}

fn config_text(pbx: &Pbx, sim: &str, data_dir: &Path) -> String {
    let accounts: Vec<String> = pbx
        .accounts
        .iter()
        .map(|a| format!("\"{}\"", a.id))
        .collect();
    format!(
        r#"[pbx]
id = "demo"
name = "postcall demo PBX"

[cdr]
grace_secs = 1

[kazoo]
websocket_url = "{sim}"
accounts = [{accounts}]
auth_token = "{TOKEN}"
directory_refresh_secs = 0

[delivery]
data_dir = "{dir}"
allow_private = ["127.0.0.1/32"]

# The simulated PBX has no Crossbar with stored CDRs to backfill from.
[backfill]
enabled = false

[triggers]
files = ["triggers.toml"]
allow_http = true
"#,
        accounts = accounts.join(", "),
        dir = data_dir.join("data").display(),
    )
}

/// One webhook the demo's receiver answered.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The request.
    pub received: Received,
    /// The status the receiver answered.
    pub status: u16,
    /// When it arrived (local time).
    pub at: chrono::DateTime<chrono::Local>,
}

impl Webhook {
    /// The payload's fields: the JSON body, else the form body or (GET) the query as pairs.
    fn payload(&self) -> Result<serde_json::Value, Vec<(String, String)>> {
        let r = &self.received;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            return Ok(v);
        }
        let form: &[u8] = if r.body.is_empty() {
            r.uri.split_once('?').map_or(&[][..], |(_, q)| q.as_bytes())
        } else {
            &r.body
        };
        Err(url::form_urlencoded::parse(form).into_owned().collect())
    }

    /// `14:02:31  demo-missed-1  PUT  200  Incoming +44… → Sam Jones (204), lost, ring 25 s, talk 0 s`
    pub fn line(&self) -> String {
        let (trigger, summary) = match self.payload() {
            Ok(v) => (
                v["triggerId"].as_str().unwrap_or("?").to_owned(),
                crate::summary::of_json(&v["cdr"]),
            ),
            Err(pairs) => (
                pairs
                    .iter()
                    .find(|(k, _)| k == "triggerId")
                    .map_or("?".into(), |(_, v)| v.clone()),
                crate::summary::of_pairs(&pairs),
            ),
        };
        let signed = if self.received.header("webhook-signature").is_some() {
            "  signed"
        } else {
            ""
        };
        format!(
            "{}  {trigger:<14} {:<4} {}  {summary}{signed}",
            self.at.format("%H:%M:%S"),
            self.received.method.as_str(),
            self.status
        )
    }

    /// The webhook as one JSON object: time, method, URI, status, content type and the
    /// payload (parsed JSON, or the form/query text as sent).
    pub fn json(&self) -> serde_json::Value {
        let r = &self.received;
        let payload = match self.payload() {
            Ok(v) => v,
            Err(_) if r.body.is_empty() => {
                serde_json::Value::String(r.uri.split_once('?').map_or("", |(_, q)| q).to_owned())
            }
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned()),
        };
        serde_json::json!({
            "time": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "method": r.method.as_str(),
            "uri": r.uri,
            "status": self.status,
            "contentType": r.header("content-type"),
            "webhookId": r.header("webhook-id"),
            "payload": payload,
        })
    }
}

/// What the demo shows.
#[derive(Debug, Clone, Copy)]
pub enum Shown<'a> {
    /// Everything is up: the [`banner`].
    Banner(&'a str),
    /// One webhook was received and answered.
    Webhook(&'a Webhook),
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo until `opts.calls` calls were delivered or `stop` turns true; the banner
/// (once the sidecar runs) and every webhook are passed to `show`.
///
/// # Errors
/// A listener cannot be bound, or the sidecar fails to start.
pub async fn demo(
    opts: DemoOptions,
    show: impl Fn(Shown<'_>) + Send + Sync + 'static,
    stop: CancellationToken,
) -> anyhow::Result<DemoReport> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        Scratch(std::env::temp_dir().join(format!("postcall-demo-{}-{stamp}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;

    let pbx = Pbx::demo(DEMO_SEED);
    let frames = sim::mix(MixSpec {
        calls: opts.calls.map_or(u64::MAX / 4, |c| c),
        seed: opts.seed,
        mean_gap_ms: opts.mean_gap_ms,
        start_us: crate::clock::WallTime::now().as_us(),
        ..MixSpec::default()
    });
    let server = SimServer::start(TOKEN, frames, opts.speed).await?;

    let webhooks = Arc::new(AtomicU64::new(0));
    let not_shown = Arc::new(AtomicU64::new(0));
    let (calls_tx, mut calls_rx) = watch::channel(0u64);
    // Webhooks are shown by this task, after the banner, in the order received; a printer
    // that falls behind by a whole queue loses lines (counted), never deliveries.
    let (hooks_tx, mut hooks_rx) = tokio::sync::mpsc::channel::<Webhook>(SHOW_QUEUE);
    let (w, lost, calls_tx) = (webhooks.clone(), not_shown.clone(), Arc::new(calls_tx));
    let receiver = Receiver::start(None, move |r| {
        w.fetch_add(1, Ordering::Relaxed);
        if r.uri.starts_with("/calls") {
            calls_tx.send_modify(|n| *n += 1);
        }
        let reply = Reply::status(200);
        let hook = Webhook {
            received: r,
            status: reply.status.as_u16(),
            at: chrono::Local::now(),
        };
        if hooks_tx.try_send(hook).is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
        reply.into()
    })
    .await?;
    let addr = receiver.addr;

    std::fs::write(dir.0.join("triggers.toml"), trigger_file(&pbx, addr))?;
    let cfg_path = dir.0.join("plugin.toml");
    let cfg = PluginConfig::from_toml_str(&config_text(&pbx, &server.url(), &dir.0), &cfg_path)?;
    let shutdown = stop.child_token();
    let run_opts = RunOptions {
        admin: opts.admin,
        retry_unit: Some(Duration::from_millis(250)),
        stop_deadline: Duration::from_secs(5),
        ..RunOptions::default()
    };
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let mut sidecar = tokio::spawn(sidecar::run(
        cfg,
        run_opts,
        shutdown.clone(),
        Some(started_tx),
    ));
    if let Ok(s) = started.await {
        show(Shown::Banner(&banner(&pbx, &server.url(), addr, s.admin)));
    }

    let target = opts.calls;
    let ended_early = loop {
        tokio::select! {
            Some(h) = hooks_rx.recv() => show(Shown::Webhook(&h)),
            _ = calls_rx.wait_for(|n| target.is_some_and(|t| *n >= t)) => break None,
            () = stop.cancelled() => break None,
            r = &mut sidecar => break Some(r),
        }
    };
    match ended_early {
        Some(r) => {
            r??;
            anyhow::bail!("the sidecar stopped on its own");
        }
        None => {
            shutdown.cancel();
            sidecar.await??;
        }
    }
    drop(receiver);
    while let Ok(h) = hooks_rx.try_recv() {
        show(Shown::Webhook(&h));
    }
    let calls = *calls_rx.borrow();
    Ok(DemoReport {
        webhooks: webhooks.load(Ordering::Relaxed),
        calls,
        not_shown: not_shown.load(Ordering::Relaxed),
    })
}

//! `postcall demo`: the whole product on one machine with no PBX. A simulated Blackhole
//! (`sim::server`) streams a steady mix of realistic calls over a real websocket, the sidecar
//! ([`super::sidecar::run`]) is connected to it exactly as to a PBX, and an embedded receiver
//! prints every webhook it is sent.
//!
//! The demo's triggers, per tenant: every call as signed JSON (`POST /calls`), missed calls as
//! form data (`PUT /missed`), and one user's calls as a GET query (`GET /mine?...`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use super::receiver::{self, Received};
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
}

fn trigger_file(pbx: &Pbx, receiver: SocketAddr) -> String {
    let mut t = String::new();
    for (n, a) in pbx.accounts.iter().enumerate() {
        let _ = write!(
            t,
            r#"
[[trigger]]
id = "demo-calls-{n}"
tenant = "{tenant}"
[trigger.action]
url = "http://{receiver}/calls"
method = "POST"
format = "json"
retries = 3
secret = "{DEMO_SECRET}"
[trigger.action.data]
source = "postcall demo"

[[trigger]]
id = "demo-missed-{n}"
tenant = "{tenant}"
filter = [{{ field = "type", op = "eq", value = "External" }}, {{ field = "ans", op = "eq", value = 0 }}]
[trigger.action]
url = "http://{receiver}/missed"
method = "PUT"
format = "form"
retries = 1
"#,
            tenant = a.id
        );
        if let Some(u) = a.users.first() {
            let _ = write!(
                t,
                r#"
[[trigger]]
id = "demo-mine-{n}"
tenant = "{tenant}"
user = "{user}"
[trigger.action]
url = "http://{receiver}/mine?api-version=2016-10-01&sig=demo"
method = "GET"
retries = 1
"#,
                tenant = a.id,
                user = u.id
            );
        }
    }
    t
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

[triggers]
files = ["triggers.toml"]
allow_http = true
"#,
        accounts = accounts.join(", "),
        dir = data_dir.join("data").display(),
    )
}

/// A line describing a received webhook: method, path and body (JSON, form data, or for GET
/// the query).
pub fn describe(r: &Received) -> String {
    let body = String::from_utf8_lossy(&r.body);
    format!("{} {} {}", r.method, r.uri, body)
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo until `opts.calls` calls were delivered or `stop` turns true; every webhook
/// is passed to `print`.
///
/// # Errors
/// A listener cannot be bound, or the sidecar fails to start.
pub async fn demo(
    opts: DemoOptions,
    print: impl Fn(&Received) + Send + Sync + 'static,
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
        start_us: crate::source::blackhole::now_us(),
        ..MixSpec::default()
    });
    let server = SimServer::start(TOKEN, frames, opts.speed).await?;

    let webhooks = Arc::new(AtomicU64::new(0));
    let (calls_tx, mut calls_rx) = watch::channel(0u64);
    let (w, calls_tx) = (webhooks.clone(), Arc::new(calls_tx));
    let (addr, receiver_task) = receiver::start(move |r| {
        w.fetch_add(1, Ordering::Relaxed);
        if r.uri.starts_with("/calls") {
            calls_tx.send_modify(|n| *n += 1);
        }
        print(&r);
    })
    .await?;

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
    let mut sidecar = tokio::spawn(sidecar::run(cfg, run_opts, shutdown.clone(), None));

    let target = opts.calls;
    let ended_early = tokio::select! {
        _ = calls_rx.wait_for(|n| target.is_some_and(|t| *n >= t)) => None,
        () = stop.cancelled() => None,
        r = &mut sidecar => Some(r),
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
    receiver_task.abort();
    let calls = *calls_rx.borrow();
    Ok(DemoReport {
        webhooks: webhooks.load(Ordering::Relaxed),
        calls,
    })
}

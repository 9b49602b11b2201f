//! Wires the live Kazoo input together: TLS and HTTP clients, the token source, descendant
//! discovery, the Blackhole client task, the directory refresher and the channel fetch used
//! by resyncs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::driver::ChannelFetch;
use crate::clock::WallTime;
use crate::net::http::HttpOptions;
use crate::net::{tls, HttpClient, TlsError};
use crate::session::{Settings, TenantSettings};
use crate::source::auth::{Auth, Credentials};
use crate::source::backoff::Backoff;
use crate::source::blackhole::{self, BlackholeOptions, SourceCounters, SourceMsg};
use crate::source::crossbar::Crossbar;
use crate::source::directory::{self, DirectorySnapshot};

/// Everything needed to listen to one Kazoo cluster.
#[derive(Debug, Clone)]
pub struct KazooOptions {
    /// Blackhole URL (`ws://…:5555/` or `wss://…`).
    pub websocket_url: String,
    /// Crossbar URL (`http[s]://…:8000`); needed for API keys, names and resyncs.
    pub crossbar_url: Option<String>,
    /// Static token or API key.
    pub credentials: Credentials,
    /// Accounts to subscribe.
    pub accounts: Vec<String>,
    /// Also subscribe every descendant of `accounts` (read once at start).
    pub discover_descendants: bool,
    /// Bindings per account.
    pub bindings: Vec<String>,
    /// Directory refresh period (`None`: no directory).
    pub directory_refresh: Option<Duration>,
    /// Websocket ping interval.
    pub ping_interval: Duration,
    /// Pong deadline.
    pub pong_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Connect and subscribe deadline, and the Crossbar request deadline.
    pub request_timeout: Duration,
    /// Extra CA certificate (PEM) for a private PBX CA.
    pub ca_file: Option<PathBuf>,
    /// Renew exchanged tokens this long before they expire.
    pub token_refresh_before: Duration,
    /// Size of the frame channel into the assembler.
    pub channel_capacity: usize,
    /// Largest websocket message accepted (1 MiB).
    pub max_frame_bytes: usize,
}

impl KazooOptions {
    /// Options with the defaults for everything but the URL, credentials and accounts.
    pub fn new(websocket_url: &str, credentials: Credentials, accounts: Vec<String>) -> Self {
        Self {
            websocket_url: websocket_url.into(),
            crossbar_url: None,
            credentials,
            accounts,
            discover_descendants: false,
            bindings: vec!["call.*.*".into()],
            directory_refresh: Some(Duration::from_secs(900)),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            ca_file: None,
            token_refresh_before: Duration::from_secs(300),
            channel_capacity: 8192,
            max_frame_bytes: 1 << 20,
        }
    }
}

/// Why the live source could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Descendant discovery failed.
    #[error("discovering descendant accounts: {0}")]
    Discovery(String),
}

/// A started live source.
pub struct LiveSource {
    /// Frames and connection changes, for [`crate::run::driver::drive`].
    pub messages: mpsc::Receiver<SourceMsg>,
    /// Settings with the directory applied, refreshed periodically.
    pub settings: watch::Receiver<Arc<Settings>>,
    /// Accounts subscribed (configured plus discovered).
    pub accounts: Vec<String>,
    /// Channel fetch for resyncs (when Crossbar is configured).
    pub channels: Option<ChannelFetch>,
    /// Crossbar with the source's credentials (when configured), for reading stored CDRs.
    pub crossbar: Option<(Crossbar, Arc<Auth>)>,
    /// Source counters.
    pub counters: Arc<SourceCounters>,
    /// The tasks (the Blackhole client, the directory refresher).
    pub tasks: Vec<JoinHandle<()>>,
}

/// `base` with the directory applied: names, and the account time zone for accounts the
/// configuration gives no tenant entry of its own.
pub fn with_directory(base: &Settings, snap: &DirectorySnapshot) -> Settings {
    let mut s = base.clone();
    s.directory = snap.directory.clone();
    for (account, info) in &snap.accounts {
        if s.tenants.contains_key(account) {
            continue;
        }
        if let Some(tz) = info.timezone.as_deref().and_then(|t| t.parse().ok()) {
            s.tenants.insert(
                account.clone(),
                TenantSettings {
                    tz,
                    ..base.default_tenant.clone()
                },
            );
        }
    }
    s
}

/// The Crossbar client (when `crossbar_url` is set) and the token source of `opts`.
pub fn crossbar_and_auth(
    opts: &KazooOptions,
    tls: Arc<rustls::ClientConfig>,
) -> (Option<Crossbar>, Arc<Auth>) {
    let http = HttpClient::new(tls, &HttpOptions::default());
    let crossbar = opts
        .crossbar_url
        .as_deref()
        .map(|u| Crossbar::new(u, http, opts.request_timeout));
    let auth = Auth::new(
        opts.credentials.clone(),
        crossbar.clone(),
        opts.token_refresh_before,
        Duration::from_secs(3600),
    );
    (crossbar, auth)
}

/// Starts the live source.
///
/// # Errors
/// A bad CA file, or descendant discovery failing at start.
pub async fn start(
    opts: KazooOptions,
    base: Arc<Settings>,
    shutdown: CancellationToken,
) -> Result<LiveSource, StartError> {
    let tls = tls::client_config(opts.ca_file.as_deref())?;
    let (crossbar, auth) = crossbar_and_auth(&opts, tls.clone());

    let mut accounts = opts.accounts.clone();
    if opts.discover_descendants {
        let cb = crossbar
            .as_ref()
            .ok_or_else(|| StartError::Discovery("needs the Crossbar URL".into()))?;
        let token = auth
            .token(WallTime::now())
            .await
            .map_err(|e| StartError::Discovery(e.to_string()))?;
        for a in &opts.accounts {
            let found = directory::descendants(cb, &token, a)
                .await
                .map_err(|e| StartError::Discovery(e.to_string()))?;
            for d in found {
                if !accounts.contains(&d) {
                    accounts.push(d);
                }
            }
        }
    }

    let counters = Arc::new(SourceCounters::default());
    let (tx, messages) = mpsc::channel(opts.channel_capacity.max(1));
    let (settings_tx, settings) = watch::channel(base.clone());
    let mut tasks = Vec::new();
    let bh = BlackholeOptions {
        url: opts.websocket_url.clone(),
        accounts: accounts.clone(),
        bindings: opts.bindings.clone(),
        ping_interval: opts.ping_interval,
        pong_timeout: opts.pong_timeout,
        connect_timeout: opts.request_timeout,
        subscribe_timeout: opts.request_timeout,
        backoff: opts.backoff,
        tls,
        max_frame_bytes: opts.max_frame_bytes,
    };
    tasks.push(tokio::spawn(blackhole::run(
        bh,
        auth.clone(),
        tx,
        shutdown.clone(),
        counters.clone(),
    )));

    let crossbar_auth = crossbar.clone().map(|cb| (cb, auth.clone()));
    let channels = crossbar.clone().map(|cb| {
        let (auth, accounts) = (auth.clone(), accounts.clone());
        let fetch: ChannelFetch = Arc::new(move || {
            let (cb, auth, accounts) = (cb.clone(), auth.clone(), accounts.clone());
            Box::pin(async move {
                let token = auth
                    .token(WallTime::now())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut active = HashSet::new();
                for a in &accounts {
                    active.extend(
                        directory::active_channels(&cb, &token, a)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok(active)
            })
        });
        fetch
    });

    if let (Some(cb), Some(every)) = (crossbar, opts.directory_refresh) {
        let (auth, accounts, shutdown) = (auth.clone(), accounts.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                match auth.token(WallTime::now()).await {
                    Ok(token) => match directory::fetch_directory(&cb, &token, &accounts).await {
                        Ok(snap) => {
                            tracing::info!(
                                devices = snap.directory.devices.len(),
                                users = snap.directory.users.len(),
                                "directory refreshed"
                            );
                            let _ = settings_tx.send(Arc::new(with_directory(&base, &snap)));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "directory refresh failed; keeping the previous one");
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "directory refresh: no token"),
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }));
    }

    Ok(LiveSource {
        messages,
        settings,
        accounts,
        channels,
        crossbar: crossbar_auth,
        counters,
        tasks,
    })
}

//! The live trigger set: an `ArcSwap<TriggerSet>` and the task that replaces it.
//!
//! Every change — a watched file, SIGHUP, a request, or a new remote document — builds a
//! complete new set off to the side from **all** sources (every file re-read, plus the latest
//! remote document) and publishes it with one `store`. Readers `load()` once per session and
//! see either the old set or the new one, never a mix. If anything is invalid the new set is
//! discarded, the running one stays, and every problem is logged with origin, trigger id and
//! field path (and kept in [`ReloadStatus::last_error`]). The set is all-or-nothing on
//! purpose: a half-applied edit across two files is worse than a delayed one.
//!
//! **File watching** polls each file's metadata (size, modification time, inode) every
//! `watch` interval and rebuilds only when the content hash differs. Polling was chosen over
//! inotify (`notify`): it sees editors' write-and-rename, Kubernetes ConfigMap symlink swaps
//! and network file systems alike, needs no extra dependency, and costs one `stat` per file
//! per interval. Write files by renaming a complete temporary file into place; a half-written
//! file is usually rejected and picked up again once complete.
//!
//! **Remote**: fetched once at start, then every `refresh` (default 10 minutes, as the seed's
//! cache); a failed fetch is retried after `retry` (default 30 s) and keeps the last document.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use super::file::{
    build_set, parse_document, BuildOptions, DocFormat, TriggerError, TriggerErrors,
};
use super::model::TriggerSet;
use super::remote::{Fetched, TriggerFetcher, Validators};

/// The live set, shared with every reader.
pub type SharedTriggers = Arc<ArcSwap<TriggerSet>>;

/// Default remote refresh interval (the seed's "up to 10 minutes").
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
/// Default wait before retrying a failed remote fetch.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// Default file watch interval.
pub const DEFAULT_WATCH: Duration = Duration::from_secs(2);

/// Where triggers come from.
#[derive(Clone, Debug, Default)]
pub struct TriggerSources {
    /// Trigger files (TOML).
    pub files: Vec<PathBuf>,
    /// Options applied to every trigger.
    pub build: BuildOptions,
    /// File watch interval; `None` = no watching (SIGHUP and requests still reload).
    pub watch: Option<Duration>,
    /// Remote refresh interval.
    pub refresh: Duration,
    /// Wait before retrying a failed remote fetch.
    pub retry: Duration,
    /// Reload on SIGHUP.
    pub sighup: bool,
}

impl TriggerSources {
    /// Files only, with the default intervals and SIGHUP on.
    pub fn files(files: Vec<PathBuf>) -> Self {
        Self {
            files,
            build: BuildOptions::default(),
            watch: Some(DEFAULT_WATCH),
            refresh: DEFAULT_REFRESH,
            retry: DEFAULT_RETRY,
            sighup: true,
        }
    }
}

/// What caused a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadCause {
    /// The initial build.
    Start,
    /// A watched file changed.
    FileChange,
    /// SIGHUP.
    Signal,
    /// An explicit request ([`Reloader::reload`] or the request channel).
    Request,
    /// A new remote document.
    Remote,
    /// The console's triggers changed.
    Console,
}

/// Progress of the reloader, published on a watch channel (tests and health checks wait on it).
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    /// Sets published so far (the initial one is 1).
    pub generation: u64,
    /// Rebuilds rejected so far.
    pub rejected: u64,
    /// Remote polls answered (200 or 304).
    pub remote_polls: u64,
    /// Remote polls that failed.
    pub remote_failures: u64,
    /// Why the last rejected rebuild was rejected (cleared by the next successful one).
    pub last_error: Option<Arc<TriggerErrors>>,
    /// The run loop is up (signal handler installed, watching).
    pub running: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
    })
}

#[derive(Default)]
struct State {
    /// Per file: metadata and content hash as of the last build attempt.
    seen: Vec<(Option<Fingerprint>, Option<u64>)>,
    /// The latest remote document (text, format, origin).
    remote: Option<(String, DocFormat, String)>,
    /// Triggers managed in the console (validated when they were saved).
    console: Vec<super::model::Trigger>,
}

/// Owns the live set and rebuilds it.
pub struct Reloader {
    shared: SharedTriggers,
    sources: TriggerSources,
    state: Mutex<State>,
    status: watch::Sender<ReloadStatus>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("sources", &self.sources)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

fn read_error(path: &std::path::Path, e: &std::io::Error) -> TriggerError {
    TriggerError {
        origin: path.display().to_string(),
        trigger_id: None,
        path: String::new(),
        message: format!("cannot read: {e}"),
    }
}

/// Builds a set from files alone (what `postcall check` validates).
///
/// # Errors
/// Every problem in every file.
pub fn build_from_files(sources: &TriggerSources) -> Result<TriggerSet, TriggerErrors> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for path in &sources.files {
        match std::fs::read_to_string(path) {
            Ok(text) => match parse_document(
                &text,
                &path.display().to_string(),
                DocFormat::Toml,
                sources.build,
            ) {
                Ok(d) => docs.push(d),
                Err(e) => errors.extend(e.0),
            },
            Err(e) => errors.push(read_error(path, &e)),
        }
    }
    if !errors.is_empty() {
        return Err(TriggerErrors(errors));
    }
    build_set(docs)
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Reloader {
    /// Builds the initial set from the files.
    ///
    /// # Errors
    /// Every problem in every file; there is no previous set to fall back on.
    pub fn new(sources: TriggerSources) -> Result<Arc<Self>, TriggerErrors> {
        let reloader = Arc::new(Self {
            shared: Arc::new(ArcSwap::from_pointee(TriggerSet::default())),
            state: Mutex::new(State {
                seen: vec![(None, None); sources.files.len()],
                remote: None,
                console: Vec::new(),
            }),
            sources,
            status: watch::channel(ReloadStatus::default()).0,
        });
        reloader.rebuild(ReloadCause::Start, true)?;
        Ok(reloader)
    }

    /// The live set, for readers (`shared().load()` once per session).
    pub fn shared(&self) -> SharedTriggers {
        self.shared.clone()
    }

    /// The current set.
    pub fn current(&self) -> Arc<TriggerSet> {
        self.shared.load_full()
    }

    /// A receiver of [`ReloadStatus`] updates.
    pub fn status(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    /// Rebuilds from every source now (as SIGHUP does).
    ///
    /// # Errors
    /// The problems that kept the previous set in place.
    pub fn reload(&self) -> Result<(), TriggerErrors> {
        self.rebuild(ReloadCause::Request, true).map(drop)
    }

    /// Makes `text` the remote document and rebuilds.
    ///
    /// # Errors
    /// The problems that kept the previous set in place.
    pub fn set_remote(
        &self,
        text: String,
        format: DocFormat,
        origin: String,
    ) -> Result<(), TriggerErrors> {
        self.lock().remote = Some((text, format, origin));
        self.rebuild(ReloadCause::Remote, true).map(drop)
    }

    /// Makes `triggers` the console's triggers (one more source, merged into the same set)
    /// and rebuilds. When the new set is rejected (an id also defined elsewhere) the
    /// previous console triggers stay, as does the running set. Blocking (files are re-read).
    ///
    /// # Errors
    /// The problems that kept the previous set in place.
    pub fn set_console(&self, triggers: Vec<super::model::Trigger>) -> Result<(), TriggerErrors> {
        let old = std::mem::replace(&mut self.lock().console, triggers);
        let r = self.rebuild(ReloadCause::Console, true).map(drop);
        if r.is_err() {
            self.lock().console = old;
        }
        r
    }

    /// The build options every source is validated with (the console validates with them
    /// too).
    pub fn build_options(&self) -> BuildOptions {
        self.sources.build
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while building leaves the state consistent (it is only replaced whole).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rebuilds if a watched file changed (by content). Returns whether it rebuilt.
    fn rebuild_if_changed(&self) -> Result<bool, TriggerErrors> {
        let changed = {
            let st = self.lock();
            self.sources
                .files
                .iter()
                .zip(&st.seen)
                .any(|(p, (fp, _))| fingerprint(p) != *fp)
        };
        if !changed {
            return Ok(false);
        }
        // `force = false`: only a different content rebuilds (a `touch` does not).
        self.rebuild(ReloadCause::FileChange, false)
    }

    /// Builds a complete set from every source and stores it, or keeps the old one.
    /// Holds the state lock throughout, so concurrent rebuilds publish in order.
    fn rebuild(&self, cause: ReloadCause, force: bool) -> Result<bool, TriggerErrors> {
        let mut st = self.lock();
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        let mut content_changed = false;
        for (i, path) in self.sources.files.iter().enumerate() {
            // Fingerprint before reading: a write after this point is seen next time.
            let fp = fingerprint(path);
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let h = hash(&text);
                    content_changed |= st.seen[i].1 != Some(h);
                    st.seen[i] = (fp, Some(h));
                    match parse_document(
                        &text,
                        &path.display().to_string(),
                        DocFormat::Toml,
                        self.sources.build,
                    ) {
                        Ok(d) => docs.push(d),
                        Err(e) => errors.extend(e.0),
                    }
                }
                Err(e) => {
                    content_changed |= st.seen[i].1.is_some();
                    st.seen[i] = (fp, None);
                    errors.push(read_error(path, &e));
                }
            }
        }
        if !force && !content_changed {
            return Ok(false);
        }
        if let Some((text, format, origin)) = &st.remote {
            match parse_document(text, origin, *format, self.sources.build) {
                Ok(d) => docs.push(d),
                Err(e) => errors.extend(e.0),
            }
        }
        if !st.console.is_empty() {
            docs.push(st.console.clone());
        }
        let built = if errors.is_empty() {
            build_set(docs)
        } else {
            Err(TriggerErrors(errors))
        };
        match built {
            Ok(set) => {
                let n = set.len();
                self.shared.store(Arc::new(set));
                self.status.send_modify(|s| {
                    s.generation += 1;
                    s.last_error = None;
                });
                tracing::info!(cause = ?cause, triggers = n, "Trigger set replaced.");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(cause = ?cause, problems = e.0.len(), errors = %e, "Trigger change rejected; the previous set stays in use.");
                let shared = Arc::new(e.clone());
                self.status.send_modify(|s| {
                    s.rejected += 1;
                    s.last_error = Some(shared);
                });
                Err(e)
            }
        }
    }

    fn rebuild_logged(self: &Arc<Self>, cause: ReloadCause) {
        // Rejections are logged and published by `rebuild`.
        let _ = match cause {
            ReloadCause::FileChange => self.rebuild_if_changed(),
            _ => self.rebuild(cause, true),
        };
    }

    /// Fetches the remote document once and applies it. Returns whether the fetch succeeded.
    async fn poll_remote<F: TriggerFetcher>(
        self: &Arc<Self>,
        fetcher: &F,
        validators: &mut Validators,
    ) -> bool {
        match fetcher.fetch(validators).await {
            Ok(Fetched::NotModified) => {
                self.status.send_modify(|s| s.remote_polls += 1);
                true
            }
            Ok(Fetched::New {
                body,
                format,
                validators: v,
            }) => {
                *validators = v;
                let me = self.clone();
                let origin = fetcher.origin();
                let _ =
                    tokio::task::spawn_blocking(move || me.set_remote(body, format, origin)).await;
                self.status.send_modify(|s| s.remote_polls += 1);
                true
            }
            Err(e) => {
                tracing::warn!(origin = %fetcher.origin(), error = %e, "Remote trigger fetch failed; keeping the last document.");
                self.status.send_modify(|s| s.remote_failures += 1);
                false
            }
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped): watches the files, listens
    /// for SIGHUP and `requests`, and polls `fetcher` (first poll at once).
    pub async fn run<F: TriggerFetcher>(
        self: Arc<Self>,
        fetcher: Option<F>,
        mut requests: mpsc::Receiver<()>,
        shutdown: CancellationToken,
    ) {
        let mut hup = if self.sources.sighup {
            Hangup::listen()
        } else {
            None
        };
        let mut watch_tick = self.sources.watch.map(|d| {
            let mut i = tokio::time::interval(d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut validators = Validators::default();
        let next_poll = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(next_poll);
        let mut requests_open = true;
        self.status.send_modify(|s| s.running = true);
        loop {
            let cause = tokio::select! {
                () = shutdown.cancelled() => break,
                () = async {
                    if let Some(t) = watch_tick.as_mut() { t.tick().await; }
                }, if watch_tick.is_some() => Some(ReloadCause::FileChange),
                r = requests.recv(), if requests_open => match r {
                    Some(()) => Some(ReloadCause::Request),
                    None => { requests_open = false; continue }
                },
                () = hangup(&mut hup) => Some(ReloadCause::Signal),
                () = &mut next_poll, if fetcher.is_some() => None,
            };
            match (cause, fetcher.as_ref()) {
                (Some(cause), _) => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.rebuild_logged(cause)).await;
                }
                (None, Some(f)) => {
                    let ok = self.poll_remote(f, &mut validators).await;
                    let wait = if ok {
                        self.sources.refresh
                    } else {
                        self.sources.retry.min(self.sources.refresh)
                    };
                    next_poll.as_mut().reset(tokio::time::Instant::now() + wait);
                }
                (None, None) => {}
            }
        }
        self.status.send_modify(|s| s.running = false);
    }
}

/// SIGHUP, where the platform has it.
#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;

/// Nothing to listen to elsewhere.
#[cfg(not(unix))]
struct Hangup;

trait Listen: Sized {
    fn listen() -> Option<Self>;
}

#[cfg(unix)]
impl Listen for Hangup {
    fn listen() -> Option<Self> {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload on signal is off.");
                None
            }
        }
    }
}

#[cfg(not(unix))]
impl Listen for Hangup {
    fn listen() -> Option<Self> {
        None
    }
}

/// Resolves on the next SIGHUP; never without a listener.
async fn hangup(hup: &mut Option<Hangup>) {
    #[cfg(unix)]
    if let Some(h) = hup.as_mut() {
        if h.recv().await.is_some() {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = hup;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests;

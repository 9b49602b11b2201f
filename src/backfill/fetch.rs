//! The backfill task: gap windows in, Kazoo's stored leg CDRs out, paced and retried.
//!
//! For each window (windows queued meanwhile that touch it are merged), after a settle delay
//! (Kazoo stores a leg's CDR a moment after its DESTROY) it pages through every subscribed
//! account's CDR listing, collects the interactions (the interaction id, or the call id of a
//! leg without one) and fetches each interaction's legs, which it hands to the driver as
//! they come. Every request waits its turn (`requests_per_sec`); a request that fails in a way
//! that may pass (connection, timeout, 5xx, 429) is retried with jittered backoff until
//! `give_up_after`; one that cannot pass (a refused token, a 4xx) gives the window up. The
//! driver keeps ingesting throughout: this task only ever talks to it through a bounded
//! channel.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::window::Window;
use crate::source::backoff::{Backoff, Jitter};

/// A page of an account's leg CDR listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The interaction of each row (its interaction id, or its call id when it has none).
    pub interactions: Vec<String>,
    /// Where the next page starts (opaque), if there is one.
    pub next_start_key: Option<String>,
}

/// A failed read of the stored CDRs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// Trying again later may succeed (connection, timeout, 5xx, 429).
    pub retryable: bool,
    /// What happened (no token in it).
    pub message: String,
}

/// Kazoo's stored leg CDRs as the backfill reads them: Crossbar in production.
pub trait CdrSource: Send + Sync + 'static {
    /// One page of `account`'s leg CDRs that ended within `window`.
    fn page<'a>(
        &'a self,
        account: &'a str,
        window: Window,
        start_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ReadError>>;

    /// Every stored leg CDR of one interaction, whole documents.
    fn legs<'a>(
        &'a self,
        account: &'a str,
        interaction: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, ReadError>>;
}

/// Tunables of the backfill.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Widening of every gap on both sides, seconds.
    pub margin_secs: i64,
    /// Wait after a gap closes before reading (Kazoo writes a CDR just after the DESTROY).
    pub settle: Duration,
    /// Requests to Crossbar per second, at most.
    pub requests_per_sec: u32,
    /// On a first start (no saved sessions, no stream mark), how far back to read; 0: none.
    pub first_lookback_secs: i64,
    /// Backoff between retries of a failed request.
    pub retry: Backoff,
    /// A window whose requests keep failing this long is given up (logged, counted).
    pub give_up_after: Duration,
    /// Interactions read per window at most (beyond: logged, counted, left out).
    pub max_interactions: usize,
    /// An open session quiet this long with a leg up has its stored CDRs looked up (again
    /// after twice as long, and so on); `None`: never.
    pub lost_destroy_after: Option<Duration>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            margin_secs: 120,
            settle: Duration::from_secs(10),
            requests_per_sec: 10,
            first_lookback_secs: 0,
            retry: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            give_up_after: Duration::from_secs(3600),
            max_interactions: 100_000,
            lost_destroy_after: Some(Duration::from_secs(600)),
        }
    }
}

/// What the driver asks the task for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every interaction that ended in a gap.
    Window(Window),
    /// The stored legs of one interaction of an open session that has been quiet with a leg
    /// up for long: its DESTROY may have been lost.
    Interaction {
        /// The account.
        account: String,
        /// The interaction id.
        interaction: String,
    },
}

/// What the task hands the driver.
#[derive(Debug)]
pub enum BackfillMsg {
    /// The stored leg CDRs of one interaction.
    Legs(Vec<Value>),
    /// A window is done (or given up).
    Done {
        /// The window, as merged.
        window: Window,
        /// How it ended.
        outcome: Outcome,
    },
}

/// How a window ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every account read.
    Complete {
        /// Interactions read.
        interactions: usize,
        /// Leg CDRs handed on.
        legs: usize,
    },
    /// Given up: a request that cannot pass, or failures for longer than `give_up_after`.
    GaveUp(String),
}

/// Where the backfill is, for `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackfillState {
    /// Nothing to do.
    #[default]
    Idle,
    /// Reading a window.
    Reading(Window),
    /// Reading a window; the last request failed and is being retried.
    Retrying {
        /// The window.
        window: Window,
        /// The last error.
        error: String,
    },
}

/// Backfill counters (exported as metrics).
#[derive(Debug, Default)]
pub struct BackfillCounters {
    /// Windows read to the end.
    pub windows: AtomicU64,
    /// Windows given up.
    pub given_up: AtomicU64,
    /// Requests made.
    pub requests: AtomicU64,
    /// Requests that failed (each retry counts).
    pub errors: AtomicU64,
    /// Interactions read.
    pub interactions: AtomicU64,
    /// Leg CDRs handed to the driver.
    pub legs: AtomicU64,
    /// Quiet sessions looked up (a lost DESTROY?).
    pub lookups: AtomicU64,
    /// Interactions left out over `max_interactions`.
    pub truncated: AtomicU64,
    /// Where it is now.
    pub state: Mutex<BackfillState>,
}

impl BackfillCounters {
    fn set(&self, s: BackfillState) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
    }

    /// Where the backfill is now.
    #[must_use]
    pub fn state(&self) -> BackfillState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads windows from `requests` until it closes or `stop`; hands what it reads to `out`.
pub async fn run(
    source: Arc<dyn CdrSource>,
    accounts: Vec<String>,
    opts: BackfillOptions,
    mut requests: mpsc::Receiver<Request>,
    out: mpsc::Sender<BackfillMsg>,
    counters: Arc<BackfillCounters>,
    stop: CancellationToken,
) {
    let mut reader = Reader {
        source,
        opts,
        counters,
        stop,
        pace: None,
        jitter: Jitter::from_clock(),
    };
    loop {
        let first = tokio::select! {
            r = requests.recv() => match r { Some(r) => r, None => return },
            () = reader.stop.cancelled() => return,
        };
        let mut window = match first {
            Request::Window(w) => w,
            Request::Interaction {
                account,
                interaction,
            } => {
                if !reader.look_up(&account, &interaction, &out).await {
                    return;
                }
                continue;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(reader.opts.settle) => {}
            () = reader.stop.cancelled() => return,
        }
        // Windows asked for meanwhile are merged when they touch, else read after this one.
        let mut later = Vec::new();
        while let Ok(next) = requests.try_recv() {
            match next {
                Request::Window(w) if window.touches(&w) => window = window.union(&w),
                other => later.push(other),
            }
        }
        if !reader.read_and_report(window, &accounts, &out).await {
            return;
        }
        for r in later {
            let more = match r {
                Request::Window(w) => reader.read_and_report(w, &accounts, &out).await,
                Request::Interaction {
                    account,
                    interaction,
                } => reader.look_up(&account, &interaction, &out).await,
            };
            if !more {
                return;
            }
        }
    }
}

struct Reader {
    source: Arc<dyn CdrSource>,
    opts: BackfillOptions,
    counters: Arc<BackfillCounters>,
    stop: CancellationToken,
    pace: Option<tokio::time::Interval>,
    jitter: Jitter,
}

/// Why reading stopped early.
enum Halt {
    GaveUp(String),
    Stopped,
}

impl Reader {
    /// Looks one interaction up once (a quiet session will be looked up again later);
    /// false when stopping (or the driver is gone).
    async fn look_up(
        &mut self,
        account: &str,
        interaction: &str,
        out: &mpsc::Sender<BackfillMsg>,
    ) -> bool {
        if self.wait_turn().await.is_err() {
            return false;
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        match self.source.legs(account, interaction).await {
            Ok(docs) if docs.is_empty() => true,
            Ok(docs) => {
                self.counters
                    .legs
                    .fetch_add(docs.len() as u64, Ordering::Relaxed);
                out.send(BackfillMsg::Legs(docs)).await.is_ok()
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(interaction, error = %e, "backfill: quiet session lookup failed; it is tried again later");
                true
            }
        }
    }

    /// Reads one window and reports it; false when stopping (or the driver is gone).
    async fn read_and_report(
        &mut self,
        window: Window,
        accounts: &[String],
        out: &mpsc::Sender<BackfillMsg>,
    ) -> bool {
        tracing::info!(%window, accounts = accounts.len(), "backfill: reading Kazoo's stored CDRs for a gap");
        self.counters.set(BackfillState::Reading(window));
        let outcome = match self.read(window, accounts, out).await {
            Ok((interactions, legs)) => {
                self.counters.windows.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%window, interactions, legs, "backfill: window read");
                Outcome::Complete { interactions, legs }
            }
            Err(Halt::GaveUp(e)) => {
                self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%window, error = %e, "backfill: window given up; calls of it that were not seen live are missing (run `postcall reconcile` for it)");
                Outcome::GaveUp(e)
            }
            Err(Halt::Stopped) => return false,
        };
        self.counters.set(BackfillState::Idle);
        out.send(BackfillMsg::Done { window, outcome })
            .await
            .is_ok()
    }

    async fn read(
        &mut self,
        window: Window,
        accounts: &[String],
        out: &mpsc::Sender<BackfillMsg>,
    ) -> Result<(usize, usize), Halt> {
        let (mut interactions, mut legs) = (0, 0);
        for account in accounts {
            let mut wanted: Vec<String> = Vec::new();
            let mut seen: HashSet<String> = HashSet::new();
            for piece in window.pieces() {
                let mut start: Option<String> = None;
                loop {
                    let src = self.source.clone();
                    let key = start.clone();
                    let page = self
                        .call(window, || {
                            let (src, key) = (src.clone(), key.clone());
                            let account = account.clone();
                            async move { src.page(&account, piece, key.as_deref()).await }
                        })
                        .await?;
                    for i in page.interactions {
                        if seen.len() >= self.opts.max_interactions {
                            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if seen.insert(i.clone()) {
                            wanted.push(i);
                        }
                    }
                    match page.next_start_key {
                        Some(k) if Some(&k) != start.as_ref() => start = Some(k),
                        _ => break,
                    }
                }
            }
            if seen.len() >= self.opts.max_interactions {
                tracing::warn!(%window, account, limit = self.opts.max_interactions, "backfill: more interactions than max_interactions; the rest are left out");
            }
            for interaction in wanted {
                let src = self.source.clone();
                let docs = self
                    .call(window, || {
                        let (src, account, i) = (src.clone(), account.clone(), interaction.clone());
                        async move { src.legs(&account, &i).await }
                    })
                    .await?;
                interactions += 1;
                legs += docs.len();
                self.counters.interactions.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .legs
                    .fetch_add(docs.len() as u64, Ordering::Relaxed);
                if !docs.is_empty() && out.send(BackfillMsg::Legs(docs)).await.is_err() {
                    return Err(Halt::Stopped);
                }
            }
        }
        Ok((interactions, legs))
    }

    /// One request, paced and retried.
    async fn call<T, F, Fut>(&mut self, window: Window, mut request: F) -> Result<T, Halt>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ReadError>>,
    {
        let began = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            self.wait_turn().await?;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let e = match request().await {
                Ok(v) => {
                    if attempt > 0 {
                        self.counters.set(BackfillState::Reading(window));
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            if !e.retryable {
                return Err(Halt::GaveUp(e.message));
            }
            if began.elapsed() >= self.opts.give_up_after {
                return Err(Halt::GaveUp(format!(
                    "still failing after {} s: {}",
                    self.opts.give_up_after.as_secs(),
                    e.message
                )));
            }
            let delay = self.opts.retry.delay(attempt, self.jitter.next_u64());
            attempt = attempt.saturating_add(1);
            if attempt.is_power_of_two() {
                tracing::warn!(%window, error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "backfill: Crossbar request failed; retrying");
            }
            self.counters.set(BackfillState::Retrying {
                window,
                error: e.message,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return Err(Halt::Stopped),
            }
        }
    }

    /// Waits for the next request slot (`requests_per_sec`).
    async fn wait_turn(&mut self) -> Result<(), Halt> {
        let rate = self.opts.requests_per_sec.max(1);
        let pace = self.pace.get_or_insert_with(|| {
            let mut i = tokio::time::interval(Duration::from_secs(1) / rate);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        tokio::select! {
            _ = pace.tick() => Ok(()),
            () = self.stop.cancelled() => Err(Halt::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Stored CDRs in memory: per account, leg (interaction, end second); pages of `page`
    /// rows; `fail` answers the next N requests with an error.
    #[derive(Default)]
    struct Store {
        legs: BTreeMap<String, Vec<(String, i64)>>,
        page: usize,
        fail: Mutex<Vec<ReadError>>,
        pages_read: AtomicU64,
        legs_read: Mutex<Vec<String>>,
    }

    impl Store {
        fn failure(&self) -> Option<ReadError> {
            self.fail.lock().unwrap().pop()
        }
    }

    impl CdrSource for Store {
        fn page<'a>(
            &'a self,
            account: &'a str,
            window: Window,
            start_key: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Listing, ReadError>> {
            Box::pin(async move {
                if let Some(e) = self.failure() {
                    return Err(e);
                }
                self.pages_read.fetch_add(1, Ordering::Relaxed);
                let rows: Vec<&(String, i64)> = self.legs[account]
                    .iter()
                    .filter(|(_, t)| (window.from..=window.to).contains(t))
                    .collect();
                let at: usize = start_key.map_or(0, |k| k.parse().unwrap());
                let end = (at + self.page).min(rows.len());
                Ok(Listing {
                    interactions: rows[at..end].iter().map(|(i, _)| i.clone()).collect(),
                    next_start_key: (end < rows.len()).then(|| end.to_string()),
                })
            })
        }

        fn legs<'a>(
            &'a self,
            account: &'a str,
            interaction: &'a str,
        ) -> BoxFuture<'a, Result<Vec<Value>, ReadError>> {
            Box::pin(async move {
                if let Some(e) = self.failure() {
                    return Err(e);
                }
                self.legs_read.lock().unwrap().push(interaction.to_owned());
                Ok(self.legs[account]
                    .iter()
                    .filter(|(i, _)| i == interaction)
                    .map(|(i, t)| serde_json::json!({ "interaction_id": i, "end": t }))
                    .collect())
            })
        }
    }

    fn opts() -> BackfillOptions {
        BackfillOptions {
            settle: Duration::from_secs(2),
            requests_per_sec: 10,
            give_up_after: Duration::from_secs(60),
            ..BackfillOptions::default()
        }
    }

    fn store(page: usize) -> Store {
        let mut legs = BTreeMap::new();
        // Account a: 12 interactions of two legs each, ending 1000..1011; one outside.
        let a: Vec<(String, i64)> = (0..12)
            .flat_map(|n| [(format!("a{n}"), 1_000 + n), (format!("a{n}"), 1_000 + n)])
            .chain([("late".to_owned(), 5_000)])
            .collect();
        legs.insert("a".to_owned(), a);
        legs.insert("b".to_owned(), vec![("b0".to_owned(), 1_005)]);
        Store {
            legs,
            page,
            ..Store::default()
        }
    }

    async fn read_one(
        s: Arc<Store>,
        o: BackfillOptions,
        windows: &[Window],
    ) -> (
        Vec<Vec<Value>>,
        Vec<(Window, Outcome)>,
        Arc<BackfillCounters>,
    ) {
        let (req_tx, req_rx) = mpsc::channel(8);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let counters = Arc::new(BackfillCounters::default());
        for w in windows {
            req_tx.send(Request::Window(*w)).await.unwrap();
        }
        drop(req_tx);
        let task = tokio::spawn(run(
            s,
            vec!["a".into(), "b".into()],
            o,
            req_rx,
            out_tx,
            counters.clone(),
            CancellationToken::new(),
        ));
        let (mut legs, mut done) = (Vec::new(), Vec::new());
        while let Some(m) = out_rx.recv().await {
            match m {
                BackfillMsg::Legs(d) => legs.push(d),
                BackfillMsg::Done { window, outcome } => done.push((window, outcome)),
            }
        }
        task.await.unwrap();
        (legs, done, counters)
    }

    #[tokio::test(start_paused = true)]
    async fn every_interaction_of_every_account_is_read_once_across_pages() {
        let s = Arc::new(store(5));
        let w = Window {
            from: 900,
            to: 1_100,
        };
        let (legs, done, c) = read_one(s.clone(), opts(), &[w]).await;
        // 25 rows for a in pages of 5 (two rows per interaction), 1 for b.
        assert_eq!(s.pages_read.load(Ordering::Relaxed), 5 + 1);
        let read = s.legs_read.lock().unwrap().clone();
        assert_eq!(read.len(), 13, "{read:?}");
        assert_eq!(read.iter().collect::<HashSet<_>>().len(), 13);
        assert!(!read.contains(&"late".to_owned()));
        assert_eq!(legs.iter().map(Vec::len).sum::<usize>(), 25);
        assert_eq!(
            done,
            vec![(
                w,
                Outcome::Complete {
                    interactions: 13,
                    legs: 25
                }
            )]
        );
        assert_eq!(c.windows.load(Ordering::Relaxed), 1);
        assert_eq!(c.state(), BackfillState::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_paced_and_windows_that_touch_are_read_once() {
        let s = Arc::new(store(100));
        let t = tokio::time::Instant::now();
        let (_, done, c) = read_one(
            s.clone(),
            opts(),
            &[
                Window {
                    from: 900,
                    to: 1_003,
                },
                Window {
                    from: 1_004,
                    to: 1_100,
                },
            ],
        )
        .await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(
            done[0].0,
            Window {
                from: 900,
                to: 1_100
            }
        );
        // 2 pages + 13 interactions = 15 requests at 10/s after a 2 s settle.
        assert_eq!(c.requests.load(Ordering::Relaxed), 15);
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(2_000 + 1_400), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_that_may_pass_are_retried_and_others_give_the_window_up() {
        let s = store(100);
        let busy = |m: &str| ReadError {
            retryable: true,
            message: m.to_owned(),
        };
        *s.fail.lock().unwrap() = vec![busy("503"), busy("timeout"), busy("connection refused")];
        let s = Arc::new(s);
        let w = Window {
            from: 900,
            to: 1_100,
        };
        let (legs, done, c) = read_one(s, opts(), &[w]).await;
        assert_eq!(
            done,
            vec![(
                w,
                Outcome::Complete {
                    interactions: 13,
                    legs: 25
                }
            )]
        );
        assert_eq!(legs.iter().map(Vec::len).sum::<usize>(), 25);
        assert_eq!(c.errors.load(Ordering::Relaxed), 3);

        let s = store(100);
        *s.fail.lock().unwrap() = vec![ReadError {
            retryable: false,
            message: "401 invalid token".into(),
        }];
        let (legs, done, c) = read_one(Arc::new(s), opts(), &[w]).await;
        assert!(legs.is_empty());
        assert_eq!(done, vec![(w, Outcome::GaveUp("401 invalid token".into()))]);
        assert_eq!(c.given_up.load(Ordering::Relaxed), 1);

        // Failing for longer than give_up_after.
        let s = store(100);
        *s.fail.lock().unwrap() = vec![busy("503"); 1_000];
        let (_, done, _) = read_one(Arc::new(s), opts(), &[w]).await;
        assert!(
            matches!(&done[0].1, Outcome::GaveUp(m) if m.contains("still failing after 60 s")),
            "{done:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retrying_window_is_visible_and_stopping_ends_the_task() {
        let s = store(100);
        *s.fail.lock().unwrap() = vec![
            ReadError {
                retryable: true,
                message: "503".into()
            };
            1_000
        ];
        let (req_tx, req_rx) = mpsc::channel(1);
        let (out_tx, _out_rx) = mpsc::channel(1);
        let counters = Arc::new(BackfillCounters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::new(s),
            vec!["a".into()],
            opts(),
            req_rx,
            out_tx,
            counters.clone(),
            stop.clone(),
        ));
        let w = Window { from: 0, to: 10 };
        req_tx.send(Request::Window(w)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            counters.state(),
            BackfillState::Retrying {
                window: w,
                error: "503".into()
            }
        );
        stop.cancel();
        task.await.unwrap();
    }
}

//! The operator's console: server-rendered HTML on the admin listener under `/console/`
//! (templates in `src/console/templates`, rendered with `minijinja`; no JavaScript framework
//! and no build step — one small script refreshes the live counters).
//!
//! - **Tenants → triggers**: list, create, edit, enable/disable, delete. Console-managed
//!   triggers are stored in a [`store::TriggerStore`] and are one more trigger source of the
//!   running [`Reloader`] (merged into the same `ArcSwap` set, live at once); file and remote
//!   triggers are shown read-only with their origin. The filter builder offers the fields,
//!   operators and names of [`crate::trigger::filter::catalog`], which is derived from the
//!   validator; a saved form goes through the validator trigger files go through
//!   ([`triggers::validate`]) and its errors are shown beside the fields.
//! - **Test a trigger**: against the tenant's last CDRs in the journal (which would fire and,
//!   for the others, the first failing condition with the CDR's value), and one test webhook
//!   sent through delivery's own request and signing code, its answer shown.
//! - **Delivery log**: the engine's attempt log ([`crate::delivery::attempts`]) per trigger
//!   and per webhook, the dead letters with re-send and purge, live counters.
//!
//! Security (see [`web`]): the admin listener's `Host` check applies; with an admin token
//! every page needs it (`Authorization: Bearer`, or the login form, which sets an HttpOnly,
//! SameSite=Strict session cookie derived from the token); every POST needs the session's
//! CSRF token in the form and a same-origin request.

mod pages;
pub mod store;
pub mod triggers;
mod web;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::delivery::Engine;
use crate::run::driver::DriverCounters;
use crate::trigger::{Reloader, Trigger};

pub use web::{handle, is_console_path, Access};

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The store could not be read.
    #[error("console triggers: {0}")]
    Store(#[from] store::StoreError),
    /// A stored trigger no longer validates (e.g. after a change of `[triggers] allow_http`).
    #[error("console trigger {id}: {errors}")]
    Invalid {
        /// The trigger.
        id: String,
        /// Its problems.
        errors: String,
    },
    /// The stored triggers clash with the other sources (an id defined twice).
    #[error("console triggers rejected: {0}")]
    Rejected(#[from] crate::trigger::TriggerErrors),
    /// The templates do not compile (a build defect).
    #[error("console templates: {0}")]
    Templates(String),
}

/// CDRs of the journal a trigger is tested against by default.
pub const TEST_CDRS: usize = 20;

/// The console's state, shared by the admin listener's connections.
pub struct Console {
    store: Arc<dyn store::TriggerStore>,
    reloader: Arc<Reloader>,
    engine: Arc<Engine>,
    driver: Option<Arc<DriverCounters>>,
    /// Per-process key for session cookies (without a token) and CSRF tokens.
    key: [u8; 32],
    /// Trigger changes are made one at a time (store and live set stay in step); it holds
    /// the stored triggers the live console set was last built from.
    writes: tokio::sync::Mutex<Vec<store::StoredTrigger>>,
    /// Samples of the closed-sessions total for the per-minute rate, (µs, total), bounded.
    closed: Mutex<VecDeque<(i64, u64)>>,
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k
}

/// Validates every stored trigger document.
///
/// # Errors
/// The store cannot be read, or a document no longer validates.
pub async fn load_triggers(
    store: &dyn store::TriggerStore,
    opts: crate::trigger::BuildOptions,
) -> Result<Vec<Trigger>, ConsoleError> {
    validate_all(store.list().await?, opts)
}

fn validate_all(
    stored: Vec<store::StoredTrigger>,
    opts: crate::trigger::BuildOptions,
) -> Result<Vec<Trigger>, ConsoleError> {
    stored
        .into_iter()
        .map(|s| {
            triggers::validate(&s.doc, opts).map_err(|e| ConsoleError::Invalid {
                id: s.id.clone(),
                errors: triggers::describe(&e),
            })
        })
        .collect()
}

impl Console {
    /// Loads the stored triggers into `reloader` (before any delivery is attempted, so signed
    /// deliveries of console triggers find their keys) and returns the console.
    ///
    /// # Errors
    /// [`ConsoleError`]: the process should not start with triggers missing.
    pub async fn start(
        store: Arc<dyn store::TriggerStore>,
        reloader: Arc<Reloader>,
        engine: Arc<Engine>,
        driver: Option<Arc<DriverCounters>>,
    ) -> Result<Arc<Self>, ConsoleError> {
        let stored = store.list().await?;
        let loaded = validate_all(stored.clone(), reloader.build_options())?;
        if !loaded.is_empty() {
            let r = reloader.clone();
            tokio::task::spawn_blocking(move || r.set_console(loaded))
                .await
                .map_err(|e| ConsoleError::Templates(e.to_string()))??;
        }
        Ok(Arc::new(Self {
            store,
            reloader,
            engine,
            driver,
            key: random_key(),
            writes: tokio::sync::Mutex::new(stored),
            closed: Mutex::new(VecDeque::new()),
            env: pages::templates().map_err(|e| ConsoleError::Templates(e.to_string()))?,
        }))
    }

    /// Follows the changes other instances make to a shared store (PostgreSQL): every
    /// `every`, [`Self::catch_up`]. A stored set this process cannot apply is logged once per
    /// distinct error and the running set kept. Returns when `stop` fires.
    pub async fn follow(
        self: Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.catch_up().await {
                Ok(_) => last_error = None,
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!(error = %e, "console triggers in the store not applied; the running set is kept");
                        last_error = Some(e);
                    }
                }
            }
        }
    }

    /// Re-reads the stored triggers and, when they differ from those the live console set
    /// was last built from (another instance changed them), validates and applies them.
    /// Whether it applied a change.
    ///
    /// # Errors
    /// The store cannot be read, or the stored set does not validate here (nothing changes).
    pub async fn catch_up(&self) -> Result<bool, ConsoleError> {
        let mut seen = self.writes.lock().await;
        let stored = self.store.list().await?;
        if *seen == stored {
            return Ok(false);
        }
        let triggers = validate_all(stored.clone(), self.reloader.build_options())?;
        let r = self.reloader.clone();
        tokio::task::spawn_blocking(move || r.set_console(triggers))
            .await
            .map_err(|e| ConsoleError::Templates(e.to_string()))??;
        tracing::info!(
            triggers = stored.len(),
            "console triggers changed in the store; applied"
        );
        *seen = stored;
        Ok(true)
    }
}

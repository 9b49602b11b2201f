//! `postcall reconcile`: the journal against Kazoo's stored CDRs for a window (pure part).
//!
//! Kazoo's side is every interaction with a leg stored in the window (widened by a margin),
//! built into sessions by the same assembler from the leg CDRs; postcall's side is the CDR
//! journal. Reported, for sessions that ended inside the window:
//! - **missing**: a call Kazoo has and postcall never built;
//! - **unknown to Kazoo**: a session postcall built that no stored CDR matches (a partial
//!   session from a gap, a copy with another origin leg, or a tenant Kazoo does not store);
//! - **answered time disagrees**: both have it, but postcall's connected time (talk + hold)
//!   differs by more than 1 s from the one Kazoo billed (`billing_seconds`).

use std::collections::BTreeMap;

use super::window::Window;
use crate::cdr::Cdr;

/// One session as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Seen {
    /// Session id.
    pub id: String,
    /// Tenant (account id).
    pub tenant: String,
    /// Start (RFC 3339).
    pub start: String,
    /// End, Unix seconds.
    pub end_unix: i64,
    /// Connected time: talk + hold, seconds.
    pub connected_secs: u64,
    /// Caller → callee, for people.
    pub summary: String,
}

impl Seen {
    /// The facts of `cdr` of tenant `tenant`, which ended at `end_us`.
    #[must_use]
    pub fn of(cdr: &Cdr, tenant: Option<&str>, end_us: i64) -> Self {
        let caller = cdr.cli_num.as_deref().unwrap_or("?");
        let callee = cdr.ddi_num.as_deref().unwrap_or("?");
        Self {
            id: cdr.id.clone(),
            tenant: tenant.unwrap_or_default().to_owned(),
            start: cdr.start.clone(),
            end_unix: end_us.div_euclid(1_000_000),
            connected_secs: cdr.talk + cdr.hold,
            summary: format!("{caller} → {callee}"),
        }
    }
}

/// A session both sides have whose answered time disagrees.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disagreement {
    /// postcall's session.
    pub postcall: Seen,
    /// Kazoo's connected time for it, seconds.
    pub kazoo_connected_secs: u64,
}

/// What `reconcile` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The window compared (sessions that ended in it).
    pub window: Window,
    /// Sessions Kazoo's CDRs give in the window.
    pub kazoo: usize,
    /// Sessions the journal has in the window.
    pub postcall: usize,
    /// Calls Kazoo has and postcall does not.
    pub missing: Vec<Seen>,
    /// Sessions postcall has and Kazoo's CDRs do not give.
    pub unknown_to_kazoo: Vec<Seen>,
    /// Sessions whose answered time differs by more than 1 s.
    pub disagreeing: Vec<Disagreement>,
}

impl Report {
    /// Nothing Kazoo has is missing.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "window {}: Kazoo {} sessions, postcall {}; missing {}, unknown to Kazoo {}, answered time disagrees {}",
            self.window,
            self.kazoo,
            self.postcall,
            self.missing.len(),
            self.unknown_to_kazoo.len(),
            self.disagreeing.len()
        )?;
        for s in &self.missing {
            writeln!(
                f,
                "missing            {} {} {} {}",
                s.start, s.id, s.tenant, s.summary
            )?;
        }
        for s in &self.unknown_to_kazoo {
            writeln!(
                f,
                "unknown to Kazoo   {} {} {} {}",
                s.start, s.id, s.tenant, s.summary
            )?;
        }
        for d in &self.disagreeing {
            let s = &d.postcall;
            writeln!(
                f,
                "answered time      {} {} {} postcall {} s, Kazoo {} s",
                s.start, s.id, s.tenant, s.connected_secs, d.kazoo_connected_secs
            )?;
        }
        Ok(())
    }
}

/// Compares the sessions Kazoo's CDRs give with the journal's, both read over a window wider
/// than `window`; only sessions that ended inside `window` are reported or counted.
#[must_use]
pub fn compare(window: Window, kazoo: &[Seen], postcall: &[Seen]) -> Report {
    let inside = |s: &&Seen| (window.from..=window.to).contains(&s.end_unix);
    let k: BTreeMap<&str, &Seen> = kazoo.iter().map(|s| (s.id.as_str(), s)).collect();
    let p: BTreeMap<&str, &Seen> = postcall.iter().map(|s| (s.id.as_str(), s)).collect();
    let missing = kazoo
        .iter()
        .filter(inside)
        .filter(|s| !p.contains_key(s.id.as_str()))
        .cloned()
        .collect();
    let unknown_to_kazoo = postcall
        .iter()
        .filter(inside)
        .filter(|s| !k.contains_key(s.id.as_str()))
        .cloned()
        .collect();
    let disagreeing = postcall
        .iter()
        .filter(inside)
        .filter_map(|s| {
            let theirs = k.get(s.id.as_str())?;
            (s.connected_secs.abs_diff(theirs.connected_secs) > 1).then(|| Disagreement {
                postcall: s.clone(),
                kazoo_connected_secs: theirs.connected_secs,
            })
        })
        .collect();
    Report {
        window,
        kazoo: kazoo.iter().filter(inside).count(),
        postcall: postcall.iter().filter(inside).count(),
        missing,
        unknown_to_kazoo,
        disagreeing,
    }
}

/// Kazoo's side: the sessions its stored leg CDRs give for every interaction with a leg
/// stored in `window` (read as the backfill reads, paced and retried), built by the same
/// assembler.
///
/// # Errors
/// The window could not be read (a refused request, or failures past `give_up_after`).
pub async fn kazoo_sessions(
    source: std::sync::Arc<dyn super::CdrSource>,
    accounts: Vec<String>,
    window: Window,
    opts: super::BackfillOptions,
    settings: std::sync::Arc<crate::session::Settings>,
) -> Result<Vec<Seen>, String> {
    use super::fetch::{BackfillMsg, Outcome, Request};
    let (req_tx, req_rx) = tokio::sync::mpsc::channel(1);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(64);
    let _ = req_tx.send(Request::Window(window)).await;
    drop(req_tx);
    let opts = super::BackfillOptions {
        settle: std::time::Duration::ZERO,
        ..opts
    };
    let task = tokio::spawn(super::fetch::run(
        source,
        accounts,
        opts,
        req_rx,
        out_tx,
        std::sync::Arc::default(),
        tokio_util::sync::CancellationToken::new(),
    ));
    let mut docs = Vec::new();
    let mut failed = None;
    while let Some(m) = out_rx.recv().await {
        match m {
            BackfillMsg::Legs(d) => docs.extend(d),
            BackfillMsg::Done {
                outcome: Outcome::GaveUp(e),
                ..
            } => failed = Some(e),
            BackfillMsg::Done { .. } => {}
        }
    }
    let _ = task.await;
    if let Some(e) = failed {
        return Err(e);
    }
    let (sessions, errors) = crate::replay::replay_cdr_docs(&docs, settings);
    for e in errors {
        tracing::warn!(error = %e, "stored leg CDR skipped");
    }
    Ok(sessions
        .iter()
        .map(|s| Seen::of(&s.cdr, s.tenant_id.as_deref(), s.end_us))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, end_unix: i64, connected_secs: u64) -> Seen {
        Seen {
            id: id.into(),
            tenant: "t".into(),
            start: "2026-11-28T10:00:00+00:00".into(),
            end_unix,
            connected_secs,
            summary: "100 → 200".into(),
        }
    }

    #[test]
    fn each_difference_is_reported_once_and_only_inside_the_window() {
        let w = Window {
            from: 1_000,
            to: 2_000,
        };
        let kazoo = [
            seen("both", 1_500, 60),
            seen("kazoo-only", 1_600, 10),
            seen("kazoo-only-outside", 2_500, 10),
            seen("off-by-1", 1_100, 31),
            seen("off-by-2", 1_200, 32),
        ];
        let postcall = [
            seen("both", 1_500, 60),
            seen("postcall-only", 1_700, 0),
            seen("postcall-only-outside", 900, 0),
            seen("off-by-1", 1_100, 30),
            seen("off-by-2", 1_200, 30),
        ];
        let r = compare(w, &kazoo, &postcall);
        let ids = |v: &[Seen]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.missing), ["kazoo-only"]);
        assert_eq!(ids(&r.unknown_to_kazoo), ["postcall-only"]);
        assert_eq!(r.disagreeing.len(), 1);
        assert_eq!(r.disagreeing[0].postcall.id, "off-by-2");
        assert_eq!(r.disagreeing[0].kazoo_connected_secs, 32);
        assert_eq!((r.kazoo, r.postcall), (4, 4));
        assert!(!r.complete());
        let text = r.to_string();
        assert!(
            text.contains("missing 1, unknown to Kazoo 1, answered time disagrees 1"),
            "{text}"
        );
        assert!(compare(w, &kazoo[..1], &postcall[..1]).complete());
    }
}

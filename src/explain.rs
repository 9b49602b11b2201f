//! `postcall explain`: replayed sessions against a trigger set — per session its tenant, a
//! one-line summary, the triggers that fire and, for every other trigger of its tenant, why
//! not (disabled, owned by a user not in the call, or the first condition that fails with
//! the CDR's value). The answers come from [`TriggerSet::explain`], i.e. from the matching
//! code `run` uses. Pure: sessions and triggers in, text out.

use std::io::Write;

use crate::session::ClosedSession;
use crate::trigger::model::redacted_url;
use crate::trigger::{Method, TriggerSet, Verdict};

/// What an explanation counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExplainStats {
    /// Sessions explained.
    pub sessions: usize,
    /// Webhooks that would be sent (trigger × session).
    pub fired: usize,
}

/// Writes the explanation of every session, in the order given.
///
/// ```text
/// 2024-05-14T10:31:38-05:00 3f0c…  tenant 3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c
///   Incoming +14155550123 → Alice (201), answered, ring 5 s, talk 98 s
///   fires  every-call  POST https://hooks.example.com/calls
///   not    missed: ans eq 0 — the CDR has 1
/// ```
///
/// # Errors
/// Writing to `out`.
pub fn explain(
    out: &mut impl Write,
    sessions: &[ClosedSession],
    set: &TriggerSet,
) -> std::io::Result<ExplainStats> {
    let mut stats = ExplainStats::default();
    for s in sessions {
        stats.sessions += 1;
        let tenant = s.tenant_id.as_deref().unwrap_or("none");
        writeln!(out, "{} {}  tenant {tenant}", s.cdr.end, s.cdr.id)?;
        writeln!(out, "  {}", crate::summary::of_cdr(&s.cdr))?;
        let verdicts = set.explain(s);
        if verdicts.is_empty() {
            let why = if s.tenant_id.is_some() {
                "no trigger of this tenant"
            } else {
                "no tenant: no trigger can fire"
            };
            writeln!(out, "  ({why})")?;
        }
        for (t, v) in verdicts {
            match v {
                Verdict::Fires => {
                    stats.fired += 1;
                    writeln!(
                        out,
                        "  fires  {}  {} {}",
                        t.id,
                        match t.action.method {
                            Method::Get => "GET",
                            Method::Post => "POST",
                            Method::Put => "PUT",
                        },
                        redacted_url(&t.action.url)
                    )?;
                }
                Verdict::Disabled => writeln!(out, "  not    {}: disabled", t.id)?,
                Verdict::NotOwner(u) => writeln!(
                    out,
                    "  not    {}: owned by user {u}, who took no part in the call",
                    t.id
                )?,
                Verdict::Failed(f) => writeln!(out, "  not    {}: {f}", t.id)?,
            }
        }
    }
    Ok(stats)
}

//! The session timeline: ring, talk, hold and park, the answer moment, and who was connected
//! to whom (PRODUCT.md §3 "Times"; `cdr-semantics.md` §2).
//!
//! Bridges become edges with a lifetime (until either leg is destroyed, re-bridged elsewhere or
//! parked); a loopback pair is a wire between its halves. The session's span is cut at every
//! moment anything changes, and each elementary segment is classified once, in precedence
//! order park > hold > talk > ring, so the four totals can never exceed the duration. Two legs
//! are *person-connected* in a segment when both are answered, alive, not loopback, and
//! joined through active edges.
//!
//! **Cost.** The sweep visits the segments in order, keeping the active edges and the hold,
//! park and alerting depths as running counts, so one segment costs O(legs + active edges)
//! and no legs × legs table exists: first-connection times are kept for two legs only (the
//! origin, and the anchor that answering parties are measured against). The assembler caps
//! legs and events per session, which bounds the whole computation.

use std::collections::HashMap;

use super::leg::{Leg, MarkKind};

/// Which legs play which part, decided by the caller.
pub struct Roles<'a> {
    /// The session's legs.
    pub legs: &'a [Leg],
    /// Index of the origin leg.
    pub origin: usize,
    /// Legs that can be parties (not loopback).
    pub person: Vec<bool>,
    /// Trunk legs.
    pub trunk: Vec<bool>,
    /// Legs whose alerting counts as ring (destination legs).
    pub destination: Vec<bool>,
    /// Session start and end (µs).
    pub start: i64,
    /// See `start`.
    pub end: i64,
    /// Answering parties are measured against the far end (the first trunk leg connected to
    /// the origin) rather than the origin: outgoing calls.
    pub anchor_far_end: bool,
}

/// What the timeline found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// First moment the origin was person-connected.
    pub answer_us: Option<i64>,
    /// Alerting time before answer (µs).
    pub ring_us: i64,
    /// Connected, not held, not parked (µs).
    pub talk_us: i64,
    /// Held while connected, not parked (µs).
    pub hold_us: i64,
    /// Parked (µs).
    pub park_us: i64,
    /// Two trunk legs were person-connected.
    pub t2t: bool,
    /// A parked leg hung up (or was abandoned) before retrieval.
    pub lost_in_park: bool,
    /// The leg answering parties are measured against: the origin, or on outgoing calls the
    /// first trunk leg person-connected to it (ties by call id).
    pub anchor: usize,
    /// First moment each leg was person-connected to the anchor.
    with_anchor: Vec<Option<i64>>,
}

impl Timeline {
    /// First moment leg `i` was person-connected to the anchor.
    pub fn with_anchor(&self, i: usize) -> Option<i64> {
        self.with_anchor.get(i).copied().flatten()
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    from: i64,
    to: i64,
}

impl Span {
    fn covers(&self, t: i64) -> bool {
        self.from <= t && t < self.to
    }
}

struct Edge {
    a: usize,
    b: usize,
    span: Span,
}

/// Computes the timeline of a session.
pub fn compute(r: &Roles<'_>) -> Timeline {
    let legs = r.legs;
    let n = legs.len();
    let index: HashMap<&str, usize> = legs
        .iter()
        .enumerate()
        .map(|(i, l)| (&*l.call_id, i))
        .collect();
    let created: Vec<i64> = legs.iter().map(Leg::start_us).collect();
    let destroyed: Vec<i64> = legs
        .iter()
        .map(|l| l.destroyed_us.unwrap_or(r.end).min(r.end))
        .collect();

    // Bridge involvements per leg, from either side: (time, partner).
    let mut involved: Vec<Vec<(i64, usize)>> = vec![Vec::new(); n];
    let mut bridges = Vec::new();
    for (i, leg) in legs.iter().enumerate() {
        for m in &leg.marks {
            if let MarkKind::Bridge(peer) = &m.kind {
                if let Some(&j) = index.get(&**peer) {
                    bridges.push((i, j, m.t));
                    involved[i].push((m.t, j));
                    involved[j].push((m.t, i));
                }
            }
        }
    }
    for v in &mut involved {
        v.sort_unstable();
    }
    let answered: Vec<Option<i64>> = legs
        .iter()
        .enumerate()
        .map(|(i, l)| l.answer_us().or(involved[i].first().map(|x| x.0)))
        .collect();
    let first_mark = |i: usize, after: i64, pred: &dyn Fn(&MarkKind) -> bool| {
        legs[i]
            .marks
            .iter()
            .find(|m| m.t > after && pred(&m.kind))
            .map(|m| m.t)
    };
    let is_parked = |k: &MarkKind| matches!(k, MarkKind::Parked);

    let mut edges = Vec::new();
    for &(a, b, t) in &bridges {
        let mut to = destroyed[a].min(destroyed[b]);
        for (x, other) in [(a, b), (b, a)] {
            if let Some(&(t2, _)) = involved[x].iter().find(|(t2, p)| *t2 > t && *p != other) {
                to = to.min(t2);
            }
            if let Some(tp) = first_mark(x, t, &is_parked) {
                to = to.min(tp);
            }
        }
        if to > t {
            edges.push(Edge {
                a,
                b,
                span: Span { from: t, to },
            });
        }
    }
    // A destination that answered but never appears in a CHANNEL_BRIDGE (the event was lost,
    // or the build does not send it) is connected to the leg that originated it.
    for (i, leg) in legs.iter().enumerate() {
        let Some(&j) = leg.originator.str().and_then(|o| index.get(o)) else {
            continue;
        };
        if let (true, Some(from)) = (involved[i].is_empty() && !leg.loopback, leg.answer_us()) {
            let to = destroyed[i].min(destroyed[j]);
            if to > from {
                edges.push(Edge {
                    a: i,
                    b: j,
                    span: Span { from, to },
                });
            }
        }
    }
    for (i, leg) in legs.iter().enumerate() {
        let Some(&j) = leg.loopback_other.str().and_then(|o| index.get(o)) else {
            continue;
        };
        let paired_back = legs[j].loopback_other.str() == Some(&*leg.call_id);
        if i < j || !paired_back {
            let span = Span {
                from: created[i].max(created[j]),
                to: destroyed[i].min(destroyed[j]),
            };
            if span.to > span.from {
                edges.push(Edge { a: i, b: j, span });
            }
        }
    }

    // Hold and park intervals per leg; alerting intervals of destination legs.
    let mut holds: Vec<Vec<Span>> = vec![Vec::new(); n];
    let mut parks: Vec<Span> = Vec::new();
    let mut lost_in_park = false;
    for (i, leg) in legs.iter().enumerate() {
        let next_involvement = |after: i64| {
            involved[i]
                .iter()
                .find(|(t, _)| *t > after)
                .map(|x| x.0)
                .unwrap_or(i64::MAX)
        };
        let mut hold_open: Option<i64> = None;
        for m in &leg.marks {
            match m.kind {
                MarkKind::Hold if hold_open.is_none() => hold_open = Some(m.t),
                MarkKind::Unhold | MarkKind::Parked => {
                    if let Some(from) = hold_open.take() {
                        let to = m.t.min(next_involvement(from)).min(destroyed[i]);
                        holds[i].push(Span { from, to });
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = hold_open {
            let to = next_involvement(from).min(destroyed[i]);
            holds[i].push(Span { from, to });
        }
        for m in leg.marks.iter().filter(|m| is_parked(&m.kind)) {
            let mark_after = |kind: MarkKind| {
                leg.marks
                    .iter()
                    .find(|x| x.t >= m.t && x.kind == kind)
                    .map_or(i64::MAX, |x| x.t)
            };
            // Retrieval: PARK_RETRIEVED or the parked leg's next bridge. Loss: PARK_ABANDONED
            // or the parked leg hanging up, whichever comes first.
            let retrieved = mark_after(MarkKind::Retrieved).min(next_involvement(m.t));
            let lost =
                mark_after(MarkKind::ParkAbandoned).min(leg.destroyed_us.unwrap_or(i64::MAX));
            lost_in_park |= lost < retrieved;
            parks.push(Span {
                from: m.t,
                to: retrieved.min(lost).min(r.end),
            });
        }
    }
    let alerting: Vec<Span> = (0..n)
        .filter(|&i| r.destination[i])
        .map(|i| Span {
            from: created[i],
            to: answered[i].unwrap_or(i64::MAX).min(destroyed[i]),
        })
        .collect();

    let plan = Plan {
        r,
        created,
        destroyed,
        answered,
        edges,
        holds,
        parks,
        alerting,
    };
    let first = plan.sweep(r.origin);
    let anchor = if r.anchor_far_end {
        (0..n)
            .filter(|&i| r.trunk[i] && i != r.origin)
            .filter_map(|i| first.row[i].map(|t| (t, &*legs[i].call_id, i)))
            .min()
            .map_or(r.origin, |x| x.2)
    } else {
        r.origin
    };
    let with_anchor = if anchor == r.origin {
        first.row
    } else {
        plan.sweep(anchor).row
    };
    Timeline {
        answer_us: first.answer_us,
        ring_us: first.ring_us,
        talk_us: first.talk_us,
        hold_us: first.hold_us,
        park_us: first.park_us,
        t2t: first.t2t,
        lost_in_park,
        anchor,
        with_anchor,
    }
}

/// Everything the sweep needs, prepared once per session.
struct Plan<'a> {
    r: &'a Roles<'a>,
    created: Vec<i64>,
    destroyed: Vec<i64>,
    answered: Vec<Option<i64>>,
    edges: Vec<Edge>,
    holds: Vec<Vec<Span>>,
    parks: Vec<Span>,
    alerting: Vec<Span>,
}

/// What one sweep found: the totals, and when each leg was first connected to the tracked one.
struct Sweep {
    answer_us: Option<i64>,
    ring_us: i64,
    talk_us: i64,
    hold_us: i64,
    park_us: i64,
    t2t: bool,
    row: Vec<Option<i64>>,
}

/// Where a running count changes: at `t`, `delta` for `what`.
#[derive(Clone, Copy)]
struct Change {
    t: i64,
    delta: i32,
    what: Depth,
}

#[derive(Clone, Copy)]
enum Depth {
    Hold(usize),
    Park,
    Alerting,
}

impl Plan<'_> {
    /// The segment boundaries: every moment anything changes, within the session.
    fn bounds(&self) -> Vec<i64> {
        let r = self.r;
        let mut b = vec![r.start, r.end];
        b.extend(self.created.iter().chain(&self.destroyed).copied());
        b.extend(self.answered.iter().flatten().copied());
        b.extend(self.edges.iter().flat_map(|e| [e.span.from, e.span.to]));
        b.extend(self.holds.iter().flatten().flat_map(|s| [s.from, s.to]));
        b.extend(
            self.parks
                .iter()
                .chain(&self.alerting)
                .flat_map(|s| [s.from, s.to]),
        );
        b.retain(|t| (r.start..=r.end).contains(t));
        b.sort_unstable();
        b.dedup();
        b
    }

    /// Start and end of every non-empty hold, park and alerting span, in time order.
    fn changes(&self) -> Vec<Change> {
        let spans = self
            .holds
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.iter().map(move |s| (*s, Depth::Hold(i))))
            .chain(self.parks.iter().map(|s| (*s, Depth::Park)))
            .chain(self.alerting.iter().map(|s| (*s, Depth::Alerting)));
        let mut out: Vec<Change> = spans
            .filter(|(s, _)| s.to > s.from)
            .flat_map(|(s, what)| {
                [
                    Change {
                        t: s.from,
                        delta: 1,
                        what,
                    },
                    Change {
                        t: s.to,
                        delta: -1,
                        what,
                    },
                ]
            })
            .collect();
        out.sort_by_key(|c| c.t);
        out
    }

    /// Classifies every elementary segment (park > hold > talk > ring) and records when each
    /// leg was first person-connected to `tracked`.
    fn sweep(&self, tracked: usize) -> Sweep {
        let r = self.r;
        let n = r.legs.len();
        let mut out = Sweep {
            answer_us: None,
            ring_us: 0,
            talk_us: 0,
            hold_us: 0,
            park_us: 0,
            t2t: false,
            row: vec![None; n],
        };
        let mut by_start: Vec<usize> = (0..self.edges.len()).collect();
        by_start.sort_by_key(|&k| self.edges[k].span.from);
        let mut next_edge = by_start.iter().peekable();
        let mut active: Vec<usize> = Vec::new();
        let changes = self.changes();
        let mut next_change = changes.iter().peekable();
        let (mut hold_depth, mut park_depth, mut alert_depth) = (vec![0i32; n], 0i32, 0i32);
        let mut parent: Vec<usize> = Vec::with_capacity(n);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots: Vec<usize> = Vec::new();
        for w in self.bounds().windows(2) {
            let (s, e) = (w[0], w[1]);
            while let Some(&&k) = next_edge.peek().filter(|&&&k| self.edges[k].span.from <= s) {
                active.push(k);
                next_edge.next();
            }
            active.retain(|&k| self.edges[k].span.covers(s));
            while let Some(c) = next_change.next_if(|c| c.t <= s) {
                match c.what {
                    Depth::Hold(i) => hold_depth[i] += c.delta,
                    Depth::Park => park_depth += c.delta,
                    Depth::Alerting => alert_depth += c.delta,
                }
            }
            parent.clear();
            parent.extend(0..n);
            for edge in active.iter().map(|&k| &self.edges[k]) {
                let (ra, rb) = (find(&mut parent, edge.a), find(&mut parent, edge.b));
                if ra != rb {
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
            roots.drain(..).for_each(|root| members[root].clear());
            for i in 0..n {
                let alive = self.created[i] <= s && s < self.destroyed[i];
                if r.person[i] && alive && self.answered[i].is_some_and(|a| a <= s) {
                    let root = find(&mut parent, i);
                    if members[root].is_empty() {
                        roots.push(root);
                    }
                    members[root].push(i);
                }
            }
            let (mut connected, mut held) = (false, false);
            for group in roots
                .iter()
                .map(|&root| &members[root])
                .filter(|g| g.len() >= 2)
            {
                connected = true;
                held |= group.iter().any(|&i| hold_depth[i] > 0);
                out.t2t |= group.iter().filter(|&&i| r.trunk[i]).count() >= 2;
                if group.contains(&tracked) {
                    for &i in group {
                        out.row[i].get_or_insert(s);
                    }
                }
                if out.answer_us.is_none() && group.contains(&r.origin) {
                    out.answer_us = Some(s);
                }
            }
            let d = e - s;
            // Talk and hold start with the session's answer: parties connected among
            // themselves while the caller is not (possible only with events missing) are not
            // the call's talk.
            let answered = out.answer_us.is_some();
            if park_depth > 0 {
                out.park_us += d;
            } else if answered && held {
                out.hold_us += d;
            } else if answered && connected {
                out.talk_us += d;
            } else if !answered && alert_depth > 0 {
                out.ring_us += d;
            }
        }
        out
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

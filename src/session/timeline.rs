//! The session timeline: ring, talk, hold and park, the answer moment, and who was connected
//! to whom (PRODUCT.md §3 "Times"; `cdr-semantics.md` §2).
//!
//! Bridges become edges with a lifetime (until either leg is destroyed, re-bridged elsewhere or
//! parked); a loopback pair is a wire between its halves. The session's span is cut at every
//! moment anything changes, and each elementary segment is classified once, in precedence
//! order park > hold > talk > ring, so the four totals can never exceed the duration. Two legs
//! are *person-connected* in a segment when both are answered, alive, not loopback, and
//! joined through active edges.

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
    /// Number of legs; `together` is an n × n matrix of first-connection times.
    n: usize,
    together: Vec<Option<i64>>,
}

impl Timeline {
    /// First moment legs `i` and `j` were person-connected.
    pub fn first_together(&self, i: usize, j: usize) -> Option<i64> {
        self.together.get(i * self.n + j).copied().flatten()
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

    // Elementary segments.
    let mut bounds = vec![r.start, r.end];
    bounds.extend(created.iter().chain(&destroyed).copied());
    bounds.extend(answered.iter().flatten().copied());
    bounds.extend(edges.iter().flat_map(|e| [e.span.from, e.span.to]));
    bounds.extend(holds.iter().flatten().flat_map(|s| [s.from, s.to]));
    bounds.extend(parks.iter().chain(&alerting).flat_map(|s| [s.from, s.to]));
    bounds.retain(|t| (r.start..=r.end).contains(t));
    bounds.sort_unstable();
    bounds.dedup();

    let mut tl = Timeline {
        n,
        together: vec![None; n * n],
        lost_in_park,
        ..Timeline::default()
    };
    let mut parent: Vec<usize> = Vec::with_capacity(n);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for w in bounds.windows(2) {
        let (s, e) = (w[0], w[1]);
        parent.clear();
        parent.extend(0..n);
        for edge in edges.iter().filter(|e| e.span.covers(s)) {
            let (ra, rb) = (find(&mut parent, edge.a), find(&mut parent, edge.b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
        members.iter_mut().for_each(Vec::clear);
        for i in 0..n {
            let alive = created[i] <= s && s < destroyed[i];
            if r.person[i] && alive && answered[i].is_some_and(|a| a <= s) {
                let root = find(&mut parent, i);
                members[root].push(i);
            }
        }
        let (mut connected, mut held) = (false, false);
        for group in members.iter().filter(|g| g.len() >= 2) {
            connected = true;
            held |= group.iter().any(|&i| holds[i].iter().any(|h| h.covers(s)));
            tl.t2t |= group.iter().filter(|&&i| r.trunk[i]).count() >= 2;
            for &i in group {
                for &j in group {
                    tl.together[i * n + j].get_or_insert(s);
                }
            }
            if tl.answer_us.is_none() && group.contains(&r.origin) {
                tl.answer_us = Some(s);
            }
        }
        let d = e - s;
        // Talk and hold start with the session's answer: parties connected among themselves
        // while the caller is not (possible only with events missing) are not the call's talk.
        let answered = tl.answer_us.is_some();
        if parks.iter().any(|p| p.covers(s)) {
            tl.park_us += d;
        } else if answered && held {
            tl.hold_us += d;
        } else if answered && connected {
            tl.talk_us += d;
        } else if !answered && alerting.iter().any(|a| a.covers(s)) {
            tl.ring_us += d;
        }
    }
    tl
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

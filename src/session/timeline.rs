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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: i64,
    to: i64,
}

impl Span {
    fn covers(&self, t: i64) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Edge {
    a: usize,
    b: usize,
    span: Span,
}

/// Computes the timeline of a session.
pub fn compute(r: &Roles<'_>) -> Timeline {
    let plan = Plan::new(r);
    let first = plan.sweep(r.origin);
    let anchor = anchor(r, &first.row);
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
        lost_in_park: plan.stops.lost_in_park,
        anchor,
        with_anchor,
    }
}

/// The leg answering parties are measured against: the origin, or on outgoing calls the
/// first trunk leg connected to it (`connected[i]`: when leg `i` was first connected to the
/// origin; ties by call id). Without such a leg, the origin.
fn anchor(r: &Roles<'_>, connected: &[Option<i64>]) -> usize {
    if !r.anchor_far_end {
        return r.origin;
    }
    (0..r.legs.len())
        .filter(|&i| r.trunk[i] && i != r.origin)
        .filter_map(|i| connected[i].map(|t| (t, &*r.legs[i].call_id, i)))
        .min()
        .map_or(r.origin, |x| x.2)
}

/// Every `CHANNEL_BRIDGE` between two legs of the session.
struct Bridges {
    /// (leg, peer, time), in leg order.
    list: Vec<(usize, usize, i64)>,
    /// Per leg, its bridge involvements from either side as (time, partner), in time order.
    involved: Vec<Vec<(i64, usize)>>,
}

impl Bridges {
    fn of(legs: &[Leg], index: &HashMap<&str, usize>) -> Self {
        let mut involved: Vec<Vec<(i64, usize)>> = vec![Vec::new(); legs.len()];
        let mut list = Vec::new();
        for (i, leg) in legs.iter().enumerate() {
            for m in &leg.marks {
                if let MarkKind::Bridge(peer) = &m.kind {
                    if let Some(&j) = index.get(&**peer) {
                        list.push((i, j, m.t));
                        involved[i].push((m.t, j));
                        involved[j].push((m.t, i));
                    }
                }
            }
        }
        for v in &mut involved {
            v.sort_unstable();
        }
        Bridges { list, involved }
    }

    /// The first involvement of leg `i` after `after`, else never (`i64::MAX`).
    fn next(&self, i: usize, after: i64) -> i64 {
        self.involved[i]
            .iter()
            .find(|(t, _)| *t > after)
            .map_or(i64::MAX, |x| x.0)
    }
}

/// The connections between legs, each with its lifetime:
///
/// - a bridge lasts until either leg is destroyed, bridged to another leg, or parked;
/// - a destination that answered but never appears in a bridge (the event was lost, or the
///   build does not send it) is connected to the leg that originated it, from its answer
///   until either is destroyed;
/// - a loopback pair is a wire between its halves while both exist.
fn edges(legs: &[Leg], index: &HashMap<&str, usize>, bridges: &Bridges, life: &Life) -> Vec<Edge> {
    let mut out = Vec::new();
    let mut push = |a: usize, b: usize, span: Span| {
        if span.to > span.from {
            out.push(Edge { a, b, span });
        }
    };
    let parked_after = |i: usize, after: i64| {
        legs[i]
            .marks
            .iter()
            .find(|m| m.t > after && m.kind == MarkKind::Parked)
            .map_or(i64::MAX, |m| m.t)
    };
    for &(a, b, t) in &bridges.list {
        let mut to = life.destroyed[a].min(life.destroyed[b]);
        for (x, other) in [(a, b), (b, a)] {
            if let Some(&(t2, _)) = bridges.involved[x]
                .iter()
                .find(|(t2, p)| *t2 > t && *p != other)
            {
                to = to.min(t2);
            }
            to = to.min(parked_after(x, t));
        }
        push(a, b, Span { from: t, to });
    }
    for (i, leg) in legs.iter().enumerate() {
        let Some(&j) = leg.originator().and_then(|o| index.get(o)) else {
            continue;
        };
        if let (true, Some(from)) = (
            bridges.involved[i].is_empty() && !leg.loopback,
            leg.answer_us(),
        ) {
            let to = life.destroyed[i].min(life.destroyed[j]);
            push(i, j, Span { from, to });
        }
    }
    for (i, leg) in legs.iter().enumerate() {
        let Some(&j) = leg.loopback_other().and_then(|o| index.get(o)) else {
            continue;
        };
        let paired_back = legs[j].loopback_other() == Some(&*leg.call_id);
        if i < j || !paired_back {
            let span = Span {
                from: life.created[i].max(life.created[j]),
                to: life.destroyed[i].min(life.destroyed[j]),
            };
            push(i, j, span);
        }
    }
    out
}

/// When each leg exists and is answered, clipped to the session's end.
struct Life {
    created: Vec<i64>,
    /// Destroyed, else the session's end; never after it.
    destroyed: Vec<i64>,
    /// Answered, else first bridged.
    answered: Vec<Option<i64>>,
}

impl Life {
    fn of(legs: &[Leg], bridges: &Bridges, end: i64) -> Self {
        Life {
            created: legs.iter().map(Leg::start_us).collect(),
            destroyed: legs
                .iter()
                .map(|l| l.destroyed_us.unwrap_or(end).min(end))
                .collect(),
            answered: legs
                .iter()
                .enumerate()
                .map(|(i, l)| l.answer_us().or(bridges.involved[i].first().map(|x| x.0)))
                .collect(),
        }
    }
}

/// Hold and park intervals, and whether a parked leg was lost.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stops {
    /// Per leg: from `CHANNEL_HOLD` to `CHANNEL_UNHOLD`, the leg being parked, its next
    /// bridge, or its destruction, whichever is first.
    holds: Vec<Vec<Span>>,
    /// From `PARK_PARKED` to retrieval (`PARK_RETRIEVED` or the leg's next bridge) or loss
    /// (`PARK_ABANDONED` or the parked leg hanging up), within the session.
    parks: Vec<Span>,
    /// A park ended in loss before retrieval.
    lost_in_park: bool,
}

/// Hold and park intervals of every leg (PRODUCT.md §3: `park` = PARK_PARKED until
/// retrieval or hang-up; `lostinPark` when the parked party hung up before retrieval).
fn stops(legs: &[Leg], bridges: &Bridges, life: &Life, end: i64) -> Stops {
    let mut out = Stops {
        holds: vec![Vec::new(); legs.len()],
        ..Stops::default()
    };
    for (i, leg) in legs.iter().enumerate() {
        let mut hold_open: Option<i64> = None;
        for m in &leg.marks {
            match m.kind {
                MarkKind::Hold if hold_open.is_none() => hold_open = Some(m.t),
                MarkKind::Unhold | MarkKind::Parked => {
                    if let Some(from) = hold_open.take() {
                        let to = m.t.min(bridges.next(i, from)).min(life.destroyed[i]);
                        out.holds[i].push(Span { from, to });
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = hold_open {
            let to = bridges.next(i, from).min(life.destroyed[i]);
            out.holds[i].push(Span { from, to });
        }
        for m in leg.marks.iter().filter(|m| m.kind == MarkKind::Parked) {
            let mark_after = |kind: MarkKind| {
                leg.marks
                    .iter()
                    .find(|x| x.t >= m.t && x.kind == kind)
                    .map_or(i64::MAX, |x| x.t)
            };
            let retrieved = mark_after(MarkKind::Retrieved).min(bridges.next(i, m.t));
            let lost =
                mark_after(MarkKind::ParkAbandoned).min(leg.destroyed_us.unwrap_or(i64::MAX));
            out.lost_in_park |= lost < retrieved;
            out.parks.push(Span {
                from: m.t,
                to: retrieved.min(lost).min(end),
            });
        }
    }
    out
}

/// Alerting of the destination legs: from creation until answered or destroyed.
fn alerting(destination: &[bool], life: &Life) -> Vec<Span> {
    (0..destination.len())
        .filter(|&i| destination[i])
        .map(|i| Span {
            from: life.created[i],
            to: life.answered[i].unwrap_or(i64::MAX).min(life.destroyed[i]),
        })
        .collect()
}

/// Everything the sweep needs, prepared once per session.
struct Plan<'a> {
    r: &'a Roles<'a>,
    life: Life,
    edges: Vec<Edge>,
    stops: Stops,
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

/// Each leg's position by call id.
fn call_index(legs: &[Leg]) -> HashMap<&str, usize> {
    legs.iter()
        .enumerate()
        .map(|(i, l)| (&*l.call_id, i))
        .collect()
}

impl<'a> Plan<'a> {
    fn new(r: &'a Roles<'a>) -> Self {
        let legs = r.legs;
        let index = call_index(legs);
        let bridges = Bridges::of(legs, &index);
        let life = Life::of(legs, &bridges, r.end);
        Plan {
            r,
            edges: edges(legs, &index, &bridges, &life),
            stops: stops(legs, &bridges, &life, r.end),
            alerting: alerting(&r.destination, &life),
            life,
        }
    }

    /// The segment boundaries: every moment anything changes, within the session.
    fn bounds(&self) -> Vec<i64> {
        let r = self.r;
        let mut b = vec![r.start, r.end];
        let life = &self.life;
        b.extend(life.created.iter().chain(&life.destroyed).copied());
        b.extend(life.answered.iter().flatten().copied());
        b.extend(self.edges.iter().flat_map(|e| [e.span.from, e.span.to]));
        b.extend(
            self.stops
                .holds
                .iter()
                .flatten()
                .flat_map(|s| [s.from, s.to]),
        );
        b.extend(
            self.stops
                .parks
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
            .stops
            .holds
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.iter().map(move |s| (*s, Depth::Hold(i))))
            .chain(self.stops.parks.iter().map(|s| (*s, Depth::Park)))
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
                let life = &self.life;
                let alive = life.created[i] <= s && s < life.destroyed[i];
                if r.person[i] && alive && life.answered[i].is_some_and(|a| a <= s) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::leg::{Mark, Text};

    const S: i64 = 1_000_000;

    /// A leg: created, answered and destroyed at these seconds, with marks `(second, kind)`.
    fn leg(id: &str, created: i64, answered: Option<i64>, destroyed: i64) -> Leg {
        let mut l = Leg::new(id);
        l.created_us = Some(created * S);
        l.answered_us = answered.map(|t| t * S);
        l.destroyed_us = Some(destroyed * S);
        l
    }

    fn mark(mut l: Leg, t: i64, kind: MarkKind) -> Leg {
        l.marks.push(Mark { t: t * S, kind });
        l.marks.sort();
        l
    }

    fn bridge(l: Leg, t: i64, peer: &str) -> Leg {
        mark(l, t, MarkKind::Bridge(peer.into()))
    }

    fn span(from: i64, to: i64) -> Span {
        Span {
            from: from * S,
            to: to * S,
        }
    }

    /// Runs `f` on the prepared bridges and leg lives of `legs` (session end at `end` s).
    fn prepared<T>(
        legs: &[Leg],
        end: i64,
        f: impl FnOnce(&HashMap<&str, usize>, &Bridges, &Life) -> T,
    ) -> T {
        let index = call_index(legs);
        let bridges = Bridges::of(legs, &index);
        let life = Life::of(legs, &bridges, end * S);
        f(&index, &bridges, &life)
    }

    /// `cdr-semantics.md` §2 `C`: a bridge connects from BRIDGE until either leg is destroyed
    /// or bridged elsewhere (unbridged), or parked (PRODUCT.md §3: park until retrieval); a
    /// loopback pair is one wire while both halves exist.
    #[test]
    fn edges_and_their_lifetimes() {
        let a = || leg("a", 0, Some(1), 10);
        let b = || leg("b", 1, Some(2), 10);
        // (case, legs, expected (a, b, from s, to s))
        type Case = (&'static str, Vec<Leg>, Vec<(usize, usize, i64, i64)>);
        let cases: Vec<Case> = vec![
            (
                "bridged until both hang up",
                vec![a(), bridge(b(), 2, "a")],
                vec![(1, 0, 2, 10)],
            ),
            (
                "a leg hanging up ends the bridge",
                vec![leg("a", 0, Some(1), 7), bridge(b(), 2, "a")],
                vec![(1, 0, 2, 7)],
            ),
            (
                "parking ends the bridge",
                vec![mark(a(), 5, MarkKind::Parked), bridge(b(), 2, "a")],
                vec![(1, 0, 2, 5)],
            ),
            (
                "a bridge elsewhere ends the first one",
                vec![a(), bridge(bridge(b(), 2, "a"), 6, "c"), leg("c", 5, Some(6), 10)],
                vec![(1, 0, 2, 6), (1, 2, 6, 10)],
            ),
            (
                "a bridge at the moment a leg hangs up connects nothing",
                vec![leg("a", 0, Some(1), 2), bridge(b(), 2, "a")],
                vec![],
            ),
            (
                "an answered destination without a bridge: connected to its originator from its answer",
                vec![a(), {
                    let mut l = leg("b", 1, Some(3), 9);
                    l.offer_text(Text::Originator, S, Some("a"));
                    l
                }],
                vec![(1, 0, 3, 9)],
            ),
            (
                "a loopback pair is one wire while both exist",
                vec![
                    {
                        let mut l = leg("x", 1, None, 8);
                        l.loopback = true;
                        l.offer_text(Text::LoopbackOther, S, Some("y"));
                        l
                    },
                    {
                        let mut l = leg("y", 2, None, 9);
                        l.loopback = true;
                        l.offer_text(Text::LoopbackOther, S, Some("x"));
                        l
                    },
                ],
                vec![(0, 1, 2, 8)],
            ),
        ];
        for (case, legs, want) in cases {
            let got = prepared(&legs, 10, |index, bridges, life| {
                edges(&legs, index, bridges, life)
            });
            let want: Vec<Edge> = want
                .into_iter()
                .map(|(a, b, from, to)| Edge {
                    a,
                    b,
                    span: span(from, to),
                })
                .collect();
            assert_eq!(got, want, "{case}");
        }
    }

    /// PRODUCT.md §3: `hold` = held time (CHANNEL_HOLD to UNHOLD, closed at the bridge's end
    /// or DESTROY when UNHOLD is missing, `cdr-semantics.md` §2 `H`); `park` = PARK_PARKED
    /// until retrieval or hang-up; `lostinPark` when the parked party hung up first.
    #[test]
    fn holds_parks_and_loss_in_park() {
        let a = || leg("a", 0, Some(1), 10);
        // (case, leg "a" (with "b" bridging to it where marked), expected holds of a, parks, lost)
        type Case = (
            &'static str,
            Leg,
            Option<i64>,
            Vec<(i64, i64)>,
            Vec<(i64, i64)>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "hold to unhold",
                mark(mark(a(), 3, MarkKind::Hold), 5, MarkKind::Unhold),
                None,
                vec![(3, 5)],
                vec![],
                false,
            ),
            (
                "hold never released: until the leg hangs up",
                mark(leg("a", 0, Some(1), 8), 3, MarkKind::Hold),
                None,
                vec![(3, 8)],
                vec![],
                false,
            ),
            (
                "hold never released: until the leg's next bridge",
                mark(a(), 3, MarkKind::Hold),
                Some(6),
                vec![(3, 6)],
                vec![],
                false,
            ),
            (
                "held, then parked: hold ends, park starts",
                mark(mark(a(), 2, MarkKind::Hold), 4, MarkKind::Parked),
                Some(9),
                vec![(2, 4)],
                vec![(4, 9)],
                false,
            ),
            (
                "parked until PARK_RETRIEVED",
                mark(mark(a(), 4, MarkKind::Parked), 9, MarkKind::Retrieved),
                None,
                vec![],
                vec![(4, 9)],
                false,
            ),
            (
                "parked until retrieved by a bridge",
                mark(a(), 4, MarkKind::Parked),
                Some(7),
                vec![],
                vec![(4, 7)],
                false,
            ),
            (
                "parked party hung up: lost in park",
                mark(leg("a", 0, Some(1), 7), 4, MarkKind::Parked),
                None,
                vec![],
                vec![(4, 7)],
                true,
            ),
            (
                "PARK_ABANDONED before retrieval: lost in park",
                mark(mark(a(), 4, MarkKind::Parked), 6, MarkKind::ParkAbandoned),
                Some(8),
                vec![],
                vec![(4, 6)],
                true,
            ),
        ];
        for (case, a, bridged_at, holds, parks, lost) in cases {
            let mut legs = vec![a];
            if let Some(t) = bridged_at {
                legs.push(bridge(leg("b", 0, Some(1), 10), t, "a"));
            }
            let got = prepared(&legs, 10, |_, bridges, life| {
                stops(&legs, bridges, life, 10 * S)
            });
            let spans =
                |v: Vec<(i64, i64)>| v.into_iter().map(|(f, t)| span(f, t)).collect::<Vec<_>>();
            assert_eq!(got.holds[0], spans(holds), "{case}");
            assert_eq!(got.parks, spans(parks), "{case}");
            assert_eq!(got.lost_in_park, lost, "{case}");
        }
    }

    /// `cdr-semantics.md` §2 `A`: destination legs alert from CREATE until ANSWER or
    /// DESTROY; other legs never count as ringing.
    #[test]
    fn alerting_of_destinations() {
        let legs = vec![
            leg("origin", 0, Some(0), 10),
            leg("answered", 1, Some(4), 10),
            leg("never answered", 2, None, 6),
            bridge(leg("bridged, no answer event", 1, None, 10), 3, "origin"),
        ];
        let destination = [false, true, true, true];
        let got = prepared(&legs, 10, |_, _, life| alerting(&destination, life));
        assert_eq!(got, vec![span(1, 4), span(2, 6), span(1, 3)]);
    }

    /// PRODUCT.md §3 "Parties": on outgoing calls the answering parties are measured against
    /// the answered far end (the first trunk connected to the calling device), else the origin.
    #[test]
    fn anchor_is_the_far_end_only_on_outgoing_calls() {
        let legs = vec![
            leg("o", 0, Some(0), 10),
            leg("t2", 1, Some(3), 10),
            leg("t1", 1, Some(3), 10),
            leg("dev", 1, Some(2), 10),
        ];
        let roles = |far_end: bool| Roles {
            legs: &legs,
            origin: 0,
            person: vec![true; 4],
            trunk: vec![false, true, true, false],
            destination: vec![false, true, true, true],
            start: 0,
            end: 10 * S,
            anchor_far_end: far_end,
        };
        // (case, far end, connected to the origin at, expected anchor)
        let cases = [
            (
                "not outgoing: the origin",
                false,
                [None, Some(3), Some(3), Some(2)],
                0,
            ),
            (
                "outgoing: the first connected trunk, ties by call id",
                true,
                [None, Some(3), Some(3), Some(2)],
                2,
            ),
            (
                "outgoing: the earlier trunk wins",
                true,
                [None, Some(3), Some(5), Some(2)],
                1,
            ),
            (
                "outgoing, no trunk connected: the origin",
                true,
                [None, None, None, Some(2)],
                0,
            ),
        ];
        for (case, far_end, connected, want) in cases {
            let connected = connected.map(|t: Option<i64>| t.map(|t| t * S));
            assert_eq!(anchor(&roles(far_end), &connected), want, "{case}");
        }
    }
}

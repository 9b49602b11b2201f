//! What one PBX event may make postcall hold, enforced where events enter (after decoding,
//! before the assembler): text fields are cut to a length, lists and custom variables to a
//! count, and a tenant's open legs to a number. Over a limit the value is truncated or the
//! event refused — never accepted whole — and the driver counts and logs it.

use std::borrow::Cow;
use std::collections::HashMap;

use super::event::{CallEvent, EventKind};
use crate::clock::StreamTime;

/// The limits (`[limits]` in `plugin.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Characters kept of any text field: names, numbers, ids (256).
    pub max_field_chars: usize,
    /// Custom application variables (CDR tags) kept per event (64).
    pub max_vars: usize,
    /// Characters kept of a custom variable's name or value (256).
    pub max_var_chars: usize,
    /// Ids kept per list: related call ids, recordings (32).
    pub max_list: usize,
    /// Open legs held per tenant; events opening more are refused (20 000).
    pub max_open_legs_per_tenant: usize,
    /// Open legs held over all tenants, so invented account ids cannot add up (200 000).
    pub max_open_legs: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_field_chars: 256,
            max_vars: 64,
            max_var_chars: 256,
            max_list: 32,
            max_open_legs_per_tenant: 20_000,
            max_open_legs: 200_000,
        }
    }
}

/// What [`clamp`] cut from one event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    /// Text fields (and variable names or values) truncated.
    pub truncated: u32,
    /// Variables and list items dropped.
    pub dropped: u32,
}

fn cut(s: &mut Cow<'_, str>, max: usize) -> bool {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            s.to_mut().truncate(at);
            true
        }
        None => false,
    }
}

fn cut_opt(s: &mut Option<Cow<'_, str>>, max: usize) -> u32 {
    s.as_mut().map_or(0, |s| u32::from(cut(s, max)))
}

/// Cuts `ev` down to `limits`.
pub fn clamp(ev: &mut CallEvent<'_>, limits: &IngestLimits) -> Clamped {
    let mut c = Clamped::default();
    let m = limits.max_field_chars;
    c.truncated += u32::from(cut(&mut ev.call_id, m));
    for f in [
        &mut ev.account_id,
        &mut ev.caller_number,
        &mut ev.caller_name,
        &mut ev.callee_number,
        &mut ev.callee_name,
        &mut ev.other_leg,
        &mut ev.other_leg_destination,
        &mut ev.loopback_other,
        &mut ev.request_user,
        &mut ev.presence_user,
        &mut ev.hangup_cause,
        &mut ev.parking_slot,
        &mut ev.ccv.authorizing_id,
        &mut ev.ccv.authorizing_type,
        &mut ev.ccv.owner_id,
        &mut ev.ccv.username,
        &mut ev.ccv.bridge_id,
        &mut ev.ccv.interaction_id,
        &mut ev.ccv.resource_type,
        &mut ev.ccv.inception,
        &mut ev.ccv.e164_destination,
        &mut ev.ccv.original_number,
        &mut ev.ccv.agent_id,
        &mut ev.ccv.queue_id,
        &mut ev.ccv.member_call_id,
        &mut ev.ccv.cid_number_prefix,
        &mut ev.ccv.cid_name_prefix,
    ] {
        c.truncated += cut_opt(f, m);
    }
    for list in [&mut ev.related, &mut ev.recordings, &mut ev.ccv.recordings] {
        if list.len() > limits.max_list {
            c.dropped += u32::try_from(list.len() - limits.max_list).unwrap_or(u32::MAX);
            list.truncate(limits.max_list);
        }
        for s in list.iter_mut() {
            c.truncated += u32::from(cut(s, m));
        }
    }
    if ev.cavs.len() > limits.max_vars {
        c.dropped += u32::try_from(ev.cavs.len() - limits.max_vars).unwrap_or(u32::MAX);
        ev.cavs.truncate(limits.max_vars);
    }
    for (k, v) in &mut ev.cavs {
        c.truncated += u32::from(cut(k, limits.max_var_chars));
        c.truncated += u32::from(cut(v, limits.max_var_chars));
    }
    c
}

/// Open legs per tenant, as the ingest boundary sees them: a leg counts from its first event
/// to its CHANNEL_DESTROY, or until it has been quiet for the idle timeout (when the assembler
/// force-closes it). Bounded by the limit itself.
#[derive(Debug, Default)]
pub struct LegBudget {
    tenants: HashMap<Box<str>, HashMap<Box<str>, i64>>,
    total: usize,
}

/// Whether an event may go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes.
    Yes,
    /// No: its tenant already holds the maximum of open legs.
    TenantFull,
    /// No: all tenants together hold the maximum of open legs.
    Full,
}

impl LegBudget {
    /// Admits `ev` at stream time `t` unless it would open a leg beyond the limits.
    pub fn admit(&mut self, ev: &CallEvent<'_>, t: StreamTime, limits: &IngestLimits) -> Admit {
        let t = t.as_us();
        let tenant = ev.account_id.as_deref().unwrap_or("");
        if let Some(legs) = self.tenants.get_mut(tenant) {
            if let Some(seen) = legs.get_mut(&*ev.call_id) {
                if ev.kind == EventKind::Destroy {
                    legs.remove(&*ev.call_id);
                    self.total -= 1;
                } else {
                    *seen = (*seen).max(t);
                }
                return Admit::Yes;
            }
            if legs.len() >= limits.max_open_legs_per_tenant {
                return Admit::TenantFull;
            }
        }
        if ev.kind == EventKind::Destroy {
            // The last event of a leg not held: nothing to count.
            return Admit::Yes;
        }
        if self.total >= limits.max_open_legs {
            return Admit::Full;
        }
        self.tenants
            .entry(tenant.into())
            .or_default()
            .insert((*ev.call_id).into(), t);
        self.total += 1;
        Admit::Yes
    }

    /// Forgets legs quiet since before `cutoff` and tenants with none left.
    pub fn expire(&mut self, cutoff: StreamTime) {
        let cutoff = cutoff.as_us();
        let mut total = 0;
        self.tenants.retain(|_, legs| {
            legs.retain(|_, seen| *seen >= cutoff);
            total += legs.len();
            !legs.is_empty()
        });
        self.total = total;
    }

    /// Open legs counted for `tenant`.
    pub fn open(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{decode_frame, Frame};

    fn event(text: &str) -> CallEvent<'static> {
        let text: &'static str = Box::leak(text.to_owned().into_boxed_str());
        match decode_frame(text).unwrap() {
            Frame::Event(e) => *e,
            Frame::Reply(_) => panic!("not an event"),
        }
    }

    fn frame(name: &str, call: &str, extra: &str) -> String {
        format!(
            r#"{{"action":"event","name":"{name}","routing_key":"call.acct1.{name}.{call}","data":{{"event_name":"{name}","call_id":"{call}","msg_id":"1700000000000000","call_direction":"inbound"{extra}}}}}"#
        )
    }

    #[test]
    fn huge_fields_and_var_floods_are_cut() {
        let vars: Vec<String> = (0..1000).map(|i| format!(r#""k{i}":"v""#)).collect();
        let extra = format!(
            r#","caller_id_name":"{}","caller_id_number":"{}","custom_application_vars":{{{}}}"#,
            "N".repeat(100_000),
            "1".repeat(5000),
            vars.join(",")
        );
        let mut ev = event(&frame("CHANNEL_CREATE", "c1", &extra));
        assert_eq!(ev.cavs.len(), 1000);
        let c = clamp(&mut ev, &IngestLimits::default());
        assert_eq!(ev.caller_name.as_deref().map(str::len), Some(256));
        assert_eq!(ev.caller_number.as_deref().map(str::len), Some(256));
        assert_eq!(ev.cavs.len(), 64);
        assert_eq!(
            c,
            Clamped {
                truncated: 2,
                dropped: 936
            }
        );
        // Within the limits nothing changes.
        let mut small = event(&frame("CHANNEL_CREATE", "c2", r#","caller_id_name":"Ann""#));
        let before = small.clone();
        assert_eq!(
            clamp(&mut small, &IngestLimits::default()),
            Clamped::default()
        );
        assert_eq!(small, before);
        // Cut on a character boundary.
        let mut s: Cow<'_, str> = Cow::Borrowed("ééé");
        assert!(cut(&mut s, 2));
        assert_eq!(s, "éé");
    }

    #[test]
    fn a_tenant_cannot_open_more_legs_than_its_budget() {
        let mut b = LegBudget::default();
        let l = IngestLimits {
            max_open_legs_per_tenant: 3,
            max_open_legs: 4,
            ..IngestLimits::default()
        };
        for n in 0..3 {
            let ev = event(&frame("CHANNEL_CREATE", &format!("c{n}"), ""));
            assert_eq!(b.admit(&ev, StreamTime::from_us(n), &l), Admit::Yes);
        }
        let fourth = event(&frame("CHANNEL_CREATE", "c9", ""));
        assert_eq!(
            b.admit(&fourth, StreamTime::from_us(10), &l),
            Admit::TenantFull
        );
        // Legs already open keep their events; a DESTROY frees a place.
        let answer = event(&frame("CHANNEL_ANSWER", "c1", ""));
        assert_eq!(b.admit(&answer, StreamTime::from_us(11), &l), Admit::Yes);
        let destroy = event(&frame("CHANNEL_DESTROY", "c0", ""));
        assert_eq!(b.admit(&destroy, StreamTime::from_us(12), &l), Admit::Yes);
        assert_eq!(b.admit(&fourth, StreamTime::from_us(13), &l), Admit::Yes);
        // Another tenant: one more leg fits in the overall limit, then none.
        let other =
            |c: &str| event(&frame("CHANNEL_CREATE", c, "").replace("call.acct1.", "call.acct2."));
        assert_eq!(
            b.admit(&other("d1"), StreamTime::from_us(14), &l),
            Admit::Yes
        );
        assert_eq!(
            b.admit(&other("d2"), StreamTime::from_us(15), &l),
            Admit::Full
        );
        assert_eq!(b.open("acct1"), 3);
        // Quiet legs expire with the idle timeout.
        b.expire(StreamTime::from_us(12));
        assert_eq!(b.open("acct1"), 1);
        assert_eq!(
            b.admit(&other("d2"), StreamTime::from_us(16), &l),
            Admit::Yes
        );
    }
}

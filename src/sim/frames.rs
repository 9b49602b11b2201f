//! Renders one scripted event as the exact Blackhole text frame Kazoo 4.3 would send.
//!
//! Envelope per `kazoo-events.md` §2.5; `data` per §4.2–§4.6: ecallmgr channel events carry
//! the generic fields, `request`/`to`/`from` only on CREATE, ANSWER and DESTROY, the full
//! `other_leg_*` set on CREATE/ANSWER/BRIDGE (only `other_leg_call_id` elsewhere), and the
//! DESTROY extras; PARK_* events come from the callflow app with a small payload, a random
//! hex `msg_id` and no `timestamp`. Channel variables depend on the leg's role and on whether
//! the leg has been routed yet (a carrier A-leg's CREATE carries only `account_id`).

use crate::source::{fnv1a, EventKind};

use super::json::Json;
use super::model::{Account, Pbx};
use super::rng::Rng;
use super::script::{gregorian, Ev, Leg, Role, Script};

/// Blackhole's routing-key encoding of a call id (`kz_amqp_util:encode/1`): `[A-Za-z0-9-~_]`
/// pass, space becomes `+`, every other byte `%XX` (upper-case hex).
pub(crate) fn encode_call_id(call_id: &str) -> String {
    let mut out = String::with_capacity(call_id.len() + 8);
    for b in call_id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'~' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Which variant of a leg's channel-variable set an event shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CcvView {
    /// CREATE / ANSWER / DESTROY: everything.
    Full,
    /// BRIDGE / HOLD / UNHOLD: without the node and fetch bookkeeping.
    Brief,
    /// PARK_*: the call's variables as the callflow app sees them.
    Park,
}

/// The frame text of event `ev` of `s`.
pub(crate) fn render(pbx: &Pbx, s: &Script, ev: &Ev) -> String {
    let acct = &pbx.accounts[s.account];
    let leg = &s.legs[ev.leg];
    let name = ev.kind.name();
    let mut j = Json::with_capacity(3072);
    j.begin();
    j.str("action", "event");
    j.str("subscribed_key", "call.*.*");
    j.str("subscription_key", &format!("call.{}.{name}.*", acct.id));
    j.str("name", name);
    j.str(
        "routing_key",
        &format!("call.{}.{name}.{}", acct.id, encode_call_id(&leg.call_id)),
    );
    j.object("data");
    match ev.kind {
        EventKind::Parked | EventKind::Retrieved | EventKind::ParkAbandoned => {
            park_data(&mut j, pbx, s, ev)
        }
        _ => channel_data(&mut j, pbx, s, ev),
    }
    j.end();
    j.end();
    j.finish()
}

fn park_data(j: &mut Json, pbx: &Pbx, s: &Script, ev: &Ev) {
    let leg = &s.legs[ev.leg];
    j.str("app_name", "callflow");
    j.str("app_version", "4.0.0");
    j.str("event_category", "call_event");
    j.str("event_name", ev.kind.name());
    j.str("msg_id", &format!("{:032x}", ev.tag));
    j.str("call_id", &leg.call_id);
    j.str("caller_id_name", &leg.caller.name);
    j.str("caller_id_number", &leg.caller.number);
    if let Some(callee) = ev.other.and_then(|o| s.legs[o].callee.as_ref()) {
        j.str("callee_id_name", &callee.name);
        j.str("callee_id_number", &callee.number);
    }
    j.str("parking_slot", &ev.slot.to_string());
    ccvs(j, pbx, s, leg, ev, CcvView::Park);
}

fn channel_data(j: &mut Json, pbx: &Pbx, s: &Script, ev: &Ev) {
    let acct = &pbx.accounts[s.account];
    let leg = &s.legs[ev.leg];
    let ms = &pbx.media_servers[s.media];
    let kind = ev.kind;
    let inbound = leg.role.inbound();
    let answered = leg.answered_us.is_some_and(|a| ev.at_us >= a);
    let sip_fields = matches!(
        kind,
        EventKind::Create | EventKind::Answer | EventKind::Destroy
    );
    let full_other = matches!(
        kind,
        EventKind::Create | EventKind::Answer | EventKind::Bridge
    );

    j.str("app_name", "ecallmgr");
    j.str("app_version", "4.0.0");
    j.str("event_category", "call_event");
    j.str("event_name", kind.name());
    j.str("msg_id", &ev.at_us.to_string());
    j.int("timestamp", gregorian(ev.at_us));
    j.str("call_id", &leg.call_id);
    j.str(
        "call_direction",
        if inbound { "inbound" } else { "outbound" },
    );
    j.str("caller_id_name", &leg.caller.name);
    j.str("caller_id_number", &leg.caller.number);
    if let Some(c) = &leg.callee {
        j.str("callee_id_name", &c.name);
        j.str("callee_id_number", &c.number);
    }
    let busy = if inbound { "EXECUTE" } else { "EXCHANGE_MEDIA" };
    let (call_state, state) = match kind {
        EventKind::Create => ("DOWN", "INIT"),
        EventKind::Hold => ("HELD", busy),
        EventKind::Destroy => ("HANGUP", "DESTROY"),
        _ => ("ACTIVE", busy),
    };
    j.str("channel_call_state", call_state);
    j.str("channel_state", state);
    j.int("channel_created_time", leg.created_us);
    j.bool("channel_loopback_bowout", false);
    j.bool("channel_loopback_bowout_execute", false);
    j.str("channel_name", &channel_name(pbx, acct, leg));
    if let Role::Loopback { a_half, .. } = leg.role {
        j.bool("channel_is_loopback", true);
        j.str("channel_loopback_leg", if a_half { "A" } else { "B" });
        if let Some(peer) = leg.loop_peer {
            j.str("channel_loopback_other_leg_id", &s.legs[peer].call_id);
        }
    }
    if answered {
        j.str("disposition", "ANSWER");
    }
    if let (EventKind::Destroy, Some((cause, code))) = (kind, ev.hangup) {
        let duration = (ev.at_us - leg.created_us).div_euclid(1_000_000);
        let billing = leg
            .answered_us
            .filter(|_| answered)
            .map_or(0, |a| (ev.at_us - a + 999_999).div_euclid(1_000_000));
        j.str("hangup_cause", cause);
        j.str("hangup_code", code);
        j.int("duration_seconds", duration);
        j.int("billing_seconds", billing);
        j.int("ringing_seconds", (duration - billing).max(0));
    }
    if let Some(o) = ev.other {
        let other = &s.legs[o];
        j.str("other_leg_call_id", &other.call_id);
        if full_other {
            j.str("other_leg_caller_id_name", &other.caller.name);
            j.str("other_leg_caller_id_number", &other.caller.number);
            j.str("other_leg_destination_number", &other.dest);
            let dir = if other.role.inbound() {
                "inbound"
            } else {
                "outbound"
            };
            j.str("other_leg_direction", dir);
        }
    }
    let device = match leg.role {
        Role::DeviceIn { device } | Role::DeviceOut { device, .. } => Some(device),
        _ => None,
    };
    if let Some(d) = device {
        j.str(
            "presence_id",
            &format!("{}@{}", presence_user(acct, d), acct.realm),
        );
    }
    if kind == EventKind::Destroy {
        let ua = match leg.role {
            Role::DeviceIn { device } | Role::DeviceOut { device, .. } => {
                Some(acct.devices[device].user_agent.as_str())
            }
            Role::CarrierIn { carrier } | Role::CarrierOut { carrier, .. } => {
                pbx.carriers[carrier].user_agent.as_deref()
            }
            Role::Loopback { .. } => None,
        };
        j.opt("user_agent", ua);
        if leg.answered_us.is_some() && !matches!(leg.role, Role::Loopback { .. }) {
            let (remote, local) = sdp(pbx, s, leg);
            j.str("remote_sdp", &remote);
            j.str("local_sdp", &local);
        }
    }
    if let Some(x) = leg.xfer.filter(|x| ev.at_us >= x.at_us) {
        j.object("transfer_history");
        j.object(&x.at_us.div_euclid(1_000_000).to_string());
        j.str("call_id", &s.legs[x.leg].call_id);
        j.str("type", x.kind);
        j.end();
        j.end();
    }
    j.object("custom_application_vars");
    if leg.cavs && ev.at_us >= leg.routed_us {
        for (k, v) in &s.cavs {
            j.str(k, v);
        }
    }
    j.end();
    let view = match kind {
        EventKind::Create | EventKind::Answer | EventKind::Destroy => CcvView::Full,
        _ => CcvView::Brief,
    };
    ccvs(j, pbx, s, leg, ev, view);
    j.object("custom_sip_headers");
    match leg.role {
        Role::CarrierIn { carrier } => {
            j.str("x_auth_ip", &pbx.carriers[carrier].ip);
            j.str("x_auth_port", "5060");
        }
        Role::DeviceIn { device } => {
            j.str("x_auth_ip", &acct.devices[device].ip);
            j.str("x_auth_port", "5060");
        }
        _ => {}
    }
    j.end();
    if sip_fields {
        sip_addresses(j, pbx, acct, leg, answered);
    }
    j.str("media_server", &ms.hostname);
    j.str("switch_hostname", &ms.hostname);
    j.str("switch_nodename", &format!("freeswitch@{}", ms.hostname));
    j.str("switch_url", &format!("sip:mod_sofia@{}:11000", ms.ip));
    j.str("switch_uri", &format!("sip:{}:11000", ms.ip));
}

fn presence_user(acct: &Account, device: usize) -> String {
    acct.owner(device).map_or_else(
        || acct.devices[device].username.clone(),
        |u| u.extension.clone(),
    )
}

fn host_of_caller(number: &str, default: &str) -> String {
    if number.eq_ignore_ascii_case("anonymous") {
        "anonymous.invalid".to_owned()
    } else {
        default.to_owned()
    }
}

fn channel_name(pbx: &Pbx, acct: &Account, leg: &Leg) -> String {
    match leg.role {
        Role::CarrierIn { carrier } => {
            let host = host_of_caller(&leg.caller.number, &pbx.carriers[carrier].ip);
            format!("sofia/sipinterface_1/{}@{host}", leg.caller.number)
        }
        Role::DeviceIn { device } | Role::DeviceOut { device, .. } => format!(
            "sofia/sipinterface_1/{}@{}",
            acct.devices[device].username, acct.realm
        ),
        Role::CarrierOut { carrier, .. } => {
            format!(
                "sofia/sipinterface_1/{}@{}",
                leg.dest, pbx.carriers[carrier].ip
            )
        }
        Role::Loopback { a_half, .. } => {
            format!("loopback/{}-{}", leg.dest, if a_half { "a" } else { "b" })
        }
    }
}

/// `from`/`to`/`request` (+ URIs and tags) of a leg.
fn sip_addresses(j: &mut Json, pbx: &Pbx, acct: &Account, leg: &Leg, answered: bool) {
    let (from, request) = match leg.role {
        Role::CarrierIn { carrier } => (
            format!(
                "{}@{}",
                leg.caller.number,
                host_of_caller(&leg.caller.number, &pbx.carriers[carrier].ip)
            ),
            format!("{}@{}", leg.dest, pbx.sip_ip),
        ),
        Role::DeviceIn { device } => (
            format!("{}@{}", acct.devices[device].username, acct.realm),
            format!("{}@{}", leg.dest, acct.realm),
        ),
        Role::DeviceOut { .. } | Role::Loopback { .. } => (
            format!("{}@{}", leg.caller.number, acct.realm),
            format!("{}@{}", leg.dest, acct.realm),
        ),
        Role::CarrierOut { carrier, .. } => (
            format!("{}@{}", leg.caller.number, pbx.sip_ip),
            format!("{}@{}", leg.dest, pbx.carriers[carrier].ip),
        ),
    };
    let mut tags = Rng::from_text(&leg.call_id);
    let from_tag = match leg.role {
        Role::CarrierIn { .. } => Some(format!("as{}", tags.hex(8))),
        Role::DeviceIn { .. } => Some(tags.digits(10)),
        _ => None,
    };
    let to_tag = tags.alnum(13);
    j.str("from", &from);
    j.str("from_uri", &from);
    j.opt("from_tag", from_tag.as_deref());
    if answered {
        j.str("to_tag", &to_tag);
    }
    j.str("request", &request);
    j.str("to", &request);
    j.str("to_uri", &request);
}

/// Short SDP bodies (remote, local) for an answered leg.
fn sdp(pbx: &Pbx, s: &Script, leg: &Leg) -> (String, String) {
    let acct = &pbx.accounts[s.account];
    let ms = &pbx.media_servers[s.media];
    let remote_ip = match leg.role {
        Role::DeviceIn { device } | Role::DeviceOut { device, .. } => {
            acct.devices[device].ip.as_str()
        }
        Role::CarrierIn { carrier } | Role::CarrierOut { carrier, .. } => {
            pbx.carriers[carrier].ip.as_str()
        }
        Role::Loopback { .. } => ms.ip.as_str(),
    };
    let (pt, codec) = if acct.region == "US" {
        (0, "PCMU")
    } else {
        (8, "PCMA")
    };
    let h = fnv1a(leg.call_id.as_bytes());
    let rport = 10_000 + (h % 10_000) * 2;
    let lport = 16_384 + ((h >> 20) % 8_000) * 2;
    let sess = 20_000 + (h >> 40) % 9_000;
    let secs = leg.created_us.div_euclid(1_000_000) - 24_599;
    let media = |port: u64, ip: &str| {
        format!(
            "c=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {codec}/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
    };
    let remote = format!(
        "v=0\r\no=- {sess} {} IN IP4 {remote_ip}\r\ns=SDP data\r\n{}",
        sess + 2,
        media(rport, remote_ip)
    );
    let local = format!(
        "v=0\r\no=FreeSWITCH {secs} {} IN IP4 {}\r\ns=FreeSWITCH\r\n{}",
        secs + 2,
        ms.ip,
        media(lport, &ms.ip)
    );
    (remote, local)
}

/// `custom_channel_vars` of `leg` as seen on `ev`.
fn ccvs(j: &mut Json, pbx: &Pbx, s: &Script, leg: &Leg, ev: &Ev, view: CcvView) {
    let acct = &pbx.accounts[s.account];
    let routed = ev.at_us >= leg.routed_us;
    let full = view == CcvView::Full;
    let node = format!("ecallmgr@{}", pbx.kazoo_host);
    let bridge_id = s.legs[leg.bridge_id].call_id.as_str();
    let interaction = s.interactions[leg.interaction].as_str();
    let inception = s
        .did
        .as_deref()
        .filter(|_| leg.inception)
        .map(|d| format!("{d}@{}", pbx.sip_ip));
    let fetch_id = || {
        let mut r = Rng::from_text(&leg.call_id);
        r.next_u64();
        r.uuid()
    };
    j.object("custom_channel_vars");
    match leg.role {
        Role::CarrierIn { carrier } => {
            j.str("account_id", &acct.id);
            if routed {
                if full {
                    j.str("account_name", &acct.name);
                    j.str("account_realm", &acct.realm);
                }
                if view != CcvView::Park {
                    j.str("application_name", "callflow");
                }
                if full {
                    j.str(
                        "application_node",
                        &format!("kazoo_apps@{}", pbx.kazoo_host),
                    );
                }
                j.str("authorizing_type", "resource");
                j.str("bridge_id", bridge_id);
                j.str("call_interaction_id", interaction);
                j.opt("callflow_id", leg.callflow.as_deref());
                if full {
                    j.str("channel_authorized", "true");
                    j.str("ecallmgr_node", &node);
                    j.str("fetch_id", &fetch_id());
                }
                j.str("global_resource", "true");
                if full {
                    j.str("ignore_display_updates", "true");
                }
                j.opt("inception", inception.as_deref());
                j.str("realm", &acct.realm);
                j.str("resource_id", &pbx.carriers[carrier].id);
                j.str("resource_type", "offnet-origination");
            }
        }
        Role::DeviceIn { device } => {
            let dev = &acct.devices[device];
            j.str("account_id", &acct.id);
            if routed && full {
                j.str("account_name", &acct.name);
            }
            if routed && view != CcvView::Park {
                j.str("application_name", "callflow");
            }
            if routed && full {
                j.str(
                    "application_node",
                    &format!("kazoo_apps@{}", pbx.kazoo_host),
                );
            }
            j.str("authorizing_id", &dev.id);
            j.str("authorizing_type", "device");
            if routed {
                j.str("bridge_id", bridge_id);
                j.str("call_interaction_id", interaction);
                j.opt("callflow_id", leg.callflow.as_deref());
            }
            if routed && full {
                j.str("channel_authorized", "true");
                j.str("ecallmgr_node", &node);
                j.str("fetch_id", &fetch_id());
            }
            j.opt("owner_id", dev.owner_id.as_deref());
            j.str("realm", &acct.realm);
            j.str("username", &dev.username);
        }
        Role::DeviceOut { device, agent } => {
            let dev = &acct.devices[device];
            j.str("account_id", &acct.id);
            j.str("authorizing_id", &dev.id);
            j.str("authorizing_type", "device");
            j.opt("owner_id", dev.owner_id.as_deref());
            j.str("username", &dev.username);
            j.str("realm", &acct.realm);
            j.str("bridge_id", bridge_id);
            j.str("call_interaction_id", interaction);
            j.opt("inception", inception.as_deref());
            if agent {
                let member = &s.legs[leg.bridge_id];
                j.opt("agent_id", dev.owner_id.as_deref());
                j.str("member_call_id", &member.call_id);
                j.str("queue_id", &acct.queue.id);
                j.str("original_caller_id_name", &member.caller.name);
                j.str("original_caller_id_number", &member.caller.number);
                j.str("retain_cid", "true");
            }
            if full {
                j.str("ecallmgr_node", &node);
            }
        }
        Role::CarrierOut { carrier, forward } => {
            let dest = leg.dest.as_str();
            j.str("account_id", &acct.id);
            j.str("bridge_id", bridge_id);
            if forward {
                j.str("call_forward", "true");
            }
            j.str("call_interaction_id", interaction);
            if full {
                j.str("channel_authorized", "true");
            }
            let classifier = if dest.starts_with("+1") {
                "did_us"
            } else {
                "unknown"
            };
            j.str("did_classifier", classifier);
            j.str("e164_destination", dest);
            j.str("e164_origination", &leg.caller.number);
            if full {
                j.str("ecallmgr_node", &node);
                j.str("fetch_id", &fetch_id());
            }
            j.str("global_resource", "true");
            j.opt("inception", inception.as_deref());
            j.str("matched_number", &national(dest));
            j.str("original_number", dest);
            j.str("realm", &acct.realm);
            j.str("resource_id", &pbx.carriers[carrier].id);
            j.str("resource_type", "offnet-termination");
        }
        Role::Loopback { device, .. } => {
            let dev = &acct.devices[device];
            j.str("account_id", &acct.id);
            j.str("authorizing_id", &dev.id);
            j.str("authorizing_type", "device");
            j.str("bridge_id", bridge_id);
            j.str("call_forward", "true");
            j.str("call_interaction_id", interaction);
            if full && routed {
                j.str("ecallmgr_node", &node);
            }
            j.opt("inception", inception.as_deref());
            j.opt("owner_id", dev.owner_id.as_deref());
            j.str("realm", &acct.realm);
        }
    }
    j.end();
}

/// National significant form of an E.164 number as a carrier route matches it.
fn national(e164: &str) -> String {
    if let Some(rest) = e164.strip_prefix("+1") {
        rest.to_owned()
    } else if let Some(rest) = e164.strip_prefix("+44") {
        format!("0{rest}")
    } else {
        e164.trim_start_matches('+').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_kazoo() {
        assert_eq!(
            encode_call_id("4f7c2e1a-9b3d-4e6f-8a0c-1d2e3f4a5b6c@198.51.100.20"),
            "4f7c2e1a-9b3d-4e6f-8a0c-1d2e3f4a5b6c%40198%2E51%2E100%2E20"
        );
        assert_eq!(encode_call_id("a b~_/"), "a+b~_%2F");
    }
}

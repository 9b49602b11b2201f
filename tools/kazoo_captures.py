#!/usr/bin/env python3
"""Turns public Kazoo captures into Blackhole 4.3 fixtures (`fixtures/capture_*.jsonl`).

Sources are small excerpts committed verbatim under `fixtures/captures/` (see SOURCES for the
repository, path, commit and lines of each). Every event becomes one websocket text frame the way
Kazoo 4.3's Blackhole builds it (`bh_events:event/3`): the event's public fields
(`kz_api:public_fields/1` drops the optional default headers except Account-ID and Call-ID),
then `kz_json:normalize_jobj/1` (keys lower-cased, `-` -> `_`, recursively; null values
dropped), wrapped by `blackhole_data_emitter:event/4` with the routing key
`call.{AccountId}.{EventName}.{encoded Call-ID}`. Values are never changed.

Captures that are not AMQP call events (webhook payloads, CDR documents) lack a few things a
call event has; every field this script adds, copies or substitutes is listed, with the reason,
in `fixtures/captures/provenance.json`, which it writes next to the fixtures.

Run from the repository root: `python3 tools/kazoo_captures.py` (no network, stdlib only).
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "fixtures" / "captures"
FIXTURES = ROOT / "fixtures"

KAZOO = "2600hz/kazoo"
KAZOO_43 = "223893d0ba0268b87451f2ff1d803614999a03eb"  # branch 4.3 head
ZOHO = "reperio/kazoo-webhook-zoho"

SOURCES = {
    "bh_readme": {
        "repository": KAZOO,
        "path": "applications/blackhole/doc/README.md",
        "commit": KAZOO_43,
        "lines": "160-318",
        "file": "kazoo-4.3_blackhole_README.call-events.md",
        "what": "CHANNEL_CREATE, CHANNEL_ANSWER, CHANNEL_DESTROY of one WebRTC device leg dialling *97 "
        "(AMQP call events as Blackhole received them, 3.x socket.io envelope)",
    },
    "zoho_inbound": {
        "repository": ZOHO,
        "path": "index.js",
        "commit": "ea0bd100b3a1fe9a238b403c3ab2082053ff0aca",
        "lines": "168-190",
        "file": "kazoo-webhook-zoho_index.js.inbound-carrier.txt",
        "what": "a production channel_destroy webhook body: inbound carrier leg, every value a string",
    },
    "zoho_outbound": {
        "repository": ZOHO,
        "path": "index.js",
        "commit": "fdd8f1c9f6378c00e28b3bface247fdd435e86d8",
        "lines": "137-160",
        "file": "kazoo-webhook-zoho_index.js.outbound-leg.txt",
        "what": "a production channel_destroy webhook body: an outbound leg, every value a string",
    },
    **{
        f"webhook_{e}": {
            "repository": KAZOO,
            "path": f"applications/crossbar/priv/webhooks_channel_{e}-samples.json",
            "commit": KAZOO_43,
            "lines": "all",
            "file": f"kazoo-4.3_webhooks_channel_{e}-samples.json",
            "what": f"Kazoo's channel_{e} webhook sample (served by GET /v2/webhooks/samples)",
        }
        for e in ("create", "answer", "bridge", "destroy")
    },
    "cdrs_grouped": {
        "repository": KAZOO,
        "path": "applications/crossbar/doc/cdrs.md",
        "commit": "432e20cba827bc90babaa28bf26ad2dbec094477",
        "lines": "232-310",
        "file": "kazoo-2015_crossbar_cdrs.md.grouped.txt",
        "what": "the grouped A/B-leg CDR example (GET /v2/accounts/{ACCOUNT_ID}/cdrs?grouped=true)",
    },
}

# kz_api.hrl OPTIONAL_DEFAULT_HEADERS (4.3) minus Account-ID and Call-ID, which
# kz_api:public_fields/1 keeps.
NOT_PUBLIC = [
    "Access-Group",
    "Defer-Response",
    "Destination-Server",
    "Geo-Location",
    "System-Log-ID",
    "Node",
    "Server-Queue-ID",
    "Raw-Headers",
    "Server-ID",
    "Request-From-PID",
    "Reply-To-PID",
    "AMQP-Broker",
    "AMQP-Broker-Zone",
]


def normalize_key(k):
    return "".join("_" if c == "-" else (c.lower() if "A" <= c <= "Z" else c) for c in k)


def normalize(v):
    """kz_json:normalize_jobj/1: keys normalised recursively, null values dropped."""
    if isinstance(v, dict):
        return {normalize_key(k): normalize(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    return v


def public_fields(event):
    return {k: v for k, v in event.items() if k not in NOT_PUBLIC}


def encode(call_id):
    """kz_amqp_util:encode/1."""
    out = []
    for b in call_id.encode():
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-~_"):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def frame(data):
    """blackhole_data_emitter:event/4 around a normalised call event."""
    account = (data.get("custom_channel_vars") or {}).get("account_id") or data.get("account_id")
    name = data["event_name"]
    return {
        "action": "event",
        "subscribed_key": "call.*.*",
        "subscription_key": f"call.{account}.{name}.*",
        "name": name,
        "routing_key": f"call.{account}.{name}.{encode(data['call_id'])}",
        "data": data,
    }


def read(source):
    return (CAPTURES / SOURCES[source]["file"]).read_text()


def json_blocks(text):
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def comment_payload(text):
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


class Log:
    """What was added to each fixture, and why."""

    def __init__(self):
        self.fixtures = {}

    def start(self, fixture, sources):
        self.current = self.fixtures.setdefault(fixture, {"sources": sources, "changes": []})

    def note(self, call_id, field, value, why):
        self.current["changes"].append(
            {"call_id": call_id, "field": field, "value": value, "why": why}
        )


ENVELOPE_WHY = (
    "Blackhole envelope (blackhole_data_emitter:event/4, bh_call bindings); account from the "
    "event's account_id"
)


def from_amqp(event):
    """A call event as published on AMQP (Title-Case keys) -> Blackhole frame data."""
    return normalize(public_fields(event))


# Fields webhooks_channel_util:base_hook_event/3 lifts out of Custom-Channel-Vars to the top
# level of a webhook payload; a Blackhole frame carries them inside custom_channel_vars.
CCV_LIFTED = ["account_id", "authorizing_id", "authorizing_type", "owner_id"]


def from_webhook(payload, log):
    """A channel_* webhook payload -> the call event it was made from (as far as it says)."""
    data = normalize(payload)
    cid = data["call_id"]
    name = data["hook_event"].upper()
    data["event_name"] = name
    log.note(cid, "event_name", name, "webhook hook_event, upper-cased (the AMQP Event-Name)")
    ccvs = data.setdefault("custom_channel_vars", {})
    for k in CCV_LIFTED:
        if k in data and k not in ccvs:
            ccvs[k] = data[k]
            log.note(
                cid,
                f"custom_channel_vars.{k}",
                data[k],
                "copied from the top level: webhooks_channel_util:base_hook_event/3 reads it "
                "from the channel variables",
            )
    return data


def from_cdr(doc, log, call_id=None, other_leg=None):
    """A stored CDR (cdr app, written at CHANNEL_DESTROY) -> that CHANNEL_DESTROY event."""
    data = normalize(doc)
    if call_id is not None:
        log.note(call_id, "call_id", call_id, f"the source has the placeholder {data['call_id']!r}; "
                 "the grouped listing is keyed by the A leg's call id")
        data["call_id"] = call_id
    cid = data["call_id"]
    if other_leg is not None:
        log.note(cid, "other_leg_call_id", other_leg,
                 f"the source has the placeholder {data.get('other_leg_call_id')!r}; the other "
                 "leg of the group")
        data["other_leg_call_id"] = other_leg
    data["event_name"] = "CHANNEL_DESTROY"
    log.note(cid, "event_name", "CHANNEL_DESTROY", "a CDR is written from the leg's CHANNEL_DESTROY")
    if "direction" in data and "call_direction" not in data:
        data["call_direction"] = data["direction"]
        log.note(cid, "call_direction", data["direction"],
                 "the listing's `direction` is the event's call_direction")
    ccvs = data.setdefault("custom_channel_vars", {})
    for k in ["authorizing_id", "bridge_id", "owner_id"]:
        if k in data and k not in ccvs:
            ccvs[k] = data[k]
            log.note(cid, f"custom_channel_vars.{k}", data[k],
                     "copied from the top level: a channel variable in the call event")
    if "account_id" not in ccvs:
        ccvs["account_id"] = "{ACCOUNT_ID}"
        log.note(cid, "custom_channel_vars.account_id", "{ACCOUNT_ID}",
                 "not in a CDR listing; the request URL's placeholder")
    return data


def write(fixture, datas, log):
    for d in datas:
        log.note(d["call_id"], "(envelope)", "action, subscribed_key, subscription_key, name, routing_key",
                 ENVELOPE_WHY)
    lines = [json.dumps(frame(d), ensure_ascii=False, separators=(",", ":")) for d in datas]
    (FIXTURES / fixture).write_text("\n".join(lines) + "\n")


def main():
    log = Log()

    events = [from_amqp(b["args"]) for b in json_blocks(read("bh_readme"))]
    log.start("capture_bh_readme_star97.jsonl", [SOURCES["bh_readme"]])
    write("capture_bh_readme_star97.jsonl", events, log)
    log.start("capture_bh_readme_star97_destroy_only.jsonl", [SOURCES["bh_readme"]])
    write("capture_bh_readme_star97_destroy_only.jsonl",
          [e for e in events if e["event_name"] == "CHANNEL_DESTROY"], log)

    log.start("capture_zoho_destroys.jsonl", [SOURCES["zoho_inbound"], SOURCES["zoho_outbound"]])
    write("capture_zoho_destroys.jsonl", [
        from_webhook(comment_payload(read("zoho_inbound")), log),
        from_webhook(comment_payload(read("zoho_outbound")), log),
    ], log)

    names = ["webhook_create", "webhook_answer", "webhook_bridge", "webhook_destroy"]
    log.start("capture_webhook_samples.jsonl", [SOURCES[n] for n in names])
    write("capture_webhook_samples.jsonl",
          [from_webhook(json.loads(read(n))[0], log) for n in names], log)

    listing = json.loads(read("cdrs_grouped"))
    [(a_leg_id, legs)] = listing["data"][0].items()
    a_doc, b_doc = legs
    b_id = b_doc["call_id"]
    log.start("capture_cdrs_doc_grouped.jsonl", [SOURCES["cdrs_grouped"]])
    write("capture_cdrs_doc_grouped.jsonl", [
        from_cdr(a_doc, log, call_id=a_leg_id, other_leg=b_id),
        from_cdr(b_doc, log, other_leg=a_leg_id),
    ], log)

    (CAPTURES / "provenance.json").write_text(
        json.dumps({"generator": "tools/kazoo_captures.py", "fixtures": log.fixtures},
                   indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

//! The `postcall` binary: replay output is deterministic and honours a configuration.

use crate::support::{fixture_files, postcall};

/// What `postcall args` printed, as JSON; the run must succeed.
fn json_output(args: &[&str]) -> serde_json::Value {
    let out = postcall(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn replay_is_byte_identical_across_runs_and_ordered_by_end() {
    let files: Vec<String> = fixture_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["replay"];
    args.extend(files.iter().map(String::as_str));
    let first = postcall(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = postcall(&args);
    assert_eq!(first.stdout, second.stdout);
    let lines: Vec<serde_json::Value> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() >= files.len(), "at least one CDR per fixture");
    let keys: Vec<(chrono::DateTime<chrono::FixedOffset>, String)> = lines
        .iter()
        .map(|c| {
            let end = chrono::DateTime::parse_from_rfc3339(c["end"].as_str().unwrap()).unwrap();
            (end, c["id"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by end, then id");
}

#[test]
fn replay_with_config_uses_tenant_time_zone_and_pbx() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg,
        "[pbx]\nid = \"pbx-1\"\nname = \"Acme PBX\"\n\
         [tenants.3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c]\ntimezone = \"America/Chicago\"\n",
    )
    .unwrap();
    let fixture = crate::support::fixtures_dir().join("notes_pstn_hold.jsonl");
    let cdr = json_output(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(cdr["tz"], "America/Chicago");
    assert_eq!(cdr["start"], "2024-05-14T10:30:00-05:00");
    assert_eq!(cdr["pbxId"], "pbx-1");
    assert_eq!(cdr["pbxName"], "Acme PBX");
}

/// Location is on by default: a London caller replayed without any configuration gets the
/// country, area code and place libphonenumber gives for `+44 20 7183 8750` (GB, 20, London),
/// and `[enrich] location = false` turns it off.
#[test]
fn replay_without_config_locates_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = crate::support::fixtures_dir().join("pstn_answered.jsonl");
    let london = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("+14155550123", "+442071838750");
    let frames = dir.path().join("london.jsonl");
    std::fs::write(&frames, london).unwrap();
    let cdr = json_output(&["replay", frames.to_str().unwrap()]);
    assert_eq!(cdr["cliNum"], "+442071838750");
    assert_eq!(cdr["cliCtry"], "GB");
    assert_eq!(cdr["cliArea"], "20");
    assert_eq!(cdr["cliLoc"], "London");
    assert!(cdr.get("cliState").is_none());

    let cfg = dir.path().join("plugin.toml");
    std::fs::write(&cfg, "[enrich]\nlocation = false\n").unwrap();
    let cdr = json_output(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        frames.to_str().unwrap(),
    ]);
    assert_eq!(cdr["cliNum"], "+442071838750");
    for field in ["cliCtry", "cliArea", "cliLoc"] {
        assert!(cdr.get(field).is_none(), "{field} with location = false");
    }
}

#[test]
fn check_reports_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(&cfg, "[cdr]\nregion = \"XX\"\n").unwrap();
    let out = postcall(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin.toml: cdr.region: unknown region \"XX\""),
        "{err}"
    );
}

#[test]
fn shipped_plugin_toml_is_valid_and_is_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin.toml");
    let cfg = postcall::config::PluginConfig::load(&path).expect("plugin.toml parses");
    assert_eq!(
        cfg.settings().unwrap(),
        postcall::session::Settings::default()
    );
    assert_eq!(cfg.delivery, postcall::config::DeliverySection::default());
    assert_eq!(cfg.limits, postcall::config::LimitsSection::default());
    assert_eq!(cfg.admin, postcall::config::AdminSection::default());
    assert_eq!(cfg.store, postcall::config::StoreSection::default());
    // `check` validates for `run`: the shipped file leaves `[kazoo]` commented out, and that is
    // its one problem.
    let out = postcall(&["check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [format!(
            "{}: kazoo: missing: run needs a [kazoo] section (the Blackhole websocket to listen to)",
            path.display()
        )],
        "{err}"
    );
    // With the commented example's `[kazoo]` (an API key from the environment) it passes
    // `check --without-secrets`, the unset variable named.
    let shipped = std::fs::read_to_string(&path).unwrap();
    let kazoo: String = shipped
        .lines()
        .skip_while(|l| !l.starts_with("# [kazoo]"))
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with("auth_token_env") && !l.starts_with("ca_file"))
        .filter(|l| !l.starts_with("Exactly one"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(kazoo.contains("api_key_env"), "{kazoo}");
    let dir = tempfile::tempdir().unwrap();
    let with_kazoo = dir.path().join("plugin.toml");
    std::fs::write(&with_kazoo, format!("{shipped}\n{kazoo}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
        .args(["check", "--without-secrets", "--config"])
        .arg(&with_kazoo)
        .env_remove("KAZOO_API_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}\n{kazoo}");
    assert!(
        err.contains("warning:") && err.contains("KAZOO_API_KEY is not set"),
        "{err}"
    );
}

#[test]
fn sim_scenarios_are_the_committed_fixtures() {
    let list = postcall(&["sim", "--list"]);
    assert!(list.status.success());
    let names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), postcall::sim::scenario_names().len());
    for name in &names {
        let out = postcall(&["sim", "--scenario", name]);
        assert!(out.status.success(), "{name}");
        let committed =
            std::fs::read(crate::support::fixtures_dir().join(format!("{name}.jsonl"))).unwrap();
        assert!(
            out.stdout == committed,
            "fixtures/{name}.jsonl differs from `postcall sim --scenario {name}`; regenerate it"
        );
    }
    let unknown = postcall(&["sim", "--scenario", "no_such_call"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("pstn_answered"));
}

/// `demo` prints the banner on stderr and one readable line per webhook on stdout; with
/// `--json` one JSON object per webhook carrying the payload; it stops after the calls asked for.
#[test]
fn demo_prints_webhooks_and_stops_after_the_calls_asked_for() {
    let args = ["demo", "--calls", "6", "--speed", "300", "--gap-ms", "5000"];
    let out = postcall(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("admin     http://127.0.0.1:"), "{stderr}");
    assert!(
        stderr.contains("console   http://127.0.0.1:") && stderr.contains("/console/"),
        "{stderr}"
    );
    assert!(
        stderr.contains("demo-missed") && stderr.contains("calls delivered"),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" demo-calls-"))
        .collect();
    assert!(calls.len() >= 6, "{text}");
    for l in &calls {
        assert!(
            l.contains(" POST 200  ") && l.contains(" → ") && l.ends_with("  signed"),
            "{l}"
        );
        assert!(l.len() < 200, "one short line: {l}");
    }

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = postcall(&json_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hooks: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let calls: Vec<&serde_json::Value> = hooks.iter().filter(|h| h["uri"] == "/calls").collect();
    assert!(calls.len() >= 6);
    for h in &calls {
        assert_eq!(h["method"], "POST");
        assert_eq!(h["status"], 200);
        assert_eq!(h["payload"]["cdr"]["dType"], "CloudSessionCdr");
        assert_eq!(h["payload"]["cdr"]["pbxName"], "postcall demo PBX");
    }
}

#[test]
fn deliveries_lists_shows_resends_and_purges_dead_letters() {
    use postcall::delivery::{webhook_id, Completion, Endpoint, Format, Job, Method, Outbox};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(&cfg, "[delivery]\ndata_dir = \"state\"\n").unwrap();
    let outbox_path = dir.path().join("state/outbox.redb");
    let job = |n: u32| Job {
        webhook_id: webhook_id(&format!("session-{n}"), "t1"),
        trigger_id: "t1".into(),
        endpoint: Endpoint {
            url: "https://prod.logic.azure.com/invoke?sp=x&sig=SIGSECRET".into(),
            method: Method::Post,
            format: Format::Json,
            retries: 1,
            signed: true,
        },
        payload: serde_json::value::to_raw_value(&serde_json::json!({"n": n})).unwrap(),
        attempts: 2,
        next_attempt_us: 0,
        created_us: i64::from(n),
        last_error: None,
    };
    let (a, b) = (job(1), job(2));
    {
        let o = Outbox::open(&outbox_path).unwrap();
        o.enqueue(&[a.clone(), b.clone()]).unwrap();
        o.complete(&a, Completion::Dead("HTTP 400".into())).unwrap();
        o.complete(&b, Completion::Dead("HTTP 404".into())).unwrap();
    }
    let c = cfg.to_str().unwrap();
    let list = postcall(&["deliveries", "--config", c, "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let text = String::from_utf8(list.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains(&a.webhook_id) && text.contains("HTTP 400"));
    assert!(!text.contains("SIGSECRET"), "{text}");
    let show = postcall(&["deliveries", "--config", c, "show", &b.webhook_id]);
    let shown = String::from_utf8(show.stdout).unwrap();
    assert!(shown.contains("\"lastError\": \"HTTP 404\""), "{shown}");
    assert!(
        !shown.contains("SIGSECRET") && !shown.contains("whsec_"),
        "{shown}"
    );
    let resend = postcall(&["deliveries", "--config", c, "resend", &a.webhook_id]);
    assert!(resend.status.success());
    let missing = postcall(&["deliveries", "--config", c, "show", "msg_nope"]);
    assert_eq!(missing.status.code(), Some(2));
    let purge = postcall(&["deliveries", "--config", c, "purge", "--all"]);
    assert_eq!(
        String::from_utf8(purge.stdout).unwrap(),
        "1 dead letter(s) purged\n"
    );
    let o = Outbox::open(&outbox_path).unwrap();
    assert!(o.dead().unwrap().is_empty());
    assert_eq!(
        o.pending_len().unwrap(),
        1,
        "the re-sent one is pending again"
    );
}

/// Every fixture replayed with enrichment (contacts, rate decks, so `directoryMatches`,
/// `rateCost` and the rest are present), as the payloads a trigger sends.
fn enriched_fixture_payloads() -> Vec<serde_json::Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/enrich/plugin.toml");
    let cfg = postcall::config::PluginConfig::load(&path).unwrap();
    let settings = std::sync::Arc::new(cfg.settings().unwrap());
    let (enricher, _) = postcall::enrich::SharedEnricher::load(cfg.enrich_sources().unwrap());
    let enricher = enricher.current();
    let custom = [("crm".to_owned(), "hubspot".to_owned())].into();
    let mut payloads = Vec::new();
    for f in fixture_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for mut c in postcall::replay::replay_str(&text, settings.clone()) {
            enricher.enrich_session(&mut c);
            let cdr = serde_json::to_value(&c.cdr).unwrap();
            payloads.push(
                serde_json::from_str(
                    postcall::delivery::payload::payload("t1", "u1", "acct", &cdr, &custom).get(),
                )
                .unwrap(),
            );
        }
    }
    payloads
}

/// Every key path of `v` (`cdr.cliNum`, `cdr.directoryMatches[].dirName`), stopping at maps of
/// free keys (`tags`, `customData`, a contact's `fields`), whose keys are data, not fields.
fn key_paths(
    prefix: &str,
    v: &serde_json::Value,
    maps: &[&str],
    out: &mut std::collections::BTreeSet<String>,
) {
    match v {
        serde_json::Value::Object(o) if !maps.contains(&prefix) => {
            for (k, sub) in o {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                key_paths(&path, sub, maps, out);
            }
        }
        serde_json::Value::Array(a) => a
            .iter()
            .for_each(|e| key_paths(&format!("{prefix}[]"), e, maps, out)),
        _ => {}
    }
}

/// `postcall schema` (default: inline, draft 4): every field a real payload carries is
/// described, every real payload validates (as draft 4, and against the 2020-12 form), and
/// there is no `$ref` anywhere.
#[test]
fn every_fixture_payload_validates_against_the_printed_schema() {
    let out = postcall(&["schema"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    let validator = jsonschema::draft4::new(&schema).expect("a valid draft-4 JSON Schema");
    let out = postcall(&["schema", "--dialect", "2020-12"]);
    assert!(out.status.success());
    let schema_2020: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let validator_2020 =
        jsonschema::draft202012::new(&schema_2020).expect("a valid 2020-12 JSON Schema");

    let described: std::collections::BTreeMap<String, String> =
        postcall::schema::described_fields(&schema)
            .into_iter()
            .collect();
    let mut carried = std::collections::BTreeSet::new();
    let payloads = enriched_fixture_payloads();
    for payload in &payloads {
        key_paths(
            "",
            payload,
            &["customData", "cdr.tags", "cdr.directoryMatches[].fields"],
            &mut carried,
        );
        for v in [&validator, &validator_2020] {
            let errors: Vec<String> = v.iter_errors(payload).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", payload["cdr"]["id"]);
        }
    }
    assert!(payloads.len() >= 20);
    // The enriched fixtures carry the enrichment fields too.
    for k in [
        "cdr.rateCost",
        "cdr.cliLoc",
        "cdr.directoryMatches[].fields",
        "cdr.fRngDevName",
        "cdr.answer",
    ] {
        assert!(carried.contains(k), "no fixture carries {k}");
    }
    for k in &carried {
        let d = described
            .get(k)
            .unwrap_or_else(|| panic!("{k} is sent but not in the schema"));
        assert!(!d.trim().is_empty(), "{k} has no description");
    }
    // And it rejects what is not a payload.
    let custom = [("crm".to_owned(), "hubspot".to_owned())].into();
    let mut bad: serde_json::Value = serde_json::from_str(
        postcall::delivery::payload::payload(
            "t",
            "i",
            "a",
            &serde_json::json!({"dir": 9}),
            &custom,
        )
        .get(),
    )
    .unwrap();
    assert!(!validator.is_valid(&bad));
    let mut extra = payloads[0].clone();
    extra["cdr"]["lRgDevName"] = "the seed's typo".into();
    assert!(
        !validator.is_valid(&extra),
        "unknown CDR fields are refused"
    );
    bad["cdr"] = serde_json::Value::Null;
    assert!(!validator.is_valid(&bad));
}

/// `deliveries` says why the outbox cannot be opened: in use by a running postcall, or a
/// corrupted file; and exits non-zero.
#[test]
fn deliveries_names_an_outbox_in_use_or_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(&cfg, "[delivery]\ndata_dir = \"state\"\n").unwrap();
    let path = dir.path().join("state/outbox.redb");
    let c = cfg.to_str().unwrap();
    {
        let _running = postcall::delivery::Outbox::open(&path).unwrap();
        let out = postcall(&["deliveries", "--config", c, "list"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("postcall is running"), "{err}");
    }
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..9].copy_from_slice(b"garbage!!");
    std::fs::write(&path, &bytes).unwrap();
    let out = postcall(&["deliveries", "--config", c, "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupted") && err.contains("move the file aside"),
        "{err}"
    );
}

/// `postcall explain`: per session the tenant, a summary, the triggers that fire and for the
/// tenant's others the first failing condition with the CDR's value. The calls are the
/// fixtures' scenarios: a US caller answered by Maria Lopez after 8 s, a caller who gave up
/// after 25 s of ringing (lost), and a UK caller who gave up after 3 s (abandoned) in another
/// tenant.
#[test]
fn explain_names_firing_triggers_and_the_failing_condition() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = "fcf7b9a4d79956568efec53468bf28e0";
    std::fs::write(
        dir.path().join("triggers.toml"),
        format!(
            r#"
[[trigger]]
id = "every-call"
tenant = "{tenant}"
[trigger.action]
url = "https://hooks.example.com/calls?sig=s3cr3tSIG"

[[trigger]]
id = "missed"
tenant = "{tenant}"
filter = [{{ field = "type", op = "eq", value = "External" }}, {{ field = "ans", op = "eq", value = 0 }}]
[trigger.action]
url = "https://hooks.example.com/missed"
method = "PUT"
format = "form"

[[trigger]]
id = "outgoing"
tenant = "{tenant}"
filter = [{{ field = "dir", op = "eq", value = "Outgoing" }}]
[trigger.action]
url = "https://hooks.example.com/out"

[[trigger]]
id = "off"
tenant = "{tenant}"
enabled = false
[trigger.action]
url = "https://hooks.example.com/off"

[[trigger]]
id = "bobs"
tenant = "{tenant}"
user = "0000000000000000000000000000b0b0"
[trigger.action]
url = "https://hooks.example.com/bob"
"#
        ),
    )
    .unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(&cfg, "[triggers]\nfiles = [\"triggers.toml\"]\n").unwrap();
    let fx = |n: &str| crate::support::fixtures_dir().join(n).display().to_string();
    let files = [
        fx("pstn_answered.jsonl"),
        fx("caller_hangup_long_ring.jsonl"),
        fx("caller_hangup_short_ring.jsonl"),
    ];
    let mut args = vec!["explain", "--config", cfg.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let out = postcall(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let sessions: Vec<&str> = text.split("\n2024-").collect();
    assert_eq!(sessions.len(), 3, "{text}");
    let answered = sessions[0];
    for want in [
        &format!("tenant {tenant}") as &str,
        "Incoming WIRELESS CALLER (+14155550123) → Maria Lopez (1001), answered, ring 8 s, talk 90 s",
        "  fires  every-call  POST https://hooks.example.com/calls?[redacted]",
        "  not    missed: ans eq 0 — the CDR has 1",
        "  not    outgoing: dir eq \"Outgoing\" — the CDR has 2 (Incoming)",
        "  not    off: disabled",
        "  not    bobs: owned by user 0000000000000000000000000000b0b0, who took no part in the call",
    ] {
        assert!(answered.contains(want), "{want:?} not in\n{answered}");
    }
    let lost = sessions[1];
    assert!(lost.contains(", lost, ring 25 s"), "{lost}");
    assert!(
        lost.contains("  fires  missed  PUT https://hooks.example.com/missed"),
        "{lost}"
    );
    let other = sessions[2];
    assert!(
        other.contains("tenant f14e4b3aa62925c63a07337e8a9e07db"),
        "{other}"
    );
    assert!(
        other.contains("abandoned, ring 3 s") && other.contains("(no trigger of this tenant)"),
        "{other}"
    );
    assert!(
        !text.contains("s3cr3tSIG"),
        "the URL query is never printed"
    );
    assert!(
        stderr.contains("3 sessions, 5 triggers, 3 webhooks would be sent"),
        "{stderr}"
    );

    // `replay --tenant` carries the tenant and users with each CDR.
    let out = postcall(&["replay", "--tenant", &files[2]]);
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["tenantId"], "f14e4b3aa62925c63a07337e8a9e07db");
    assert_eq!(line["cdr"]["aban"], 1);
    assert!(line["userIds"].is_array());
}

/// `reconcile` says why it cannot compare, and exits 2 (not 0 "complete", not 1 "missing").
#[test]
fn reconcile_without_crossbar_cannot_compare() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg,
        "[kazoo]\nwebsocket_url = \"ws://127.0.0.1:1/\"\naccounts = [\"fcf7b9a4d79956568efec53468bf28e0\"]\nauth_token = \"t\"\n",
    )
    .unwrap();
    let out = postcall(&[
        "reconcile",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "1h",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("kazoo.crossbar_url"), "{err}");
}

/// With the outbox in PostgreSQL (`[store]`), the stopped-sidecar commands that read the
/// embedded file refuse, naming where to go instead, rather than reading an empty file.
#[test]
fn outbox_commands_refuse_a_postgresql_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg,
        "[store]\npostgres_url = \"postgres://postcall@127.0.0.1:1/postcall\"\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    for args in [
        &["deliveries", "--config", c, "list"][..],
        &["cdrs", "--config", c, "list"][..],
    ] {
        let out = postcall(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains("the outbox is in PostgreSQL") && err.contains("admin API"),
            "{args:?}: {err}"
        );
        assert!(!dir.path().join("data").exists(), "no embedded file made");
    }
}

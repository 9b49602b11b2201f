//! Every fixture replayed with enrichment configured (`tests/data/enrich/`): location,
//! directory matches and rating on top of the reviewed CDRs of `snapshots.rs`.
//!
//! The test also checks that enrichment changes nothing but the enrichment fields, so each
//! snapshot here differs from its un-enriched twin only in `cliCtry`, `cliArea`, `cliLoc`,
//! `cliState`, `rate*` and `directoryMatches`.

use std::path::Path;
use std::sync::Arc;

use postcall::config::PluginConfig;
use postcall::enrich::SharedEnricher;
use postcall::replay::Replay;

const ENRICH_FIELDS: [&str; 9] = [
    "cliCtry",
    "cliArea",
    "cliLoc",
    "cliState",
    "rate",
    "rateCost",
    "rateBand",
    "rateName",
    "directoryMatches",
];

fn config() -> PluginConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/enrich/plugin.toml");
    PluginConfig::load(&path).expect("test config loads")
}

fn without_enrichment(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        for f in ENRICH_FIELDS {
            o.remove(f);
        }
    }
    v
}

#[test]
fn fixture_cdrs_enriched() {
    let cfg = config();
    let settings = Arc::new(cfg.settings().expect("valid settings"));
    let sources = cfg
        .enrich_sources()
        .expect("valid")
        .expect("[enrich] present");
    let (enricher, errors) = SharedEnricher::load(sources);
    assert!(errors.is_empty(), "{errors:?}");
    insta::glob!("../../fixtures", "*.jsonl", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let mut replay = Replay::new(settings.clone());
        text.lines().for_each(|l| replay.feed_line(l));
        let (mut closed, _) = replay.finish();
        let plain: Vec<serde_json::Value> = closed
            .iter()
            .map(|c| without_enrichment(serde_json::to_value(&c.cdr).unwrap()))
            .collect();
        closed.iter_mut().for_each(|c| enricher.enrich_session(c));
        let enriched: Vec<serde_json::Value> = closed
            .iter()
            .map(|c| serde_json::to_value(&c.cdr).unwrap())
            .collect();
        let stripped: Vec<serde_json::Value> =
            enriched.iter().cloned().map(without_enrichment).collect();
        assert_eq!(stripped, plain, "enrichment touched other fields");
        let billable: Vec<String> = closed
            .iter()
            .flat_map(|c| &c.billable)
            .map(|b| {
                format!(
                    "{} {} {}s",
                    if b.outbound { "out" } else { "in" },
                    b.number,
                    b.billable_secs
                )
            })
            .collect();
        insta::with_settings!({
            description => format!("billable legs: [{}]", billable.join(", ")),
            omit_expression => true,
        }, {
            insta::assert_json_snapshot!(enriched);
        });
    });
}

#[test]
fn replay_cli_prints_enriched_cdrs_and_check_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/enrich");
    for f in ["global.json", "rates.csv"] {
        std::fs::copy(data.join(f), dir.path().join(f)).unwrap();
    }
    let cfg = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg,
        "[enrich]\ncontacts = \"global.json\"\nrate_deck = \"rates.csv\"\n",
    )
    .unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/outbound_answered.jsonl");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
            .args(args)
            .output()
            .expect("postcall runs")
    };
    let cfg_s = cfg.to_str().unwrap();
    let out = run(&["replay", "--config", cfg_s, fixture.to_str().unwrap()]);
    assert!(out.status.success());
    let cdr: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cdr["cliCtry"], "US");
    assert_eq!(cdr["rate"], 1);
    assert_eq!(cdr["rateName"], "US-CA-preferred");
    assert!(run(&["check", "--config", cfg_s]).status.success());

    // A broken deck: replay still prints the CDR (unrated) and says which line is bad.
    std::fs::write(
        dir.path().join("rates.csv"),
        "prefix,rate_cost\n1,0.01\n1415,free\n",
    )
    .unwrap();
    let out = run(&["replay", "--config", cfg_s, fixture.to_str().unwrap()]);
    assert!(out.status.success());
    let cdr: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cdr["rate"], 0);
    assert_eq!(cdr["cliCtry"], "US");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rates.csv:3: rate_cost \"free\": not a non-negative amount"),
        "{stderr}"
    );
    let check = run(&["check", "--config", cfg_s]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("rates.csv:3:"));
}

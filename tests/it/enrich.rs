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
    let sources = cfg.enrich_sources().expect("valid");
    let (enricher, errors) = SharedEnricher::load(sources);
    // The test directories hold numbers that can never match, on purpose: an extension and
    // two numbers of Ofcom's drama range, which libphonenumber does not accept. Each is
    // reported as a warning with its file and line; the files are used.
    let warnings: Vec<String> = errors
        .iter()
        .map(|e| {
            assert!(e.is_warning(), "{e}");
            let file = e.file().file_name().unwrap().to_string_lossy();
            let text = e.to_string();
            let line = text.split(':').nth(1).unwrap().to_owned();
            format!("{file}:{line}")
        })
        .collect();
    assert_eq!(
        warnings,
        ["global.json:43", "uk-contacts.csv:2", "uk-contacts.csv:5"]
    );
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
        // `check` validates for `run`, which needs a `[kazoo]` section.
        "[enrich]\ncontacts = \"global.json\"\nrate_deck = \"rates.csv\"\n[kazoo]\nwebsocket_url = \"ws://127.0.0.1:9/\"\naccounts = [\"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"]\nauth_token = \"t\"\n",
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

/// The code block of `lang` that follows `marker` in the README.
fn readme_block(marker: &str, lang: &str) -> String {
    let readme = include_str!("../../README.md");
    let after = &readme[readme.find(marker).expect("marker in README")..];
    let open = format!("```{lang}\n");
    let start = after.find(&open).expect("code block") + open.len();
    let len = after[start..].find("```").expect("closed block");
    after[start..start + len].to_owned()
}

/// The CDRs of `fixture` replayed and enriched with `contacts` as the shared directory, numbers
/// read in `region`; also the warnings loading it gave.
fn enriched_with_contacts(
    contacts: (&str, String),
    region: &str,
    fixture: &str,
) -> (Vec<serde_json::Value>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(contacts.0), contacts.1).unwrap();
    let cfg_path = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[cdr]\nregion = \"{region}\"\n[enrich]\ncontacts = \"{}\"\n",
            contacts.0
        ),
    )
    .unwrap();
    let cfg = PluginConfig::load(&cfg_path).unwrap();
    let (enricher, problems) = SharedEnricher::load(cfg.enrich_sources().unwrap());
    let mut replay = Replay::new(Arc::new(cfg.settings().unwrap()));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .for_each(|l| replay.feed_line(l));
    let (mut closed, _) = replay.finish();
    closed.iter_mut().for_each(|c| enricher.enrich_session(c));
    let cdrs = closed
        .iter()
        .map(|c| serde_json::to_value(&c.cdr).unwrap())
        .collect();
    (cdrs, problems.iter().map(ToString::to_string).collect())
}

/// The README's contact examples, as written, match a call of the fixtures.
#[test]
fn readme_contact_examples_match_calls() {
    let csv = readme_block("**Contacts, CSV.**", "csv");
    let (cdrs, problems) =
        enriched_with_contacts(("contacts.csv", csv), "GB", "park_abandoned.jsonl");
    assert_eq!(problems, Vec::<String>::new());
    let m = &cdrs[0]["directoryMatches"][0];
    assert_eq!(m["contactId"], "uk-01", "{}", cdrs[0]);
    assert_eq!(m["fields"]["companyName"], "Bennett Joinery");

    let json = readme_block("**Contacts, JSON.**", "json");
    let (cdrs, problems) =
        enriched_with_contacts(("contacts.json", json), "US", "pstn_answered.jsonl");
    assert_eq!(problems, Vec::<String>::new());
    let m = &cdrs[0]["directoryMatches"][0];
    assert_eq!(m["contactId"], "c1", "{}", cdrs[0]);
    assert_eq!(m["dirName"], "My Global");
}

/// An outbound call from a US tenant to a German mobile is rated on the German mobile prefix:
/// the dialled number keeps its own country code (it used to become +49 5123456789, a landline
/// in Schellerten, and was rated as one).
#[test]
fn outbound_call_to_a_german_mobile_is_rated_as_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rates.csv"),
        "prefix,rate_cost,rate_name,direction\n\
         1,0.01,US,outbound\n\
         49,0.02,DE-fixed,outbound\n\
         4915,0.12,DE-mobile,outbound\n\
         495,0.03,DE-fixed-5,outbound\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("plugin.toml");
    std::fs::write(
        &cfg_path,
        "[cdr]\nregion = \"US\"\n[enrich]\nrate_deck = \"rates.csv\"\n",
    )
    .unwrap();
    let cfg = PluginConfig::load(&cfg_path).unwrap();
    let (enricher, problems) = SharedEnricher::load(cfg.enrich_sources().unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/outbound_answered.jsonl");
    let frames = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("+14155550199", "+4915123456789");
    let mut replay = Replay::new(Arc::new(cfg.settings().unwrap()));
    frames.lines().for_each(|l| replay.feed_line(l));
    let (mut closed, _) = replay.finish();
    closed.iter_mut().for_each(|c| enricher.enrich_session(c));
    let cdr = serde_json::to_value(&closed[0].cdr).unwrap();
    assert_eq!(cdr["dir"], 3, "{cdr}");
    assert_eq!(cdr["cliNum"], "+4915123456789");
    assert_eq!(cdr["cliCtry"], "DE");
    assert_eq!(cdr["rate"], 1);
    assert_eq!(cdr["rateName"], "DE-mobile");
}

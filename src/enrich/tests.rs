//! Enrichment of replayed fixture sessions, and reload behaviour.

use std::sync::Arc;

use super::*;
use crate::replay::replay_str;

fn session(fixture: &str) -> ClosedSession {
    let mut closed = replay_str(fixture, Arc::new(Settings::default()));
    assert_eq!(closed.len(), 1);
    closed.remove(0)
}

fn outbound() -> ClosedSession {
    session(include_str!("../../fixtures/outbound_answered.jsonl"))
}

fn contact(id: &str, phone: &str) -> Contact {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("fullName".to_owned(), format!("Contact {id}"));
    fields.insert("phone1".to_owned(), phone.to_owned());
    Contact {
        id: id.to_owned(),
        fields,
    }
}

#[test]
fn outbound_call_is_located_matched_and_rated() {
    let mut s = outbound();
    assert_eq!(s.cdr.cli_num.as_deref(), Some("+14155550199"));
    assert!(!s.billable.is_empty());
    let secs = s.billable[0].billable_secs;
    let dir = Directory::new(
        "d1",
        "CRM",
        vec![
            contact("c1", "(415) 555-0199"),
            contact("c2", "+14155550100"),
        ],
        Region::US,
    );
    let deck = RateDeck::new(vec![
        Rate {
            name: Some("US".into()),
            description: Some("domestic".into()),
            ..Rate::new("1", 100)
        },
        Rate {
            name: Some("California".into()),
            description: Some("CA".into()),
            ..Rate::new("1415", 200)
        },
    ]);
    let e = Enricher::location_only(true).with_shared(Some(dir), Some(deck), false);
    e.enrich_session(&mut s);
    let c = &s.cdr;
    assert_eq!(c.cli_ctry.as_deref(), Some("US"));
    assert_eq!(c.cli_area.as_deref(), Some("415"));
    assert_eq!(c.cli_state.as_deref(), Some("CA"));
    assert!(c.cli_loc.is_some());
    assert_eq!(c.directory_matches.len(), 1);
    assert_eq!(c.directory_matches[0].contact_id, "c1");
    assert_eq!(c.rate, 1);
    assert_eq!(c.rate_name.as_deref(), Some("California"));
    assert_eq!(c.rate_band.as_deref(), Some("CA"));
    let expected = Rate::new("1415", 200).cost_units(secs) as f64 / 10_000.0;
    assert_eq!(c.rate_cost, Some(expected));
}

#[test]
fn nothing_changes_without_data_and_location_off() {
    let mut s = outbound();
    let before = s.cdr.clone();
    Enricher::location_only(false).enrich_session(&mut s);
    assert_eq!(s.cdr, before);
}

#[test]
fn a_deck_without_a_matching_rate_leaves_the_call_unrated() {
    let mut s = outbound();
    let deck = RateDeck::new(vec![Rate::new("44", 100)]);
    Enricher::location_only(false)
        .with_shared(None, Some(deck), false)
        .enrich_session(&mut s);
    assert_eq!(
        (s.cdr.rate, s.cdr.rate_cost, s.cdr.rate_name.clone()),
        (0, None, None)
    );
}

#[test]
fn internal_calls_get_no_location_or_matches() {
    let mut s = session(include_str!("../../fixtures/internal_call.jsonl"));
    assert_eq!(s.cdr.dir, crate::cdr::Direction::Internal);
    let dir = Directory::new("d", "D", vec![contact("c", "1005")], Region::US);
    let before = s.cdr.clone();
    Enricher::location_only(true)
        .with_shared(Some(dir), None, true)
        .enrich_session(&mut s);
    assert_eq!(s.cdr, before);
}

#[test]
fn tenant_files_come_first_and_reload_keeps_last_good_data() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    std::fs::write(
        p("own.csv"),
        "contactId,fullName,phone1\no1,Own,+14155550199\n",
    )
    .unwrap();
    std::fs::write(
        p("global.csv"),
        "contactId,fullName,phone1\ng1,Global,+14155550199\n",
    )
    .unwrap();
    std::fs::write(p("deck.csv"), "prefix,rate_cost,rate_name\n1,0.01,US\n").unwrap();
    let cfg = crate::config::PluginConfig::from_toml_str(
        "[enrich]\ncontacts = \"global.csv\"\nrate_deck = \"deck.csv\"\n\
         [enrich.tenants.fcf7b9a4d79956568efec53468bf28e0]\ncontacts = \"own.csv\"\n\
         directory_name = \"Tenant\"\n",
        &p("plugin.toml"),
    )
    .unwrap();
    let sources = cfg.enrich_sources().unwrap();
    let (shared, errors) = SharedEnricher::load(sources);
    assert!(errors.is_empty(), "{errors:?}");
    let enrich = |shared: &SharedEnricher| {
        let mut s = outbound();
        shared.enrich_session(&mut s);
        s.cdr
    };
    let cdr = enrich(&shared);
    let names: Vec<(&str, &str)> = cdr
        .directory_matches
        .iter()
        .map(|m| (m.dir_name.as_str(), m.contact_id.as_str()))
        .collect();
    assert_eq!(names, vec![("Tenant", "o1"), ("global", "g1")]);
    assert_eq!(cdr.rate_name.as_deref(), Some("US"));

    // A broken deck and a broken directory: both keep their last good data.
    std::fs::write(
        p("deck.csv"),
        "prefix,rate_cost,rate_name\n1,0.01,US\nxx,1,bad\n",
    )
    .unwrap();
    std::fs::write(
        p("own.csv"),
        "contactId,fullName,phone1\n,Own,+14155550199\n",
    )
    .unwrap();
    std::fs::write(
        p("global.csv"),
        "contactId,fullName,phone1\ng2,New,+14155550199\n",
    )
    .unwrap();
    let errors: Vec<String> = shared.reload().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].ends_with("deck.csv:3: prefix \"xx\": not 1 to 15 digits"),
        "{errors:?}"
    );
    assert!(
        errors[1].ends_with("own.csv:2: empty contactId"),
        "{errors:?}"
    );
    let cdr = enrich(&shared);
    let names: Vec<&str> = cdr
        .directory_matches
        .iter()
        .map(|m| m.contact_id.as_str())
        .collect();
    assert_eq!(names, vec!["o1", "g2"], "old own directory, new global one");
    assert_eq!(cdr.rate_name.as_deref(), Some("US"));

    // A missing file on the first load: no data, one error, the rest still works.
    let cfg = crate::config::PluginConfig::from_toml_str(
        "[enrich]\ncontacts = \"missing.json\"\nrate_deck = \"deck2.csv\"\n",
        &p("plugin.toml"),
    )
    .unwrap();
    std::fs::write(p("deck2.csv"), "prefix,rate_cost,rate_name\n1,0.01,US2\n").unwrap();
    let (shared, errors) = SharedEnricher::load(cfg.enrich_sources().unwrap());
    assert!(
        matches!(errors.as_slice(), [FileError::Read { .. }]),
        "{errors:?}"
    );
    let cdr = enrich(&shared);
    assert!(cdr.directory_matches.is_empty());
    assert_eq!(cdr.rate_name.as_deref(), Some("US2"));
}

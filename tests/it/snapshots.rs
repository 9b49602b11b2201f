//! Every fixture replayed with the default settings, its CDRs snapshotted.
//!
//! Each snapshot was checked by hand against PRODUCT.md §3 before it was accepted; the
//! reasoning for the less obvious values is in the fixture's scenario docs (`src/sim`).

use std::sync::Arc;

use postcall::replay::Replay;
use postcall::session::Settings;

#[test]
fn fixture_cdrs() {
    insta::glob!("../../fixtures", "*.jsonl", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let mut replay = Replay::new(Arc::new(Settings::default()));
        text.lines().for_each(|l| replay.feed_line(l));
        let (closed, stats) = replay.finish();
        let cdrs: Vec<_> = closed.iter().map(|c| &c.cdr).collect();
        let skipped: Vec<String> = stats
            .skipped
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        insta::with_settings!({
            description => format!(
                "frames={} events={} duplicates={} late={} replies={} skipped=[{}]",
                stats.frames, stats.events, stats.duplicates, stats.late, stats.replies, skipped.join(",")
            ),
            omit_expression => true,
        }, {
            insta::assert_json_snapshot!(cdrs);
        });
    });
}

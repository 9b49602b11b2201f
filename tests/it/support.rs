//! Shared helpers: fixture discovery and replay of fixture text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postcall::replay::Replay;
use postcall::session::{ClosedSession, Settings};

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every `fixtures/*.jsonl`, sorted.
pub fn fixture_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    v.sort();
    v
}

/// Replays lines with default settings.
pub fn replay_lines<S: AsRef<str>>(lines: &[S]) -> Vec<ClosedSession> {
    let mut r = Replay::new(Arc::new(Settings::default()));
    for l in lines {
        r.feed_line(l.as_ref());
    }
    r.finish().0
}

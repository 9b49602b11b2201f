//! Shared helpers: fixture discovery and replay of fixture text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postcall::replay::Replay;
use postcall::session::{ClosedSession, Settings};

/// A test cannot run here: it needs `what`, which `scripts/test` installs. Written straight to
/// the terminal (the test harness does not capture it), so a plain `cargo test` says what it
/// skipped. Under `scripts/test` (`POSTCALL_TEST_REQUIRE=1`) a missing part fails the test
/// instead: that command never passes by skipping.
pub fn skip_loudly(test: &str, what: &str) {
    if std::env::var_os("POSTCALL_TEST_REQUIRE").is_some_and(|v| v == "1") {
        panic!("{test} needs {what}, and POSTCALL_TEST_REQUIRE=1 (scripts/test) forbids skipping");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: {test}: this machine lacks {what} (scripts/test installs it).\n"
    );
}

/// The real part named by the environment variable `var` (set by `scripts/test`: a path to
/// PostgreSQL's binaries, to Chromium…), or `None` after [`skip_loudly`].
pub fn real_part(var: &str, test: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None => {
            skip_loudly(test, &format!("{what} (${var})"));
            None
        }
    }
}

/// The `postcall` binary run with `args`, to its end.
pub fn postcall(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_postcall"))
        .args(args)
        .output()
        .expect("postcall runs")
}

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

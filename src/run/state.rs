//! What a stopping sidecar keeps for the next start besides the outbox: the assembler's open
//! sessions, and closed sessions that had not reached the outbox yet. One JSON file in the data
//! directory, written atomically (temporary file, fsync, rename) and removed once loaded.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::session::{ClosedSession, Snapshot};

/// The saved state.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedState {
    /// Open sessions.
    pub open: Snapshot,
    /// Closed sessions not yet written to the outbox.
    pub closed: Vec<ClosedSession>,
}

/// The state file in `data_dir`.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sessions.json")
}

/// Writes the state atomically.
///
/// # Errors
/// An I/O error (the previous file, if any, is left as it was).
pub fn save(path: &Path, state: &SavedState) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::delivery::files::private_dir(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = crate::delivery::files::private_file(&tmp, true)?;
    serde_json::to_writer(&mut f, state).map_err(std::io::Error::other)?;
    f.flush()?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads and removes the state file (`None` when there is none).
///
/// # Errors
/// The file exists but cannot be read or parsed; it is then kept (renamed with a `.bad`
/// suffix) for inspection.
pub fn take(path: &Path) -> std::io::Result<Option<SavedState>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice(&bytes) {
        Ok(s) => {
            std::fs::remove_file(path)?;
            Ok(Some(s))
        }
        Err(e) => {
            let _ = std::fs::rename(path, path.with_extension("json.bad"));
            Err(std::io::Error::other(format!(
                "{}: unreadable saved sessions ({e}); kept as .bad",
                path.display()
            )))
        }
    }
}

//! What a stopping sidecar keeps for the next start besides the outbox: the assembler's open
//! sessions, and closed sessions that had not reached the outbox yet. One JSON file in the data
//! directory, written atomically (temporary file, fsync, rename) through a large buffer, and
//! removed only once the next run's assembler holds it. Both directions are blocking file
//! work: the sidecar runs them on the blocking pool.

use std::io::BufWriter;
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
    let mut f =
        BufWriter::with_capacity(1 << 20, crate::delivery::files::private_file(&tmp, true)?);
    serde_json::to_writer(&mut f, state).map_err(std::io::Error::other)?;
    let f = f
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads the state file (`None` when there is none), leaving it in place: [`remove`] it once
/// the running assembler holds the sessions.
///
/// # Errors
/// The file exists but cannot be read or parsed; it is then kept (renamed with a `.bad`
/// suffix) for inspection.
pub fn load(path: &Path) -> std::io::Result<Option<SavedState>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice(&bytes) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            let _ = std::fs::rename(path, path.with_extension("json.bad"));
            Err(std::io::Error::other(format!(
                "{}: unreadable saved sessions ({e}); kept as .bad",
                path.display()
            )))
        }
    }
}

/// Removes the state file once its sessions are held again (absent is fine).
///
/// # Errors
/// An I/O error other than "not found".
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

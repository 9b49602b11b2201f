//! Files of the data directory are private: the directory is `0700` and every file in it
//! (`outbox.redb`, its disk reserve, `sessions.json`) `0600`, since they hold call records and
//! the URLs of receivers (Logic Apps carry a `sig` in theirs). Existing looser modes are
//! tightened when postcall opens them. No-ops outside Unix.

use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) as `0700`, and tightens it if it exists.
///
/// # Errors
/// The directory cannot be created or its mode set.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Opens `path` for writing, created `0600` (truncated when `truncate`).
///
/// # Errors
/// The file cannot be opened or created.
pub fn private_file(path: &Path, truncate: bool) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    restrict(path)?;
    Ok(f)
}

/// Sets `path` to `0600` (an existing file keeps its content).
///
/// # Errors
/// The mode cannot be set.
pub fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

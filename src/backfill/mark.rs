//! The stream mark: until when the event stream is known to have been whole, kept in a small
//! file beside the outbox so that the next start (after a clean stop, a crash or `kill -9`)
//! knows which window to backfill. Written every few seconds by the running sidecar (write to
//! a temporary file, sync, rename), so a crash loses at most that much precision, which the
//! backfill margin covers.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::clock::StreamTime;

/// The mark's file in `data_dir`.
#[must_use]
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("stream.mark")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Mark {
    /// Unix µs on the PBX's clock.
    whole_until_us: StreamTime,
}

/// Reads the mark; `None` when there is none (a first start). An unreadable mark is an error
/// (the caller logs it and backfills as configured for a first start).
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub fn read(path: &Path) -> std::io::Result<Option<StreamTime>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Mark>(&bytes)
            .map(|m| Some(m.whole_until_us))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the mark durably (temporary file, sync, rename).
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, whole_until_us: StreamTime) -> std::io::Result<()> {
    let tmp = path.with_extension("mark.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, &Mark { whole_until_us })?;
        f.flush()?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::clock::StreamTime;

    #[test]
    fn a_mark_round_trips_and_a_missing_one_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = super::path(dir.path());
        assert_eq!(super::read(&p).unwrap(), None);
        super::write(&p, StreamTime::from_us(1_700_000_000_123_456)).unwrap();
        assert_eq!(
            super::read(&p).unwrap(),
            Some(StreamTime::from_us(1_700_000_000_123_456))
        );
        super::write(&p, StreamTime::from_us(1_700_000_100_000_000)).unwrap();
        assert_eq!(
            super::read(&p).unwrap(),
            Some(StreamTime::from_us(1_700_000_100_000_000))
        );
        std::fs::write(&p, b"{not json").unwrap();
        assert!(super::read(&p).is_err());
    }
}

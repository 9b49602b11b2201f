//! The outbox's storage layer: redb over a real file, through a backend that can be told to
//! fail. Production always runs through it (healthy, it only forwards to redb's own file
//! backend), so the fault tests exercise the same path as a real disk: a full disk (`ENOSPC`
//! on writes that need space), a failing device (`EIO` on writes, or on syncs only), a device
//! that stalls (writes wait until resumed).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::StorageBackend;

/// What the storage layer does with writes and syncs: [`Faults::set`] changes it at any time,
/// for every outbox opened with the same switch (clones share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything to the file.
    None,
    /// Writes and growing the file fail with `ENOSPC` (a full disk).
    NoSpace,
    /// Writes and syncs fail with `EIO`.
    WriteError,
    /// Syncs fail with `EIO` (writes reach the page cache).
    SyncError,
    /// The file can no longer be read back (a device that lost its data): reads fail with
    /// `InvalidData`, writes and syncs with `EIO`. Reopening finds a corrupted file.
    Unreadable,
}

/// A shared switch of injected storage faults. The default is [`Fault::None`].
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Switch>);

#[derive(Debug, Default)]
struct Switch {
    fault: AtomicU8,
    /// Writes wait while this is true (a device that stalls).
    held: std::sync::Mutex<bool>,
    resumed: std::sync::Condvar,
}

impl Faults {
    /// Makes every write wait until [`Faults::resume`] (a stalled device).
    pub fn hold(&self) {
        *self
            .0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    }

    /// Lets held writes proceed.
    pub fn resume(&self) {
        *self
            .0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        self.0.resumed.notify_all();
    }

    fn wait_while_held(&self) {
        let mut held = self
            .0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *held {
            held = self
                .0
                .resumed
                .wait(held)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Injects `fault` into every storage operation from now on.
    pub fn set(&self, fault: Fault) {
        let v = match fault {
            Fault::None => 0,
            Fault::NoSpace => 1,
            Fault::WriteError => 2,
            Fault::SyncError => 3,
            Fault::Unreadable => 4,
        };
        self.0.fault.store(v, Ordering::Release);
    }

    /// The fault currently injected.
    #[must_use]
    pub fn get(&self) -> Fault {
        match self.0.fault.load(Ordering::Acquire) {
            1 => Fault::NoSpace,
            2 => Fault::WriteError,
            3 => Fault::SyncError,
            4 => Fault::Unreadable,
            _ => Fault::None,
        }
    }
}

/// redb's file backend behind a [`Faults`] switch.
#[derive(Debug)]
pub(crate) struct FaultyFile {
    file: FileBackend,
    faults: Faults,
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

impl FaultyFile {
    /// Opens (creating) `path` with redb's file backend (which locks the file).
    pub(crate) fn open(path: &Path, faults: Faults) -> Result<Self, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| redb::DatabaseError::Storage(e.into()))?;
        Ok(Self {
            file: FileBackend::new(file)?,
            faults,
        })
    }

    fn write_fault(&self) -> Option<io::Error> {
        match self.faults.get() {
            Fault::NoSpace => Some(os_error(ENOSPC)),
            Fault::WriteError | Fault::Unreadable => Some(os_error(EIO)),
            Fault::None | Fault::SyncError => None,
        }
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        if self.faults.get() == Fault::Unreadable {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "injected: the file cannot be read back",
            ));
        }
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if len > self.file.len()? {
            if let Some(e) = self.write_fault() {
                return Err(e);
            }
        }
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> Result<(), io::Error> {
        match self.faults.get() {
            Fault::WriteError | Fault::SyncError | Fault::Unreadable => Err(os_error(EIO)),
            Fault::None | Fault::NoSpace => self.file.sync_data(eventual),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.faults.wait_while_held();
        if let Some(e) = self.write_fault() {
            return Err(e);
        }
        self.file.write(offset, data)
    }
}

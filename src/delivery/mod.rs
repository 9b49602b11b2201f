//! Webhook delivery: at least once, through a durable outbox.
//!
//! ```text
//! matched (CDR, trigger) ──► Outbox::enqueue ──► Engine lanes ──► HTTP attempt ──► complete
//!                            (durable first)     per endpoint     10 s deadline     delivered /
//!                                                + global limit                     retry at / dead
//! ```
//!
//! - [`payload`] builds and encodes the request (pure).
//! - [`retry`] classifies outcomes and schedules retries (pure).
//! - [`sign`] is Standard Webhooks signing.
//! - [`outbox`] is the redb store: pending, schedule, dead letters.
//! - [`writer`] is group commit: queued outbox writes share one transaction.
//! - [`storage`] is the file layer under the outbox, where tests inject faults.
//! - [`journal`] keeps every session CDR (matched or not) with its deliveries, in the same
//!   store and transactions as the outbox.
//! - [`backend`] is the storage boundary: the embedded outbox or [`pg`] (PostgreSQL, shared
//!   by several instances), one enum.
//! - [`engine`] runs attempts with per-endpoint and global concurrency limits.
//! - [`ready`] is the engine's view of the lanes: fresh jobs attempted from memory, when to
//!   read a lane's stored jobs (pure).
//! - [`attempts`] is the bounded, in-memory log of recent attempts (the console shows it).

pub mod attempts;
pub mod backend;
pub mod engine;
pub mod files;
pub mod job;
pub mod journal;
pub mod keys;
pub mod outbox;
pub mod payload;
pub mod pg;
pub(crate) mod ready;
pub mod retry;
pub mod sign;
pub mod storage;
pub(crate) mod writer;

pub use backend::Storage;
pub use engine::{DeliveryCounters, DeliveryOptions, Engine};
pub use job::{webhook_id, Endpoint, Job};
pub use journal::{Journal, JournalEntry, JournalPolicy, ListFilter};
pub use keys::{KeyLookup, KeySource, StaticKeys};
pub use outbox::{Completion, Outbox, OutboxError, OutboxOptions, Store};
pub use payload::{Format, Method};
pub use storage::{Fault, Faults};

//! Triggers (PRODUCT.md §4): which sessions fire which webhook.
//!
//! - [`filter`]: compiled conditions on CDR fields (pure).
//! - [`model`]: the validated [`Trigger`] and the immutable, tenant-indexed [`TriggerSet`]
//!   whose [`TriggerSet::matches`] webhook delivery consumes.
//! - [`file`]: the trigger document (TOML files, TOML or JSON remote) and its validation.
//! - [`reload`]: the `ArcSwap` holder and what rebuilds it (file watch, SIGHUP, remote poll).
//! - [`remote`]: fetching the remote document with ETag / Last-Modified.

pub mod file;
pub mod filter;
pub mod model;
pub mod reload;
pub mod remote;

pub use file::{BuildOptions, DocFormat, TriggerError, TriggerErrors};
pub use model::{Action, Format, Match, Method, SigningSecret, Trigger, TriggerSet, Verdict};
pub use reload::{ReloadStatus, Reloader, SharedTriggers, TriggerSources};

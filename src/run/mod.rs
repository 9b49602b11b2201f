//! The sidecar shell: wiring of source, assembler, enrichment, triggers and delivery, the
//! admin listener and its metrics.

pub mod admin;
pub mod cdrs;
#[cfg(feature = "sim")]
pub mod demo;
pub mod driver;
pub mod live;
pub mod metrics;
pub mod receiver;
pub mod reconcile;
pub mod sidecar;
pub mod state;

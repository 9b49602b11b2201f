//! Integration tests, one binary with a module per area.

mod admin;
mod backfill;
mod captures;
// Kazoo's stored leg CDRs.
mod cdr_docs;
mod cli;
// The operator's console (issue 17), in a real browser too.
mod console;
mod delivery;
// The integration guide: samples, snippets.
mod docs;
mod enrich;
mod failover;
mod faults;
// The CDR journal.
mod journal;
mod lifecycle;
mod limits;
mod live;
mod metrics;
mod net;
mod numbers;
mod properties;
mod record;
mod robustness;
mod run;
mod servers;
mod snapshots;
// The storage boundary: embedded and PostgreSQL (issue 16).
mod stores;
// Storage faults injected under the outbox.
mod storage_faults;
mod support;
// Triggers.
mod triggers;
// One validation for check and run.
mod validate;
mod websocket;

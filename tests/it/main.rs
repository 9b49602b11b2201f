//! Integration tests, one binary with a module per area.

mod admin;
mod cli;
mod delivery;
mod enrich;
mod faults;
mod live;
mod net;
mod properties;
mod robustness;
mod run;
mod servers;
mod snapshots;
mod support;
// Triggers (issue 4).
mod triggers;
mod websocket;

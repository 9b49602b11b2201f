//! Integration tests, one binary with a module per area.

mod cli;
mod enrich;
mod properties;
mod robustness;
mod snapshots;
mod support;

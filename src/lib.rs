//! # postcall
//!
//! Kazoo call events in, one session CDR per call out.
//!
//! ```text
//! Blackhole frames ──► source ──► session::Assembler ──► Cdr
//!                      decode      legs → session,
//!                                  CDR when it ends
//! ```
//!
//! - [`source`] decodes Blackhole websocket frames into [`source::CallEvent`]s.
//! - [`session`] is the pure assembler: events and time in, finished CDRs out. It does no I/O
//!   and reads no clock, so replay is deterministic.
//! - [`cdr`] is the data contract carried in the webhook's `cdr` object.
//! - [`config`] is the inert configuration (`plugin.toml`) and its validation.
//! - [`sim`] generates realistic Kazoo 4.3 frames for named scenarios and random call mixes.
//! - [`replay`] runs recorded frames through the assembler.
//! - [`enrich`] adds number location, contact-directory matches and rating to a closed CDR.
//! - [`trigger`] is the trigger set: filters, tenant scoping, validation and hot reload.

pub mod cdr;
pub mod config;
pub mod delivery;
pub mod enrich;
pub mod net;
pub mod replay;
pub mod run;
pub mod schema;
pub mod session;
pub mod sim;
pub mod source;
pub mod trigger;

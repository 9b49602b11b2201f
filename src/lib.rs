//! # postcall
//!
//! Kazoo call events in, one session CDR per call out, delivered as post-call webhooks.
//!
//! ```text
//!  Kazoo Blackhole (websocket)                       Crossbar (REST)
//!        │ frames                                        │ tokens, names, channels
//!        ▼                                               ▼
//!  source::blackhole ──(bounded)──► run::driver ──────► session::Assembler (pure)
//!                                   decode, clock,        legs → sessions → CDRs
//!                                   resync, settings
//!                                          │ closed sessions (bounded)
//!                                          ▼
//!  run::sidecar sink:  enrich::Enricher (pure) → trigger::TriggerSet::matches (pure)
//!                                          │ jobs
//!                                          ▼
//!  delivery::Outbox (redb, durable first) ──► delivery::Engine ──► HTTP(S) receivers
//!                                             lanes, retries, signing, SSRF guard
//! ```
//!
//! - [`source`] decodes Blackhole frames into [`source::CallEvent`]s and is the live client
//!   (websocket, tokens, Crossbar directory, channels and stored CDRs, `record`); it depends
//!   on nothing of the pipeline after it.
//! - [`session`] is the pure, synchronous assembler — events and time in, finished CDRs out,
//!   no I/O, no tokio and no clock, so replay is deterministic. Its async shell is
//!   [`run::driver`].
//! - [`clock`]: [`clock::StreamTime`] (the PBX's clock, from the events) and
//!   [`clock::WallTime`] (this host's, read only by the shell), distinct types.
//! - [`backfill`] reads what the stream missed from Kazoo's stored CDRs, and reconciles.
//! - [`cdr`] is the data contract carried in the webhook's `cdr` object; [`schema`] its JSON
//!   Schema.
//! - [`enrich`] adds number location, contact-directory matches and rating to a closed CDR.
//! - [`trigger`] is the trigger set: filters, tenant scoping, validation and hot reload.
//! - [`delivery`] is the durable outbox, the CDR journal kept in the same store, and the
//!   engine that delivers from the outbox.
//! - [`net`] is the shared TLS configuration, HTTP client, SSRF guard and `Secret`.
//! - [`config`] is the inert configuration (`plugin.toml`) and its validation.
//! - [`run`] is the async shell: the driver around the assembler, the live source's wiring
//!   ([`run::live`]), the sidecar (`postcall run`), the demo, the admin listener and its
//!   metrics, `reconcile`. Layers point one way: source ← session ← trigger, delivery ← run.
//! - `sim` (feature `sim`, on by default; the binary, tests and benches need it; an embedder
//!   may leave it out with `default-features = false`, which also leaves out `run::demo`)
//!   generates realistic Kazoo 4.3 frames for named scenarios and random call mixes,
//!   and serves them as a simulated Blackhole.
//! - [`replay`] runs recorded frames through the assembler; [`explain`] shows which triggers
//!   fire for the replayed sessions and why the others do not; [`summary`] is the one-line
//!   description of a call they and the demo print.
//!
//! Embedding: build a [`config::PluginConfig`] (or load `plugin.toml`) and call
//! [`run::sidecar::run`] with a `tokio_util::sync::CancellationToken` (cancel it to stop; the
//! run drains, saves and joins before it returns; it validates first; or call
//! [`config::validate`] yourself, report every problem, and pass the result to
//! [`run::sidecar::run_validated`]); or use the pure parts directly —
//! [`source::decode_frame`], [`session::Assembler`], [`trigger::TriggerSet::matches`],
//! [`delivery::payload::encode`].

pub mod backfill;
pub mod cdr;
pub mod clock;
pub mod config;
pub mod console;
pub mod delivery;
pub mod enrich;
pub mod explain;
pub mod net;
pub mod replay;
pub mod run;
pub mod schema;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;
pub mod summary;
pub mod trigger;

//! Simulated Kazoo 4.3 Blackhole traffic: named call scenarios and random call mixes.
//!
//! Every frame is the exact text a Blackhole websocket subscribed with `call.*.*` would send
//! (`kazoo-events.md` §2.5, §4, §8): an `{"action":"event",…}` envelope around ecallmgr's
//! normalised channel event, or the callflow app's small PARK_* payload. Output is fully
//! deterministic: ids, jitter and durations come from a seeded SplitMix64, never from the
//! clock, so the same call gives the same bytes on every run.
//!
//! - [`scenario_names`] / [`scenario`]: the fixed calls committed under `fixtures/<name>.jsonl`.
//!   Each builder in `scenarios.rs` documents its timeline and the session CDR postcall must
//!   produce from it.
//! - [`mix`]: N random calls of those kinds, streamed in send-time order with memory bounded by
//!   the number of calls in flight.
//! - [`cdrs`] / [`scenario_cdrs`]: the leg CDR documents Kazoo's `cdr` app stores for the
//!   same calls, following Kazoo's source (for backfill tests and the fake Crossbar).
//! - [`Pbx`]: the directory behind both (accounts, users, devices, numbers, callflows), which
//!   a fake Crossbar can serve.
//!
//! ```
//! let frames = postcall::sim::scenario("pstn_answered").unwrap();
//! assert!(frames.windows(2).all(|w| w[0].time_us <= w[1].time_us));
//! let first = postcall::source::decode_frame(&frames[0].text).unwrap();
//! assert!(matches!(first, postcall::source::Frame::Event(_)));
//! ```

pub mod cdrs;
mod frames;
mod json;
mod mix;
mod model;
mod rng;
mod scenarios;
mod script;
pub mod server;
#[cfg(test)]
mod tests;

pub use mix::MixSpec;
pub use model::{
    Account, CallForward, Callflow, Carrier, Device, Did, MediaServer, Pbx, Queue, RingGroup, User,
    DEMO_SEED,
};

use scenarios::Kind;

/// One websocket text frame and when Kazoo would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFrame {
    /// Send time, unix µs. Non-decreasing within a scenario and a mix; for a normal frame it
    /// equals the event time in `msg_id`, for a delayed one it is later.
    pub time_us: i64,
    /// The frame, byte for byte.
    pub text: String,
}

/// Names of the built-in scenarios, in fixture order.
pub fn scenario_names() -> &'static [&'static str] {
    scenarios::NAMES
}

/// The frames of scenario `name` in stream order, or `None` for an unknown name. Each
/// scenario runs at its own fixed time on 2024-05-14 against [`Pbx::demo`]`(`[`DEMO_SEED`]`)`.
pub fn scenario(name: &str) -> Option<Vec<SimFrame>> {
    let kind = Kind::from_name(name)?;
    let pbx = Pbx::demo(DEMO_SEED);
    let (start, params) = scenarios::fixture(kind);
    let script = kind.script(&pbx, rng::Rng::from_text(name), start, &params);
    Some(
        script
            .events
            .iter()
            .map(|e| SimFrame {
                time_us: e.deliver_us,
                text: frames::render(&pbx, &script, e),
            })
            .collect(),
    )
}

/// The leg CDR documents Kazoo's `cdr` app stores for scenario `name` (see [`cdrs`]), or
/// `None` for an unknown name. They come from the call as it happened in the PBX: a DESTROY
/// the scenario's stream loses (`missing_destroy`) still has its CDR, as in Kazoo.
pub fn scenario_cdrs(name: &str) -> Option<Vec<serde_json::Value>> {
    let kind = Kind::from_name(name)?;
    let pbx = Pbx::demo(DEMO_SEED);
    let (start, params) = scenarios::fixture(kind);
    let call = kind.call(&pbx, rng::Rng::from_text(name), start, &params);
    let frames: Vec<SimFrame> = call
        .events
        .iter()
        .map(|e| SimFrame {
            time_us: e.deliver_us,
            text: frames::render(&pbx, &call, e),
        })
        .collect();
    Some(cdrs::documents(&frames))
}

/// A stream of `spec.calls` random calls (kinds weighted towards plain answered calls), each
/// with fresh ids, in non-decreasing [`SimFrame::time_us`]. Calls are generated lazily as the
/// stream reaches them, so a 100 000-call mix needs memory only for the calls in flight.
pub fn mix(spec: MixSpec) -> impl Iterator<Item = SimFrame> {
    mix::Mix::new(spec)
}

/// Frames as a JSON Lines fixture: one frame per line, each line ending in `\n`.
pub fn to_jsonl(frames: &[SimFrame]) -> String {
    let mut out = String::with_capacity(frames.iter().map(|f| f.text.len() + 1).sum());
    for f in frames {
        out.push_str(&f.text);
        out.push('\n');
    }
    out
}

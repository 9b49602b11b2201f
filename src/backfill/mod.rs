//! Backfill: the calls the event stream did not show, read from Kazoo's stored leg CDRs.
//!
//! Blackhole replays nothing after a reconnect, but Kazoo's `cdr` app stores one CDR per leg
//! when it ends, readable through Crossbar. Whenever the stream had a gap (a restart, a
//! crash, a reconnect, and optionally the first start), the driver asks for the gap's
//! [`Window`]; [`fetch::run`] reads the stored legs of every interaction that ended in it and
//! hands them back, and the driver folds them into the same assembler as live events (as
//! DESTROY-only legs, see `source::cdr_doc`). So a call that started and ended while postcall
//! was away is built by the same rules and gets the same session id live assembly gives, a
//! half-seen session is completed instead of going out with legs missing, and a leg whose
//! DESTROY was lost is ended at its real time.

pub mod crossbar;
pub mod fetch;
pub mod link;
pub mod mark;
pub mod window;

pub use crossbar::CrossbarCdrs;
pub use fetch::{
    BackfillCounters, BackfillMsg, BackfillOptions, BackfillState, CdrSource, Listing, Outcome,
    ReadError, Request,
};
pub use link::{BackfillLink, Gaps};
pub use window::{Resume, Window};

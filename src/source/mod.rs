//! Input side: Kazoo Blackhole frames, and the Kazoo APIs around them.
//!
//! [`wire`] decodes a text frame leniently (borrowing from it); [`event`] reduces it to the
//! [`CallEvent`] the assembler consumes (still borrowing its text from the frame), or to a [`Reply`], or to a [`DecodeError`]
//! with a stable reason label. [`blackhole`] is the live websocket client, [`auth`] the token
//! it and [`crossbar`] use, [`directory`] the names and channels read from Crossbar.
//! [`leg_event`] reads one of Kazoo's stored leg CDR documents back as the DESTROY event it
//! was written from.

pub mod auth;
pub mod backoff;
pub mod blackhole;
mod cdr_doc;
pub mod crossbar;
pub mod directory;
mod event;
pub mod limits;
pub mod names;
pub mod record;
mod wire;

pub use cdr_doc::{leg_event, CdrDocError};
#[cfg(feature = "sim")]
pub(crate) use event::fnv1a;
pub use event::{
    decode_frame, event_time, CallEvent, Ccvs, DecodeError, Direction, EventKind, Frame, Reply,
    GREGORIAN_UNIX_OFFSET_SECS,
};

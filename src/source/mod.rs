//! Input side: Kazoo Blackhole frames.
//!
//! [`wire`] decodes a text frame leniently (borrowing from it); [`event`] reduces it to the
//! owned [`CallEvent`] the assembler consumes, or to a [`Reply`], or to a [`DecodeError`]
//! with a stable reason label.

mod event;
mod wire;

pub use event::{
    decode_frame, event_time_us, CallEvent, Ccvs, DecodeError, Direction, EventKind, Frame, Reply,
    GREGORIAN_UNIX_OFFSET_SECS,
};

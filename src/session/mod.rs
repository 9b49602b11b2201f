//! Sessions: legs grouped into calls, and the CDR of each call.
//!
//! Pure and synchronous: [`Assembler`] takes [`CallEvent`](crate::source::CallEvent)s and a
//! processing time, and yields [`ClosedSession`]s. [`leg`] folds a leg's events
//! order-independently, [`timeline`] derives ring/talk/hold/park and who was connected, and
//! [`build`] turns a closed session into its [`Cdr`](crate::cdr::Cdr).

mod assembler;
mod build;
pub mod leg;
pub mod numbers;
mod settings;
pub mod timeline;

pub use crate::source::names::{DeviceInfo, PbxDirectory, UserInfo};
pub use assembler::{Applied, Assembler, AssemblerStats, Snapshot};
pub use build::{build, BillableLeg, ClosedSession, SessionFacts};
pub use settings::{Settings, TenantSettings};

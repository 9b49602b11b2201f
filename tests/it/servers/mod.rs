//! Real servers on 127.0.0.1 port 0 for the network tests: a test certificate authority, an
//! HTTP(S) receiver, a fake Crossbar and a fake Blackhole that enforces the real protocol.

pub mod blackhole;
pub mod cdr_store;
pub mod crossbar;
pub mod http;
pub mod postgres;
pub mod tls;

//! Outbound network plumbing shared by the Kazoo source, the remote trigger source and webhook
//! delivery: one rustls configuration (webpki roots plus an optional extra CA, verification
//! never off) and one pooled hyper client.

pub mod guard;
pub mod http;
pub mod secret;
pub mod tls;

pub use http::{HttpClient, HttpError, HttpResponse};
pub use secret::{redact_url, Secret};
pub use tls::{client_config, TlsError};

//! The webhook receiver the tests script and record: postcall's own
//! [`postcall::run::receiver`] (the demo's), plain or TLS on 127.0.0.1:0, with every request
//! it gets queued for the test to read.

use std::time::Duration;

use postcall::run::receiver::Receiver;
use tokio::sync::mpsc;

pub use postcall::run::receiver::{Received as Recorded, Reply, Served};

use super::tls::TestCa;

/// A running server; it stops when dropped.
pub struct HttpServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    requests: mpsc::UnboundedReceiver<Recorded>,
    receiver: Receiver,
}

impl HttpServer {
    /// Starts a server answering every request with `handler`; TLS when `ca` is given.
    pub async fn start(
        ca: Option<&TestCa>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_served(ca, move |r| Served::Reply(handler(r))).await
    }

    /// Starts a server whose handler may also stream chunks or cut connections.
    pub async fn start_served(
        ca: Option<&TestCa>,
        handler: impl Fn(&Recorded) -> Served + Send + Sync + 'static,
    ) -> Self {
        let (tx, requests) = mpsc::unbounded_channel();
        let receiver = Receiver::start(ca.map(|ca| ca.server.clone()), move |r| {
            let served = handler(&r);
            let _ = tx.send(r);
            served
        })
        .await
        .unwrap();
        Self {
            addr: receiver.addr,
            requests,
            receiver,
        }
    }

    /// The base URL (`http[s]://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.receiver.url()
    }

    /// The next request the server received (waits for it).
    pub async fn next_request(&mut self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("server running")
    }

    /// The next request if one arrives within `wait` (to show that none does).
    pub async fn next_request_within(&mut self, wait: Duration) -> Option<Recorded> {
        tokio::time::timeout(wait, self.requests.recv())
            .await
            .ok()
            .flatten()
    }
}

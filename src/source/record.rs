//! `postcall record`: live frames into a fixture file that `replay` reads.
//!
//! Only the frames Blackhole pushes are written, one per line, byte for byte; subscribe
//! requests and their replies (the only frames that can carry the auth token, which Kazoo
//! echoes in `failed to authenticate token …`) never reach the file.

use std::io::Write;

use tokio::sync::mpsc;

use super::blackhole::SourceMsg;

/// Writes frames from `messages` to `out` until `limit` frames were written, the channel
/// closes or `stop` resolves. Returns the number of frames written.
///
/// # Errors
/// A write error.
pub async fn record(
    messages: &mut mpsc::Receiver<SourceMsg>,
    out: &mut impl Write,
    limit: Option<u64>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<u64> {
    let mut written = 0u64;
    tokio::pin!(stop);
    while limit.is_none_or(|l| written < l) {
        let msg = tokio::select! {
            m = messages.recv() => m,
            () = &mut stop => None,
        };
        match msg {
            None => break,
            Some(SourceMsg::Frame { text, .. }) => {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()?;
                written += 1;
            }
            Some(SourceMsg::Connected { subscribed, .. }) => {
                tracing::info!(subscribed, "recording");
            }
            Some(SourceMsg::Disconnected { reason, .. }) => {
                tracing::warn!(%reason, "disconnected; frames until the reconnect are lost");
            }
        }
    }
    Ok(written)
}

//! Closing a connection so the client can read the last answer.
//!
//! When the server closes a connection that still has unread bytes from the client in its
//! receive buffer (the rest of a rejected request, pipelined requests after a `Connection:
//! close`), the kernel answers with a reset, and a reset can destroy the answer the client has
//! not read yet (RFC 9112 section 9.6, "tear-down"). So the server closes in two steps, as
//! Apache and nginx do ("lingering close"): it shuts down its write side (the client sees the
//! answer, then end of file), then reads and discards whatever the client still sends until the
//! client closes, for at most [`LINGER_TIME`] and [`LINGER_BYTES`]. A client that never closes
//! costs that long, no more.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest a closing connection waits for the client to close its side.
pub const LINGER_TIME: Duration = Duration::from_secs(1);

/// The most bytes a closing connection reads and discards.
pub const LINGER_BYTES: usize = 64 * 1024;

/// Shuts down the write side of `stream`, then discards what the client sends until it closes,
/// the time is up or [`LINGER_BYTES`] were read. `scratch` is any buffer the caller can spare;
/// it is left empty. Over TLS the shutdown sends `close_notify` first, which may wait on the
/// client: it gets the same time limit.
pub async fn lingering_close<S>(stream: &mut S, scratch: &mut Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !matches!(
        tokio::time::timeout(LINGER_TIME, stream.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let mut discarded = 0;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while discarded < LINGER_BYTES {
            scratch.clear();
            scratch.reserve(4096);
            match stream.read_buf(scratch).await {
                Ok(0) | Err(_) => break,
                Ok(read) => discarded += read,
            }
        }
    })
    .await;
    scratch.clear();
}

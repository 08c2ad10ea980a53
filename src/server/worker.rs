//! One worker: an OS thread with a single-threaded runtime that accepts connections and serves
//! them until told to stop, then drains.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio_util::sync::CancellationToken;

use super::{ConnectionSettings, hyper_engine};
use crate::http::App;

/// How long to pause accepting after running out of file descriptors, so the loop does not
/// spin while connections close and free some.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

pub(super) struct Worker {
    pub index: usize,
    pub listener: std::net::TcpListener,
    pub app: Arc<App>,
    pub connection: Arc<ConnectionSettings>,
    pub stop: CancellationToken,
}

impl Worker {
    /// Runs on the calling thread until stopped and drained.
    pub fn run(self) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(self.serve())
    }

    async fn serve(self) -> io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let graceful = GracefulShutdown::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = self.stop.cancelled() => break,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    // Small responses must leave at once, not wait for Nagle's timer.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    hyper_engine::spawn_connection(stream, &self.app, &self.connection, &graceful);
                }
                Err(error) if is_resource_exhaustion(&error) => {
                    tracing::warn!(worker = self.index, %error, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                Err(error) => tracing::debug!(worker = self.index, %error, "accept failed"),
            }
        }
        drop(listener);
        let drain_timeout = self.connection.drain_timeout;
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(drain_timeout) => {
                tracing::warn!(worker = self.index, ?drain_timeout, "drain timed out; closing the remaining connections");
            }
        }
        Ok(())
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

//! The process signals that start a graceful shutdown.

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C only, off Unix). If the handlers cannot be
/// installed the error is logged and the future never resolves, so the server keeps serving
/// rather than exiting at once.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (interrupt, terminate) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot install signal handlers; stop the process with SIGKILL");
                return std::future::pending().await;
            }
        };
        let (mut interrupt, mut terminate) = (interrupt, terminate);
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

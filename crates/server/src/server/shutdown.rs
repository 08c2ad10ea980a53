//! The process signals that start a graceful shutdown.

use std::future::Future;

/// Installs SIGINT and SIGTERM handlers now, and returns a future that resolves on the first
/// of them (Ctrl-C only, off Unix). Installing before the server announces its address means no
/// signal can arrive while the default action (terminate at once) still applies. Must be called
/// inside a tokio runtime. If the handlers cannot be installed the error is logged and the
/// future never resolves, so the server keeps serving rather than exiting at once.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            let (mut interrupt, mut terminate) = match handlers {
                (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "cannot install signal handlers; stop the process with SIGKILL");
                    return std::future::pending().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Installs a SIGHUP handler now and spawns a task that calls `reload` on each SIGHUP, until
/// aborted. Installing at once matters: SIGHUP's default action ends the process. Off Unix
/// there is no SIGHUP and the task does nothing.
pub fn on_hangup(reload: impl Fn() + Send + 'static) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let hangups = signal(SignalKind::hangup());
        tokio::spawn(async move {
            let mut hangups = match hangups {
                Ok(hangups) => hangups,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGHUP; reload by restarting");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                tracing::info!(
                    signal = "SIGHUP",
                    "signal received; reloading configuration"
                );
                reload();
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        tokio::spawn(async {})
    }
}

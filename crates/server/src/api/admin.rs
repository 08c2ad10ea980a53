//! What the admin surface (`crate::admin`: profiles, fault injection) can fail at.
//!
//! Raised by the admin listener and rendered by the HTTP surface (`crate::http::problem`),
//! which sits below the admin module; the enum lives here so the renderer need not reach up.

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("fault injection is off; start the server with fault_injection = true to use it")]
    FaultInjectionDisabled,
    #[error("a CPU profile is already being taken; try again when it is done")]
    ProfileInProgress,
    #[error("the CPU profiler failed: {0}")]
    ProfilerFailed(String),
}

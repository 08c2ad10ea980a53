//! `GET /healthz` and `GET /readyz`: the probes. Never shed, never rate limited by default,
//! and never waiting on the store: its state is reported, never a reason to answer 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;

use super::reply::Reply;
use super::wire;
use crate::store::Store;

/// Whether the instance wants new work. Cleared when a graceful shutdown starts, so `/readyz`
/// tells load balancers to stop sending traffic while requests in flight drain.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_ready(&self) -> bool {
        // Relaxed is enough: the flag orders nothing else, and a request that reads a stale
        // `true` a moment after shutdown began is still served in full by the drain.
        self.0.load(Ordering::Relaxed)
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /healthz`: the process is up.
pub(super) fn healthz(body: &mut Vec<u8>) -> Reply {
    status_document(body, "ok", None)
}

/// `GET /readyz`: ready for traffic, with the store's state.
pub(super) fn readyz(body: &mut Vec<u8>, store: &Store) -> Reply {
    status_document(body, "ready", Some(store))
}

/// `{"status": ...}`, with the store's state for `/readyz`. The store is optional for serving
/// (`/play` never waits on it), so its state is reported, never a reason to answer 503.
fn status_document(body: &mut Vec<u8>, status: &'static str, store: Option<&Store>) -> Reply {
    #[derive(serde::Serialize)]
    struct StoreState {
        backend: &'static str,
        circuit: &'static str,
        /// While the circuit is open: how long until a trial call may go.
        circuit_retry_after_ms: u64,
        /// A half-open trial call is running.
        circuit_trial_in_flight: bool,
        /// Times the circuit opened since start-up: a count that keeps rising shows a store
        /// that keeps failing even when a probe happens to find the circuit closed.
        circuit_times_opened: u64,
        queued: usize,
    }
    #[derive(serde::Serialize)]
    struct Status {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        store: Option<StoreState>,
    }
    let store = store.map(|store| {
        let circuit = store.circuit();
        StoreState {
            backend: store.kind(),
            circuit: circuit.state.name(),
            circuit_retry_after_ms: u64::try_from(circuit.retry_after.as_millis())
                .unwrap_or(u64::MAX),
            circuit_trial_in_flight: circuit.trial_in_flight,
            circuit_times_opened: circuit.times_opened,
            queued: store.queued(),
        }
    });
    wire::encode(wire::Format::Json, &Status { status, store }, body);
    Reply::new(StatusCode::OK, wire::JSON)
}

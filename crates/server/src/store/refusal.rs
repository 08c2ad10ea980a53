//! What the store tells a client it could not do: the store's side of the error contract,
//! rendered by the HTTP surface (`crate::http::problem`).

use super::StoreError;
use crate::telemetry::metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreRefusal {
    #[error("the store is unavailable; retry after {} s", .retry_after_seconds)]
    Unavailable { retry_after_seconds: u64 },
    #[error("no games recorded for this player")]
    PlayerNotFound,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInFlight,
    #[error(
        "this instance holds no node id for game ids right now (its lease lapsed); another instance can serve the play"
    )]
    GameIdUnavailable,
}

impl From<StoreError> for StoreRefusal {
    /// A failed store call as the client sees it: unavailable, with the breaker's retry
    /// delay. Counted, and 1% are logged.
    fn from(error: StoreError) -> Self {
        let retry_after_seconds = error.retry_after().as_secs_f64().ceil().max(1.0) as u64;
        metrics::with_shard(|shard| shard.store_unavailable.add(1));
        if crate::telemetry::log_this_refusal() {
            tracing::warn!(%error, "store unavailable (1% are logged)");
        }
        StoreRefusal::Unavailable {
            retry_after_seconds,
        }
    }
}

//! The record of one answered request, as the engines hand it to [`super::observe`] and as the
//! access log and the span exporter read it: its own module, below all three, so they do not
//! import each other.

use std::time::Duration;

use super::trace::{RequestId, TraceContext};

/// The facts about one answered request that outlive the request's buffers.
#[derive(Debug)]
pub struct Completed {
    pub route: &'static str,
    pub route_index: usize,
    pub method: &'static str,
    pub method_index: usize,
    pub status: u16,
    pub request_bytes: u32,
    pub response_bytes: u32,
    pub trace: TraceContext,
    pub request_id: RequestId,
    /// The request's place under the in-flight bound, freed once the answer is in the
    /// connection's output buffer.
    pub permit: Option<crate::protection::concurrency::Permit>,
}

/// Durations since the Unix epoch in nanoseconds, as OTLP wants them.
pub fn unix_nanos(at: Duration) -> u64 {
    at.as_nanos() as u64
}

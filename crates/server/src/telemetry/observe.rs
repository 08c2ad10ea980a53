//! What happens when a request has been answered: its latency is recorded, its access-log
//! line written (if sampled), and its span queued for export (if exporting). The engines call
//! [`Observability::request_finished`] once the answer has left; `crate::http::App` owns one.

use std::sync::Arc;

use tokio::time::Instant;

use crate::flags::{Level, RuntimeFlags};

use super::access_log::{self, AccessLog};
use super::completed::Completed;
use super::export::{SpanExporter, SpanRecord};
use super::metrics;
use super::trace::TraceContext;

/// Access log and span export, as configured and as the runtime flags allow; metrics are
/// always on.
pub struct Observability {
    access_log: Option<AccessLog>,
    exporter: Option<SpanExporter>,
    flags: Arc<RuntimeFlags>,
}

impl Default for Observability {
    fn default() -> Self {
        Self::new(None, None, RuntimeFlags::new(Level::Full.flags()))
    }
}

impl Observability {
    pub fn new(
        access_log: Option<AccessLog>,
        exporter: Option<SpanExporter>,
        flags: Arc<RuntimeFlags>,
    ) -> Self {
        Self {
            access_log,
            exporter,
            flags,
        }
    }

    pub fn flags(&self) -> &Arc<RuntimeFlags> {
        &self.flags
    }

    /// Whether spans are exported; handlers time their inner steps only then.
    pub fn exporting(&self) -> bool {
        self.exporter.is_some() && self.flags.current().trace_export
    }

    /// Records a request answered at `answered` that arrived at `arrived`.
    pub fn request_finished(&self, completed: &Completed, arrived: Instant, answered: Instant) {
        let latency = answered.saturating_duration_since(arrived);
        metrics::with_shard(|shard| {
            shard.latency[completed.route_index].observe(latency.as_secs_f64())
        });
        if self.access_log.is_none() && self.exporter.is_none() {
            return;
        }
        let flags = self.flags.current();
        let now_unix = access_log::unix_now();
        if let Some(log) = &self.access_log
            && flags.access_log
        {
            log.log(completed, latency, now_unix);
        }
        if let Some(exporter) = &self.exporter
            && flags.trace_export
            && completed.trace.sampled()
        {
            let end = now_unix.saturating_sub(Instant::now().saturating_duration_since(answered));
            exporter.queue(SpanRecord::request(
                completed,
                end.saturating_sub(latency),
                end,
            ));
        }
    }

    /// Queues an inner step of a request's span (decode, judge, encode).
    pub fn step(
        &self,
        trace: &TraceContext,
        name: &'static str,
        started: Instant,
        finished: Instant,
    ) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        if !trace.sampled() || !self.flags.current().trace_export {
            return;
        }
        let now_unix = access_log::unix_now();
        let ago = |at: Instant| Instant::now().saturating_duration_since(at);
        exporter.queue(SpanRecord::step(
            trace,
            name,
            now_unix.saturating_sub(ago(started)),
            now_unix.saturating_sub(ago(finished)),
        ));
    }

    /// Ships this thread's buffered access-log lines.
    pub fn flush_thread(&self) {
        if let Some(log) = &self.access_log {
            log.flush_thread();
        }
    }

    /// Writes out what is buffered and stops the background writers.
    pub fn shutdown(&self) {
        if let Some(log) = &self.access_log {
            log.shutdown();
        }
        if let Some(exporter) = &self.exporter {
            exporter.shutdown();
        }
    }
}

impl std::fmt::Debug for Observability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observability")
            .field("access_log", &self.access_log.is_some())
            .field("exporting", &self.exporter.is_some())
            .finish()
    }
}

//! The server's metrics: recorded on the request path into per-thread shards, summed and
//! written in the Prometheus text format (or OpenMetrics) when `/metrics` is scraped.
//!
//! Why not a metrics crate: a shared counter costs a locked read-modify-write on a cache line
//! every worker writes, and label lookup (prometheus-client's `Family`, the `metrics` facade)
//! costs a lock and a hash per observation. Here each thread owns a shard of fixed arrays
//! indexed by small label enums, so recording is a plain load and store on memory no other
//! thread writes; only the scrape (rare) visits every shard. Exposition is a few dozen lines.
//!
//! Shards register themselves in a process-wide list the first time a thread records. That list
//! and the runtime handles are the only global state of the crate besides the random buffers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::Method;

use crate::api::Route;

/// Request latency buckets, 50 µs to 10 s (seconds).
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Body size buckets (bytes).
pub const SIZE_BUCKETS: [f64; 8] = [
    16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0,
];

/// Route labels: every route, then "unmatched" for requests no route took.
pub const ROUTE_LABELS: usize = Route::ALL.len() + 1;
const METHOD_LABELS: [&str; 4] = ["GET", "HEAD", "POST", "other"];
/// Status codes this server answers; anything else is counted under "other".
const STATUS_LABELS: [u16; 15] = [
    200, 400, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500, 501, 503, 0,
];

pub fn route_index(route: Option<Route>) -> usize {
    route.map_or(Route::ALL.len(), |route| {
        Route::ALL
            .iter()
            .position(|r| *r == route)
            .unwrap_or(Route::ALL.len())
    })
}

fn route_name(index: usize) -> &'static str {
    Route::ALL
        .get(index)
        .map_or("unmatched", |route| route.template())
}

pub fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        _ => 3,
    }
}

fn status_index(status: u16) -> usize {
    STATUS_LABELS
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUS_LABELS.len() - 1)
}

/// A counter written by one thread only (its shard's owner) and read by any.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Single-writer add: a relaxed load and store, no locked instruction. Correct because
    /// only the owning thread writes this shard.
    #[inline]
    pub fn add(&self, value: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(value),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn sub(&self, value: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(value),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Single-writer store, for values that are not counts (a histogram's float sum).
    #[inline]
    fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// A histogram with fixed bucket bounds; `sum` is kept in the unit's millionths so it stays an
/// integer counter.
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    buckets: [Counter; N],
    count: Counter,
    /// The sum of observed values, as the bits of an `f64`: it cannot wrap, as an integer
    /// count of millionths did (after 18 TB of response bytes), and Prometheus sums are floats.
    sum: Counter,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            buckets: std::array::from_fn(|_| Counter::default()),
            count: Counter::default(),
            sum: Counter::default(),
        }
    }

    #[inline]
    pub fn observe(&self, value: f64) {
        if let Some(bucket) = self.bounds.iter().position(|&bound| value <= bound) {
            self.buckets[bucket].add(1);
        }
        self.count.add(1);
        // Single writer, like `Counter::add`: a load and a store of this shard's own value.
        let sum = f64::from_bits(self.sum.get()) + value;
        self.sum.set(sum.to_bits());
    }
}

/// One thread's metrics.
pub struct Shard {
    pub requests: [[[Counter; STATUS_LABELS.len()]; METHOD_LABELS.len()]; ROUTE_LABELS],
    pub latency: [Histogram<17>; ROUTE_LABELS],
    pub request_bytes: Histogram<8>,
    pub response_bytes: Histogram<8>,
    /// Requests admitted whose answer is not yet in their connection's output buffer: those
    /// waiting on the store or on injected latency (a gauge: added, then subtracted).
    pub in_flight: Counter,
    /// Connection buffer sets lent out of the per-worker pools (a gauge). Idle connections hold
    /// none, so this counts connections with bytes moving.
    pub buffers_lent: Counter,
    /// Rounds by player choice and computer choice (the winner follows from the two).
    pub rounds: [[Counter; 3]; 3],
    pub connections_accepted: Counter,
    /// Connections closed; open connections are accepted minus closed.
    pub connections_closed: Counter,
    /// Connections refused at accept because `max_connections` were open.
    pub connections_rejected: Counter,
    /// TLS handshakes completed, and failed (timed out, refused, not TLS at all).
    pub tls_handshakes: Counter,
    pub tls_handshake_failures: Counter,
    pub traceparent_invalid: Counter,
    /// Requests refused by a rate limit, by scope (client, route, global).
    pub rate_limited: [Counter; 3],
    /// Requests shed (503 overloaded) at the in-flight bound.
    pub shed: Counter,
    /// Game results dropped before reaching the store: the queue was full.
    pub store_dropped: Counter,
    /// Players the in-memory store evicted (least recently active) to admit new ones.
    pub store_evicted: Counter,
    /// Results the Redis writer skipped as already applied (a batch retried after a timeout).
    pub store_skipped: Counter,
    /// Reads and idempotent plays answered 503 `store_unavailable`.
    pub store_unavailable: Counter,
    /// Timeouts: a request not received in time (408), an answer not ready in time (503).
    pub timeouts: [Counter; 2],
    /// Faults injected: at the play point latency added and errors answered, then the same at
    /// the store point.
    pub faults_injected: [Counter; 4],
    pub access_log_lines: Counter,
    pub access_log_dropped: Counter,
    pub spans_queued: Counter,
    pub spans_dropped: Counter,
    /// Accounts created: guest, registered.
    pub accounts_created: [Counter; 2],
    /// Sign-ins by outcome: ok, bad credentials, throttled.
    pub logins: [Counter; 3],
    /// Spent refresh tokens presented again (their sessions revoked).
    pub refresh_reuse: Counter,
}

impl Shard {
    fn new() -> Self {
        Self {
            requests: Default::default(),
            latency: std::array::from_fn(|_| Histogram::new(&LATENCY_BUCKETS)),
            request_bytes: Histogram::new(&SIZE_BUCKETS),
            response_bytes: Histogram::new(&SIZE_BUCKETS),
            in_flight: Counter::default(),
            buffers_lent: Counter::default(),
            rounds: Default::default(),
            connections_accepted: Counter::default(),
            connections_closed: Counter::default(),
            connections_rejected: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_failures: Counter::default(),
            traceparent_invalid: Counter::default(),
            rate_limited: Default::default(),
            faults_injected: Default::default(),
            shed: Counter::default(),
            store_dropped: Counter::default(),
            store_evicted: Counter::default(),
            store_skipped: Counter::default(),
            store_unavailable: Counter::default(),
            timeouts: Default::default(),
            access_log_lines: Counter::default(),
            access_log_dropped: Counter::default(),
            spans_queued: Counter::default(),
            spans_dropped: Counter::default(),
            accounts_created: Default::default(),
            logins: Default::default(),
            refresh_reuse: Counter::default(),
        }
    }

    /// Counts an answered request.
    #[inline]
    pub fn count_request(
        &self,
        route: usize,
        method: usize,
        status: u16,
        request_bytes: usize,
        response_bytes: usize,
    ) {
        self.requests[route][method][status_index(status)].add(1);
        self.request_bytes.observe(request_bytes as f64);
        self.response_bytes.observe(response_bytes as f64);
    }
}

static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static SHARD: Arc<Shard> = {
        let shard = Arc::new(Shard::new());
        SHARDS.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&shard));
        shard
    };
}

/// Runs `record` with this thread's shard.
#[inline]
pub fn with_shard<R>(record: impl FnOnce(&Shard) -> R) -> R {
    SHARD.with(|shard| record(shard))
}

fn shards() -> Vec<Arc<Shard>> {
    SHARDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The two exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub const PROMETHEUS_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// OpenMetrics when `Accept` asks for it, the Prometheus text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => Self::PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Writes metric families in either format.
pub struct Exposition {
    pub out: String,
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

impl Exposition {
    pub fn new(format: Format) -> Self {
        Self {
            out: String::with_capacity(16 * 1024),
            format,
        }
    }

    /// Starts a family. Counter samples are named `<name>_total`; info samples `<name>_info`.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let (type_name, suffix) = match (kind, self.format) {
            (Kind::Counter, Format::Prometheus) => ("counter", "_total"),
            (Kind::Counter, Format::OpenMetrics) => ("counter", ""),
            (Kind::Gauge, _) => ("gauge", ""),
            (Kind::Histogram, _) => ("histogram", ""),
            (Kind::Info, Format::Prometheus) => ("gauge", "_info"),
            (Kind::Info, Format::OpenMetrics) => ("info", ""),
        };
        let _ = writeln!(self.out, "# HELP {name}{suffix} {help}");
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {type_name}");
    }

    /// One sample line. `labels` is pre-rendered, such as `route="/play"`, or empty.
    pub fn sample(&mut self, name: &str, labels: &str, value: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    pub fn histogram<const N: usize>(
        &mut self,
        name: &str,
        labels: &str,
        parts: &[&Histogram<N>],
        unit_scale: f64,
    ) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        let bounds = parts.first().map(|h| h.bounds);
        for (index, bound) in bounds.into_iter().flatten().enumerate() {
            cumulative += parts.iter().map(|h| h.buckets[index].get()).sum::<u64>();
            let _ = writeln!(
                self.out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count: u64 = parts.iter().map(|h| h.count.get()).sum();
        let sum: f64 = parts.iter().map(|h| f64::from_bits(h.sum.get())).sum();
        let _ = writeln!(
            self.out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
        );
        self.sample(&format!("{name}_sum"), labels, sum * unit_scale);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// Writes the request, game and engine families from every shard.
pub fn write_request_metrics(exposition: &mut Exposition) {
    let shards = shards();
    let sum = |read: &dyn Fn(&Shard) -> u64| -> f64 {
        shards.iter().map(|shard| read(shard)).sum::<u64>() as f64
    };

    exposition.family(
        "guess_game_http_requests",
        "HTTP requests answered, by route, method and status.",
        Kind::Counter,
    );
    for route in 0..ROUTE_LABELS {
        for (method, method_name) in METHOD_LABELS.iter().enumerate() {
            for (status, status_code) in STATUS_LABELS.iter().enumerate() {
                let count = sum(&|shard| shard.requests[route][method][status].get());
                if count > 0.0 {
                    let status_name = if *status_code == 0 {
                        "other".to_owned()
                    } else {
                        status_code.to_string()
                    };
                    let labels = format!(
                        "route=\"{}\",method=\"{method_name}\",status=\"{status_name}\"",
                        route_name(route)
                    );
                    exposition.sample("guess_game_http_requests_total", &labels, count);
                }
            }
        }
    }

    exposition.family(
        "guess_game_http_request_duration_seconds",
        "Time from a request's arrival to its answer leaving, by route.",
        Kind::Histogram,
    );
    for route in 0..ROUTE_LABELS {
        let parts: Vec<&Histogram<17>> = shards.iter().map(|shard| &shard.latency[route]).collect();
        if parts.iter().any(|h| h.count.get() > 0) {
            exposition.histogram(
                "guess_game_http_request_duration_seconds",
                &format!("route=\"{}\"", route_name(route)),
                &parts,
                1.0,
            );
        }
    }

    exposition.family(
        "guess_game_http_requests_in_flight",
        "Requests admitted and waiting for their answer (on the store or injected latency).",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_http_requests_in_flight",
        "",
        sum(&|shard| shard.in_flight.get()),
    );

    exposition.family(
        "guess_game_connection_buffers_lent",
        "Connection buffer sets lent out of the workers' pools; idle connections hold none.",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_connection_buffers_lent",
        "",
        sum(&|shard| shard.buffers_lent.get()),
    );

    for (name, help, pick) in [
        (
            "guess_game_http_request_body_bytes",
            "Request body sizes.",
            (|shard: &Shard| &shard.request_bytes) as fn(&Shard) -> &Histogram<8>,
        ),
        (
            "guess_game_http_response_body_bytes",
            "Response body sizes.",
            |shard: &Shard| &shard.response_bytes,
        ),
    ] {
        exposition.family(name, help, Kind::Histogram);
        let parts: Vec<&Histogram<8>> = shards.iter().map(|shard| pick(shard)).collect();
        exposition.histogram(name, "", &parts, 1.0);
    }

    exposition.family(
        "guess_game_rounds",
        "Rounds played, by player choice, computer choice and winner.",
        Kind::Counter,
    );
    for player in crate::game::Choice::ALL {
        for computer in crate::game::Choice::ALL {
            let count = sum(&|shard| shard.rounds[player as usize][computer as usize].get());
            let outcome = crate::game::judge(player, computer);
            let labels = format!(
                "player_choice=\"{player}\",computer_choice=\"{computer}\",winner=\"{}\"",
                outcome.winner.name()
            );
            exposition.sample("guess_game_rounds_total", &labels, count);
        }
    }

    counters_by_label(
        exposition,
        &shards,
        "guess_game_rate_limited",
        "Requests refused by a rate limit, by scope.",
        &[r#"scope="client""#, r#"scope="route""#, r#"scope="global""#],
        |shard, index| shard.rate_limited[index].get(),
    );
    exposition.family(
        "guess_game_shed",
        "Requests shed (503 overloaded) at the in-flight bound.",
        Kind::Counter,
    );
    exposition.sample("guess_game_shed_total", "", sum(&|shard| shard.shed.get()));
    exposition.family(
        "guess_game_store_dropped",
        "Game results dropped before reaching the store (the queue was full).",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_store_dropped_total",
        "",
        sum(&|shard| shard.store_dropped.get()),
    );
    exposition.family(
        "guess_game_store_players_evicted",
        "Players the in-memory store forgot (least recently active first) to admit new ones at max_players.",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_store_players_evicted_total",
        "",
        sum(&|shard| shard.store_evicted.get()),
    );
    exposition.family(
        "guess_game_store_results_skipped",
        "Results the Redis writer skipped as already applied (a batch retried after its first try had landed).",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_store_results_skipped_total",
        "",
        sum(&|shard| shard.store_skipped.get()),
    );
    exposition.family(
        "guess_game_store_unavailable",
        "Requests answered 503 store_unavailable (store down or its circuit open).",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_store_unavailable_total",
        "",
        sum(&|shard| shard.store_unavailable.get()),
    );
    counters_by_label(
        exposition,
        &shards,
        "guess_game_accounts_created",
        "Accounts created, by kind.",
        &[r#"kind="guest""#, r#"kind="registered""#],
        |shard, index| shard.accounts_created[index].get(),
    );
    counters_by_label(
        exposition,
        &shards,
        "guess_game_logins",
        "Sign-ins (password or device secret), by outcome.",
        &[
            r#"outcome="ok""#,
            r#"outcome="bad_credentials""#,
            r#"outcome="throttled""#,
        ],
        |shard, index| shard.logins[index].get(),
    );
    exposition.family(
        "guess_game_refresh_token_reuse",
        "Spent refresh tokens presented again; each revoked its session.",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_refresh_token_reuse_total",
        "",
        sum(&|shard| shard.refresh_reuse.get()),
    );
    counters_by_label(
        exposition,
        &shards,
        "guess_game_timeouts",
        "Requests cut by a timeout, by kind.",
        &[r#"kind="request_read""#, r#"kind="handler""#],
        |shard, index| shard.timeouts[index].get(),
    );
    counters_by_label(
        exposition,
        &shards,
        "guess_game_faults_injected",
        "Faults injected on purpose, by point and kind.",
        &[
            r#"point="play",kind="latency""#,
            r#"point="play",kind="error""#,
            r#"point="store",kind="latency""#,
            r#"point="store",kind="error""#,
        ],
        |shard, index| shard.faults_injected[index].get(),
    );

    let accepted = sum(&|shard| shard.connections_accepted.get());
    let closed = sum(&|shard| shard.connections_closed.get());
    exposition.family(
        "guess_game_connections_accepted",
        "Connections accepted on the public listener.",
        Kind::Counter,
    );
    exposition.sample("guess_game_connections_accepted_total", "", accepted);
    exposition.family(
        "guess_game_connections_rejected",
        "Connections refused at accept because max_connections were open.",
        Kind::Counter,
    );
    let rejected = sum(&|shard| shard.connections_rejected.get());
    exposition.sample("guess_game_connections_rejected_total", "", rejected);
    exposition.family(
        "guess_game_tls_handshakes",
        "TLS handshakes on the public listener, by outcome (failed: timed out, refused or not TLS).",
        Kind::Counter,
    );
    for (outcome, count) in [
        ("ok", sum(&|shard| shard.tls_handshakes.get())),
        ("failed", sum(&|shard| shard.tls_handshake_failures.get())),
    ] {
        exposition.sample(
            "guess_game_tls_handshakes_total",
            &format!("outcome=\"{outcome}\""),
            count,
        );
    }
    exposition.family(
        "guess_game_connections_open",
        "Connections open on the public listener.",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_connections_open",
        "",
        (accepted - closed).max(0.0),
    );

    for (name, help, read) in [
        (
            "guess_game_traceparent_invalid",
            "Requests whose traceparent header was invalid and ignored.",
            (|s: &Shard| s.traceparent_invalid.get()) as fn(&Shard) -> u64,
        ),
        (
            "guess_game_access_log_lines",
            "Access-log lines written.",
            |s: &Shard| s.access_log_lines.get(),
        ),
        (
            "guess_game_access_log_dropped",
            "Access-log lines dropped because the writer's buffer was full.",
            |s: &Shard| s.access_log_dropped.get(),
        ),
        (
            "guess_game_spans_queued",
            "Spans queued for OTLP export.",
            |s: &Shard| s.spans_queued.get(),
        ),
        (
            "guess_game_spans_dropped",
            "Spans dropped because the export queue was full.",
            |s: &Shard| s.spans_dropped.get(),
        ),
    ] {
        exposition.family(name, help, Kind::Counter);
        exposition.sample(&format!("{name}_total"), "", sum(&|shard| read(shard)));
    }
}

/// A counter family with one sample per label set; the `index`-th is read by `read` from
/// every shard and summed.
fn counters_by_label(
    exposition: &mut Exposition,
    shards: &[Arc<Shard>],
    name: &str,
    help: &str,
    labels: &[&str],
    read: impl Fn(&Shard, usize) -> u64,
) {
    exposition.family(name, help, Kind::Counter);
    for (index, label) in labels.iter().enumerate() {
        let total: u64 = shards.iter().map(|shard| read(shard, index)).sum();
        exposition.sample(&format!("{name}_total"), label, total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_into_the_first_bucket_that_holds_the_value() {
        static BOUNDS: [f64; 3] = [1.0, 2.0, 5.0];
        let histogram = Histogram::new(&BOUNDS);
        for value in [0.5, 1.0, 1.5, 4.0, 9.0] {
            histogram.observe(value);
        }
        let mut exposition = Exposition::new(Format::Prometheus);
        exposition.histogram("h", "", &[&histogram], 1.0);
        let text = exposition.finish();
        assert!(text.contains("h_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"2\"} 3\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"5\"} 4\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("h_sum 16\n"), "{text}");
        assert!(text.contains("h_count 5\n"), "{text}");
    }

    #[test]
    fn a_histogram_sum_never_wraps() {
        static BOUNDS: [f64; 1] = [1.0];
        let histogram = Histogram::new(&BOUNDS);
        // As millionths in a u64 these wrapped after 1.8e13: four of them read as small.
        for _ in 0..4 {
            histogram.observe(1e13);
        }
        let mut exposition = Exposition::new(Format::Prometheus);
        exposition.histogram("h", "", &[&histogram], 1.0);
        let text = exposition.finish();
        let sum: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("h_sum "))
            .and_then(|value| value.parse().ok())
            .expect("a sum");
        assert_eq!(sum, 4e13, "{text}");
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let mut exposition = Exposition::new(Format::OpenMetrics);
        exposition.family("x", "help", Kind::Counter);
        exposition.sample("x_total", "", 1.0);
        let text = exposition.finish();
        assert!(
            text.starts_with("# HELP x help\n# TYPE x counter\nx_total 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}

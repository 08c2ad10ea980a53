//! Observability: logging set-up (structured `tracing` output, JSON lines for machines,
//! readable text for people), metrics, trace context, the access log and span export.

pub mod access_log;
pub mod completed;

/// Share of protective refusals (rate limits, connection caps) that are logged: a flood must
/// not become a flood of log lines; the metrics count every one.
pub const REFUSAL_LOG_SAMPLE: f64 = 0.01;

/// Whether this refusal is one of the sampled few to log.
pub fn log_this_refusal() -> bool {
    fastrand::f64() < REFUSAL_LOG_SAMPLE
}
pub mod export;
pub mod metrics;
pub mod observe;
pub mod process;
pub mod trace;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written: JSON off a terminal (`auto`), always JSON, or human-readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

/// Installs the global subscriber. The filter is `level` when given (the `log_level` setting),
/// otherwise `RUST_LOG`, otherwise "info". "auto" picks JSON unless stdout is a terminal.
pub fn init(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))
}

//! `guess-game loadtest`: a full-path load tester for the server, built in.
//!
//! Closed-loop and open-loop (coordinated-omission corrected) load, step load for
//! goodput-versus-offered-load curves, HDR-histogram percentiles, a per-second timeline, JSON
//! reports, an SVG plot and a before/after comparison. One thread drives every connection, so
//! pinning the tester to a core (`taskset -c 1`) gives a fair comparison with wrk.
//!
//! WebSocket scenarios (`ws-idle`, `ws-play`, `ws-echo`) are subcommands with their own flags;
//! `ws/mod.rs` describes them.
//!
//! Exit codes: 0 the run completed; 1 the run failed (target unresolvable, no request
//! answered, failure rate above `--fail-on-error-rate`, or a report could not be written);
//! 2 invalid arguments.

mod connection;
mod driver;
mod plot;
mod report;
mod scenario;
mod stats;
mod ws;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use self::driver::{Pacing, Plan};
pub use self::report::{Report, StepReport, compare};
pub use self::scenario::Scenario;
use self::stats::Recorder;
pub use self::ws::WsReport;
use client::ServerUrl;

const EXIT_RUN_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
/// The longest a single phase may last, so a typo cannot start a day-long run.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long the capacity probe of a step-load run lasts when `--capacity` is not given.
const CAPACITY_PROBE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadtestArgs {
    #[command(subcommand)]
    pub command: Option<LoadtestCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum LoadtestCommand {
    /// Print a before/after table of two reports written with --json.
    Compare { before: PathBuf, after: PathBuf },
    /// Hold N authenticated, greeted WebSocket connections idle; report the server's resident
    /// memory per connection.
    WsIdle(ws::IdleArgs),
    /// N players queueing and playing matches over WebSocket at a steady move rate; report
    /// matches/s, move-to-result latency, event ordering and errors. Against several instances
    /// (`--target a,b,c`) players resume on the next one when theirs goes away.
    WsPlay(ws::PlayArgs),
    /// ws-play's move frames at the same pace to a WebSocket echo server (bench/ws-crates), as
    /// the yardstick for CPU per move.
    WsEcho(ws::EchoArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Server to load, e.g. http://127.0.0.1:8080
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Concurrent keep-alive connections
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Open loop: send this many requests per second overall (default: closed loop)
    #[arg(long, value_name = "REQ/S", conflicts_with = "steps")]
    pub rate: Option<f64>,
    /// Measured time (per step with --steps), e.g. 10s
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests (warm-up included)
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Unmeasured time before measuring (before each step with --steps)
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Step load: open-loop steps at these multiples of the capacity, e.g. 0.5,1,2,5,10
    #[arg(long, value_delimiter = ',', value_name = "MULTIPLES")]
    pub steps: Vec<f64>,
    /// Capacity for --steps in requests per second (default: measured first, closed loop)
    #[arg(long, value_name = "REQ/S", requires = "steps")]
    pub capacity: Option<f64>,
    /// Goodput counts 2xx answers within this latency; a number is milliseconds
    #[arg(long, default_value = "100ms", value_parser = parse_millis_or_duration)]
    pub slo: Duration,
    /// What to send
    #[arg(long, value_enum, default_value = "play")]
    pub scenario: Scenario,
    /// Spread requests over this many player ids (0: anonymous plays)
    #[arg(long, default_value_t = 0)]
    pub players: u32,
    /// Give up on a request (or a connection attempt) after this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write the full report (with a per-second timeline) as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time as SVG to this file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Exit 1 when errors and non-2xx answers exceed this share of requests (0 to 1)
    #[arg(long, value_name = "RATE")]
    pub fail_on_error_rate: Option<f64>,
}

/// A duration: a bare number is milliseconds (`50`), anything else humantime (`1s`, `250ms`).
fn parse_millis_or_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(millis) if millis > 0.0 && millis.is_finite() => {
            Ok(Duration::from_secs_f64(millis / 1000.0))
        }
        Ok(_) => Err("must be greater than zero".to_owned()),
        Err(_) => humantime::parse_duration(text).map_err(|error| error.to_string()),
    }
}

/// Runs `guess-game loadtest` and returns its exit code.
pub async fn run(args: LoadtestArgs) -> ExitCode {
    match args.command {
        Some(LoadtestCommand::Compare { before, after }) => return run_compare(&before, &after),
        Some(LoadtestCommand::WsIdle(args)) => return ws::run_idle(args).await,
        Some(LoadtestCommand::WsPlay(args)) => return ws::run_play(args).await,
        Some(LoadtestCommand::WsEcho(args)) => return ws::run_echo(args).await,
        None => {}
    }
    let args = args.run;
    if let Err(message) = validate(&args) {
        eprintln!("guess-game loadtest: {message}");
        return ExitCode::from(EXIT_USAGE);
    }
    let plan = match plan_for(&args).await {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("guess-game loadtest: {message}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    let report = if args.steps.is_empty() {
        let recorder = driver::execute(&plan).await;
        Report::new(&plan, &recorder)
    } else {
        step_load(&plan, &args).await
    };
    print!("{}", report.summary());
    finish(&report, &args)
}

fn validate(args: &RunArgs) -> Result<(), String> {
    if args.target.is_none() {
        return Err("--target URL is required (e.g. --target http://127.0.0.1:8080)".to_owned());
    }
    if !(1..=100_000).contains(&args.connections) {
        return Err("--connections must be between 1 and 100000".to_owned());
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        return Err("--rate must be a positive number of requests per second".to_owned());
    }
    if args
        .capacity
        .is_some_and(|capacity| !(capacity > 0.0 && capacity.is_finite()))
    {
        return Err("--capacity must be a positive number of requests per second".to_owned());
    }
    if args
        .steps
        .iter()
        .any(|step| !(*step > 0.0 && step.is_finite()))
    {
        return Err("--steps must be positive multiples such as 0.5,1,2".to_owned());
    }
    if args.duration.is_zero() || args.duration > MAX_DURATION || args.warmup > MAX_DURATION {
        return Err("--duration must be between 1ms and 1h, and --warmup at most 1h".to_owned());
    }
    if args.timeout.is_zero() {
        return Err("--timeout must be greater than zero".to_owned());
    }
    if args.requests == Some(0) {
        return Err("--requests must be at least 1".to_owned());
    }
    if args
        .fail_on_error_rate
        .is_some_and(|rate| !(0.0..=1.0).contains(&rate))
    {
        return Err("--fail-on-error-rate must be between 0 and 1".to_owned());
    }
    Ok(())
}

/// The tester's own HTTP and WebSocket clients speak plain TCP only.
pub(crate) const PLAIN_ONLY: &str =
    "the load tester speaks plain http:// and ws:// only; aim it at a listener without TLS";

async fn plan_for(args: &RunArgs) -> Result<Plan, String> {
    let url = args.target.as_deref().unwrap_or_default();
    let server = ServerUrl::parse(url).map_err(|error| error.to_string())?;
    if server.is_https() {
        return Err(PLAIN_ONLY.to_owned());
    }
    let address = tokio::net::lookup_host(server.authority())
        .await
        .map_err(|error| format!("cannot resolve {}: {error}", server.authority()))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", server.authority()))?;
    Ok(Plan {
        address,
        host: server.authority().to_owned(),
        target: server.target("/play"),
        scenario: args.scenario,
        players: args.players,
        connections: args.connections,
        pacing: args
            .rate
            .map_or(Pacing::Closed, |rate| Pacing::Open { rate }),
        warmup: args.warmup,
        duration: args.duration,
        max_requests: args.requests,
        timeout: args.timeout,
        slo: args.slo,
        label: "load".to_owned(),
    })
}

/// Measures the capacity (unless given), then runs one open-loop phase per step.
async fn step_load(plan: &Plan, args: &RunArgs) -> Report {
    let capacity = match args.capacity {
        Some(capacity) => capacity,
        None => {
            let probe = Plan {
                pacing: Pacing::Closed,
                duration: CAPACITY_PROBE.min(plan.duration),
                label: "capacity".to_owned(),
                ..plan.clone()
            };
            let measured = Report::new(&probe, &driver::execute(&probe).await).throughput_rps;
            println!(
                "measured capacity: {measured:.0} req/s (closed loop, {} connections)",
                plan.connections
            );
            measured.max(1.0)
        }
    };
    let mut total = Recorder::new(tokio::time::Instant::now(), plan.slo);
    let mut steps = Vec::with_capacity(args.steps.len());
    let mut offset = 0;
    for &multiplier in &args.steps {
        let step_plan = Plan {
            pacing: Pacing::Open {
                rate: capacity * multiplier,
            },
            label: format!("{multiplier}x"),
            ..plan.clone()
        };
        let recorder = driver::execute(&step_plan).await;
        total.absorb(&recorder, offset);
        offset += recorder.timeline.len() as u64;
        steps.push(StepReport {
            multiplier,
            report: Report::new(&step_plan, &recorder),
        });
    }
    let whole = Plan {
        duration: plan.duration * args.steps.len() as u32,
        pacing: Pacing::Closed,
        ..plan.clone()
    };
    let mut report = Report::new(&whole, &total);
    report.mode = "steps".to_owned();
    report.target_rate = Some(capacity);
    report.notes = steps
        .iter()
        .flat_map(|step| {
            step.report
                .notes
                .iter()
                .map(move |note| format!("step {}x: {note}", step.multiplier))
        })
        .collect();
    report.steps = steps;
    report
}

/// Writes the requested files and picks the exit code.
fn finish(report: &Report, args: &RunArgs) -> ExitCode {
    let mut failed = false;
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(error) = written {
            eprintln!(
                "guess-game loadtest: cannot write {}: {error}",
                path.display()
            );
            failed = true;
        }
    }
    if let Some(path) = &args.plot
        && let Err(error) = std::fs::write(path, plot::render(report))
    {
        eprintln!(
            "guess-game loadtest: cannot write {}: {error}",
            path.display()
        );
        failed = true;
    }
    if report.requests_sent > 0 && report.responses == 0 {
        eprintln!("guess-game loadtest: no request was answered");
        failed = true;
    }
    if let Some(limit) = args.fail_on_error_rate
        && report.failure_rate() > limit
    {
        eprintln!(
            "guess-game loadtest: failure rate {:.4} is above --fail-on-error-rate {limit}",
            report.failure_rate()
        );
        failed = true;
    }
    if failed {
        ExitCode::from(EXIT_RUN_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_compare(before: &Path, after: &Path) -> ExitCode {
    let read = |path: &Path| -> Result<Report, String> {
        let text = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|error| format!("{} is not a loadtest report: {error}", path.display()))
    };
    match (read(before), read(after)) {
        (Ok(before), Ok(after)) => {
            print!("{}", compare(&before, &after));
            ExitCode::SUCCESS
        }
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("guess-game loadtest compare: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

//! The WebSocket scenarios: `ws-idle` (many authenticated connections doing nothing: what each
//! costs the server in memory), `ws-play` (players queueing and playing matches at a steady
//! move rate: matches per second, move-to-result latency, ordering, errors), and `ws-echo`
//! (`ws-play`'s move frames sent to a bare WebSocket echo server, so the server's CPU per move
//! can be set against a WebSocket stack that does nothing else).
//!
//! Like the HTTP scenarios, one thread drives every connection. The client is
//! tokio-tungstenite, not the server's frame code; the messages are the `protocol` crate's.
//! Each run stops by itself: connection attempts, the greeting and every answer the server
//! owes have a deadline, and the connections are closed at the end.
//!
//! - `target.rs`: the address, source addresses, the upgrade; `targets.rs`: the list of
//!   targets (a cluster's instances) connections are spread over; `accounts.rs`: tokens and
//!   guests; `fd_limit.rs`: the open-file limit; `usage.rs`: a process's memory and CPU time.
//! - `idle.rs`, `play.rs`, `echo.rs`: the scenarios. A `ws-play` player is a state machine
//!   (`player.rs`, with `player_resume.rs` and `player_farewell.rs`; `clocks.rs` what the two
//!   players of a match share), kept going across connections by `session.rs`, which resumes
//!   it on the next target when its instance goes away. `tally.rs` is what they count,
//!   `report.rs` how it is shown.
//!
//! Exit codes as for the HTTP scenarios: 0 the run completed; 1 it failed (a connection could
//! not be opened, a player was lost, an event arrived out of order, nothing was measured);
//! 2 invalid arguments.

mod accounts;
mod clocks;
mod echo;
mod fd_limit;
mod idle;
mod play;
mod player;
mod report;
mod session;
mod tally;
mod target;
mod targets;
mod usage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use tokio::time::Instant;

pub use self::report::WsReport;
use self::target::Socket;
use self::targets::Targets;
use self::usage::Probe;

/// Where and how the connections are opened; shared by the three scenarios.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Server to load, e.g. http://127.0.0.1:8080 (its /ws); for ws-echo the echo server. A
    /// comma-separated list (a cluster's instances) spreads the connections round-robin;
    /// accounts are created on the first, and a ws-play player whose instance goes away
    /// resumes on the next
    #[arg(long, value_name = "URL[,URL...]")]
    pub target: String,
    /// Connections to open (players, for ws-play)
    #[arg(long, short = 'c', default_value_t = 100)]
    pub connections: usize,
    /// Allow a target that is not a loopback address
    #[arg(long)]
    pub allow_remote: bool,
    /// Spread connections over source addresses 127.0.0.1..=127.0.0.K (0: as many as the
    /// ephemeral port range needs)
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub source_addresses: u8,
    /// Connections being opened at once
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Give up on a connection, its greeting or an answer the server owes after this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Read the server's memory and CPU time from /proc/PID (costs the server nothing)
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// ... or from its admin /metrics, e.g. http://127.0.0.1:6060/metrics
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    /// Write the report as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The accounts connections authenticate as.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Access tokens, one a line: used first, and guests created for the rest are appended
    #[arg(long, value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Guest accounts being created at once
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// How long to hold the connections open once they are all open
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Wait this long after the last connection opened before reading the server's memory
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Each player moves once per interval (a number is milliseconds)
    #[arg(long, default_value = "1000", value_parser = crate::parse_millis_or_duration)]
    pub move_interval: Duration,
    /// Rounds a match is the best of: 1, 3 or 5
    #[arg(long, default_value_t = 3)]
    pub best_of: u8,
    /// Unmeasured time after the players start (default: two intervals plus a second)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Measured time
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Longest wait for a match once queued
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Each connection sends a move frame once per interval (a number is milliseconds)
    #[arg(long, default_value = "1000", value_parser = crate::parse_millis_or_duration)]
    pub move_interval: Duration,
    /// Unmeasured time after the connections start (default: two intervals plus a second)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Measured time
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The server is a relay (bench/ws-crates' `server relay`): each frame comes back to its
    /// sender and goes on to the partner connection; only a connection's own echoes are timed
    #[arg(long)]
    pub relay: bool,
}

const EXIT_RUN_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
/// The longest a phase may last, so a typo cannot start a day-long run.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Why a run did not produce a report.
enum Refused {
    Usage(String),
    Failed(String),
}

/// What every scenario needs before it opens a connection.
struct Setup {
    targets: Targets,
    probe: Probe,
    source_addresses: usize,
}

impl Setup {
    async fn prepare(args: &ConnectionArgs) -> Result<Setup, Refused> {
        if !(1..=1_000_000).contains(&args.connections) {
            return Err(Refused::Usage(
                "--connections must be between 1 and 1000000".to_owned(),
            ));
        }
        if args.connect_concurrency == 0 || args.timeout.is_zero() {
            return Err(Refused::Usage(
                "--connect-concurrency and --timeout must be above zero".to_owned(),
            ));
        }
        let mut targets = Targets::resolve(&args.target, args.allow_remote)
            .await
            .map_err(Refused::Usage)?;
        let source_addresses = targets
            .spread(args.connections, args.source_addresses)
            .map_err(Refused::Usage)?;
        let limit = fd_limit::raise_to_hard().map_err(Refused::Failed)?;
        fd_limit::check(args.connections, limit).map_err(Refused::Failed)?;
        let probe =
            Probe::new(args.server_pid, args.metrics_url.as_deref()).map_err(Refused::Usage)?;
        Ok(Setup {
            targets,
            probe,
            source_addresses,
        })
    }

    /// The report's common part.
    fn report(&self, scenario: &str, args: &ConnectionArgs) -> WsReport {
        WsReport {
            tool: format!("guess-game {}", env!("CARGO_PKG_VERSION")),
            scenario: scenario.to_owned(),
            target: self.targets.describe(),
            connections_requested: args.connections,
            source_addresses: self.source_addresses,
            ..WsReport::default()
        }
    }
}

fn check_duration(name: &str, duration: Duration) -> Result<(), Refused> {
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(Refused::Usage(format!(
            "--{name} must be between 1ms and 1h"
        )));
    }
    Ok(())
}

/// The warm-up asked for, or two intervals and a second: every player has queued, been
/// matched and moved by then.
fn warmup_for(asked: Option<Duration>, interval: Duration) -> Duration {
    asked.unwrap_or(interval * 2 + Duration::from_secs(1))
}

pub async fn run_idle(args: IdleArgs) -> ExitCode {
    let outcome = async {
        check_duration("duration", args.duration)?;
        let setup = Setup::prepare(&args.connections).await?;
        idle::run(&setup, &args).await.map_err(Refused::Failed)
    };
    finish(outcome.await, args.connections.json.as_deref())
}

pub async fn run_play(args: PlayArgs) -> ExitCode {
    let outcome = async {
        check_duration("duration", args.duration)?;
        check_duration("move-interval", args.move_interval)?;
        if ![1, 3, 5].contains(&args.best_of) {
            return Err(Refused::Usage("--best-of must be 1, 3 or 5".to_owned()));
        }
        let setup = Setup::prepare(&args.connections).await?;
        play::run(&setup, &args).await.map_err(Refused::Failed)
    };
    finish(outcome.await, args.connections.json.as_deref())
}

pub async fn run_echo(args: EchoArgs) -> ExitCode {
    let outcome = async {
        check_duration("duration", args.duration)?;
        check_duration("move-interval", args.move_interval)?;
        let setup = Setup::prepare(&args.connections).await?;
        echo::run(&setup, &args).await.map_err(Refused::Failed)
    };
    finish(outcome.await, args.connections.json.as_deref())
}

/// Prints the report, writes its JSON, and picks the exit code: a report with notes of
/// failure (`failed`) exits 1.
fn finish(outcome: Result<(WsReport, bool), Refused>, json: Option<&std::path::Path>) -> ExitCode {
    let (mut report, failed) = match outcome {
        Ok(done) => done,
        Err(Refused::Usage(message)) => {
            eprintln!("guess-game loadtest: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(Refused::Failed(message)) => {
            eprintln!("guess-game loadtest: {message}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    report.errors = report.errors_by_kind.values().sum();
    print!("{}", report.summary());
    let mut failed = failed;
    if let Some(path) = json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path, bytes));
        if let Err(error) = written {
            eprintln!(
                "guess-game loadtest: cannot write {}: {error}",
                path.display()
            );
            failed = true;
        }
    }
    if failed {
        ExitCode::from(EXIT_RUN_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// A connection `open_all` opened.
struct Opened {
    /// Its number, which picked its token and its target.
    index: usize,
    /// The target it is open to.
    target: usize,
    socket: Socket,
    /// The `welcome`'s, when greeted.
    resume_token: Option<String>,
}

/// Opens `count` connections to `path`, `concurrency` at a time, connection `i` to target
/// `i mod n` with token `i` when there are tokens, greeting each with `hello` when `greet`.
/// Failures are counted in `errors` by kind; returns the open ones and how long opening took.
async fn open_all(
    targets: &Targets,
    path: &str,
    tokens: Option<&[String]>,
    count: usize,
    args: &ConnectionArgs,
    greet: bool,
    errors: &mut BTreeMap<String, u64>,
) -> (Vec<Opened>, f64) {
    eprintln!(
        "opening {count} connections to {} ({path})",
        targets.describe()
    );
    let started = Instant::now();
    let opened: Vec<Result<Opened, String>> = futures_util::stream::iter(0..count)
        .map(|index| async move {
            let token = tokens
                .and_then(|tokens| tokens.get(index))
                .map(String::as_str);
            let number = targets.for_connection(index);
            let mut socket = targets
                .get(number)
                .open(index, path, token, args.timeout)
                .await?;
            let resume_token = match greet {
                true => Some(target::greet(&mut socket, args.timeout).await?),
                false => None,
            };
            Ok(Opened {
                index,
                target: number,
                socket,
                resume_token,
            })
        })
        .buffer_unordered(args.connect_concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut sockets = Vec::with_capacity(count);
    for result in opened {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    eprintln!("{} of {count} open in {seconds:.1}s", sockets.len());
    (sockets, seconds)
}

/// The usual notes on a run whose connections did not all open.
fn connection_notes(report: &mut WsReport) -> bool {
    let missing = report.connections_requested - report.connections_open;
    if missing == 0 {
        return false;
    }
    report.notes.push(format!(
        "{missing} connections could not be opened or greeted; see errors"
    ));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_warm_up_covers_two_intervals() {
        let second = Duration::from_secs(1);
        assert_eq!(warmup_for(None, second / 2), 2 * second);
        assert_eq!(warmup_for(Some(second), second * 5), second);
    }
}

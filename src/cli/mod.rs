//! The command line: `serve` (the default), `play`, `pvp`, `verify`, `account`, `doctor`,
//! `loadtest`, and their flags.
//!
//! Flags of `serve` mirror the settings in [`guess_game::config::Settings`] one to one; only the
//! flags actually given are passed on, so they override the file and the environment without
//! resetting what those set.

mod account;
mod connection;
mod doctor;
mod names;
mod play;
mod pvp;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

pub use account::{AccountArgs, run_account};
pub use doctor::{DoctorArgs, run_doctor};
pub use play::{PlayArgs, run_play};
pub use pvp::{PvpArgs, run_pvp};
pub use verify::{VerifyArgs, run_verify};

#[derive(Debug, Parser)]
#[command(
    name = "guess-game",
    version,
    about = "A rock-paper-scissors game server, and a client for it",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand, `guess-game` serves: these are `serve`'s flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the game server (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Play one round against a running server (as the signed-in account, if any).
    Play(PlayArgs),
    /// Play a match in real time against a person or a bot, in the terminal or scripted.
    Pvp(Box<PvpArgs>),
    /// Check a match's transcript: every commitment opened, every round and score recounted.
    Verify(VerifyArgs),
    /// Create, sign in to and manage an account on a running server.
    Account(AccountArgs),
    /// Load a running server and report throughput, goodput, errors and latency percentiles.
    Loadtest(Box<loadtest::LoadtestArgs>),
    /// Check this host for the settings `serve` would run with, or (--probe) a running instance.
    Doctor(Box<DoctorArgs>),
}

/// Settings given as flags. Each also reads from the config file and `GUESS_GAME_<NAME>`.
#[derive(Debug, Default, Args, Serialize)]
pub struct ServeArgs {
    /// TOML file with settings (any flag below, in snake_case).
    #[arg(long, value_name = "FILE", env = "GUESS_GAME_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Worker threads; 0 means one per usable CPU [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Log filter, e.g. "info" or "guess_game=debug" [default: $RUST_LOG, else info]
    #[arg(long, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Log format: auto, json or pretty [default: auto]
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Longest wait for requests in flight at shutdown, e.g. "10s" [default: 10s]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    /// Largest request body in bytes [default: 4096]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Longest time to receive a whole request once it has started [default: 10s]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// Longest time to answer a request once received [default: 5s]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// Longest an idle keep-alive connection stays open [default: 60s]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout: Option<String>,
    /// Longest time to write a response to a client [default: 10s]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<String>,
    /// HTTP/1.1 implementation: native or hyper [default: native]
    #[arg(long, value_name = "ENGINE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Kernel accept-queue length [default: 4096]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_backlog: Option<u32>,
    /// One listening socket per worker with SO_REUSEPORT [default: true]
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_port: Option<bool>,
    /// Set TCP_NODELAY on accepted connections [default: true]
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_nodelay: Option<bool>,
    /// Most open public connections; 0 derives it from the open-file limit [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// PEM certificate chain: serve TLS on the public listener (with --tls-key)
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of --tls-certificate
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Most requests in flight; more are answered 503 overloaded [default: 1024]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// In-flight bound: fixed or adaptive [default: fixed]
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<String>,
    /// Adaptive bound: latency target, e.g. 50ms [default: 50ms]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_latency_target: Option<String>,
    /// Adaptive bound: lowest bound [default: 16]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_floor: Option<usize>,
    /// Requests/s per client (player id, else IP); 0 is off [default: 100]
    #[arg(long, value_name = "REQ/S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_client: Option<f64>,
    /// Burst above the per-client rate [default: 200]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_client_burst: Option<u32>,
    /// Requests/s per route from all clients together; 0 is off [default: 0]
    #[arg(long, value_name = "REQ/S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_route: Option<f64>,
    /// Burst above the per-route rate [default: 1000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_route_burst: Option<u32>,
    /// Requests/s for all limited routes together; 0 is off [default: 0]
    #[arg(long, value_name = "REQ/S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_global: Option<f64>,
    /// Burst above the global rate [default: 1000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_global_burst: Option<u32>,
    /// Proxy address or CIDR range whose X-Forwarded-For is believed (repeat for several)
    #[arg(long = "trusted-proxy", value_name = "IP|CIDR")]
    #[serde(rename = "trusted_proxies", skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<guess_game::config::ProxyRange>,
    /// IPv6 clients are keyed per this prefix length for limits [default: 64]
    #[arg(long, value_name = "BITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ipv6_prefix: Option<u8>,
    /// Admin listener for /metrics and /debug/pprof [default: 127.0.0.1:6060]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Allow the admin listener on a non-loopback address
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin_public: bool,
    /// OTLP/HTTP collector base URL for span export [default: off]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Allow fault injection on the admin listener (/admin/faults)
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fault_injection: bool,
    /// Runtime flag: write the access log [default: true]
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<bool>,
    /// Runtime flag: export spans when an OTLP endpoint is set [default: true]
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_export: Option<bool>,
    /// Share of requests written to the access log, 0 to 1 [default: 1]
    #[arg(long, value_name = "RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_sample: Option<f64>,
    /// Store: memory, redis://host:port or redis+cluster://host:port,host:port [default: memory]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Node id 0-1023 for game ids; unset claims one from Redis (0 in memory)
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u16>,
    /// Longest one store call may take, e.g. 500ms [default: 500ms]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_timeout: Option<String>,
    /// Results queued for the store at most; more are dropped [default: 100000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_queue_capacity: Option<usize>,
    /// Results per store write at most [default: 512]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_batch_size: Option<usize>,
    /// Store writes at least this often, e.g. 50ms [default: 50ms]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_flush_interval: Option<String>,
    /// Latest games kept per player [default: 100]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub games_kept: Option<usize>,
    /// Most players kept (memory), or per leaderboard (Redis) [default: 1000000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_players: Option<usize>,
    /// Redis: a player's stats expire after this long without a play [default: 365d]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub player_retention: Option<String>,
    /// In-memory store: most idempotency keys kept [default: 1000000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_idempotency_keys: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_its_flags() {
        let cli = Cli::try_parse_from(["guess-game", "--listen", "127.0.0.1:9000"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen, Some("127.0.0.1:9000".parse().unwrap()));
    }

    #[test]
    fn only_given_flags_are_passed_on() {
        let cli = Cli::try_parse_from(["guess-game", "serve", "--workers", "3"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        let flags = serde_json::to_value(&args).unwrap();
        assert_eq!(flags, serde_json::json!({"workers": 3}));
    }
}

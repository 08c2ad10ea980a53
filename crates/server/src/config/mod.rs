//! Server configuration: one typed struct, layered from four sources.
//!
//! Precedence, lowest first: built-in defaults < the TOML file named by `--config` < environment
//! variables `GUESS_GAME_<SETTING>` < command-line flags. Every setting has the same name in all
//! four places (`drain_timeout` in the file, `GUESS_GAME_DRAIN_TIMEOUT`, `--drain-timeout`).
//! [`Settings::load`] merges the layers and validates the result, so an invalid value stops the
//! server at start-up with a message naming the setting, never halfway through serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that configure the server.
pub const ENV_PREFIX: &str = "GUESS_GAME_";

/// `GUESS_GAME_*` variables that are not settings: the config file's path, and what the
/// command line's client commands read (`play`, `account`). A shell that sets them for the
/// client can still start the server.
const CLIENT_VARIABLES: &[&str] = &["config", "server", "session_file", "password", "ca_file"];

/// Everything `guess-game serve` can be told, grouped by concern. Each group is flattened: a
/// setting's name is the same in the file, the environment and the flags whatever its group.
/// Field docs are the settings reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub server: Server,
    #[serde(flatten)]
    pub limits: Limits,
    #[serde(flatten)]
    pub store: Store,
    #[serde(flatten)]
    pub telemetry: Telemetry,
    #[serde(flatten)]
    pub admin: Admin,
    #[serde(flatten)]
    pub accounts: Accounts,
    #[serde(flatten)]
    pub realtime: Realtime,
}

/// The public listener, its connections and the time limits on each request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Address the public listener binds.
    pub listen: SocketAddr,
    /// Worker threads, each with its own runtime. 0 means one per CPU this process may use.
    pub workers: usize,
    /// Longest a graceful shutdown waits for requests in flight before closing connections.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest a client may take to send a whole request (head and body) once it has started;
    /// then it gets 408 and the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest the server takes to answer a request once it has it (waits on dependencies and
    /// injected faults included); past it the answer is 503 `handler_timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest an idle keep-alive connection is kept open waiting for its next request.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// Longest a response may take to be written to a client that does not read.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// The HTTP/1.1 implementation: "native" (the project's own, on httparse) or "hyper".
    pub engine: Engine,
    /// Length of the kernel's queue of connections not yet accepted (capped by
    /// `net.core.somaxconn`; a warning is logged at start-up when that is lower).
    pub listen_backlog: u32,
    /// One listening socket per worker (SO_REUSEPORT) instead of one shared socket.
    pub reuse_port: bool,
    /// Disable Nagle's algorithm on accepted connections, so small answers leave at once.
    pub tcp_nodelay: bool,
    /// Most public connections open at once; more are answered 503 and closed at accept.
    /// 0 derives it from the open-file limit (raised to the hard limit at start-up).
    pub max_connections: usize,
    /// PEM certificate chain for TLS on the public listener (HTTP and WebSocket, ALPN
    /// http/1.1). Set with `tls_key`; both files are re-read on SIGHUP. Unset: plain TCP.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_certificate`.
    pub tls_key: Option<PathBuf>,
    /// Origins (`https://example.com`) other sites' pages may call the API from (CORS).
    /// Empty, the default: no cross-origin access. `*` is refused (credentials are in use).
    pub cors_allowed_origins: Vec<String>,
}

/// Protection: the bound on requests in flight and the rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Most requests in flight at once (admitted, not yet answered); above it requests are
    /// answered 503 `overloaded` at once. With `concurrency_limit = "adaptive"` the maximum.
    pub max_in_flight: usize,
    /// "fixed" (the bound is `max_in_flight`) or "adaptive" (AIMD on answer latency).
    pub concurrency_limit: ConcurrencyMode,
    /// Adaptive mode: answers slower than this shrink the bound.
    #[serde(with = "humantime_serde")]
    pub adaptive_latency_target: Duration,
    /// Adaptive mode: the bound never falls below this.
    pub adaptive_floor: usize,
    /// Requests per second each client (player id, else IP address) may make to limited
    /// routes; 0 turns the per-client limit off.
    pub rate_limit_per_client: f64,
    /// Requests a client may make at once above its rate.
    pub rate_limit_per_client_burst: u32,
    /// Requests per second each limited route takes from all clients together; 0 is off.
    pub rate_limit_per_route: f64,
    pub rate_limit_per_route_burst: u32,
    /// Requests per second all limited routes take together; 0 is off.
    pub rate_limit_global: f64,
    pub rate_limit_global_burst: u32,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed when keying
    /// limits by client address.
    pub trusted_proxies: Vec<ProxyRange>,
    /// IPv6 clients are keyed by this many leading bits of their address (1-128).
    pub client_ipv6_prefix: u8,
}

/// Where games, stats, leaderboards and idempotency keys live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Store {
    /// Where stats, leaderboards and idempotency keys live: "memory" (this process only) or a
    /// Redis URL shared by every instance: `redis://host:port[/db]`, or
    /// `redis+cluster://host:port[,host:port...]` for Redis Cluster.
    #[serde(rename = "store")]
    pub url: String,
    /// Node id (0-1023) in game ids; unset claims a free one from Redis (0 in memory). Two
    /// instances on one Redis must not share one.
    pub node_id: Option<u16>,
    /// How long a node id claimed from Redis is leased (renewed at a third of it; ids stop at
    /// five sixths of it without a renewal).
    #[serde(with = "humantime_serde")]
    pub node_lease: Duration,
    /// Longest one store call may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub store_timeout: Duration,
    /// Results waiting for the store writer at most; more are dropped (and counted).
    pub store_queue_capacity: usize,
    /// The writer applies results in batches of at most this many ...
    pub store_batch_size: usize,
    /// ... at least this often.
    #[serde(with = "humantime_serde")]
    pub store_flush_interval: Duration,
    /// Latest games kept per player for `/players/{id}/games`.
    pub games_kept: usize,
    /// Most players kept: in memory, results of further new players are dropped; in Redis,
    /// each leaderboard keeps this many (the most wins).
    pub max_players: usize,
    /// Redis: a player's stats and history expire after this long without a play.
    #[serde(with = "humantime_serde")]
    pub player_retention: Duration,
    /// In-memory store: most idempotency keys kept; past it the oldest are forgotten first.
    pub max_idempotency_keys: usize,
}

/// Logs, the access log and trace export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Log filter in `RUST_LOG` syntax ("info", "guess_game=debug"). When unset, `RUST_LOG`
    /// applies, and "info" if that is unset too.
    pub log_level: Option<String>,
    /// Log format: "auto" (JSON lines unless stderr is a terminal), "json" or "pretty".
    pub log_format: LogFormat,
    /// Base URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318); spans are exported
    /// to `<url>/v1/traces` when set.
    pub otlp_endpoint: Option<String>,
    /// Share of requests written to the access log, 0 to 1 (0 turns it off).
    pub access_log_sample: f64,
    /// Runtime flag: write the access log (switchable at run time; see docs/OPERATIONS.md).
    pub access_log: bool,
    /// Runtime flag: export spans when `otlp_endpoint` is set.
    pub trace_export: bool,
}

/// The admin listener (metrics, profiles, flags) and fault injection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admin {
    /// Address of the admin listener (metrics, CPU profiles). Loopback only unless
    /// `admin_public` is set.
    pub admin_listen: SocketAddr,
    /// Allow `admin_listen` to be a non-loopback address.
    pub admin_public: bool,
    /// Allow fault injection through the admin listener (`/admin/faults`); off in production.
    pub fault_injection: bool,
}

/// Accounts, sessions and the front door (sign-in and account creation limits).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accounts {
    /// How long an access token is good for; then the client refreshes it.
    #[serde(with = "humantime_serde")]
    pub access_token_lifetime: Duration,
    /// A session not used (no request, no refresh) for this long ends.
    #[serde(with = "humantime_serde")]
    pub session_idle_lifetime: Duration,
    /// A session ends this long after sign-in, however it is used.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// Most accounts this instance holds; more are refused (503 `accounts_full`).
    pub max_accounts: usize,
    /// Most sessions per account; a new one ends the least recently used.
    pub max_sessions_per_account: usize,
    /// Password hashes computed at once (each holds `password_hash_memory_kib`); 0 means half
    /// the CPUs this process may use, at least one.
    pub password_hash_concurrency: usize,
    /// Argon2id memory per hash in KiB (at least 19456, OWASP's minimum).
    pub password_hash_memory_kib: u32,
    /// Argon2id iterations (at least 2).
    pub password_hash_iterations: u32,
    /// Believe `X-Player-Id` and a play's `player_id` as the player (for deployments behind a
    /// gateway that authenticates players itself). Off: only a bearer token names a player.
    pub trust_player_header: bool,
    /// Accounts one client address may create per hour (0: no limit).
    pub accounts_per_address_per_hour: u32,
    /// Sign-in attempts per client address per minute (0: no limit).
    pub logins_per_address_per_minute: u32,
    /// Failed sign-ins per username per minute, from all addresses; past it, addresses that
    /// have not signed in as that user wait (0: no limit).
    pub logins_per_username_per_minute: u32,
    /// With a Redis store: how long an instance trusts Redis's answer about an access token
    /// before asking again. A session ended on another instance stops working here within
    /// this bound (on the instance that ended it, at once).
    #[serde(with = "humantime_serde")]
    pub session_cache_ttl: Duration,
    /// With a Redis store: a guest account expires this long after its latest sign-in
    /// (registered accounts never do).
    #[serde(with = "humantime_serde")]
    pub guest_retention: Duration,
}

/// Real-time play over WebSocket (`GET /ws`): matches, matchmaking, reconnects, chat, bots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Realtime {
    /// How long a round waits for moves; every round-opening event says when it closes.
    #[serde(with = "humantime_serde")]
    pub round_timeout: Duration,
    /// How long a matchmaking ticket waits before it ends (`queue_expired`).
    #[serde(with = "humantime_serde")]
    pub queue_ticket_lifetime: Duration,
    /// With `opponent: "any"`, how long to look for a person before a bot takes the seat
    /// (a client may ask for less).
    #[serde(with = "humantime_serde")]
    pub bot_after: Duration,
    /// How long a dropped player's match (or ticket) waits for `resume`; then it is forfeited.
    #[serde(with = "humantime_serde")]
    pub resume_grace: Duration,
    /// How long a new connection has to send `hello` (or `resume`).
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
    /// How often the server pings a connection.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A connection with no pong for this long is closed.
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Messages queued for a connection before it is closed as a slow consumer (1013).
    pub ws_outbox_capacity: usize,
    /// Chat lines a connection may send at once; the bucket refills over `chat_window`.
    pub chat_burst: u32,
    #[serde(with = "humantime_serde")]
    pub chat_window: Duration,
    /// Most tickets waiting at once; more are refused (`queue_full`).
    pub max_queue: usize,
    /// Finished matches whose transcripts (`GET /matches/{id}`) this instance keeps.
    pub matches_kept: usize,
    /// The A/B experiment choosing the bot an account meets: its name (assignment is by the
    /// name and the account id, so renaming reshuffles) and its arms as `strategy:weight`.
    pub bot_experiment: String,
    pub bot_arms: String,
    /// When a season of the rating and win-rate boards starts (and the last one ends): a
    /// five-field cron expression (minute hour day-of-month month day-of-week) in UTC.
    pub season_schedule: String,
    /// Rated matches an account plays in a season before the win-rate board lists it.
    pub win_rate_min_matches: u64,
    /// Entries a season board lists, and a finished season keeps, per board.
    pub season_board_size: usize,
}

/// How the bound on requests in flight moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyMode {
    Fixed,
    Adaptive,
}

/// Which HTTP/1.1 implementation serves connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Native,
    Hyper,
}

pub use crate::protection::client_address::ProxyRange;
/// The log format setting; defined with the logging it configures.
pub use crate::telemetry::LogFormat;

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: Server {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
                workers: 0,
                drain_timeout: Duration::from_secs(10),
                max_body_bytes: 4 * 1024,
                header_read_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(5),
                keep_alive_timeout: Duration::from_secs(60),
                write_timeout: Duration::from_secs(10),
                engine: Engine::Native,
                listen_backlog: 4096,
                reuse_port: true,
                tcp_nodelay: true,
                max_connections: 0,
                tls_certificate: None,
                tls_key: None,
                cors_allowed_origins: Vec::new(),
            },
            limits: Limits {
                max_in_flight: 1024,
                concurrency_limit: ConcurrencyMode::Fixed,
                adaptive_latency_target: Duration::from_millis(50),
                adaptive_floor: 16,
                rate_limit_per_client: 100.0,
                rate_limit_per_client_burst: 200,
                rate_limit_per_route: 0.0,
                rate_limit_per_route_burst: 1000,
                rate_limit_global: 0.0,
                rate_limit_global_burst: 1000,
                trusted_proxies: Vec::new(),
                client_ipv6_prefix: 64,
            },
            store: Store {
                url: "memory".to_owned(),
                node_id: None,
                node_lease: Duration::from_secs(30),
                store_timeout: Duration::from_millis(500),
                store_queue_capacity: 100_000,
                store_batch_size: 512,
                store_flush_interval: Duration::from_millis(50),
                games_kept: 100,
                max_players: 1_000_000,
                player_retention: Duration::from_secs(365 * 86_400),
                max_idempotency_keys: 1_000_000,
            },
            telemetry: Telemetry {
                log_level: None,
                log_format: LogFormat::Auto,
                otlp_endpoint: None,
                access_log_sample: 1.0,
                access_log: true,
                trace_export: true,
            },
            admin: Admin {
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 6060)),
                admin_public: false,
                fault_injection: false,
            },
            accounts: Accounts {
                access_token_lifetime: Duration::from_secs(15 * 60),
                session_idle_lifetime: Duration::from_secs(7 * 86_400),
                session_lifetime: Duration::from_secs(30 * 86_400),
                max_accounts: 1_000_000,
                max_sessions_per_account: 10,
                password_hash_concurrency: 0,
                password_hash_memory_kib: 19 * 1024,
                password_hash_iterations: 2,
                trust_player_header: false,
                accounts_per_address_per_hour: 20,
                logins_per_address_per_minute: 30,
                logins_per_username_per_minute: 10,
                session_cache_ttl: Duration::from_secs(2),
                guest_retention: Duration::from_secs(365 * 86_400),
            },
            realtime: {
                let d = crate::realtime::RealtimeSettings::default();
                let seasons = crate::seasons::SeasonSettings::default();
                Realtime {
                    round_timeout: d.round_timeout,
                    queue_ticket_lifetime: d.queue_ticket_lifetime,
                    bot_after: d.bot_after,
                    resume_grace: d.resume_grace,
                    hello_timeout: d.hello_timeout,
                    heartbeat_interval: d.heartbeat_interval,
                    heartbeat_timeout: d.heartbeat_timeout,
                    ws_outbox_capacity: d.outbox_capacity,
                    chat_burst: d.chat_burst,
                    chat_window: d.chat_window,
                    max_queue: d.max_queue,
                    matches_kept: d.matches_kept,
                    bot_experiment: d.bot_experiment,
                    bot_arms: d.bot_arms,
                    season_schedule: seasons.schedule.expression().to_owned(),
                    win_rate_min_matches: seasons.win_rate_min_matches,
                    season_board_size: seasons.board_size,
                }
            },
        }
    }
}

/// A setting that was given but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("unknown setting `{setting}` (see README.md for the settings)")]
    Unknown { setting: String },
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

impl Settings {
    /// The initial runtime flags; a reload on SIGHUP applies them again.
    pub fn flags(&self) -> crate::flags::Flags {
        crate::flags::Flags {
            access_log: self.telemetry.access_log,
            trace_export: self.telemetry.trace_export,
        }
    }

    /// The store these settings describe.
    pub fn store_settings(&self) -> crate::store::StoreSettings {
        crate::store::StoreSettings {
            url: (self.store.url != "memory").then(|| self.store.url.clone()),
            node_id: self.store.node_id,
            node_lease: self.store.node_lease,
            timeout: self.store.store_timeout,
            queue_capacity: self.store.store_queue_capacity,
            batch_size: self.store.store_batch_size,
            flush_interval: self.store.store_flush_interval,
            games_kept: self.store.games_kept,
            max_players: self.store.max_players,
            player_retention: self.store.player_retention,
            max_keys: self.store.max_idempotency_keys,
        }
    }

    /// The accounts these settings describe.
    pub fn account_settings(&self) -> crate::accounts::AccountSettings {
        let accounts = &self.accounts;
        let concurrency = match accounts.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |cpus| (cpus.get() / 2).max(1)),
            given => given,
        };
        crate::accounts::AccountSettings {
            access_token_lifetime: accounts.access_token_lifetime,
            session_idle_lifetime: accounts.session_idle_lifetime,
            session_lifetime: accounts.session_lifetime,
            max_accounts: accounts.max_accounts,
            max_sessions_per_account: accounts.max_sessions_per_account,
            password_hash_concurrency: concurrency,
            password_hash_memory_kib: accounts.password_hash_memory_kib,
            password_hash_iterations: accounts.password_hash_iterations,
            session_cache_ttl: accounts.session_cache_ttl,
            guest_retention: accounts.guest_retention,
        }
    }

    /// Real-time play as these settings describe it.
    pub fn realtime_settings(&self) -> crate::realtime::RealtimeSettings {
        let r = &self.realtime;
        crate::realtime::RealtimeSettings {
            round_timeout: r.round_timeout,
            queue_ticket_lifetime: r.queue_ticket_lifetime,
            bot_after: r.bot_after,
            resume_grace: r.resume_grace,
            hello_timeout: r.hello_timeout,
            heartbeat_interval: r.heartbeat_interval,
            heartbeat_timeout: r.heartbeat_timeout,
            write_timeout: self.server.write_timeout,
            outbox_capacity: r.ws_outbox_capacity,
            chat_burst: r.chat_burst,
            chat_window: r.chat_window,
            max_queue: r.max_queue,
            matches_kept: r.matches_kept,
            bot_experiment: r.bot_experiment.clone(),
            bot_arms: r.bot_arms.clone(),
            seasons: self.season_settings(),
        }
    }

    /// The season boards these settings describe. `season_schedule` was checked at start-up
    /// (`validate`); a schedule that no longer parses here leaves the default.
    pub fn season_settings(&self) -> crate::seasons::SeasonSettings {
        let r = &self.realtime;
        crate::seasons::SeasonSettings {
            schedule: crate::seasons::Schedule::parse(&r.season_schedule).unwrap_or_default(),
            win_rate_min_matches: r.win_rate_min_matches,
            board_size: r.season_board_size,
        }
    }

    /// The front door's limits these settings describe.
    pub fn front_door(&self) -> crate::protection::front_door::FrontDoorSettings {
        crate::protection::front_door::FrontDoorSettings {
            accounts_per_address_per_hour: self.accounts.accounts_per_address_per_hour,
            logins_per_address_per_minute: self.accounts.logins_per_address_per_minute,
            logins_per_username_per_minute: self.accounts.logins_per_username_per_minute,
        }
    }

    /// The in-flight bound these settings describe.
    pub fn concurrency_limit(
        &self,
    ) -> std::sync::Arc<crate::protection::concurrency::ConcurrencyLimit> {
        use crate::protection::concurrency::{ConcurrencyLimit, Mode};
        let mode = match self.limits.concurrency_limit {
            ConcurrencyMode::Fixed => Mode::Fixed,
            ConcurrencyMode::Adaptive => Mode::Adaptive {
                target: self.limits.adaptive_latency_target,
                floor: self.limits.adaptive_floor,
            },
        };
        ConcurrencyLimit::new(self.limits.max_in_flight, mode)
    }

    /// The rate limits these settings describe.
    pub fn rate_limits(&self) -> crate::protection::rate_limit::RateLimitSettings {
        use crate::protection::rate_limit::{Limit, RateLimitSettings};
        RateLimitSettings {
            per_client: Limit {
                per_second: self.limits.rate_limit_per_client,
                burst: self.limits.rate_limit_per_client_burst,
            },
            per_route: Limit {
                per_second: self.limits.rate_limit_per_route,
                burst: self.limits.rate_limit_per_route_burst,
            },
            global: Limit {
                per_second: self.limits.rate_limit_global,
                burst: self.limits.rate_limit_global_burst,
            },
        }
    }

    /// Merges defaults, the optional TOML file, `GUESS_GAME_*` variables and `flags` (a
    /// serializable struct holding only the flags that were given), then validates.
    pub fn load(file: Option<&Path>, flags: impl Serialize) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    setting: "config",
                    reason: format!("{} is not a readable file", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(Env::prefixed(ENV_PREFIX).ignore(CLIENT_VARIABLES))
            .merge(Serialized::defaults(flags));
        // Serde cannot deny unknown fields through `flatten`, so a misspelt setting is caught
        // here: every name given must be one the defaults have.
        let known = Figment::from(Serialized::defaults(Settings::default()));
        let given: figment::value::Dict = figment.extract().map_err(Box::new)?;
        if let Some(unknown) = given.keys().find(|name| !known.contains(name)) {
            return Err(ConfigError::Unknown {
                setting: unknown.clone(),
            });
        }
        // Each group is extracted on its own rather than through `flatten`, which would lose
        // the name of the setting an error is about.
        let settings = Settings {
            server: figment.extract().map_err(Box::new)?,
            limits: figment.extract().map_err(Box::new)?,
            store: figment.extract().map_err(Box::new)?,
            telemetry: figment.extract().map_err(Box::new)?,
            admin: figment.extract().map_err(Box::new)?,
            accounts: figment.extract().map_err(Box::new)?,
            realtime: figment.extract().map_err(Box::new)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
        const MIN_RATE: f64 = 0.001;
        const MAX_RATE: f64 = 1e9;
        let invalid = |setting, reason: &str| {
            Err(ConfigError::Invalid {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.server.workers > 1024 {
            return invalid("workers", "must be at most 1024 (0 means one per CPU)");
        }
        if !(64..=1024 * 1024).contains(&self.server.max_body_bytes) {
            return invalid("max_body_bytes", "must be between 64 and 1048576");
        }
        if self.server.drain_timeout.is_zero()
            || self.server.drain_timeout > Duration::from_secs(3600)
        {
            return invalid("drain_timeout", "must be between 1ms and 1h");
        }
        for (setting, value) in [
            ("header_read_timeout", self.server.header_read_timeout),
            ("keep_alive_timeout", self.server.keep_alive_timeout),
            ("request_timeout", self.server.request_timeout),
            ("write_timeout", self.server.write_timeout),
            ("store_timeout", self.store.store_timeout),
            ("store_flush_interval", self.store.store_flush_interval),
            (
                "adaptive_latency_target",
                self.limits.adaptive_latency_target,
            ),
        ] {
            // Deadlines are computed as "now + setting": a duration of years would overflow
            // the clock and panic in the middle of serving, so it is refused here.
            if value.is_zero() || value > MAX_TIMEOUT {
                return invalid(setting, "must be greater than zero and at most 24h");
            }
        }
        let accounts = &self.accounts;
        for (setting, value) in [
            ("access_token_lifetime", accounts.access_token_lifetime),
            ("session_idle_lifetime", accounts.session_idle_lifetime),
        ] {
            if value < Duration::from_secs(1) || value > Duration::from_secs(365 * 86_400) {
                return invalid(setting, "must be between 1s and 365d");
            }
        }
        if accounts.session_lifetime < accounts.access_token_lifetime
            || accounts.session_lifetime > Duration::from_secs(3650 * 86_400)
        {
            return invalid(
                "session_lifetime",
                "must be at least access_token_lifetime and at most 3650d",
            );
        }
        if accounts.session_cache_ttl > Duration::from_secs(60) {
            return invalid(
                "session_cache_ttl",
                "must be at most 60s: it is how long a revoked session may still work on another instance",
            );
        }
        if accounts.guest_retention < accounts.session_lifetime {
            return invalid(
                "guest_retention",
                "must be at least session_lifetime: a guest must outlive its sessions",
            );
        }
        if accounts.max_accounts == 0 || accounts.max_sessions_per_account == 0 {
            return invalid(
                "max_accounts",
                "max_accounts and max_sessions_per_account must be at least 1",
            );
        }
        if accounts.password_hash_memory_kib < crate::accounts::password::MIN_MEMORY_KIB
            || accounts.password_hash_memory_kib > 4 * 1024 * 1024
        {
            return invalid(
                "password_hash_memory_kib",
                "must be between 19456 (OWASP's minimum for Argon2id) and 4194304",
            );
        }
        if !(crate::accounts::password::MIN_ITERATIONS..=100)
            .contains(&accounts.password_hash_iterations)
        {
            return invalid("password_hash_iterations", "must be between 2 and 100");
        }
        let realtime = &self.realtime;
        for (setting, value) in [
            ("round_timeout", realtime.round_timeout),
            ("queue_ticket_lifetime", realtime.queue_ticket_lifetime),
            ("resume_grace", realtime.resume_grace),
            ("hello_timeout", realtime.hello_timeout),
            ("heartbeat_interval", realtime.heartbeat_interval),
            ("heartbeat_timeout", realtime.heartbeat_timeout),
            ("chat_window", realtime.chat_window),
        ] {
            if value < Duration::from_millis(10) || value > Duration::from_secs(3600) {
                return invalid(setting, "must be between 10ms and 1h");
            }
        }
        if realtime.bot_after >= realtime.queue_ticket_lifetime {
            return invalid("bot_after", "must be shorter than queue_ticket_lifetime");
        }
        if realtime.heartbeat_timeout <= realtime.heartbeat_interval {
            return invalid(
                "heartbeat_timeout",
                "must be longer than heartbeat_interval",
            );
        }
        if realtime.ws_outbox_capacity < 8 || realtime.ws_outbox_capacity > 65_536 {
            return invalid("ws_outbox_capacity", "must be between 8 and 65536");
        }
        if realtime.chat_burst == 0 || realtime.max_queue == 0 || realtime.matches_kept == 0 {
            return invalid(
                "chat_burst",
                "chat_burst, max_queue and matches_kept must be at least 1",
            );
        }
        let name_ok = !realtime.bot_experiment.is_empty()
            && realtime.bot_experiment.len() <= 64
            && realtime
                .bot_experiment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return invalid(
                "bot_experiment",
                "must be 1 to 64 of A-Z, a-z, 0-9, '-', '_', '.'",
            );
        }
        if let Err(error) = crate::realtime::Realtime::new(self.realtime_settings()) {
            return invalid("bot_arms", &error.to_string());
        }
        if let Err(error) =
            crate::seasons::Schedule::parse_at(&realtime.season_schedule, unix_now_ms())
        {
            return invalid("season_schedule", &error.to_string());
        }
        if !(1..=1_000_000).contains(&realtime.win_rate_min_matches) {
            return invalid("win_rate_min_matches", "must be between 1 and 1000000");
        }
        if !(1..=10_000).contains(&realtime.season_board_size) {
            return invalid("season_board_size", "must be between 1 and 10000");
        }
        if accounts.password_hash_concurrency > 1024 {
            return invalid("password_hash_concurrency", "must be at most 1024");
        }
        if self.store.node_lease < Duration::from_secs(3)
            || self.store.node_lease > Duration::from_secs(600)
        {
            return invalid("node_lease", "must be between 3s and 10m");
        }
        if self.server.request_timeout <= self.store.store_timeout {
            return invalid(
                "request_timeout",
                "must be greater than store_timeout: a request that waits on the store must \
                 outlive the store call, or the call is abandoned before the store can answer",
            );
        }
        if self.limits.max_in_flight == 0 || self.limits.adaptive_floor == 0 {
            return invalid(
                "max_in_flight",
                "max_in_flight and adaptive_floor must be at least 1",
            );
        }
        if !(1..=128).contains(&self.limits.client_ipv6_prefix) {
            return invalid("client_ipv6_prefix", "must be between 1 and 128");
        }
        if !(1..=65535).contains(&self.server.listen_backlog) {
            return invalid("listen_backlog", "must be between 1 and 65535");
        }
        if !self.admin.admin_listen.ip().is_loopback() && !self.admin.admin_public {
            return invalid(
                "admin_listen",
                "is not a loopback address; the admin listener serves metrics and CPU profiles, \
                 so it binds a public address only with admin_public = true (--admin-public)",
            );
        }
        for (setting, rate) in [
            ("rate_limit_per_client", self.limits.rate_limit_per_client),
            ("rate_limit_per_route", self.limits.rate_limit_per_route),
            ("rate_limit_global", self.limits.rate_limit_global),
        ] {
            // A rate is turned into the period between two requests (1 / rate): below one
            // request in 1000 s, or above a billion per second, that period is out of range.
            if !(rate == 0.0 || (MIN_RATE..=MAX_RATE).contains(&rate)) {
                return invalid(
                    setting,
                    "must be 0 (off) or a number of requests per second between 0.001 and 1e9",
                );
            }
        }
        if self.server.tls_certificate.is_some() != self.server.tls_key.is_some() {
            return invalid(
                "tls_certificate",
                "tls_certificate and tls_key are set together (or neither, for plain TCP)",
            );
        }
        for origin in &self.server.cors_allowed_origins {
            if let Err(reason) = check_origin(origin) {
                return Err(ConfigError::Invalid {
                    setting: "cors_allowed_origins",
                    reason: format!("{origin:?} {reason}"),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.telemetry.access_log_sample) {
            return invalid("access_log_sample", "must be between 0 and 1");
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && let Err(error) = crate::client::ServerUrl::parse(endpoint)
        {
            return Err(ConfigError::Invalid {
                setting: "otlp_endpoint",
                reason: error.to_string(),
            });
        }
        if self.store.url != "memory"
            && !self.store.url.starts_with("redis://")
            && !self.store.url.starts_with("redis+cluster://")
        {
            return invalid(
                "store",
                "must be \"memory\", a redis:// URL or a redis+cluster:// URL",
            );
        }
        if self
            .store
            .node_id
            .is_some_and(|node| node > crate::store::game_id::MAX_NODE_ID)
        {
            return invalid("node_id", "must be between 0 and 1023");
        }
        for (setting, value) in [
            ("store_queue_capacity", self.store.store_queue_capacity),
            ("store_batch_size", self.store.store_batch_size),
            ("games_kept", self.store.games_kept),
            ("max_players", self.store.max_players),
            ("max_idempotency_keys", self.store.max_idempotency_keys),
        ] {
            if value == 0 {
                return invalid(setting, "must be at least 1");
            }
        }
        if self.store.player_retention < Duration::from_secs(3600) {
            return invalid("player_retention", "must be at least 1h");
        }
        if self.store.games_kept > 1000 {
            return invalid("games_kept", "must be at most 1000");
        }
        if let Some(filter) = &self.telemetry.log_level
            && let Err(error) = tracing_subscriber::EnvFilter::try_new(filter)
        {
            return Err(ConfigError::Invalid {
                setting: "log_level",
                reason: error.to_string(),
            });
        }
        Ok(())
    }
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`, nothing after.
/// The wall clock, for checking that `season_schedule` has seasons around now.
fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn check_origin(origin: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err("is not an origin: expected scheme://host[:port]");
    };
    if scheme != "http" && scheme != "https" {
        return Err("must use http or https");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err("must be scheme://host[:port] with no path, wildcard or space");
    }
    if origin.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err("must be lowercase, as browsers send it");
    }
    Ok(())
}

#[cfg(test)]
// figment::Jail's closures return figment's own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        listen: Option<String>,
    }

    fn load_in(jail: &Jail, file: Option<&str>, flags: Flags) -> Result<Settings, ConfigError> {
        let path = file.map(|contents| {
            jail.create_file("guess-game.toml", contents).unwrap();
            jail.directory().join("guess-game.toml")
        });
        Settings::load(path.as_deref(), flags)
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load_in(jail, None, Flags::default()).unwrap(),
                Settings::default()
            );
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_then_flags_take_precedence() {
        Jail::expect_with(|jail| {
            let file =
                "listen = \"127.0.0.1:1000\"\ndrain_timeout = \"3s\"\nmax_body_bytes = 1000\n";
            jail.set_env("GUESS_GAME_LISTEN", "127.0.0.1:2000");
            jail.set_env("GUESS_GAME_MAX_BODY_BYTES", "2000");
            let flags = Flags {
                listen: Some("127.0.0.1:3000".into()),
            };
            let settings = load_in(jail, Some(file), flags).unwrap();
            assert_eq!(
                settings.server.listen,
                "127.0.0.1:3000".parse().unwrap(),
                "flag beats env"
            );
            assert_eq!(settings.server.max_body_bytes, 2000, "env beats file");
            assert_eq!(
                settings.server.drain_timeout,
                Duration::from_secs(3),
                "file beats default"
            );
            Ok(())
        });
    }

    #[test]
    fn every_group_reads_its_settings_by_their_flat_names() {
        Jail::expect_with(|jail| {
            jail.set_env("GUESS_GAME_WORKERS", "3");
            jail.set_env("GUESS_GAME_MAX_IN_FLIGHT", "7");
            jail.set_env("GUESS_GAME_STORE", "redis://127.0.0.1:6379");
            jail.set_env("GUESS_GAME_LOG_FORMAT", "json");
            jail.set_env("GUESS_GAME_FAULT_INJECTION", "true");
            let settings = load_in(jail, Some("games_kept = 5"), Flags::default()).unwrap();
            assert_eq!(settings.server.workers, 3);
            assert_eq!(settings.limits.max_in_flight, 7);
            assert_eq!(settings.store.url, "redis://127.0.0.1:6379");
            assert_eq!(settings.store.games_kept, 5);
            assert_eq!(settings.telemetry.log_format, LogFormat::Json);
            assert!(settings.admin.fault_injection);
            Ok(())
        });
    }

    #[test]
    fn the_client_commands_variables_are_not_settings() {
        Jail::expect_with(|jail| {
            jail.set_env("GUESS_GAME_SERVER", "http://127.0.0.1:1");
            jail.set_env("GUESS_GAME_SESSION_FILE", "/tmp/x.json");
            jail.set_env("GUESS_GAME_PASSWORD", "secret secret");
            assert!(load_in(jail, None, Flags::default()).is_ok());
            jail.set_env("GUESS_GAME_SERVR", "typo");
            assert!(load_in(jail, None, Flags::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn tls_files_come_in_pairs_and_cors_origins_are_exact() {
        let mut settings = Settings::default();
        settings.server.tls_certificate = Some("cert.pem".into());
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("tls_certificate"), "{error}");
        settings.server.tls_key = Some("key.pem".into());
        assert!(settings.validate().is_ok());
        for good in ["https://example.com", "http://localhost:3000"] {
            settings.server.cors_allowed_origins = vec![good.to_owned()];
            assert!(settings.validate().is_ok(), "{good}");
        }
        for bad in [
            "*",
            "example.com",
            "https://example.com/",
            "https://*.example.com",
            "ftp://example.com",
            "https://Example.com",
        ] {
            settings.server.cors_allowed_origins = vec![bad.to_owned()];
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains("cors_allowed_origins"), "{bad}: {error}");
        }
    }

    #[test]
    fn season_settings_are_checked_and_carried() {
        for (file, setting) in [
            ("season_schedule = \"monthly\"", "season_schedule"),
            ("season_schedule = \"0 0 0 1 * *\"", "season_schedule"),
            ("season_schedule = \"0 0 30 2 *\"", "season_schedule"),
            ("win_rate_min_matches = 0", "win_rate_min_matches"),
            ("season_board_size = 0", "season_board_size"),
            ("season_board_size = 10001", "season_board_size"),
        ] {
            Jail::expect_with(|jail| {
                let error = load_in(jail, Some(file), Flags::default())
                    .unwrap_err()
                    .to_string();
                assert!(error.contains(setting), "{file}: {error}");
                Ok(())
            });
        }
        assert_eq!(
            Settings::default().season_settings(),
            crate::seasons::SeasonSettings::default()
        );
        Jail::expect_with(|jail| {
            jail.set_env("GUESS_GAME_SEASON_SCHEDULE", "0 6 * * MON");
            jail.set_env("GUESS_GAME_WIN_RATE_MIN_MATCHES", "5");
            let settings = load_in(jail, Some("season_board_size = 50"), Flags::default()).unwrap();
            let seasons = settings.season_settings();
            assert_eq!(seasons.schedule.expression(), "0 6 * * MON");
            assert_eq!((seasons.win_rate_min_matches, seasons.board_size), (5, 50));
            Ok(())
        });
    }

    #[test]
    fn an_invalid_value_names_its_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("GUESS_GAME_DRAIN_TIMEOUT", "soon");
            let error = load_in(jail, None, Flags::default())
                .unwrap_err()
                .to_string();
            assert!(error.to_lowercase().contains("drain_timeout"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_out_of_range_value_names_its_setting() {
        Jail::expect_with(|jail| {
            let error = load_in(jail, Some("max_body_bytes = 1"), Flags::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains("max_body_bytes"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn store_settings_are_checked() {
        for (file, setting) in [
            ("store = \"postgres://db\"", "store"),
            ("node_id = 1024", "node_id"),
            ("store_batch_size = 0", "store_batch_size"),
            ("games_kept = 5000", "games_kept"),
        ] {
            Jail::expect_with(|jail| {
                let error = load_in(jail, Some(file), Flags::default())
                    .unwrap_err()
                    .to_string();
                assert!(error.contains(setting), "{file}: {error}");
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            let settings = load_in(
                jail,
                Some("store = \"redis+cluster://10.0.0.1:7000,10.0.0.2:7000\""),
                Flags::default(),
            )
            .unwrap();
            assert_eq!(
                settings.store_settings().url.as_deref(),
                Some("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
            );
            Ok(())
        });
    }

    #[test]
    fn settings_that_would_overflow_or_abandon_calls_are_refused_at_start_up() {
        for (file, setting) in [
            // A store call would be abandoned by the request's deadline before its own.
            ("request_timeout = \"400ms\"", "request_timeout"),
            ("request_timeout = \"500ms\"", "request_timeout"),
            // "now + timeout" would overflow the clock.
            ("keep_alive_timeout = \"1000000000y\"", "keep_alive_timeout"),
            ("write_timeout = \"30days\"", "write_timeout"),
            ("store_timeout = \"0s\"", "store_timeout"),
            // 1 / rate would overflow a Duration, or round to nothing.
            ("rate_limit_per_client = 1e-300", "rate_limit_per_client"),
            ("rate_limit_global = 1e300", "rate_limit_global"),
            ("rate_limit_per_route = -1.0", "rate_limit_per_route"),
            ("client_ipv6_prefix = 0", "client_ipv6_prefix"),
            ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"),
        ] {
            Jail::expect_with(|jail| {
                let error = load_in(jail, Some(file), Flags::default())
                    .unwrap_err()
                    .to_string();
                assert!(error.contains(setting), "{file}: {error}");
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            let settings = load_in(
                jail,
                Some("request_timeout = \"501ms\"\nrate_limit_per_client = 0.001"),
                Flags::default(),
            )
            .unwrap();
            assert_eq!(settings.server.request_timeout, Duration::from_millis(501));
            Ok(())
        });
        Jail::expect_with(|jail| {
            let settings = load_in(
                jail,
                Some("trusted_proxies = [\"10.0.0.0/8\", \"::ffff:192.0.2.1\", \"2001:db8::/32\"]"),
                Flags::default(),
            )
            .unwrap();
            let shown: Vec<String> = settings
                .limits
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(shown, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);
            Ok(())
        });
    }

    #[test]
    fn an_unknown_setting_in_the_file_is_rejected_by_name() {
        Jail::expect_with(|jail| {
            let error = load_in(jail, Some("lisen = \"x\""), Flags::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains("lisen"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_admin_listener_stays_on_loopback_unless_told_otherwise() {
        Jail::expect_with(|jail| {
            jail.set_env("GUESS_GAME_ADMIN_LISTEN", "0.0.0.0:6060");
            let error = load_in(jail, None, Flags::default())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("admin_listen") && error.contains("admin_public"),
                "{error}"
            );
            jail.set_env("GUESS_GAME_ADMIN_PUBLIC", "true");
            assert!(load_in(jail, None, Flags::default()).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let error = Settings::load(
            Some(Path::new("/nonexistent/guess-game.toml")),
            Flags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("config"), "{error}");
    }
}

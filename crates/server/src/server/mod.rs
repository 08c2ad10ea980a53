//! The serving layer: listeners, worker threads, connection engines and graceful shutdown.
//!
//! [`Server::build`] binds the public listener (port 0 works, for tests) and reports the bound
//! address; [`Server::run_until_stopped`] serves until the given future resolves, then drains.
//! Each worker is an OS thread running its own single-threaded tokio runtime and accepting from
//! the listener, so a connection lives its whole life on one core with no cross-thread wake-ups.
//!
//! Shutdown, in order: `/readyz` turns 503, every worker stops accepting, connections finish
//! the request they are in (and close instead of waiting for another), and after
//! `drain_timeout` whatever is left is closed. Then `run_until_stopped` returns.

mod hyper_engine;
mod limits;
mod linger;
mod listener;
mod native;
pub mod shutdown;

/// What the fuzz targets and their corpus tests check; not an API.
#[doc(hidden)]
pub use native::fuzzing;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::admin::{self, AdminState};
use crate::config::{Engine, Settings};
use crate::flags::RuntimeFlags;
use crate::http::{App, Readiness};
use crate::net::Stream;
use crate::net::tls::{Tls, TlsError};
use crate::protection::client_address::ClientAddresses;
use crate::protection::faults::Faults;
use crate::protection::front_door::FrontDoor;
use crate::protection::rate_limit::RateLimits;
use crate::store::Store;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::export::SpanExporter;
use crate::telemetry::metrics;
use crate::telemetry::observe::Observability;

/// A failure to start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {what}: {reason}")]
    Telemetry { what: &'static str, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("worker {index} failed: {source}")]
    Worker {
        index: usize,
        #[source]
        source: std::io::Error,
    },
}

/// What each worker needs to serve connections, shared read-only.
#[derive(Debug)]
pub(crate) struct ConnectionSettings {
    pub engine: Engine,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub write_timeout: Duration,
    pub drain_timeout: Duration,
    pub tcp_nodelay: bool,
    /// TLS on the public listener, when configured.
    pub tls: Option<Arc<Tls>>,
}

/// The TLS handshake of an accepted connection, within the header read timeout; `None` when
/// it failed (counted, logged at debug: scanners and plain-HTTP clients fail it all day).
async fn handshake(tls: &Tls, stream: TcpStream, timeout: Duration) -> Option<Stream> {
    match tls.accept(stream, timeout).await {
        Ok(stream) => {
            metrics::with_shard(|shard| shard.tls_handshakes.add(1));
            Some(Stream::Tls(Box::new(stream)))
        }
        Err(error) => {
            metrics::with_shard(|shard| shard.tls_handshake_failures.add(1));
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    /// One shared listener, or one per worker with `reuse_port`.
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    admin_listener: std::net::TcpListener,
    admin_addr: SocketAddr,
    workers: usize,
    connection_gate: Arc<limits::ConnectionGate>,
    faults: Arc<Faults>,
    /// Re-reads the settings on SIGHUP, when set.
    reload: Option<Box<dyn Fn() -> Result<Settings, String> + Send + Sync>>,
    app: Arc<App>,
    store: Arc<Store>,
    readiness: Readiness,
    connection: Arc<ConnectionSettings>,
}

impl Server {
    /// Binds the listener described by `settings`. Serving starts with [`Self::run_until_stopped`].
    pub async fn build(settings: &Settings) -> Result<Server, ServeError> {
        let bind_error = |source| ServeError::Bind {
            address: settings.server.listen,
            source,
        };
        let workers = worker_count(settings.server.workers);
        let fd_limit = limits::raise_open_file_limit();
        limits::release_large_allocations();
        let max_connections = match settings.server.max_connections {
            0 => limits::default_max_connections(fd_limit),
            configured => configured,
        };
        let listeners = listener::bind_all(
            settings.server.listen,
            workers,
            settings.server.listen_backlog,
            settings.server.reuse_port,
        )
        .map_err(bind_error)?;
        let local_addr = listeners[0].local_addr().map_err(bind_error)?;
        let admin_bind_error = |source| ServeError::Bind {
            address: settings.admin.admin_listen,
            source,
        };
        let tls = match (&settings.server.tls_certificate, &settings.server.tls_key) {
            (Some(certificate), Some(key)) => Some(Arc::new(Tls::new(certificate, key)?)),
            _ => None,
        };
        let admin_listener = admin::bind(settings.admin.admin_listen).map_err(admin_bind_error)?;
        let admin_addr = admin_listener.local_addr().map_err(admin_bind_error)?;
        let readiness = Readiness::new();
        let faults = Faults::new(settings.admin.fault_injection);
        let store = Arc::new(
            Store::open(&settings.store_settings())
                .await?
                .with_faults(Arc::clone(&faults)),
        );
        tracing::info!(
            backend = store.kind(),
            node_id = store.node_id(),
            "store open"
        );
        let realtime = Arc::new(
            crate::realtime::Realtime::new(settings.realtime_settings()).map_err(|error| {
                ServeError::Telemetry {
                    what: "real-time play",
                    reason: error.to_string(),
                }
            })?,
        );
        if let Some(url) = &settings.store_settings().url {
            // On Redis, real-time play is shared by every instance on it.
            let cluster = crate::realtime::cluster::Cluster::connect(
                url,
                settings.store_settings().timeout,
                crate::realtime::cluster::DEFAULT_LEASE,
            )
            .await
            .map_err(|error| ServeError::Telemetry {
                what: "real-time play on Redis",
                reason: error.to_string(),
            })?;
            tracing::info!(instance = %cluster.instance, "real-time play shared through Redis");
            realtime.join_cluster(Arc::new(cluster));
        }
        Ok(Server {
            listeners,
            local_addr,
            admin_listener,
            admin_addr,
            workers,
            connection_gate: limits::ConnectionGate::new(max_connections),
            reload: None,
            app: Arc::new(
                App::with_limits(
                    readiness.clone(),
                    settings.server.max_body_bytes,
                    observability(settings)?,
                    RateLimits::new(settings.rate_limits()),
                    ClientAddresses::new(
                        settings.limits.trusted_proxies.clone(),
                        settings.limits.client_ipv6_prefix,
                    ),
                    Arc::clone(&faults),
                    settings.concurrency_limit(),
                )
                .with_request_timeout(settings.server.request_timeout)
                .with_store(Arc::clone(&store))
                .with_accounts(
                    Arc::new(Accounts::for_store(&settings.account_settings(), &store)),
                    Arc::new(FrontDoor::new(settings.front_door())),
                )
                .with_trusted_player_header(settings.accounts.trust_player_header)
                .with_cors_allowed_origins(&settings.server.cors_allowed_origins)
                .with_realtime(realtime),
            ),
            store,
            faults,
            readiness,
            connection: Arc::new(ConnectionSettings {
                engine: settings.server.engine,
                header_read_timeout: settings.server.header_read_timeout,
                keep_alive_timeout: settings.server.keep_alive_timeout,
                write_timeout: settings.server.write_timeout,
                drain_timeout: settings.server.drain_timeout,
                tcp_nodelay: settings.server.tcp_nodelay,
                tls,
            }),
        })
    }

    /// The address the listener is bound to (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reloads the settings with `reload` on SIGHUP and applies their runtime flags.
    pub fn reload_on_hangup(
        mut self,
        reload: impl Fn() -> Result<Settings, String> + Send + Sync + 'static,
    ) -> Self {
        self.reload = Some(Box::new(reload));
        self
    }

    /// The address the admin listener is bound to.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` resolves, then drains and returns. Returns early with an error
    /// if a worker cannot run.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let stop = CancellationToken::new();
        let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel();
        for index in 0..self.workers {
            let listener = match self.listeners.get(index) {
                Some(own) if self.listeners.len() > 1 => own.try_clone(),
                _ => self.listeners[0].try_clone(),
            }
            .map_err(|source| ServeError::Worker { index, source })?;
            let worker = worker::Worker {
                index,
                listener,
                app: Arc::clone(&self.app),
                connection: Arc::clone(&self.connection),
                gate: Arc::clone(&self.connection_gate),
                stop: stop.clone(),
            };
            let finished_tx = finished_tx.clone();
            std::thread::Builder::new()
                .name(format!("guess-game-worker-{index}"))
                .spawn(move || {
                    let result = worker.run();
                    let _ = finished_tx.send((index, result));
                })
                .map_err(|source| ServeError::Worker { index, source })?;
        }
        drop(finished_tx);
        let admin_state = Arc::new(AdminState {
            public_listeners: self
                .listeners
                .iter()
                .filter_map(|listener| listener.try_clone().ok())
                .collect(),
            flags: Arc::clone(self.app.observability().flags()),
            faults: Arc::clone(&self.faults),
            concurrency: Arc::clone(self.app.concurrency()),
            store: Arc::clone(&self.store),
            accounts: Arc::clone(self.app.accounts()),
            realtime: Arc::clone(self.app.realtime()),
        });
        let tls = self.connection.tls.clone();
        let reload = self.reload;
        let reloader = (reload.is_some() || tls.is_some()).then(|| {
            let flags = Arc::clone(self.app.observability().flags());
            shutdown::on_hangup(move || {
                if let Some(reload) = &reload {
                    match reload() {
                        Ok(settings) => {
                            flags.set(settings.flags());
                            tracing::info!(flags = ?settings.flags(), "configuration reloaded on SIGHUP; runtime flags applied (other settings take effect at restart)");
                        }
                        Err(error) => tracing::error!(%error, "configuration reload on SIGHUP failed; keeping the current flags"),
                    }
                }
                if let Some(tls) = &tls {
                    match tls.reload() {
                        Ok(loaded) => tracing::info!(subject = %loaded.subject, not_after = %httpdate::fmt_http_date(loaded.not_after), "TLS certificate reloaded on SIGHUP; new handshakes use it"),
                        Err(error) => tracing::error!(%error, "TLS certificate reload on SIGHUP failed; keeping the current certificate"),
                    }
                }
            })
        });
        drop(self.listeners);
        let admin = tokio::spawn(admin::serve(self.admin_listener, admin_state, stop.clone()));
        let forgetter = tokio::spawn(forget_idle_clients(Arc::clone(&self.app)));
        let realtime_timers = tokio::spawn(Arc::clone(self.app.realtime()).drive_timers());
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn({
            let store = Arc::clone(&self.store);
            let stop = writer_stop.clone();
            let drain = self.connection.drain_timeout;
            async move { store.run_writer(stop, drain).await }
        });
        let lease = tokio::spawn({
            let store = Arc::clone(&self.store);
            async move { store.keep_node_lease().await }
        });
        tracing::info!(
            address = %self.local_addr,
            admin_address = %self.admin_addr,
            workers = self.workers,
            max_connections = self.connection_gate.max(),
            engine = ?self.connection.engine,
            tls = self.connection.tls.is_some(),
            "guess-game listening"
        );

        let mut first_failure = None;
        tokio::select! {
            () = shutdown => tracing::info!("shutdown requested; draining"),
            Some((index, result)) = finished_rx.recv() => {
                first_failure = result.err().map(|source| ServeError::Worker { index, source });
            }
        }
        self.readiness.set_not_ready();
        // Matches get most of the drain to finish; what still runs then ends as no contest and
        // its players' connections close (1001) before the workers stop waiting for them.
        let drain = self.connection.drain_timeout;
        self.app.realtime().drain(drain.mul_f64(0.8));
        stop.cancel();
        while let Some((index, result)) = finished_rx.recv().await {
            if let Err(source) = result {
                tracing::error!(worker = index, error = %source, "worker failed");
                first_failure.get_or_insert(ServeError::Worker { index, source });
            }
        }
        let _ = admin.await;
        forgetter.abort();
        realtime_timers.abort();
        // Shared real-time play: what was handed over, recorded or appended last reaches Redis.
        self.app
            .realtime()
            .flush_cluster(drain.mul_f64(0.2).max(Duration::from_secs(1)))
            .await;
        // Every connection is closed: no more results can arrive. Flush what is queued.
        writer_stop.cancel();
        let _ = writer.await;
        lease.abort();
        self.store.release_node_lease().await;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        // Joining the writer threads blocks; keep it off this runtime, whose other tasks
        // (a collector in the same process, for one) may be what they are waiting on.
        let app = Arc::clone(&self.app);
        let _ = tokio::task::spawn_blocking(move || app.observability().shutdown()).await;
        tracing::info!("stopped");
        first_failure.map_or(Ok(()), Err)
    }
}

/// How often idle rate-limit buckets and front-door streaks are dropped and expired sessions
/// removed.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(10);

/// Keeps the rate limiter's memory bounded: a client whose bucket has refilled is forgotten
/// (it would start full anyway).
async fn forget_idle_clients(app: Arc<App>) {
    let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
    loop {
        tick.tick().await;
        // Walking every client's bucket takes a while with many clients: off this runtime,
        // which also drives the store's writer and lease.
        let ended = app.accounts().sweep().await;
        if ended > 0 {
            tracing::debug!(ended, "expired sessions (or stale cached tokens) removed");
        }
        let limits = Arc::clone(&app);
        let tracked = tokio::task::spawn_blocking(move || {
            limits.front_door().forget_idle();
            limits.rate_limits().forget_idle()
        })
        .await
        .unwrap_or_default();
        tracing::debug!(tracked, "forgot idle rate-limit clients");
    }
}

/// The access log and span exporter the settings ask for.
fn observability(settings: &Settings) -> Result<Observability, ServeError> {
    let access_log = (settings.telemetry.access_log_sample > 0.0)
        .then(|| AccessLog::start(settings.telemetry.access_log_sample))
        .transpose()
        .map_err(|error| ServeError::Telemetry {
            what: "the access log",
            reason: error.to_string(),
        })?;
    let exporter = settings
        .telemetry
        .otlp_endpoint
        .as_deref()
        .map(SpanExporter::start)
        .transpose()
        .map_err(|error| ServeError::Telemetry {
            what: "span export",
            reason: error.to_string(),
        })?;
    Ok(Observability::new(
        access_log,
        exporter,
        RuntimeFlags::new(settings.flags()),
    ))
}

/// Workers to run: the configured number, or one per CPU this process may use. The standard
/// library's count honours the CPU affinity mask and cgroup CPU quotas.
fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

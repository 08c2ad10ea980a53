//! The application: what every request shares, assembled once at start-up and read by every
//! worker. Routing and the request's way through the service are in [`super::router`];
//! admission (rate limits and shedding) in [`super::admission`]; each resource's handler in
//! its own module.

use std::sync::Arc;

use super::health::Readiness;
use crate::accounts::Accounts;
use crate::accounts::fairness::FairPlay;
use crate::protection::client_address::ClientAddresses;
use crate::protection::concurrency::{ConcurrencyLimit, Mode};
use crate::protection::faults::Faults;
use crate::protection::front_door::FrontDoor;
use crate::protection::rate_limit::{RateLimitSettings, RateLimits};
use crate::realtime::{Realtime, RealtimeSettings};
use crate::store::Store;
use crate::telemetry::observe::Observability;

/// The application: everything a request needs, shared read-only by all workers.
pub struct App {
    pub(super) readiness: Readiness,
    pub(super) max_body_bytes: usize,
    pub(super) observability: Observability,
    pub(super) rate_limits: RateLimits,
    pub(super) client_addresses: ClientAddresses,
    pub(super) faults: Arc<Faults>,
    pub(super) concurrency: Arc<ConcurrencyLimit>,
    pub(super) request_timeout: std::time::Duration,
    pub(super) store: Arc<Store>,
    pub(super) accounts: Arc<Accounts>,
    pub(super) front_door: Arc<FrontDoor>,
    /// `X-Player-Id` and a play's `player_id` name the player (a gateway authenticated it).
    pub(super) trust_player_header: bool,
    /// Real-time play: the WebSocket hub, tickets, transcripts.
    pub(super) realtime: Arc<Realtime>,
    /// Accounts' server seeds for provably fair plays against the computer.
    pub(super) fairness: Arc<FairPlay>,
    /// The origins other sites' pages may call the API from; none by default.
    pub(super) cors: super::cors::Cors,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(readiness: Readiness, max_body_bytes: usize, observability: Observability) -> Self {
        Self::with_limits(
            readiness,
            max_body_bytes,
            observability,
            RateLimits::new(RateLimitSettings::OFF),
            ClientAddresses::default(),
            Faults::new(false),
            ConcurrencyLimit::new(usize::MAX, Mode::Fixed),
        )
    }

    /// Bounds the time from a request's admission to its answer.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_limits(
        readiness: Readiness,
        max_body_bytes: usize,
        observability: Observability,
        rate_limits: RateLimits,
        client_addresses: ClientAddresses,
        faults: Arc<Faults>,
        concurrency: Arc<ConcurrencyLimit>,
    ) -> Self {
        Self {
            readiness,
            max_body_bytes,
            observability,
            rate_limits,
            client_addresses,
            faults,
            concurrency,
            request_timeout: std::time::Duration::from_secs(5),
            store: Arc::new(Store::in_memory(
                &crate::config::Settings::default().store_settings(),
            )),
            accounts: Arc::new(Accounts::new(
                &crate::config::Settings::default().account_settings(),
            )),
            front_door: Arc::new(FrontDoor::new(
                crate::config::Settings::default().front_door(),
            )),
            trust_player_header: false,
            fairness: Arc::new(FairPlay::default()),
            cors: super::cors::Cors::default(),
            realtime: Arc::new(
                Realtime::new(RealtimeSettings::default()).expect("the default bot arms are valid"),
            ),
        }
    }

    /// Real-time play with these settings.
    pub fn with_realtime(mut self, realtime: Arc<Realtime>) -> Self {
        self.realtime = realtime;
        self
    }

    pub fn realtime(&self) -> &Arc<Realtime> {
        &self.realtime
    }

    /// Accounts and sessions, and the front door's limits on them.
    pub fn with_accounts(mut self, accounts: Arc<Accounts>, front_door: Arc<FrontDoor>) -> Self {
        self.accounts = accounts;
        self.front_door = front_door;
        self
    }

    /// Lets pages from `origins` (`cors_allowed_origins`) call the API with bearer tokens
    /// (`http::cors`); empty, the default, allows none.
    pub fn with_cors_allowed_origins(mut self, origins: &[String]) -> Self {
        self.cors = super::cors::Cors::new(origins);
        self
    }

    /// Believe `X-Player-Id` and a play's `player_id` (behind an authenticating gateway).
    pub fn with_trusted_player_header(mut self, trust: bool) -> Self {
        self.trust_player_header = trust;
        self
    }

    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    pub fn front_door(&self) -> &Arc<FrontDoor> {
        &self.front_door
    }

    /// Records games in `store` and serves its reads.
    pub fn with_store(mut self, store: Arc<Store>) -> Self {
        self.store = store;
        self
    }

    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    pub fn observability(&self) -> &Observability {
        &self.observability
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The bound on requests in flight.
    pub fn concurrency(&self) -> &Arc<ConcurrencyLimit> {
        &self.concurrency
    }

    /// False once a graceful shutdown has begun: connections close after their current request.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }
}

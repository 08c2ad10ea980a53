//! Admission: whether a routed request may run at all. Rate limits first (a refused request
//! never reaches its handler), then a place under the in-flight bound (shedding).

use super::Request;
use super::app::App;
use super::error::HttpError;
use super::players::is_valid_player_id;
use crate::accounts::Bearer;
use crate::api::Route;
use crate::protection::concurrency::Permit;
use crate::protection::rate_limit::ClientKey;
use crate::telemetry::metrics;

impl App {
    /// The client's address as limits and scopes key it: the peer, or behind a trusted proxy
    /// the forwarded one, IPv6 cut to its configured prefix.
    pub(super) fn client_address(&self, request: &Request<'_>) -> std::net::IpAddr {
        self.client_addresses.key(
            self.client_addresses
                .resolve(request.peer, request.headers.forwarded_for),
        )
    }

    /// Applies the rate limits; a refused request never reaches its handler.
    pub(super) fn admit(
        &self,
        route: Route,
        request: &Request<'_>,
        bearer: Option<&Bearer>,
    ) -> Result<(), HttpError<'static>> {
        let address = self.client_address(request);
        // An account when the request proves one; a claimed player id only where a gateway
        // vouches for it; else the address.
        let key = match bearer {
            Some(bearer) => ClientKey::Player(bearer.account_key),
            None if self.trust_player_header => {
                let player = request
                    .headers
                    .player_id
                    .filter(|id| is_valid_player_id(id));
                self.rate_limits.client_key(player, address)
            }
            None => self.rate_limits.client_key(None, address),
        };
        self.rate_limits.check(route, key).map_err(|refusal| {
            metrics::with_shard(|shard| shard.rate_limited[refusal.scope as usize].add(1));
            if crate::telemetry::log_this_refusal() {
                tracing::warn!(scope = refusal.scope.name(), client = ?key, route = route.template(), "rate limited (1% of refusals are logged)");
            }
            HttpError::RateLimited(refusal)
        })
    }

    /// Takes a place under the in-flight bound, for routes that can be shed; probes never are.
    pub(super) fn enter(&self, route: Route) -> Result<Option<Permit>, HttpError<'static>> {
        if matches!(route, Route::Healthz | Route::Readyz | Route::OpenApi) {
            return Ok(None);
        }
        match self.concurrency.try_acquire() {
            Some(permit) => Ok(Some(permit)),
            None => {
                metrics::with_shard(|shard| shard.shed.add(1));
                if crate::telemetry::log_this_refusal() {
                    tracing::warn!(
                        limit = self.concurrency.limit(),
                        route = route.template(),
                        "shed: at the in-flight bound (1% of sheds are logged)"
                    );
                }
                Err(HttpError::Overloaded)
            }
        }
    }
}

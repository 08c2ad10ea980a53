//! A request's way through the service: route, admit, hand to the resource's handler, and
//! stamp the reply with what every reply carries. Engines call [`App::handle_admitted`] and,
//! for an answer that waits on the store, [`App::finish`]; once the answer is written,
//! [`App::request_finished`].

use http::Method;

use super::accounts::{PresentedToken, bearer_token, presented_access_token};
use super::deferred::{Deferred, Handled, Job};
use super::problem::{ApiError, HttpError};
use super::query::Query;
use super::reply::{Reply, Stamp};
use super::{
    OwnedRequest, Request, docs, health, leaderboard, play, players, realtime, session_cookie, web,
    wire,
};
use crate::accounts::{AccountError, Bearer, TokenRefused};
use crate::api::Route;
use crate::protection::concurrency::Permit;
use crate::seasons::BoardKind;
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics::{self, method_index};
use crate::telemetry::trace::{RequestId, TraceContext};

use super::app::App;
use super::players::is_valid_player_id;

impl App {
    /// Answers one request, waiting on the store if the route needs it: writes the body into
    /// `body` (cleared first) and returns the rest of the response. Never fails: every error
    /// becomes a problem document here.
    pub async fn handle(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
        match self.handle_admitted(request, body) {
            Handled::Ready(reply, _) => reply,
            Handled::Deferred(deferred) => self.finish(deferred, body).await.0,
        }
    }

    /// Answers one request without waiting, or hands back the part that waits on the store.
    /// A ready answer comes with the request's place under the in-flight bound, which the
    /// engine keeps until the answer has left (see [`Self::request_finished`]).
    ///
    /// Every reply carries the request's trace context and id, and is counted in the metrics.
    pub fn handle_admitted(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Handled {
        self.handle_identified(request, body, true)
    }

    /// [`Self::handle_admitted`]; `may_verify` says whether a token this instance's cache
    /// does not know may be looked up (once per request: after the lookup it is known).
    fn handle_identified(
        &self,
        request: &Request<'_>,
        body: &mut Vec<u8>,
        may_verify: bool,
    ) -> Handled {
        body.clear();
        let (trace, invalid_traceparent) = TraceContext::from_header(request.headers.traceparent);
        if invalid_traceparent {
            metrics::with_shard(|shard| shard.traceparent_invalid.add(1));
        }
        let route = Route::recognize(request.path);
        // One comparison when no origin is allowed (the default): see `http::cors`.
        let cors = self.cors.match_origin(request.headers.origin);
        let stamp = Stamp {
            route,
            trace,
            request_id: RequestId::from_header(request.headers.request_id),
            method_index: method_index(request.method),
            // Bodies are bounded by `max_body_bytes` (at most 1 MiB) before they are read.
            request_bytes: u32::try_from(request.body.len()).unwrap_or(u32::MAX),
        };
        let mut permit = None;
        let result = match route {
            None => Err(HttpError::NotFound.into()),
            // A CORS preflight is an OPTIONS, which no route accepts: looked for only here.
            Some(route) if !route.accepts(request.method) => {
                match self.cors.preflight(route, request) {
                    Some(preflight) => Ok(Handled::Ready(preflight, None)),
                    None => Err(HttpError::MethodNotAllowed {
                        allow: route.allow(),
                    }
                    .into()),
                }
            }
            Some(route) => {
                // Identity before admission, so an authenticated client is limited as its
                // account; a bad token is still limited (by address) before it is refused.
                let identity = self.identify(route, request);
                let bearer = identity.as_ref().ok().copied().flatten();
                // The second pass after a lookup was admitted by the first.
                let admitted = if may_verify {
                    self.admit(route, request, bearer.as_ref())
                } else {
                    Ok(())
                };
                admitted
                    .and_then(|()| self.enter(route))
                    .map_err(ApiError::from)
                    .and_then(|entered| {
                        permit = entered;
                        match identity {
                            // Limited by address like any unknown token, then looked up.
                            Err(Unidentified::Token(TokenRefused::Unverified)) if may_verify => {
                                Ok(Handled::Deferred(Deferred::new(
                                    Job::Identify(Box::new(OwnedRequest::from_request(request))),
                                    stamp,
                                )))
                            }
                            // Looked up, and already forgotten (a cache flooded past its
                            // bound): the token may be good, so a retry, not a 401.
                            Err(Unidentified::Token(TokenRefused::Unverified)) => {
                                Err(AccountError::Unavailable(
                                    "the token could not be verified now".to_owned(),
                                )
                                .into())
                            }
                            Err(Unidentified::Token(refused)) => {
                                Err(AccountError::InvalidToken(refused).into())
                            }
                            Err(Unidentified::CrossSite(reason)) => {
                                Err(session_cookie::refused(reason).into())
                            }
                            Ok(_) => self.dispatch(route, request, bearer, stamp, body),
                        }
                    })
            }
        };
        let reply = match result {
            Ok(Handled::Ready(reply, _)) => reply,
            Ok(Handled::Deferred(mut deferred)) => {
                deferred.permit = permit;
                deferred.cors = cors;
                return Handled::Deferred(deferred);
            }
            Err(error) => self.error_reply(&error, body),
        };
        let cors = self.cors.answer_headers(cors);
        Handled::Ready(stamp.seal_with_cors(reply, body.len(), cors), permit)
    }

    fn error_reply(&self, error: &ApiError<'_>, body: &mut Vec<u8>) -> Reply {
        let mut reply = error.write_reply(body);
        if matches!(error, ApiError::Http(HttpError::HandlerTimeout)) {
            // The answer goes out when the timeout expires, not before.
            reply.delay = self.request_timeout;
        }
        reply
    }

    /// The account whose access token the request carries (in `Authorization: Bearer`, or
    /// the web page's session cookie), on routes that act for one. No token is no one
    /// (`Ok(None)`); a token that is not valid now is an error, never no one, so a client with
    /// an expired token learns to refresh it. A cookie request must pass the CSRF rule first.
    fn identify(
        &self,
        route: Route,
        request: &Request<'_>,
    ) -> Result<Option<Bearer>, Unidentified> {
        if !route.uses_identity() {
            return Ok(None);
        }
        match request.headers.authorization {
            Some(header) => {
                let token =
                    bearer_token(Some(header)).ok_or(Unidentified::Token(TokenRefused::Unknown))?;
                self.authenticate(route, request, token, false)
            }
            // Neither a token nor a cookie: no one (two comparisons: the anonymous play's way).
            None if request.headers.cookie.is_none() => Ok(None),
            None => self.identify_by_cookie(route, request),
        }
    }

    /// [`Self::identify`] for a request without `Authorization` that carries cookies.
    #[inline(never)]
    fn identify_by_cookie(
        &self,
        route: Route,
        request: &Request<'_>,
    ) -> Result<Option<Bearer>, Unidentified> {
        let Some(seed) = session_cookie::seed(request) else {
            return Ok(None);
        };
        session_cookie::check_same_origin(request).map_err(Unidentified::CrossSite)?;
        match seed {
            Some(seed) => self.authenticate(route, request, seed.access_token().as_bytes(), true),
            // Not a seed: refused as a malformed token is (no token matches an empty one).
            None => self.authenticate(route, request, b"", true),
        }
    }

    /// The bearer of `token` (from the session cookie when `from_cookie`), with the two
    /// refusals that are let through to their handlers.
    fn authenticate(
        &self,
        route: Route,
        request: &Request<'_>,
        token: &[u8],
        from_cookie: bool,
    ) -> Result<Option<Bearer>, Unidentified> {
        match self.accounts.authenticate(token, request.arrived) {
            Ok(bearer) => Ok(Some(bearer)),
            // A repeated `DELETE /me` whose account is already gone: its handler answers as
            // the first time did.
            Err(_)
                if route == Route::Me
                    && *request.method == Method::DELETE
                    && self.accounts.deleted_account(token).is_some() =>
            {
                Ok(None)
            }
            // The page signs out whatever state its cookie is in: the handler ends the session
            // its refresh token still names and clears the cookie.
            Err(refused)
                if from_cookie
                    && route == Route::CurrentSession
                    && refused != TokenRefused::Unverified =>
            {
                Ok(None)
            }
            Err(refused) => Err(Unidentified::Token(refused)),
        }
    }

    /// Hands the request to its resource's handler.
    fn dispatch<'a>(
        &self,
        route: Route,
        request: &Request<'a>,
        bearer: Option<Bearer>,
        stamp: Stamp,
        body: &mut Vec<u8>,
    ) -> Result<Handled, ApiError<'a>> {
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        let player = || {
            let id = Route::player_id(request.path);
            if is_valid_player_id(id.as_bytes()) {
                Ok(id.to_owned())
            } else {
                Err(HttpError::InvalidPlayerId)
            }
        };
        let query = Query(request.query.unwrap_or_default());
        let ready = |reply| Ok(Handled::Ready(reply, None));
        let job = match route {
            Route::Play => return self.play(request, bearer, stamp, body),
            Route::GuestAccounts
            | Route::Accounts
            | Route::Sessions
            | Route::SessionRefresh
            | Route::CurrentSession
            | Route::Me
            | Route::MyCredentials
            | Route::MyExport
            | Route::MySessions
            | Route::MySession => return self.account_route(route, request, bearer, stamp),
            Route::Healthz => return ready(health::healthz(body)),
            Route::Readyz if self.readiness.is_ready() => {
                return ready(health::readyz(body, &self.store));
            }
            Route::Readyz => return Err(HttpError::ShuttingDown.into()),
            Route::OpenApi => return ready(docs::openapi(body)),
            Route::AsyncApi => return ready(realtime::asyncapi(body)),
            Route::Web => return ready(web::page(request, body)),
            Route::WebAsset => return ready(web::asset(request, body)?),
            // The native engine switches protocols before routing; hyper does not carry it.
            Route::Realtime => return Err(HttpError::WebSocketUnsupported.into()),
            Route::RealtimeTickets => return ready(self.realtime_ticket(request, bearer, body)?),
            Route::Match => return ready(self.match_transcript(request, body)?),
            Route::MyMatches => return ready(self.my_matches(request, bearer, body)?),
            Route::Presence => return ready(self.presence(request, body)),
            Route::AccountPresence => match self.account_presence(request, body)? {
                Ok(reply) => return ready(reply),
                Err(account) => Job::Presence { account, format },
            },
            Route::MyFairness | Route::MyFairnessRotation => {
                return ready(self.fairness_route(route, request, bearer, body)?);
            }
            Route::PlayerStats => Job::Stats {
                player: player()?,
                format,
            },
            Route::PlayerGames => Job::Games {
                player: player()?,
                limit: query.limit(20)?,
                format,
            },
            Route::PlayerRank => Job::Rank {
                player: player()?,
                window: query.window()?,
                format,
            },
            Route::Leaderboard => Job::Leaderboard {
                window: query.window()?,
                limit: query.limit(10)?,
                format,
            },
            Route::RatingBoard | Route::WinRateBoard => {
                let kind = match route {
                    Route::RatingBoard => BoardKind::Rating,
                    _ => BoardKind::WinRate,
                };
                let (which, limit) = (query.season()?, query.limit(10)?);
                Job::SeasonBoard {
                    kind,
                    board: self.realtime.season_board(kind, which, limit),
                    format,
                }
            }
        };
        Ok(Handled::Deferred(Deferred::new(job, stamp)))
    }

    /// Finishes a request that waits on the store, within the request timeout: its reply,
    /// and its record for [`Self::request_finished`].
    pub async fn finish(&self, deferred: Deferred, body: &mut Vec<u8>) -> (Reply, Completed) {
        body.clear();
        let Deferred {
            job,
            stamp,
            permit,
            cors,
        } = deferred;
        let deferred = match job {
            Job::Identify(request) => {
                return Box::pin(self.finish_unverified(*request, stamp, permit, body)).await;
            }
            job => Deferred {
                job,
                stamp,
                permit,
                cors,
            },
        };
        let result =
            match tokio::time::timeout(self.request_timeout, self.wait(deferred.job, body)).await {
                Ok(result) => result,
                Err(_) => {
                    metrics::with_shard(|shard| shard.timeouts[1].add(1));
                    Err(HttpError::HandlerTimeout.into())
                }
            };
        // An error here is answered at once: a timeout has already expired.
        let reply = result.unwrap_or_else(|error| error.write_reply(body));
        let reply = deferred.stamp.seal_with_cors(
            reply,
            body.len(),
            self.cors.answer_headers(deferred.cors),
        );
        let completed = deferred
            .stamp
            .completed(&reply, body.len(), deferred.permit);
        (reply, completed)
    }

    /// Looks the request's access token up (Redis), then handles the request from the start,
    /// now that this instance knows the token. Its place under the in-flight bound is held
    /// through the lookup, then left, and taken again by the second pass (which is not rate
    /// limited again).
    async fn finish_unverified(
        &self,
        owned: OwnedRequest,
        stamp: Stamp,
        permit: Option<Permit>,
        body: &mut Vec<u8>,
    ) -> (Reply, Completed) {
        let request = owned.request();
        let presented = presented_access_token(&request).ok().flatten();
        let token = presented
            .as_ref()
            .and_then(PresentedToken::as_bytes)
            .unwrap_or_default();
        let verified = tokio::time::timeout(
            self.request_timeout,
            self.accounts.verify(token, request.arrived),
        )
        .await;
        let failed: Option<ApiError<'_>> = match verified {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.into()),
            Err(_) => {
                metrics::with_shard(|shard| shard.timeouts[1].add(1));
                Some(HttpError::HandlerTimeout.into())
            }
        };
        if let Some(error) = failed {
            let reply = stamp.seal_with_cors(
                error.write_reply(body),
                body.len(),
                self.cors
                    .answer_headers(self.cors.match_origin(request.headers.origin)),
            );
            let completed = stamp.completed(&reply, body.len(), permit);
            return (reply, completed);
        }
        drop(permit);
        match self.handle_identified(&request, body, false) {
            Handled::Ready(reply, permit) => {
                let completed = App::completed(
                    request.method,
                    &reply,
                    request.body.len(),
                    body.len(),
                    permit,
                );
                (reply, completed)
            }
            Handled::Deferred(deferred) => self.finish(deferred, body).await,
        }
    }

    /// Runs the part of a request that waits on the store.
    async fn wait(&self, job: Job, body: &mut Vec<u8>) -> Result<Reply, ApiError<'static>> {
        let store = &self.store;
        match job {
            Job::Stats { player, format } => players::stats(store, &player, format, body).await,
            Job::Games {
                player,
                limit,
                format,
            } => players::games(store, &player, limit, format, body).await,
            Job::Rank {
                player,
                window,
                format,
            } => players::rank(store, &player, window, format, body).await,
            Job::Leaderboard {
                window,
                limit,
                format,
            } => leaderboard::board(store, &self.accounts, window, limit, format, body).await,
            Job::SeasonBoard {
                kind,
                board,
                format,
            } => leaderboard::season_board(&self.accounts, kind, board, format, body).await,
            Job::Presence { account, format } => {
                let status = self.realtime.presence_elsewhere(&account).await;
                Ok(realtime::presence_reply(&account, status, format, body))
            }
            Job::IdempotentPlay(job) => {
                play::idempotent_play(store, &self.fairness, job, body).await
            }
            Job::Accounts(job) => self.run_account_job(job, body).await,
            // Taken apart by `finish` before it waits.
            Job::Identify(_) => Err(HttpError::NotFound.into()),
        }
    }

    /// What the engines report once a ready `reply` to `request_method` has been written.
    pub fn completed(
        request_method: &Method,
        reply: &Reply,
        request_bytes: usize,
        response_bytes: usize,
        permit: Option<Permit>,
    ) -> Completed {
        Stamp {
            route: reply.route,
            trace: reply.trace.unwrap_or_else(TraceContext::start),
            request_id: reply
                .request_id
                .unwrap_or_else(|| RequestId::from_header(None)),
            method_index: method_index(request_method),
            request_bytes: u32::try_from(request_bytes).unwrap_or(u32::MAX),
        }
        .completed(reply, response_bytes, permit)
    }

    /// Reports an answered request: metrics, access log and span, and frees its place under
    /// the in-flight bound (feeding its latency to an adaptive bound).
    pub fn request_finished(
        &self,
        mut completed: Completed,
        arrived: tokio::time::Instant,
        answered: tokio::time::Instant,
    ) {
        self.observability
            .request_finished(&completed, arrived, answered);
        if let Some(permit) = completed.permit.take() {
            permit.complete(answered.saturating_duration_since(arrived), answered);
        }
    }

    /// Whether `method` on `path` would be routed to a handler that reads a body. Engines use
    /// it to reject an oversized body before reading it, but only where a body matters.
    pub fn reads_body(method: &Method, path: &str) -> bool {
        matches!(*method, Method::POST | Method::PATCH | Method::PUT)
            && Route::recognize(path).is_some_and(|route| route.accepts(method))
    }
}

/// Why a request's identity was not established.
enum Unidentified {
    /// Its access token is not valid now (or must be looked up first).
    Token(TokenRefused),
    /// It uses the session cookie and failed the CSRF rule, for this reason.
    CrossSite(&'static str),
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;

//! The HTTP side of real-time play: the `GET /ws` upgrade (authenticated before it switches
//! protocols, refused with an ordinary problem document), `POST /realtime/tickets` for
//! browsers, `GET /matches/{id}` transcripts, `GET /me/matches` and the AsyncAPI document.

use http::{Method, StatusCode};
use serde::Serialize;

use super::accounts::bearer_token;
use super::problem::{ApiError, HttpError};
use super::reply::{Reply, Stamp};
use super::{OwnedRequest, Request, wire};
use crate::accounts::{AccountError, AccountId, Bearer, TokenRefused};
use crate::api::Route;
use crate::realtime::{self, Session, WebSocketHeaders};
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics::method_index;
use crate::telemetry::trace::{RequestId, TraceContext};

use super::app::App;

/// The AsyncAPI 3.0 document of the WebSocket protocol, served at `GET /asyncapi.json` and
/// tested against the protocol crate's message types.
pub const ASYNCAPI: &str = include_str!("asyncapi.json");

/// A `GET /ws` the engine set aside: the request (copied out of the engine's buffers) and its
/// WebSocket header fields.
#[derive(Debug)]
pub struct PendingUpgrade {
    request: OwnedRequest,
    websocket: WebSocketHeaders,
}

impl PendingUpgrade {
    /// `head` is the request's head bytes (up to and including the blank line).
    pub fn new(request: &Request<'_>, head: &[u8]) -> Self {
        PendingUpgrade {
            request: OwnedRequest::from_request(request),
            websocket: WebSocketHeaders::read(head),
        }
    }
}

/// How an upgrade request was answered.
pub struct UpgradeAnswer {
    /// The answer's reply and body: a 101 (whose head is `switch`'s) or a problem document.
    pub reply: Reply,
    pub completed: Completed,
    /// Accepted: the `101 Switching Protocols` head to write, and whom the connection is for.
    pub switch: Option<(Vec<u8>, Session)>,
}

impl App {
    /// Decides an upgrade: WebSocket headers, then identity (a ticket, or a bearer token
    /// looked up if this instance does not know it), then the rate limits. Writes a refusal's
    /// problem document into `body`.
    pub async fn upgrade(&self, pending: PendingUpgrade, body: &mut Vec<u8>) -> UpgradeAnswer {
        body.clear();
        let request = pending.request.request();
        let (trace, _) = TraceContext::from_header(request.headers.traceparent);
        let stamp = Stamp {
            route: Some(Route::Realtime),
            trace,
            request_id: RequestId::from_header(request.headers.request_id),
            method_index: method_index(request.method),
            request_bytes: 0,
        };
        let decided = self.decide_upgrade(&request, &pending.websocket).await;
        match decided {
            Ok((accepted, session)) => {
                let reply = stamp.seal(Reply::new(StatusCode::SWITCHING_PROTOCOLS, ""), 0);
                let completed = stamp.completed(&reply, 0, None);
                UpgradeAnswer {
                    reply,
                    completed,
                    switch: Some((accepted.response(), session)),
                }
            }
            Err(error) => {
                let reply = stamp.seal(error.write_reply(body), body.len());
                let completed = stamp.completed(&reply, body.len(), None);
                UpgradeAnswer {
                    reply,
                    completed,
                    switch: None,
                }
            }
        }
    }

    async fn decide_upgrade(
        &self,
        request: &Request<'_>,
        websocket: &WebSocketHeaders,
    ) -> Result<(realtime::Accepted, Session), ApiError<'static>> {
        if *request.method != Method::GET {
            return Err(HttpError::MethodNotAllowed {
                allow: Route::Realtime.allow(),
            }
            .into());
        }
        if !self.readiness.is_ready() {
            return Err(HttpError::ShuttingDown.into());
        }
        let accepted = websocket.accept().map_err(HttpError::WebSocket)?;
        let ticket = request
            .query
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("ticket="));
        // Limited by address before any token or ticket is looked up, so a flood of made-up
        // tokens costs no lookups (in Redis, round trips) past the limit.
        self.admit(Route::Realtime, request, None)?;
        let (account, bearer) = match ticket {
            Some(ticket) => {
                let account = self
                    .realtime
                    .redeem_ticket(ticket)
                    .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))?;
                (account, None)
            }
            None => {
                let bearer = self.upgrade_bearer(request).await?;
                (bearer.account, Some(bearer))
            }
        };
        let _ = bearer;
        let name = match self.accounts.display_names(&[account.as_str()]).await {
            Ok(mut names) => names.pop().flatten(),
            Err(_) => None,
        };
        let session = Session {
            account,
            name: name.unwrap_or_else(|| format!("player-{}", &account[..6.min(account.len())])),
            codec: accepted.codec,
        };
        Ok((accepted, session))
    }

    /// The bearer of the upgrade's access token, looked up in Redis if this instance does not
    /// know it yet.
    async fn upgrade_bearer(&self, request: &Request<'_>) -> Result<Bearer, ApiError<'static>> {
        let token =
            bearer_token(request.headers.authorization).ok_or(AccountError::MissingToken)?;
        match self.accounts.authenticate(token, request.arrived) {
            Ok(bearer) => return Ok(bearer),
            Err(TokenRefused::Unverified) => {}
            Err(refused) => return Err(AccountError::InvalidToken(refused).into()),
        }
        match tokio::time::timeout(
            self.request_timeout,
            self.accounts.verify(token, request.arrived),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => return Err(HttpError::HandlerTimeout.into()),
        }
        self.accounts
            .authenticate(token, request.arrived)
            .map_err(|refused| AccountError::InvalidToken(refused).into())
    }

    /// `POST /realtime/tickets`: a single-use ticket for a browser's upgrade.
    pub(super) fn realtime_ticket(
        &self,
        request: &Request<'_>,
        bearer: Option<Bearer>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'static>> {
        let bearer = bearer.ok_or(AccountError::MissingToken)?;
        let ticket = self
            .realtime
            .issue_ticket(bearer.account)
            .ok_or(HttpError::Overloaded)?;
        #[derive(Serialize)]
        struct TicketDocument<'a> {
            ticket: &'a str,
            expires_in: u64,
        }
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        wire::encode(
            format,
            &TicketDocument {
                ticket: &ticket,
                expires_in: realtime::TICKET_LIFETIME.as_secs(),
            },
            body,
        );
        Ok(Reply::new(StatusCode::CREATED, format.content_type()))
    }

    /// `GET /matches/{id}`: the public transcript.
    pub(super) fn match_transcript(
        &self,
        request: &Request<'_>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'static>> {
        let id = Route::match_id(request.path);
        let transcript = self
            .realtime
            .transcript(id)
            .ok_or(HttpError::MatchNotFound)?;
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        wire::encode(format, &*transcript, body);
        Ok(Reply::new(StatusCode::OK, format.content_type()))
    }

    /// `GET /me/matches`: the bearer's rating and real-time record.
    pub(super) fn my_matches(
        &self,
        request: &Request<'_>,
        bearer: Option<Bearer>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'static>> {
        let bearer = bearer.ok_or(AccountError::MissingToken)?;
        let record = self.realtime.record(&bearer.account);
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        wire::encode(format, &record, body);
        Ok(Reply::new(StatusCode::OK, format.content_type()))
    }
}

/// Who is playing, for `GET /presence` and `GET /presence/{id}`.
#[derive(serde::Serialize)]
struct PresenceCounts {
    online: u64,
    in_queue: u64,
    in_match: u64,
    matches_running: u64,
}

#[derive(serde::Serialize)]
struct AccountPresence<'a> {
    account: &'a str,
    status: &'static str,
}

/// One account's presence as an answer.
pub(super) fn presence_reply(
    account: &AccountId,
    status: crate::realtime::Presence,
    format: wire::Format,
    body: &mut Vec<u8>,
) -> Reply {
    let document = AccountPresence {
        account: account.as_str(),
        status: status.name(),
    };
    wire::encode(format, &document, body);
    Reply::new(StatusCode::OK, format.content_type())
}

impl App {
    /// `GET /presence`: players online, queued and in a match, over every instance (as of
    /// the latest census, at most a second old).
    pub(super) fn presence(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
        let [online, in_queue, in_match, matches_running] = self.realtime.presence();
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        wire::encode(
            format,
            &PresenceCounts {
                online,
                in_queue,
                in_match,
                matches_running,
            },
            body,
        );
        Reply::new(StatusCode::OK, format.content_type())
    }

    /// `GET /presence/{id}`: answered here when the account is connected here (or nothing is
    /// shared); else the account whose presence to read from Redis.
    pub(super) fn account_presence(
        &self,
        request: &Request<'_>,
        body: &mut Vec<u8>,
    ) -> Result<Result<Reply, AccountId>, ApiError<'static>> {
        let id = Route::presence_id(request.path);
        let account = AccountId::from(id).map_err(|_| HttpError::InvalidPlayerId)?;
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        match self.realtime.presence_here(&account) {
            Some(status) => Ok(Ok(presence_reply(&account, status, format, body))),
            None => Ok(Err(account)),
        }
    }
}

/// `GET /asyncapi.json`.
pub(super) fn asyncapi(body: &mut Vec<u8>) -> Reply {
    body.extend_from_slice(ASYNCAPI.as_bytes());
    Reply::new(StatusCode::OK, wire::JSON)
}

#[cfg(test)]
mod asyncapi_tests;

//! `POST /play`: one round against the computer. The handler decodes and validates the play;
//! a play under an `Idempotency-Key` is handed to [`super::deferred`], any other is answered at
//! once. [`play_round`] is the core both share: the round, its answer written in the request's
//! format, and the record to store for a named player.

use http::StatusCode;

use super::Request;
use super::app::App;
use super::deferred::{Deferred, Handled, IdempotentPlay, Job};
use super::players::is_valid_player_id;
use super::problem::{ApiError, HttpError, StoreRefusal};
use super::reply::{HeaderValue, Reply, Stamp};
use super::wire::{self, PlayRequest, PlayResponse};
use crate::accounts::Bearer;
use crate::accounts::fairness::FairPlay;
use crate::game::{self, Choice, GameError, random};
use crate::protection::faults::Point;
use crate::store::Store;
use crate::store::idempotency::{self, Begin, StoredAnswer};
use crate::store::model::{GameRecord, PlayerId};
use crate::telemetry::metrics;

impl App {
    /// `POST /play`.
    pub(super) fn play<'a>(
        &self,
        request: &Request<'a>,
        bearer: Option<Bearer>,
        stamp: Stamp,
        body: &mut Vec<u8>,
    ) -> Result<Handled, ApiError<'a>> {
        // Inner steps are timed only when spans are exported: two clock reads per step
        // are not free, and nothing else reads them.
        let injection = self.faults.inject(Point::Play);
        if injection != Default::default() {
            metrics::with_shard(|shard| {
                shard.faults_injected[0].add(u64::from(!injection.delay.is_zero()));
                shard.faults_injected[1].add(u64::from(injection.fail));
            });
        }
        if injection.fail {
            return Err(HttpError::InjectedFault.into());
        }
        if injection.delay > self.request_timeout {
            metrics::with_shard(|shard| shard.timeouts[1].add(1));
            if crate::telemetry::log_this_refusal() {
                tracing::warn!(timeout = ?self.request_timeout, "answer would outlast the request timeout (1% are logged)");
            }
            return Err(HttpError::HandlerTimeout.into());
        }
        let steps = self.observability.exporting();
        let started = steps.then(tokio::time::Instant::now);
        let request_format = wire::request_format(request.headers.content_type)?;
        let response_format = wire::response_format(request.headers.accept, request_format);
        let play: PlayRequest<'a> = wire::decode(request_format, request.body)?;
        let choice = Choice::parse(&play.choice).map_err(|_| HttpError::InvalidChoice {
            given: borrowed_or_placeholder(&play.choice),
        })?;
        // The bearer's account, or (behind an authenticating gateway only) the claimed id.
        // Otherwise a claimed id is ignored: it would let anyone play as anyone.
        let player = match bearer {
            Some(bearer) => PlayerId::from(&bearer.account).ok(),
            None if self.trust_player_header => {
                player_of(play.player_id.as_deref(), request.headers.player_id)?
                    .and_then(|player| PlayerId::from(player).ok())
            }
            None => None,
        };
        if let Some(key) = request.headers.idempotency_key {
            if !idempotency::is_valid_key(key) {
                return Err(HttpError::InvalidIdempotencyKey.into());
            }
            // Validated above as visible ASCII.
            let key = String::from_utf8_lossy(key);
            let scope = match player {
                Some(player) => format!("p:{player}:{key}"),
                None => format!("c:{}:{key}", self.client_address(request)),
            };
            let job = Job::IdempotentPlay(IdempotentPlay {
                key: scope,
                fingerprint: idempotency::fingerprint(request.body),
                player,
                account: bearer.map(|bearer| bearer.account),
                choice,
                format: response_format,
            });
            return Ok(Handled::Deferred(Deferred::new(job, stamp)));
        }
        let decoded = steps.then(tokio::time::Instant::now);
        let fair = match bearer {
            Some(bearer) => Some(
                self.fairness
                    .draw(&bearer.account)
                    .map_err(GameError::from)?,
            ),
            None => None,
        };
        let record = play_round(&self.store, choice, fair, player, response_format, body)?;
        let judged = steps.then(tokio::time::Instant::now);
        if let Some(record) = record {
            self.store.record(record);
        }
        if let (Some(started), Some(decoded), Some(judged)) = (started, decoded, judged) {
            let encoded = tokio::time::Instant::now();
            self.observability
                .step(&stamp.trace, "decode", started, decoded);
            self.observability
                .step(&stamp.trace, "judge", decoded, judged);
            self.observability
                .step(&stamp.trace, "encode", judged, encoded);
        }
        let mut reply = Reply::new(StatusCode::OK, response_format.content_type());
        reply.delay = injection.delay;
        Ok(Handled::Ready(reply, None))
    }
}

/// The error echoes the client's choice only when it borrows from the request; a choice that
/// needed unescaping (and so lives in a temporary) is described instead of copied.
fn borrowed_or_placeholder<'a>(choice: &std::borrow::Cow<'a, str>) -> &'a str {
    match choice {
        std::borrow::Cow::Borrowed(text) => text,
        std::borrow::Cow::Owned(_) => "(escaped text)",
    }
}

/// The player a play names: `player_id` in the body, `X-Player-Id`, or both when they agree.
fn player_of<'a>(
    in_body: Option<&'a str>,
    in_header: Option<&'a [u8]>,
) -> Result<Option<&'a str>, ApiError<'static>> {
    let header = in_header
        .map(|id| std::str::from_utf8(id).map_err(|_| HttpError::InvalidPlayerId))
        .transpose()?;
    let player = match (in_body, header) {
        (Some(body), Some(header)) if body != header => {
            return Err(HttpError::InvalidPlayerId.into());
        }
        (body, header) => body.or(header),
    };
    match player {
        Some(id) if !is_valid_player_id(id.as_bytes()) => Err(HttpError::InvalidPlayerId.into()),
        player => Ok(player),
    }
}

/// Plays one round and writes its answer into `body`; returns the record to store when
/// the player is named. `fair` is an account's provably fair draw (the move and its nonce);
/// without one the computer's move comes from the OS random source.
pub(super) fn play_round(
    store: &Store,
    choice: Choice,
    fair: Option<(Choice, u64)>,
    player: Option<PlayerId>,
    format: wire::Format,
    body: &mut Vec<u8>,
) -> Result<Option<GameRecord>, ApiError<'static>> {
    let computer = match fair {
        Some((computer, _)) => computer,
        None => random::computer_choice().map_err(GameError::from)?,
    };
    let outcome = game::judge(choice, computer);
    let game_id = store
        .game_ids()
        .next()
        .ok_or(StoreRefusal::GameIdUnavailable)?;
    let mut response = PlayResponse::new(game_id.0, outcome);
    response.nonce = fair.map(|(_, nonce)| nonce);
    wire::encode_play(format, &response, body);
    metrics::with_shard(|shard| shard.rounds[choice as usize][computer as usize].add(1));
    tracing::debug!(player = %outcome.player, computer = %outcome.computer, winner = outcome.winner.name(), "round played");
    Ok(player.map(|player| GameRecord {
        game_id,
        player,
        player_choice: choice,
        computer_choice: computer,
        winner: outcome.winner,
    }))
}

/// A play under an `Idempotency-Key`: runs once, replays after.
pub(super) async fn idempotent_play(
    store: &Store,
    fairness: &FairPlay,
    play: IdempotentPlay,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    match store
        .begin(&play.key, &play.fingerprint)
        .await
        .map_err(StoreRefusal::from)?
    {
        Begin::InFlight => return Err(StoreRefusal::IdempotencyKeyInFlight.into()),
        Begin::Mismatch => return Err(StoreRefusal::IdempotencyKeyReused.into()),
        Begin::Replay(answer) => {
            body.clear();
            body.extend_from_slice(&answer.body);
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            return Ok(Reply::new(status, answer.format.content_type())
                .with_header("idempotent-replayed", HeaderValue::Static("true")));
        }
        Begin::Started => {}
    }
    // Drawn only once the key is this play's, so a replay does not spend a nonce.
    let fair = match &play.account {
        Some(account) => match fairness.draw(account) {
            Ok(draw) => Some(draw),
            Err(error) => {
                store.abort(&play.key).await;
                return Err(GameError::from(error).into());
            }
        },
        None => None,
    };
    let record = match play_round(store, play.choice, fair, play.player, play.format, body) {
        Ok(record) => record,
        Err(error) => {
            store.abort(&play.key).await;
            return Err(error);
        }
    };
    let answer = StoredAnswer {
        status: StatusCode::OK.as_u16(),
        format: play.format,
        body: body.clone(),
    };
    if let Err(error) = store.complete(&play.key, &play.fingerprint, &answer).await {
        // Not kept, so not counted: the client's retry with the same key plays again.
        store.abort(&play.key).await;
        return Err(StoreRefusal::from(error).into());
    }
    if let Some(record) = record {
        store.record(record);
    }
    Ok(Reply::new(StatusCode::OK, play.format.content_type()))
}

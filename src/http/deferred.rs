//! Requests whose answer waits on the store: stats, history, leaderboards, ranks, and plays
//! under an `Idempotency-Key`.
//!
//! [`App::handle_admitted`] validates such a request without waiting and hands back a
//! [`Deferred`] that owns what it needs; the engine awaits [`App::finish`] for it, so the
//! connection's buffers stay the engine's and the request path of an ordinary play never
//! touches an `.await` on the store.

use std::time::Duration;

use http::StatusCode;

use super::problem::ApiError;
use super::problem::store_unavailable;
use super::reply::{HeaderValue, Reply, Stamp};
use super::wire;
use super::{leaderboard, play, players};
use crate::game::Choice;
use crate::protection::concurrency::Permit;
use crate::store::Store;
use crate::store::idempotency::{Begin, Fingerprint, StoredAnswer};
use crate::store::model::{PlayerId, Window};
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics;

/// A request whose answer waits on the store: the engine awaits [`App::finish`] for it.
/// Owns what it needs, so the engine's buffers are free meanwhile.
pub struct Deferred {
    pub(super) job: Job,
    pub(super) stamp: Stamp,
    pub(super) permit: Option<Permit>,
}

impl Deferred {
    /// A request to be answered by `job`; the caller adds the request's permit.
    pub(super) fn new(job: Job, stamp: Stamp) -> Self {
        Self {
            job,
            stamp,
            permit: None,
        }
    }

    /// The answer is to a `HEAD` request: the engine writes its head only.
    pub fn head_only(&self) -> bool {
        self.stamp.method_index == metrics::method_index(&http::Method::HEAD)
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("stamp", &self.stamp)
            .finish_non_exhaustive()
    }
}

pub(super) enum Job {
    Stats {
        player: String,
        format: wire::Format,
    },
    Games {
        player: String,
        limit: usize,
        format: wire::Format,
    },
    Rank {
        player: String,
        window: Window,
        format: wire::Format,
    },
    Leaderboard {
        window: Window,
        limit: usize,
        format: wire::Format,
    },
    IdempotentPlay(IdempotentPlay),
}

pub(super) struct IdempotentPlay {
    /// `<scope>:<Idempotency-Key>`: keys are per player, or per client address when anonymous.
    pub(super) key: String,
    pub(super) fingerprint: Fingerprint,
    pub(super) player: Option<PlayerId>,
    pub(super) choice: Choice,
    pub(super) format: wire::Format,
}

/// What [`App::handle_admitted`] made of a request.
#[derive(Debug)]
pub enum Handled {
    /// Answered: the body is in the caller's buffer.
    Ready(Reply, Option<Permit>),
    /// To be answered by awaiting [`App::finish`].
    Deferred(Deferred),
}

/// Finishes a request that waits on the store, within `request_timeout`: its reply, and its
/// record for [`super::App::request_finished`] once the reply is written.
pub(super) async fn finish(
    store: &Store,
    request_timeout: Duration,
    deferred: Deferred,
    body: &mut Vec<u8>,
) -> (Reply, Completed) {
    body.clear();
    let result = match tokio::time::timeout(request_timeout, run(store, deferred.job, body)).await {
        Ok(result) => result,
        Err(_) => {
            metrics::with_shard(|shard| shard.timeouts[1].add(1));
            Err(ApiError::HandlerTimeout)
        }
    };
    // An error here is answered at once: a timeout has already expired.
    let reply = result.unwrap_or_else(|error| error.write_reply(body));
    let reply = deferred.stamp.seal(reply, body.len());
    let completed = deferred
        .stamp
        .completed(&reply, body.len(), deferred.permit);
    (reply, completed)
}

/// Runs the part of a request that waits on the store.
async fn run(store: &Store, job: Job, body: &mut Vec<u8>) -> Result<Reply, ApiError<'static>> {
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
        } => leaderboard::board(store, window, limit, format, body).await,
        Job::IdempotentPlay(play) => idempotent_play(store, play, body).await,
    }
}

/// A play under an `Idempotency-Key`: runs once, replays after.
async fn idempotent_play(
    store: &Store,
    play: IdempotentPlay,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    match store
        .begin(&play.key, &play.fingerprint)
        .await
        .map_err(store_unavailable)?
    {
        Begin::InFlight => return Err(ApiError::IdempotencyKeyInFlight),
        Begin::Mismatch => return Err(ApiError::IdempotencyKeyReused),
        Begin::Replay(answer) => {
            body.clear();
            body.extend_from_slice(&answer.body);
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            return Ok(Reply::new(status, answer.format.content_type())
                .with_header("idempotent-replayed", HeaderValue::Static("true")));
        }
        Begin::Started => {}
    }
    let record = match play::play_round(store, play.choice, play.player, play.format, body) {
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
        return Err(store_unavailable(error));
    }
    if let Some(record) = record {
        store.record(record);
    }
    Ok(Reply::new(StatusCode::OK, play.format.content_type()))
}

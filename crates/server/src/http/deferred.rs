//! What is left to do for a request whose answer waits on the store (stats, history,
//! leaderboards, ranks, and plays under an `Idempotency-Key`) or on the accounts (the display
//! names of a season board).
//!
//! [`super::App::handle_admitted`] validates such a request without waiting and hands back a
//! [`Deferred`] that owns what it needs; the engine awaits [`super::App::finish`] for it, so the
//! connection's buffers stay the engine's and the request path of an ordinary play never
//! touches an `.await` on the store.

use super::reply::{Reply, Stamp};
use super::wire::{self, Format};
use crate::accounts::Bearer;
use crate::game::Choice;
use crate::protection::concurrency::Permit;
use crate::protection::rate_limit::ClientKey;
use crate::store::idempotency::Fingerprint;
use crate::store::model::{PlayerId, Window};
use crate::telemetry::metrics;

/// A request whose answer waits on the store: the engine awaits [`super::App::finish`] for it.
/// Owns what it needs, so the engine's buffers are free meanwhile.
pub struct Deferred {
    pub(super) job: Job,
    pub(super) stamp: Stamp,
    pub(super) permit: Option<Permit>,
    /// The allowed origin the request came from (`http::cors`), whose CORS headers the answer
    /// carries; a byte, so a waiting request grows by nothing.
    pub(super) cors: super::cors::AllowedOrigin,
}

impl Deferred {
    /// A request to be answered by `job`; the caller adds the request's permit and CORS
    /// headers.
    pub(super) fn new(job: Job, stamp: Stamp) -> Self {
        Self {
            job,
            stamp,
            permit: None,
            cors: super::cors::AllowedOrigin::NONE,
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
    /// A season board, read from real-time play; waits for the display names.
    SeasonBoard {
        kind: crate::seasons::BoardKind,
        board: crate::seasons::Board,
        format: wire::Format,
    },
    /// An account's presence, which another instance published in Redis.
    Presence {
        account: crate::accounts::AccountId,
        format: wire::Format,
    },
    IdempotentPlay(IdempotentPlay),
    Accounts(AccountJob),
    /// A request whose access token this instance must look up in Redis first; then it is
    /// handled from the start.
    Identify(Box<super::OwnedRequest>),
}

pub(super) struct IdempotentPlay {
    /// `<scope>:<Idempotency-Key>`: keys are per player, or per client address when anonymous.
    pub(super) key: String,
    pub(super) fingerprint: Fingerprint,
    pub(super) player: Option<PlayerId>,
    /// The bearer's account: its play is drawn provably fair.
    pub(super) account: Option<crate::accounts::AccountId>,
    pub(super) choice: Choice,
    pub(super) format: wire::Format,
}

/// What [`super::App::handle_admitted`] made of a request.
#[derive(Debug)]
pub enum Handled {
    /// Answered: the body is in the caller's buffer.
    Ready(Reply, Option<Permit>),
    /// To be answered by awaiting [`super::App::finish`].
    Deferred(Deferred),
}

/// Account work that waits: a password hash, the store, or accounts in Redis. `handover` says
/// whether the session goes to the client as tokens in the body or as the web page's cookie.
pub(super) enum AccountJob {
    Guest {
        format: Format,
        handover: Handover,
    },
    DeviceSignIn {
        secret: String,
        format: Format,
        handover: Handover,
    },
    Refresh {
        token: String,
        format: Format,
        handover: Handover,
    },
    /// Ends one of the bearer's sessions (its current one on sign-out).
    EndSession {
        bearer: Bearer,
        session: String,
        handover: Handover,
    },
    /// Signs the web page out when its cookie no longer authenticates (an expired access
    /// token, a session already ended): ends the session its refresh token still names, if
    /// any, and clears the cookie either way.
    EndCookieSession {
        refresh_token: Option<String>,
        secure: bool,
    },
    Me {
        bearer: Bearer,
        format: Format,
    },
    Rename {
        bearer: Bearer,
        name: String,
        format: Format,
    },
    Sessions {
        bearer: Bearer,
        format: Format,
    },
    Register {
        username: String,
        password: String,
        format: Format,
        handover: Handover,
    },
    SignIn {
        username: String,
        /// The username's key for the front door, as it was admitted.
        key: String,
        password: String,
        address: ClientKey,
        format: Format,
        handover: Handover,
    },
    Upgrade {
        bearer: Bearer,
        username: String,
        password: String,
        format: Format,
    },
    Export {
        bearer: Bearer,
        format: Format,
    },
    Delete {
        bearer: Bearer,
        handover: Handover,
    },
    /// A repeated deletion: erase the (already deleted) account's games again.
    Erase {
        account: crate::accounts::AccountId,
        handover: Handover,
    },
}

/// How a session reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handover {
    /// Access and refresh tokens in the answer's body (programs).
    Tokens,
    /// The web page's HttpOnly cookie (`X-Session: cookie`), `Secure` or not
    /// (`http::session_cookie`); no token in the body.
    Cookie { secure: bool },
}

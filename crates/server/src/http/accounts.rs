//! The account resources: `/accounts/guest`, `/accounts`, `/sessions…` and `/me…`.
//!
//! A request is parsed and validated at once; its work is handed back as an [`AccountJob`]
//! and finished by [`App::run_account_job`], since all of it may wait: on a password hash, on
//! the store, or on Redis when accounts live there. Sign-in and account creation pass the
//! front door's limits ([`crate::protection::front_door`]) first.
//!
//! A request with `X-Session: cookie` (the web page) gets its session as an HttpOnly cookie
//! instead of tokens in the body, refreshes and signs out with that cookie, and passes the CSRF
//! rule first ([`super::session_cookie`]).

use std::borrow::Cow;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::Request;
use super::app::App;
use super::deferred::{AccountJob, Deferred, Handled, Handover, Job};
use super::error::HttpError;
use super::problem::{ApiError, StoreRefusal};
use super::reply::{Reply, Stamp};
use super::session_cookie;
use super::wire::{self, Format};
use crate::accounts::token::TokenText;
use crate::accounts::username::Username;
use crate::accounts::{
    AccountError, AccountId, AccountView, Bearer, IssuedSession, SessionView, TokenRefused,
};
use crate::api::Route;
use crate::protection::front_door::Throttled;
use crate::protection::rate_limit::ClientKey;
use crate::store::model::GameSummary;
use crate::telemetry::metrics;

/// Most characters in a display name.
const MAX_DISPLAY_NAME_CHARS: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials<'a> {
    #[serde(borrow)]
    username: Cow<'a, str>,
    #[serde(borrow)]
    password: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn<'a> {
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    password: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_secret: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest<'a> {
    #[serde(borrow)]
    refresh_token: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile<'a> {
    #[serde(borrow)]
    display_name: Cow<'a, str>,
}

#[derive(Serialize)]
struct AccountDocument<'a> {
    id: &'a str,
    display_name: &'a str,
    username: Option<&'a str>,
    guest: bool,
    created_at_ms: u64,
}

impl<'a> From<&'a AccountView> for AccountDocument<'a> {
    fn from(view: &'a AccountView) -> Self {
        Self {
            id: &view.id,
            display_name: &view.display_name,
            username: view.username.as_deref(),
            guest: view.guest,
            created_at_ms: view.created_ms,
        }
    }
}

/// A session as its client learns it. Handed over in the web page's cookie, it carries no
/// token: the page never holds one.
#[derive(Serialize)]
struct SessionDocument<'a> {
    session_id: &'a str,
    account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    session_expires_at_ms: u64,
}

impl<'a> SessionDocument<'a> {
    fn new(issued: &'a IssuedSession, handover: Handover) -> Self {
        let tokens = handover == Handover::Tokens;
        Self {
            session_id: &issued.session,
            account_id: &issued.account,
            token_type: tokens.then_some("Bearer"),
            access_token: tokens.then_some(issued.access_token.as_str()),
            expires_in: issued.expires_in,
            refresh_token: tokens.then_some(issued.refresh_token.as_str()),
            session_expires_at_ms: issued.session_expires_ms,
        }
    }
}

#[derive(Serialize)]
struct SignedIn<'a> {
    account: AccountDocument<'a>,
    session: SessionDocument<'a>,
    /// Only when a guest is created: the secret that signs it in again.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_secret: Option<&'a str>,
}

/// How the session of a request with `X-Session: cookie` reaches it, after the CSRF rule;
/// tokens in the body otherwise.
fn handover_for(request: &Request<'_>) -> Result<Handover, HttpError<'static>> {
    if !session_cookie::wants_cookie(request) {
        return Ok(Handover::Tokens);
    }
    session_cookie::check_same_origin(request).map_err(session_cookie::refused)?;
    Ok(Handover::Cookie {
        secure: session_cookie::secure(request),
    })
}

/// `reply` with the `Set-Cookie` that clears the page's cookie, when the session was the
/// page's.
fn clearing(reply: Reply, handover: Handover) -> Reply {
    match handover {
        Handover::Tokens => reply,
        Handover::Cookie { secure } => reply.with_header(
            "set-cookie",
            super::reply::HeaderValue::Static(session_cookie::cleared(secure)),
        ),
    }
}

#[derive(Serialize)]
struct SessionEntry<'a> {
    id: &'a str,
    current: bool,
    created_at_ms: u64,
    last_seen_at_ms: u64,
    expires_at_ms: u64,
}

#[derive(Serialize)]
struct SessionList<'a> {
    sessions: Vec<SessionEntry<'a>>,
}

fn session_entries<'a>(sessions: &'a [SessionView], current: &str) -> Vec<SessionEntry<'a>> {
    sessions
        .iter()
        .map(|session| SessionEntry {
            id: &session.id,
            current: session.id.as_str() == current,
            created_at_ms: session.created_ms,
            last_seen_at_ms: session.last_seen_ms,
            expires_at_ms: session.expires_ms,
        })
        .collect()
}

#[derive(Serialize)]
struct Export<'a> {
    account: AccountDocument<'a>,
    sessions: Vec<SessionEntry<'a>>,
    stats: Option<wire::StatsDocument<'a>>,
    games: Vec<GameSummary>,
}

/// The bearer, or 401 when the request carries no token.
fn require(bearer: Option<Bearer>) -> Result<Bearer, ApiError<'static>> {
    bearer.ok_or(ApiError::Accounts(AccountError::MissingToken))
}

impl App {
    /// Any of the account routes; `bearer` is the request's verified access token, if any.
    pub(super) fn account_route<'a>(
        &self,
        route: Route,
        request: &Request<'a>,
        bearer: Option<Bearer>,
        stamp: Stamp,
    ) -> Result<Handled, ApiError<'a>> {
        let address = ClientKey::Ip(self.client_address(request));
        let reads_body = matches!(*request.method, Method::POST | Method::PATCH | Method::PUT);
        let request_format = if reads_body {
            wire::request_format(request.headers.content_type)?
        } else {
            Format::Json
        };
        let format = wire::response_format(request.headers.accept, request_format);
        let handover = handover_for(request)?;
        let later = |job| Ok(Handled::Deferred(Deferred::new(Job::Accounts(job), stamp)));
        match route {
            Route::GuestAccounts => {
                self.admit_creation(address)?;
                later(AccountJob::Guest { format, handover })
            }
            Route::Accounts => {
                let credentials: Credentials<'_> = wire::decode(request_format, request.body)?;
                self.admit_creation(address)?;
                later(AccountJob::Register {
                    username: credentials.username.into_owned(),
                    password: credentials.password.into_owned(),
                    format,
                    handover,
                })
            }
            Route::Sessions => {
                let sign_in: SignIn<'_> = wire::decode(request_format, request.body)?;
                match (sign_in.username, sign_in.password, sign_in.device_secret) {
                    (Some(username), Some(password), None) => {
                        let key = Username::parse(&username)
                            .map_or_else(|_| username.to_lowercase(), |name| name.key().to_owned());
                        self.front_door
                            .admit_login(&key, address)
                            .map_err(sign_in_throttled)?;
                        later(AccountJob::SignIn {
                            username: username.into_owned(),
                            key,
                            password: password.into_owned(),
                            address,
                            format,
                            handover,
                        })
                    }
                    (None, None, Some(secret)) => {
                        self.front_door
                            .admit_device_login(address)
                            .map_err(sign_in_throttled)?;
                        later(AccountJob::DeviceSignIn {
                            secret: secret.into_owned(),
                            format,
                            handover,
                        })
                    }
                    _ => Err(HttpError::InvalidParameter {
                        name: "body",
                        reason: "send either username and password, or device_secret",
                    }
                    .into()),
                }
            }
            // The page's refresh token is the one its cookie's seed stands for; no body is read.
            Route::SessionRefresh if handover != Handover::Tokens => {
                let token = match session_cookie::seed(request) {
                    Some(Some(seed)) => seed.refresh_token(),
                    Some(None) => {
                        return Err(AccountError::InvalidToken(TokenRefused::Unknown).into());
                    }
                    None => return Err(AccountError::MissingSessionCookie.into()),
                };
                later(AccountJob::Refresh {
                    token: String::from_utf8_lossy(token.as_bytes()).into_owned(),
                    format,
                    handover,
                })
            }
            Route::SessionRefresh => {
                let refresh: RefreshRequest<'_> = wire::decode(request_format, request.body)?;
                later(AccountJob::Refresh {
                    token: refresh.refresh_token.into_owned(),
                    format,
                    handover,
                })
            }
            Route::CurrentSession => match (bearer, handover) {
                (Some(bearer), _) => later(AccountJob::EndSession {
                    bearer,
                    session: bearer.session.as_str().to_owned(),
                    handover,
                }),
                // The page signs out whatever state its cookie is in (the router lets a cookie
                // that no longer authenticates through to here).
                (None, Handover::Cookie { secure }) => later(AccountJob::EndCookieSession {
                    refresh_token: session_cookie::seed(request).flatten().map(|seed| {
                        String::from_utf8_lossy(seed.refresh_token().as_bytes()).into_owned()
                    }),
                    secure,
                }),
                (None, Handover::Tokens) => Err(AccountError::MissingToken.into()),
            },
            Route::Me if *request.method == Method::DELETE => {
                // A retry of a deletion: the token died with the account; the games are erased
                // again, in case the first try failed there.
                if bearer.is_none()
                    && let Some(account) = self.deleted_account_of(request)
                {
                    return later(AccountJob::Erase { account, handover });
                }
                later(AccountJob::Delete {
                    bearer: require(bearer)?,
                    handover,
                })
            }
            Route::Me if *request.method == Method::PATCH => {
                let bearer = require(bearer)?;
                let profile: Profile<'_> = wire::decode(request_format, request.body)?;
                let name = display_name(&profile.display_name)?;
                later(AccountJob::Rename {
                    bearer,
                    name,
                    format,
                })
            }
            Route::Me => later(AccountJob::Me {
                bearer: require(bearer)?,
                format,
            }),
            Route::MyCredentials => {
                let bearer = require(bearer)?;
                let credentials: Credentials<'_> = wire::decode(request_format, request.body)?;
                later(AccountJob::Upgrade {
                    bearer,
                    username: credentials.username.into_owned(),
                    password: credentials.password.into_owned(),
                    format,
                })
            }
            Route::MyExport => later(AccountJob::Export {
                bearer: require(bearer)?,
                format,
            }),
            Route::MySessions => later(AccountJob::Sessions {
                bearer: require(bearer)?,
                format,
            }),
            Route::MySession => {
                let bearer = require(bearer)?;
                let session = Route::session_id(request.path);
                // Ending the page's own session this way signs it out: its cookie goes too.
                let handover = if session == bearer.session.as_str() {
                    handover
                } else {
                    Handover::Tokens
                };
                later(AccountJob::EndSession {
                    bearer,
                    session: session.to_owned(),
                    handover,
                })
            }
            _ => Err(HttpError::NotFound.into()),
        }
    }

    /// Runs account work that waits.
    pub(super) async fn run_account_job(
        &self,
        job: AccountJob,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'static>> {
        match job {
            AccountJob::Guest { format, handover } => {
                let (session, device_secret) = self.accounts.create_guest().await?;
                // The page's guest lives as long as its session: a device secret is a second
                // way into the account, and the page could only keep it where scripts read.
                let device_secret = (handover == Handover::Tokens).then_some(device_secret);
                self.signed_in(&session, device_secret.as_deref(), handover, format, body)
                    .await?;
                Ok(self.handing_over(
                    Reply::new(StatusCode::CREATED, format.content_type()),
                    &session,
                    handover,
                ))
            }
            AccountJob::DeviceSignIn {
                secret,
                format,
                handover,
            } => {
                let session = self.accounts.login_device(secret.as_bytes()).await?;
                self.signed_in(&session, None, handover, format, body)
                    .await?;
                Ok(self.handing_over(
                    Reply::new(StatusCode::OK, format.content_type()),
                    &session,
                    handover,
                ))
            }
            AccountJob::Refresh {
                token,
                format,
                handover,
            } => {
                let session = self.accounts.refresh(token.as_bytes()).await?;
                wire::encode(format, &SessionDocument::new(&session, handover), body);
                Ok(self.handing_over(
                    Reply::new(StatusCode::OK, format.content_type()),
                    &session,
                    handover,
                ))
            }
            AccountJob::EndSession {
                bearer,
                session,
                handover,
            } => {
                self.accounts.end_session(&bearer.account, &session).await?;
                Ok(clearing(
                    Reply::new(StatusCode::NO_CONTENT, wire::JSON),
                    handover,
                ))
            }
            AccountJob::EndCookieSession {
                refresh_token,
                secure,
            } => {
                // Trading the refresh token names its session (and ends all of it, should the
                // token be a spent one); then the session is ended. A token that names none
                // leaves nothing to end.
                if let Some(token) = refresh_token {
                    match self.accounts.refresh(token.as_bytes()).await {
                        Ok(issued) => {
                            self.accounts
                                .end_session(&issued.account, &issued.session)
                                .await?;
                        }
                        Err(AccountError::InvalidToken(_)) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                Ok(clearing(
                    Reply::new(StatusCode::NO_CONTENT, wire::JSON),
                    Handover::Cookie { secure },
                ))
            }
            AccountJob::Me { bearer, format } => {
                self.write_me(&bearer, format, body).await?;
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Rename {
                bearer,
                name,
                format,
            } => {
                self.accounts
                    .set_display_name(&bearer.account, name)
                    .await?;
                self.write_me(&bearer, format, body).await?;
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Sessions { bearer, format } => {
                let sessions = self.accounts.sessions(&bearer.account).await?;
                let list = SessionList {
                    sessions: session_entries(&sessions, &bearer.session),
                };
                wire::encode(format, &list, body);
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Register {
                username,
                password,
                format,
                handover,
            } => {
                let session = self.accounts.register(&username, password).await?;
                self.signed_in(&session, None, handover, format, body)
                    .await?;
                Ok(self.handing_over(
                    Reply::new(StatusCode::CREATED, format.content_type()),
                    &session,
                    handover,
                ))
            }
            AccountJob::SignIn {
                username,
                key,
                password,
                address,
                format,
                handover,
            } => {
                let result = self.accounts.login_password(&username, password).await;
                self.front_door.record_login(&key, address, result.is_ok());
                let session = result?;
                self.signed_in(&session, None, handover, format, body)
                    .await?;
                Ok(self.handing_over(
                    Reply::new(StatusCode::OK, format.content_type()),
                    &session,
                    handover,
                ))
            }
            AccountJob::Upgrade {
                bearer,
                username,
                password,
                format,
            } => {
                let view = self
                    .accounts
                    .upgrade(&bearer.account, &username, password)
                    .await?;
                wire::encode(format, &AccountDocument::from(&view), body);
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Export { bearer, format } => {
                let view = self
                    .accounts
                    .me(&bearer.account)
                    .await?
                    .ok_or(AccountError::MissingToken)?;
                let stats = self
                    .store
                    .stats(&bearer.account)
                    .await
                    .map_err(StoreRefusal::from)?;
                let games = self
                    .store
                    .games(&bearer.account, usize::MAX)
                    .await
                    .map_err(StoreRefusal::from)?
                    .unwrap_or_default();
                let sessions = self.accounts.sessions(&bearer.account).await?;
                let export = Export {
                    account: (&view).into(),
                    sessions: session_entries(&sessions, &bearer.session),
                    stats: stats
                        .as_ref()
                        .map(|stats| wire::StatsDocument::new(&bearer.account, stats)),
                    games,
                };
                wire::encode(format, &export, body);
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Delete { bearer, handover } => {
                // The account first: its tokens die, so no play can be recorded for it while
                // its games are erased. If the store fails, a retry with the same token erases
                // them (the tombstone remembers the account).
                self.accounts.delete(&bearer.account).await?;
                self.fairness.forget(&bearer.account);
                self.store
                    .forget_player(&bearer.account)
                    .await
                    .map_err(StoreRefusal::from)?;
                Ok(clearing(
                    Reply::new(StatusCode::NO_CONTENT, wire::JSON),
                    handover,
                ))
            }
            AccountJob::Erase { account, handover } => {
                self.store
                    .forget_player(&account)
                    .await
                    .map_err(StoreRefusal::from)?;
                Ok(clearing(
                    Reply::new(StatusCode::NO_CONTENT, wire::JSON),
                    handover,
                ))
            }
        }
    }

    /// The account and its new session; `device_secret` only for a guest just created.
    async fn signed_in(
        &self,
        session: &IssuedSession,
        device_secret: Option<&str>,
        handover: Handover,
        format: Format,
        body: &mut Vec<u8>,
    ) -> Result<(), ApiError<'static>> {
        let view = self
            .accounts
            .me(&session.account)
            .await?
            .ok_or(AccountError::MissingToken)?;
        let document = SignedIn {
            account: (&view).into(),
            session: SessionDocument::new(session, handover),
            device_secret,
        };
        wire::encode(format, &document, body);
        Ok(())
    }

    /// `reply` handing `session` over: as is for tokens (they are in the body), with the
    /// page's `Set-Cookie` for the cookie.
    fn handing_over(&self, reply: Reply, session: &IssuedSession, handover: Handover) -> Reply {
        match handover {
            Handover::Tokens => reply,
            Handover::Cookie { secure } => reply.with_header(
                "set-cookie",
                super::reply::HeaderValue::SessionCookie(session_cookie::set(
                    session,
                    self.accounts.now_ms(),
                    secure,
                )),
            ),
        }
    }

    async fn write_me(
        &self,
        bearer: &Bearer,
        format: Format,
        body: &mut Vec<u8>,
    ) -> Result<(), ApiError<'static>> {
        let view = self
            .accounts
            .me(&bearer.account)
            .await?
            .ok_or(AccountError::MissingToken)?;
        wire::encode(format, &AccountDocument::from(&view), body);
        Ok(())
    }

    fn admit_creation(&self, address: ClientKey) -> Result<(), ApiError<'static>> {
        Ok(self
            .front_door
            .admit_creation(address)
            .map_err(AccountError::from)?)
    }

    fn deleted_account_of(&self, request: &Request<'_>) -> Option<AccountId> {
        let token = presented_access_token(request).ok().flatten()?;
        self.accounts.deleted_account(token.as_bytes()?)
    }
}

/// A sign-in the front door refused: counted, then answered 429.
fn sign_in_throttled(throttled: Throttled) -> ApiError<'static> {
    metrics::with_shard(|shard| shard.logins[2].add(1));
    AccountError::from(throttled).into()
}

/// A display name: 1 to 32 characters, trimmed, none of them a control character or an
/// invisible formatting one (bidirectional overrides, zero-width characters), which would let
/// a name pass for another on a board.
fn display_name(input: &str) -> Result<String, ApiError<'static>> {
    let name = input.trim();
    let count = name.chars().count();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{fff9}'..='\u{fffb}')
    };
    if count == 0 || count > MAX_DISPLAY_NAME_CHARS || name.chars().any(invisible) {
        return Err(HttpError::InvalidParameter {
            name: "display_name",
            reason: "use 1 to 32 characters, no control or invisible formatting characters",
        }
        .into());
    }
    Ok(name.to_owned())
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case, RFC 9110).
pub(super) fn bearer_token(header: Option<&[u8]>) -> Option<&[u8]> {
    let header = header?;
    let (scheme, token) = header.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// The access token a request presents: in `Authorization: Bearer`, or else the one the web
/// page's session cookie stands for.
pub(super) enum PresentedToken<'a> {
    Bearer(&'a [u8]),
    /// None for a cookie whose value is no session seed: refused as a token, never no one.
    Cookie(Option<TokenText>),
}

impl PresentedToken<'_> {
    /// The token's text, when it has one.
    pub(super) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            PresentedToken::Bearer(token) => Some(token),
            PresentedToken::Cookie(token) => token.as_ref().map(TokenText::as_bytes),
        }
    }
}

/// The request's access token, if it presents one; an `Authorization` header that is not
/// `Bearer <token>` is refused. Allocates nothing: it runs for every play.
#[inline]
pub(super) fn presented_access_token<'a>(
    request: &Request<'a>,
) -> Result<Option<PresentedToken<'a>>, TokenRefused> {
    if let Some(header) = request.headers.authorization {
        let token = bearer_token(Some(header)).ok_or(TokenRefused::Unknown)?;
        return Ok(Some(PresentedToken::Bearer(token)));
    }
    Ok(session_cookie::seed(request)
        .map(|seed| PresentedToken::Cookie(seed.map(|seed| seed.access_token()))))
}

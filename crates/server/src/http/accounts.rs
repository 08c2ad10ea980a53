//! The account resources: `/accounts/guest`, `/accounts`, `/sessions…` and `/me…`.
//!
//! A request is parsed and validated at once; its work is handed back as an [`AccountJob`]
//! and finished by [`App::run_account_job`], since all of it may wait: on a password hash, on
//! the store, or on Redis when accounts live there. Sign-in and account creation pass the
//! front door's limits ([`crate::protection::front_door`]) first.

use std::borrow::Cow;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::Request;
use super::app::App;
use super::deferred::{AccountJob, Deferred, Handled, Job};
use super::error::HttpError;
use super::problem::{ApiError, StoreRefusal};
use super::reply::{Reply, Stamp};
use super::wire::{self, Format};
use crate::accounts::username::Username;
use crate::accounts::{AccountError, AccountId, AccountView, Bearer, IssuedSession, SessionView};
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

#[derive(Serialize)]
struct SessionDocument<'a> {
    session_id: &'a str,
    account_id: &'a str,
    token_type: &'static str,
    access_token: &'a str,
    expires_in: u64,
    refresh_token: &'a str,
    session_expires_at_ms: u64,
}

impl<'a> From<&'a IssuedSession> for SessionDocument<'a> {
    fn from(issued: &'a IssuedSession) -> Self {
        Self {
            session_id: &issued.session,
            account_id: &issued.account,
            token_type: "Bearer",
            access_token: &issued.access_token,
            expires_in: issued.expires_in,
            refresh_token: &issued.refresh_token,
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
        let later = |job| Ok(Handled::Deferred(Deferred::new(Job::Accounts(job), stamp)));
        match route {
            Route::GuestAccounts => {
                self.admit_creation(address)?;
                later(AccountJob::Guest { format })
            }
            Route::Accounts => {
                let credentials: Credentials<'_> = wire::decode(request_format, request.body)?;
                self.admit_creation(address)?;
                later(AccountJob::Register {
                    username: credentials.username.into_owned(),
                    password: credentials.password.into_owned(),
                    format,
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
                        })
                    }
                    (None, None, Some(secret)) => {
                        self.front_door
                            .admit_device_login(address)
                            .map_err(sign_in_throttled)?;
                        later(AccountJob::DeviceSignIn {
                            secret: secret.into_owned(),
                            format,
                        })
                    }
                    _ => Err(HttpError::InvalidParameter {
                        name: "body",
                        reason: "send either username and password, or device_secret",
                    }
                    .into()),
                }
            }
            Route::SessionRefresh => {
                let refresh: RefreshRequest<'_> = wire::decode(request_format, request.body)?;
                later(AccountJob::Refresh {
                    token: refresh.refresh_token.into_owned(),
                    format,
                })
            }
            Route::CurrentSession => {
                let bearer = require(bearer)?;
                later(AccountJob::EndSession {
                    bearer,
                    session: bearer.session.as_str().to_owned(),
                })
            }
            Route::Me if *request.method == Method::DELETE => {
                // A retry of a deletion: the token died with the account; the games are erased
                // again, in case the first try failed there.
                if bearer.is_none()
                    && let Some(account) = self.deleted_account_of(request)
                {
                    return later(AccountJob::Erase { account });
                }
                later(AccountJob::Delete {
                    bearer: require(bearer)?,
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
                later(AccountJob::EndSession {
                    bearer,
                    session: Route::session_id(request.path).to_owned(),
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
            AccountJob::Guest { format } => {
                let (session, device_secret) = self.accounts.create_guest().await?;
                self.signed_in(&session, Some(&device_secret), format, body)
                    .await?;
                Ok(Reply::new(StatusCode::CREATED, format.content_type()))
            }
            AccountJob::DeviceSignIn { secret, format } => {
                let session = self.accounts.login_device(secret.as_bytes()).await?;
                self.signed_in(&session, None, format, body).await?;
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::Refresh { token, format } => {
                let session = self.accounts.refresh(token.as_bytes()).await?;
                wire::encode(format, &SessionDocument::from(&session), body);
                Ok(Reply::new(StatusCode::OK, format.content_type()))
            }
            AccountJob::EndSession { bearer, session } => {
                self.accounts.end_session(&bearer.account, &session).await?;
                Ok(Reply::new(StatusCode::NO_CONTENT, wire::JSON))
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
            } => {
                let session = self.accounts.register(&username, password).await?;
                self.signed_in(&session, None, format, body).await?;
                Ok(Reply::new(StatusCode::CREATED, format.content_type()))
            }
            AccountJob::SignIn {
                username,
                key,
                password,
                address,
                format,
            } => {
                let result = self.accounts.login_password(&username, password).await;
                self.front_door.record_login(&key, address, result.is_ok());
                let session = result?;
                self.signed_in(&session, None, format, body).await?;
                Ok(Reply::new(StatusCode::OK, format.content_type()))
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
            AccountJob::Delete { bearer } => {
                // The account first: its tokens die, so no play can be recorded for it while
                // its games are erased. If the store fails, a retry with the same token erases
                // them (the tombstone remembers the account).
                self.accounts.delete(&bearer.account).await?;
                self.fairness.forget(&bearer.account);
                self.store
                    .forget_player(&bearer.account)
                    .await
                    .map_err(StoreRefusal::from)?;
                Ok(Reply::new(StatusCode::NO_CONTENT, wire::JSON))
            }
            AccountJob::Erase { account } => {
                self.store
                    .forget_player(&account)
                    .await
                    .map_err(StoreRefusal::from)?;
                Ok(Reply::new(StatusCode::NO_CONTENT, wire::JSON))
            }
        }
    }

    /// The account and its new session; `device_secret` only for a guest just created.
    async fn signed_in(
        &self,
        session: &IssuedSession,
        device_secret: Option<&str>,
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
            session: session.into(),
            device_secret,
        };
        wire::encode(format, &document, body);
        Ok(())
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
        bearer_token(request.headers.authorization)
            .and_then(|token| self.accounts.deleted_account(token))
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

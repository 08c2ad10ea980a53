//! `GET /me/fairness` (the published seed hash, the client seed, the next nonce, revealed
//! seeds), `PUT /me/fairness` (a new client seed: reveals the current server seed) and
//! `POST /me/fairness/rotation` (reveals it and draws a new one). See
//! `accounts::fairness` for the scheme.

use std::borrow::Cow;

use http::{Method, StatusCode};
use serde::Deserialize;

use super::Request;
use super::app::App;
use super::problem::{ApiError, HttpError};
use super::reply::Reply;
use super::wire;
use crate::accounts::{AccountError, Bearer};
use crate::api::Route;
use crate::game::GameError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSeed<'a> {
    #[serde(borrow)]
    client_seed: Cow<'a, str>,
}

impl App {
    pub(super) fn fairness_route<'a>(
        &self,
        route: Route,
        request: &Request<'a>,
        bearer: Option<Bearer>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'a>> {
        let bearer = bearer.ok_or(AccountError::MissingToken)?;
        let account = &bearer.account;
        let view = match (route, request.method) {
            (Route::MyFairness, &Method::PUT) => {
                let format = wire::request_format(request.headers.content_type)?;
                let seed: ClientSeed<'_> = wire::decode(format, request.body)?;
                self.fairness
                    .rotate(account, Some(&seed.client_seed))
                    .map_err(GameError::from)?
                    .map_err(|_| HttpError::InvalidParameter {
                        name: "client_seed",
                        reason: "must be 1 to 64 printable ASCII characters",
                    })?
            }
            (Route::MyFairnessRotation, _) => self
                .fairness
                .rotate(account, None)
                .map_err(GameError::from)?
                .map_err(|_| HttpError::NotFound)?,
            _ => self.fairness.view(account).map_err(GameError::from)?,
        };
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        wire::encode(format, &view, body);
        Ok(Reply::new(StatusCode::OK, format.content_type()))
    }
}

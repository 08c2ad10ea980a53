//! CORS: off by default; `cors_allowed_origins` names the other sites whose pages may call the
//! API with bearer tokens.
//!
//! For an allowed origin, a preflight (`OPTIONS` on a route) is answered 204 with the route's
//! methods, the request headers a program sends (`Authorization`, `Content-Type`, `Accept`,
//! `Idempotency-Key`, `X-Request-Id`, `traceparent`) and a 10-minute `Access-Control-Max-Age`;
//! every other answer to it carries `Access-Control-Allow-Origin: <origin>`, `Vary: Origin` and
//! the response headers a program may read (`Retry-After`, the rate-limit headers, ...).
//! Anything else, and every origin when the list is empty, gets no CORS header at all: a
//! preflight is then the 405 any `OPTIONS` gets.
//!
//! Credentials are never allowed (no `Access-Control-Allow-Credentials`), and `X-Session` is
//! not among the allowed headers: another site's page can use bearer tokens, never the web
//! page's cookie session, so CORS cannot open a way around the CSRF rule
//! (`http::session_cookie`).
//!
//! The cost when the list is empty, on every request, is one comparison of the list's length
//! with zero: the answers' headers are `'static` slices built once, at start-up (their strings
//! are leaked, once per allowed origin), so an allowed request allocates nothing either.

use http::{Method, StatusCode};

use super::Request;
use super::reply::{HeaderValue, Reply};
use super::wire;
use crate::api::Route;

/// A list of headers as a reply carries them.
type Headers = &'static [(&'static str, HeaderValue)];

/// Response headers a cross-origin program may read besides the CORS-safelisted ones.
const EXPOSED: &str = "retry-after, ratelimit, ratelimit-policy, idempotent-replayed, \
     www-authenticate, allow, x-request-id, traceparent";

/// Request headers a cross-origin program may send besides the CORS-safelisted ones. Not
/// `x-session`: the cookie session is this site's page's alone.
const ALLOWED_HEADERS: &str =
    "authorization, content-type, accept, idempotency-key, x-request-id, traceparent";

/// How long a browser may keep a preflight's answer, in seconds: an origin taken off the list
/// is refused within it.
const MAX_AGE: &str = "600";

/// The origins other sites' pages may call the API from, with their answers' headers.
#[derive(Debug, Default)]
pub(super) struct Cors {
    /// At most [`MAX_ORIGINS`], so an entry is named by a byte.
    allowed: Vec<Allowed>,
}

/// Most allowed origins: a request's match is one byte ([`AllowedOrigin`]), which a request
/// waiting on the store carries at no cost in size.
const MAX_ORIGINS: usize = 255;

/// Which allowed origin a request came from, if any: what an answer's CORS headers are
/// chosen by. `NONE` for every request while the list is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct AllowedOrigin(u8);

impl AllowedOrigin {
    pub(super) const NONE: AllowedOrigin = AllowedOrigin(0);
}

#[derive(Debug)]
struct Allowed {
    origin: &'static str,
    /// On every answer but a preflight's.
    answer: Headers,
    /// On a preflight's answer (with the route's methods beside them).
    preflight: Headers,
}

impl Cors {
    /// CORS for `origins` (validated by the settings: lowercase `scheme://host[:port]`).
    /// Origins that are not plain visible ASCII are left out, with a warning: browsers send
    /// an origin in ASCII (a non-ASCII host as punycode), so such an entry could never match.
    pub(super) fn new(origins: &[String]) -> Cors {
        let mut allowed: Vec<Allowed> = Vec::with_capacity(origins.len());
        for origin in origins {
            if !origin.bytes().all(|byte| byte.is_ascii_graphic()) {
                tracing::warn!(
                    origin = %origin.escape_debug(),
                    "cors_allowed_origins: an origin must be ASCII as browsers send it (punycode for other hosts); left out"
                );
                continue;
            }
            if allowed.iter().any(|entry| entry.origin == origin) {
                continue;
            }
            if allowed.len() == MAX_ORIGINS {
                tracing::warn!(
                    origin = %origin,
                    "cors_allowed_origins: at most {MAX_ORIGINS} origins; the rest are left out"
                );
                break;
            }
            // Leaked once per allowed origin at start-up, so every answer can borrow them.
            let origin: &'static str = Box::leak(origin.clone().into_boxed_str());
            let allow_origin = ("access-control-allow-origin", HeaderValue::Static(origin));
            let vary = ("vary", HeaderValue::Static("origin"));
            allowed.push(Allowed {
                origin,
                answer: Box::leak(Box::new([
                    allow_origin,
                    vary,
                    (
                        "access-control-expose-headers",
                        HeaderValue::Static(EXPOSED),
                    ),
                ])),
                preflight: Box::leak(Box::new([
                    allow_origin,
                    vary,
                    (
                        "access-control-allow-headers",
                        HeaderValue::Static(ALLOWED_HEADERS),
                    ),
                    ("access-control-max-age", HeaderValue::Static(MAX_AGE)),
                ])),
            });
        }
        Cors { allowed }
    }

    fn find(&self, origin: Option<&[u8]>) -> Option<&Allowed> {
        let origin = origin?;
        self.allowed
            .iter()
            .find(|entry| entry.origin.as_bytes() == origin)
    }

    /// Which allowed origin `origin` (a request's `Origin`) is, if any.
    #[inline]
    pub(super) fn match_origin(&self, origin: Option<&[u8]>) -> AllowedOrigin {
        if self.allowed.is_empty() {
            return AllowedOrigin::NONE;
        }
        self.match_listed(origin)
    }

    #[inline(never)]
    fn match_listed(&self, origin: Option<&[u8]>) -> AllowedOrigin {
        let Some(origin) = origin else {
            return AllowedOrigin::NONE;
        };
        let index = self
            .allowed
            .iter()
            .position(|entry| entry.origin.as_bytes() == origin);
        // At most MAX_ORIGINS entries, so index + 1 fits a byte.
        index.map_or(AllowedOrigin::NONE, |index| AllowedOrigin(index as u8 + 1))
    }

    /// The CORS headers for an answer to a request from `origin`: none unless it is allowed.
    #[inline]
    pub(super) fn answer_headers(&self, origin: AllowedOrigin) -> Headers {
        match origin.0 {
            0 => &[],
            index => self
                .allowed
                .get(usize::from(index) - 1)
                .map_or(&[], |entry| entry.answer),
        }
    }

    /// The answer to a preflight of `route` from an allowed origin; None for any other
    /// request (which is then refused as it would be without CORS).
    pub(super) fn preflight(&self, route: Route, request: &Request<'_>) -> Option<Reply> {
        if self.allowed.is_empty() || *request.method != Method::OPTIONS {
            return None;
        }
        let entry = self.find(request.headers.origin)?;
        Some(
            Reply::new(StatusCode::NO_CONTENT, wire::JSON)
                .with_header(
                    "access-control-allow-methods",
                    HeaderValue::Static(route.allow()),
                )
                .with_static_headers(entry.preflight),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options<'a>(method: &'a Method, origin: Option<&'a [u8]>) -> Request<'a> {
        let mut request = Request::new(method, "/play", None, b"");
        request.headers.origin = origin;
        request
    }

    #[test]
    fn no_allowlist_means_no_header_and_no_preflight() {
        let cors = Cors::new(&[]);
        assert!(
            cors.answer_headers(cors.match_origin(Some(b"https://a.example")))
                .is_empty()
        );
        let method = Method::OPTIONS;
        assert!(
            cors.preflight(Route::Play, &options(&method, Some(b"https://a.example")))
                .is_none()
        );
    }

    #[test]
    fn an_allowed_origin_gets_its_own_origin_back_and_others_get_nothing() {
        let cors = Cors::new(&[
            "https://a.example".to_owned(),
            "http://localhost:3000".to_owned(),
            "https://ä.example".to_owned(),
            "https://a.example".to_owned(),
        ]);
        assert_eq!(
            cors.allowed.len(),
            2,
            "the non-ASCII and repeated ones are left out"
        );
        let headers = cors.answer_headers(cors.match_origin(Some(b"http://localhost:3000")));
        assert_eq!(
            headers[0],
            (
                "access-control-allow-origin",
                HeaderValue::Static("http://localhost:3000")
            )
        );
        assert_eq!(headers[1], ("vary", HeaderValue::Static("origin")));
        assert!(
            !headers
                .iter()
                .any(|(name, _)| *name == "access-control-allow-credentials")
        );
        for other in [
            &b"https://b.example"[..],
            b"https://a.example.evil",
            b"HTTPS://A.EXAMPLE",
            b"null",
            b"",
        ] {
            assert!(
                cors.answer_headers(cors.match_origin(Some(other)))
                    .is_empty(),
                "{other:?}"
            );
        }
        assert!(cors.answer_headers(cors.match_origin(None)).is_empty());
    }

    #[test]
    fn a_preflight_names_the_routes_methods_and_never_the_session_header() {
        let cors = Cors::new(&["https://a.example".to_owned()]);
        let method = Method::OPTIONS;
        let reply = cors
            .preflight(Route::Me, &options(&method, Some(b"https://a.example")))
            .unwrap();
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(
            reply.header("access-control-allow-methods"),
            Some(HeaderValue::Static("GET, HEAD, PATCH, DELETE"))
        );
        let Some(HeaderValue::Static(allowed)) = reply.header("access-control-allow-headers")
        else {
            panic!("allowed headers are listed");
        };
        for name in ["authorization", "content-type", "idempotency-key"] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert!(!allowed.contains("x-session"));
        assert_eq!(
            reply.header("access-control-max-age"),
            Some(HeaderValue::Static("600"))
        );
        assert!(reply.header("access-control-allow-credentials").is_none());
        let get = Method::GET;
        assert!(
            cors.preflight(Route::Me, &options(&get, Some(b"https://a.example")))
                .is_none()
        );
        assert!(
            cors.preflight(Route::Me, &options(&method, Some(b"https://b.example")))
                .is_none()
        );
    }
}

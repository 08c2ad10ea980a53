//! The web page's session: an HttpOnly cookie beside the bearer tokens programs use, and the
//! rule that keeps other sites' pages from acting with it (CSRF).
//!
//! The cookie, `gg_session`, holds the session's *seed* (`ggs_…`, see
//! [`crate::accounts::token`]): the server derives the access token a request stands for from
//! it, and at `POST /sessions/refresh` the refresh token, so a cookie request is authenticated,
//! expires, rotates and is revoked exactly as a bearer token is. The page never sees a token:
//! sign-in, refresh and sign-out answers that set the cookie carry none in their body, and the
//! cookie is `HttpOnly`, so a script injected into the page cannot read the session to take it
//! elsewhere. It is `SameSite=Strict` (no other site's request carries it), `Path=/`, lives
//! until the session's absolute end (`Max-Age`), and is `Secure` unless the page itself came
//! over plain HTTP (its `Origin` starts with `http://`, where a browser would drop a `Secure`
//! cookie): a page served over HTTPS, by this server or a proxy in front of it, always gets a
//! `Secure` cookie.
//!
//! The page asks for the cookie with `X-Session: cookie` on `POST /accounts/guest`,
//! `POST /accounts`, `POST /sessions` and `POST /sessions/refresh` (which then reads the cookie,
//! not a body), and on `DELETE /sessions/current`, which clears it.
//!
//! The CSRF rule, [`check_same_origin`]: a state-changing request (any method but GET, HEAD and
//! OPTIONS) that uses the cookie session, because its identity comes from the cookie or because
//! it sends `X-Session: cookie`, must carry `X-Session: cookie` (a header another origin's page
//! cannot add without a CORS preflight, and this server's preflights never allow it), and its
//! `Sec-Fetch-Site`, which browsers send and no script can set, must be `same-origin` when sent.
//! Otherwise it is refused 403 `csrf_refused`. Safe methods need neither: a cross-origin page
//! can make a browser send them but cannot read the answer.

use std::fmt;

use http::Method;

use super::error::HttpError;
use super::{FetchSite, Request};
use crate::accounts::IssuedSession;
use crate::accounts::token::SessionSeed;

/// The cookie's name.
pub(super) const COOKIE_NAME: &str = "gg_session";

/// `Set-Cookie` for a session just started or refreshed, formatted from its seed when the
/// answer is written, so a reply stays a few fixed-size values: this fits a header slot's 32
/// bytes, as the assertion below holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    seed: SessionSeed,
    /// Seconds until the session's absolute end, little-endian: bytes rather than a `u32` so
    /// the struct has no alignment and the enum's tag fits beside it in 32 bytes.
    max_age: [u8; 4],
    secure: bool,
}

impl fmt::Display for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.seed.text();
        // The text is a prefix and base64url: ASCII.
        let text = std::str::from_utf8(text.as_bytes()).map_err(|_| fmt::Error)?;
        write!(
            f,
            "{COOKIE_NAME}={text}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
            u32::from_le_bytes(self.max_age)
        )?;
        if self.secure {
            f.write_str("; Secure")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionCookie {
    /// Never the seed: it is the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie")
            .field("max_age", &u32::from_le_bytes(self.max_age))
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// The `Set-Cookie` value that hands `session` to the page.
pub(super) fn set(session: &IssuedSession, now_ms: u64, secure: bool) -> SessionCookie {
    let seconds_left = session.session_expires_ms.saturating_sub(now_ms) / 1000;
    SessionCookie {
        seed: session.seed,
        max_age: u32::try_from(seconds_left)
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
        secure,
    }
}

/// The `Set-Cookie` value that makes the browser forget the cookie (sign-out, deletion).
pub(super) fn cleared(secure: bool) -> &'static str {
    if secure {
        "gg_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
    } else {
        "gg_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    }
}

/// Whether the request speaks for the web page's cookie session (`X-Session: cookie`).
pub(super) fn wants_cookie(request: &Request<'_>) -> bool {
    request.headers.session_cookie
}

/// Whether the cookie should be `Secure`: unless the page came over plain HTTP (see the module
/// comment). A request without `Origin` (not a browser's page) gets `Secure`.
pub(super) fn secure(request: &Request<'_>) -> bool {
    !request
        .headers
        .origin
        .is_some_and(|origin| origin.starts_with(b"http://"))
}

/// The session cookie a request carries: None without one, `Some(None)` for a value that is
/// not a session seed (refused like any malformed token, never read as no one).
#[inline]
pub(super) fn seed(request: &Request<'_>) -> Option<Option<SessionSeed>> {
    let value = cookie_value(request.headers.cookie?, COOKIE_NAME.as_bytes())?;
    Some(SessionSeed::parse(value))
}

/// The CSRF rule (see the module comment) for a request that uses the cookie session: Err
/// with the reason it is refused.
pub(super) fn check_same_origin(request: &Request<'_>) -> Result<(), &'static str> {
    if matches!(
        *request.method,
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(());
    }
    if !wants_cookie(request) {
        return Err(
            "a request that changes something with the session cookie must send \
                    X-Session: cookie (this site's page always does)",
        );
    }
    if request.headers.fetch_site == Some(FetchSite::Other) {
        return Err(
            "the browser says this request comes from another site (Sec-Fetch-Site); \
                    the session cookie acts for this site's own page only",
        );
    }
    Ok(())
}

/// [`check_same_origin`]'s refusal as this layer's error.
pub(super) fn refused(reason: &'static str) -> HttpError<'static> {
    HttpError::CsrfRefused { reason }
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`, RFC 6265 5.4), compared
/// case-sensitively as cookie names are. The first one wins, as browsers send the most
/// specific first.
fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&byte| byte == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let value = pair.strip_prefix(name)?.strip_prefix(b"=")?;
        Some(value.trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::token::SessionSeed;

    fn request<'a>(method: &'a Method, headers: super::super::Headers<'a>) -> Request<'a> {
        let mut request = Request::new(method, "/play", None, b"");
        request.headers = headers;
        request
    }

    #[test]
    fn the_cookie_is_found_among_others_and_only_by_its_exact_name() {
        let header = b"theme=dark; gg_session=abc ;other=1";
        assert_eq!(cookie_value(header, b"gg_session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(header, b"theme"), Some(&b"dark"[..]));
        assert_eq!(
            cookie_value(b"gg_sessionx=1; GG_SESSION=2", b"gg_session"),
            None
        );
        assert_eq!(cookie_value(b"", b"gg_session"), None);
        assert_eq!(cookie_value(b";;=;gg_session", b"gg_session"), None);
        assert_eq!(cookie_value(b"gg_session=", b"gg_session"), Some(&b""[..]));
    }

    #[test]
    fn a_set_cookie_names_every_attribute_and_hides_the_seed_from_debug() {
        let seed = SessionSeed::random().unwrap();
        let cookie = SessionCookie {
            seed,
            max_age: 2_592_000_u32.to_le_bytes(),
            secure: true,
        };
        let text = cookie.to_string();
        let expected_value = format!(
            "gg_session={}",
            String::from_utf8_lossy(seed.text().as_bytes())
        );
        assert!(text.starts_with(&expected_value), "{text}");
        assert!(
            text.ends_with("; Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict; Secure"),
            "{text}"
        );
        let plain = SessionCookie {
            secure: false,
            ..cookie
        };
        assert!(plain.to_string().ends_with("SameSite=Strict"), "{plain}");
        let debug = format!("{cookie:?}");
        assert!(!debug.contains(&expected_value[11..20]), "{debug}");
        for secure in [true, false] {
            let cleared = cleared(secure);
            assert!(cleared.starts_with("gg_session=; Path=/; Max-Age=0; HttpOnly"));
            assert_eq!(cleared.ends_with("; Secure"), secure);
        }
    }

    #[test]
    fn a_seed_is_read_from_the_cookie_and_a_malformed_one_is_not_no_one() {
        let issued = SessionSeed::random().unwrap();
        let header = [b"a=b; gg_session=".as_slice(), issued.text().as_bytes()].concat();
        let method = Method::GET;
        let with = |cookie| super::super::Headers {
            cookie,
            ..Default::default()
        };
        assert_eq!(
            seed(&request(&method, with(Some(&header)))),
            Some(Some(issued))
        );
        let malformed = with(Some(b"gg_session=nonsense"));
        assert_eq!(seed(&request(&method, malformed)), Some(None));
        assert_eq!(seed(&request(&method, with(Some(b"other=1")))), None);
        assert_eq!(seed(&request(&method, with(None))), None);
    }

    #[test]
    fn state_changing_cookie_requests_need_the_header_and_this_site() {
        let post = Method::POST;
        let get = Method::GET;
        let headers = |session_cookie: bool, site: Option<&'static [u8]>| {
            let mut headers = super::super::Headers::default();
            if session_cookie {
                headers.record(b"X-Session", b" Cookie ");
            }
            if let Some(site) = site {
                headers.record(b"Sec-Fetch-Site", site);
            }
            headers
        };
        let allowed = [
            (&get, headers(false, Some(b"cross-site"))),
            (&post, headers(true, None)),
            (&post, headers(true, Some(b"same-origin"))),
        ];
        for (method, headers) in allowed {
            assert!(
                check_same_origin(&request(method, headers)).is_ok(),
                "{headers:?}"
            );
        }
        let mut bearer = super::super::Headers::default();
        bearer.record(b"x-session", b"bearer");
        let refused = [
            headers(false, None),
            headers(false, Some(b"same-origin")),
            bearer,
            headers(true, Some(b"cross-site")),
            headers(true, Some(b"same-site")),
            headers(true, Some(b"none")),
        ];
        for headers in refused {
            assert!(
                check_same_origin(&request(&post, headers)).is_err(),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn the_cookie_is_secure_unless_the_page_came_over_plain_http() {
        let post = Method::POST;
        let origin = |origin: Option<&'static [u8]>| super::super::Headers {
            origin,
            ..Default::default()
        };
        assert!(secure(&request(
            &post,
            origin(Some(b"https://game.example"))
        )));
        assert!(secure(&request(&post, origin(None))));
        assert!(!secure(&request(
            &post,
            origin(Some(b"http://127.0.0.1:8080"))
        )));
        assert!(!secure(&request(
            &post,
            origin(Some(b"http://192.168.1.5:8080"))
        )));
    }
}

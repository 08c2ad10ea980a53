//! The web page: `GET /` and its assets under `GET /assets/{name}`, embedded in the binary so
//! the page works offline on a LAN and nothing is fetched from other hosts.
//!
//! The sources in `crates/server/web/` are plain JavaScript modules, a style sheet and an icon,
//! with no build step. At the first request for any of them, [`Site::get`] fingerprints each
//! asset (its name gains the start of its BLAKE3 hash, and the references to it in the assets
//! that import it and in the page are rewritten to match), and compresses each with gzip and
//! brotli once. That is done lazily rather than in a `build.rs` so the binary's build stays a
//! plain `cargo build`; it costs a few milliseconds once per process, and only for a process
//! that serves the page. Fingerprinted assets are cached for a year (`immutable`); the page
//! itself is revalidated on every load (`no-cache`) with its ETag, so a new binary's page and
//! assets are picked up at once.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles, images and
//! connections only from this origin (`connect-src 'self'` covers the same-origin WebSocket),
//! no inline script or style, and no framing.

use std::io::Write;
use std::sync::OnceLock;

use http::StatusCode;

use super::Request;
use super::problem::{ApiError, HttpError};
use super::reply::{HeaderValue, Reply};
use crate::api::Route;

/// The page's Content-Security-Policy. No `'unsafe-inline'` anywhere: an injected `<script>`
/// or `style=` attribute does nothing.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Sent with the page, which may change with every release of the binary.
const PAGE_HEADERS: &[(&str, HeaderValue)] = &[
    ("cache-control", HeaderValue::Static("no-cache")),
    ("vary", HeaderValue::Static("accept-encoding")),
    (
        "content-security-policy",
        HeaderValue::Static(CONTENT_SECURITY_POLICY),
    ),
    ("x-content-type-options", HeaderValue::Static("nosniff")),
    ("referrer-policy", HeaderValue::Static("no-referrer")),
    ("x-frame-options", HeaderValue::Static("DENY")),
];

/// Sent with a fingerprinted asset, whose content never changes under its name.
const ASSET_HEADERS: &[(&str, HeaderValue)] = &[
    (
        "cache-control",
        HeaderValue::Static("public, max-age=31536000, immutable"),
    ),
    ("vary", HeaderValue::Static("accept-encoding")),
    (
        "content-security-policy",
        HeaderValue::Static(CONTENT_SECURITY_POLICY),
    ),
    ("x-content-type-options", HeaderValue::Static("nosniff")),
    ("referrer-policy", HeaderValue::Static("no-referrer")),
];

/// One embedded file as written in `crates/server/web/`.
struct Source {
    name: &'static str,
    content_type: &'static str,
    text: &'static str,
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The assets, each listed after every asset it refers to, so a reference can be rewritten to
/// the fingerprinted name before the referring asset is itself hashed.
const SOURCES: [Source; 11] = [
    Source {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        text: include_str!("../../web/style.css"),
    },
    Source {
        name: "icon.svg",
        content_type: "image/svg+xml",
        text: include_str!("../../web/icon.svg"),
    },
    Source {
        name: "i18n.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/i18n.js"),
    },
    Source {
        name: "fairness.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/fairness.js"),
    },
    Source {
        name: "realtime.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/realtime.js"),
    },
    Source {
        name: "api.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/api.js"),
    },
    Source {
        name: "chart.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/chart.js"),
    },
    Source {
        name: "stats.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/stats.js"),
    },
    Source {
        name: "leaderboard.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/leaderboard.js"),
    },
    Source {
        name: "account.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/account.js"),
    },
    Source {
        name: "app.js",
        content_type: JAVASCRIPT,
        text: include_str!("../../web/app.js"),
    },
];

const PAGE: &str = include_str!("../../web/index.html");

/// A content coding this module serves, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    const fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

/// One encoding of one file, with its own strong ETag (a gzip variant is another
/// representation, so it may not share the identity's validator).
struct Variant {
    encoding: Encoding,
    bytes: Vec<u8>,
    etag: String,
}

/// One servable file, in every encoding worth sending (a compressed variant larger than the
/// original is left out).
pub(super) struct Asset {
    /// The name under `/assets/`, fingerprinted; empty for the page.
    name: String,
    content_type: &'static str,
    static_headers: &'static [(&'static str, HeaderValue)],
    variants: Vec<Variant>,
}

pub(super) struct Site {
    page: Asset,
    assets: Vec<Asset>,
}

static SITE: OnceLock<Site> = OnceLock::new();

impl Site {
    /// The site, fingerprinted and compressed on first use.
    pub(super) fn get() -> &'static Site {
        SITE.get_or_init(Site::build)
    }

    fn build() -> Site {
        // (written name, fingerprinted name) of the assets built so far.
        let mut renamed: Vec<(&'static str, String)> = Vec::new();
        let mut assets = Vec::with_capacity(SOURCES.len());
        for source in &SOURCES {
            let text = rewrite_references(source.text, &renamed);
            let hash = blake3::hash(text.as_bytes()).to_hex();
            let name = fingerprinted(source.name, &hash[..10]);
            renamed.push((source.name, name.clone()));
            assets.push(Asset::new(
                name,
                source.content_type,
                ASSET_HEADERS,
                text.into_bytes(),
            ));
        }
        let page = rewrite_references(PAGE, &renamed);
        Site {
            page: Asset::new(
                String::new(),
                "text/html; charset=utf-8",
                PAGE_HEADERS,
                page.into_bytes(),
            ),
            assets,
        }
    }

    pub(super) fn page(&self) -> &Asset {
        &self.page
    }

    /// The asset served as `/assets/{name}`, by its fingerprinted name only: an old name
    /// would be cached for a year with the wrong content.
    pub(super) fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|asset| asset.name == name)
    }

    /// The fingerprinted name of the asset written as `source_name`.
    #[cfg(test)]
    pub(super) fn fingerprinted_name(&self, source_name: &str) -> Option<&str> {
        let index = SOURCES
            .iter()
            .position(|source| source.name == source_name)?;
        Some(&self.assets[index].name)
    }
}

/// `app.js` with hash `0123` is `app.0123.js`.
fn fingerprinted(name: &str, hash: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
        None => format!("{name}.{hash}"),
    }
}

/// `text` with every `./name` (a module import) and `/assets/name` (a link from the page)
/// pointing at the fingerprinted name instead.
fn rewrite_references(text: &str, renamed: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (name, fingerprinted) in renamed {
        for prefix in ["./", "/assets/"] {
            text = text.replace(
                &format!("\"{prefix}{name}\""),
                &format!("\"{prefix}{fingerprinted}\""),
            );
        }
    }
    text
}

impl Asset {
    fn new(
        name: String,
        content_type: &'static str,
        static_headers: &'static [(&'static str, HeaderValue)],
        bytes: Vec<u8>,
    ) -> Asset {
        let hash = blake3::hash(&bytes).to_hex();
        let tag = &hash[..20];
        let mut variants = Vec::with_capacity(3);
        for (encoding, compressed) in [
            (Encoding::Brotli, brotli_compress(&bytes)),
            (Encoding::Gzip, gzip_compress(&bytes)),
        ] {
            if !compressed.is_empty() && compressed.len() < bytes.len() {
                variants.push(Variant {
                    encoding,
                    etag: format!("\"{tag}-{}\"", encoding.token()),
                    bytes: compressed,
                });
            }
        }
        variants.push(Variant {
            encoding: Encoding::Identity,
            etag: format!("\"{tag}\""),
            bytes,
        });
        Asset {
            name,
            content_type,
            static_headers,
            variants,
        }
    }

    /// The best variant the client accepts; identity when it accepts none of the others.
    fn variant(&self, accept_encoding: Option<&[u8]>) -> &Variant {
        let chosen = choose_encoding(accept_encoding, |encoding| {
            self.variants
                .iter()
                .any(|variant| variant.encoding == encoding)
        });
        self.variants
            .iter()
            .find(|variant| variant.encoding == chosen)
            .unwrap_or_else(|| &self.variants[self.variants.len() - 1])
    }

    /// The answer to a GET or HEAD for this asset: the chosen variant, or 304 when the client
    /// already holds it.
    pub(super) fn serve(&'static self, request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
        let variant = self.variant(request.headers.accept_encoding);
        let mut reply = if etag_matches(request.headers.if_none_match, &variant.etag) {
            Reply::new(StatusCode::NOT_MODIFIED, self.content_type)
        } else {
            body.extend_from_slice(&variant.bytes);
            Reply::new(StatusCode::OK, self.content_type)
        };
        reply = reply.with_header("etag", HeaderValue::Static(&variant.etag));
        if variant.encoding != Encoding::Identity {
            reply = reply.with_header(
                "content-encoding",
                HeaderValue::Static(variant.encoding.token()),
            );
        }
        reply.with_static_headers(self.static_headers)
    }
}

/// `GET /`.
pub(super) fn page(request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
    Site::get().page().serve(request, body)
}

/// `GET /assets/{name}`.
pub(super) fn asset<'a>(request: &Request<'a>, body: &mut Vec<u8>) -> Result<Reply, ApiError<'a>> {
    let name = Route::asset_name(request.path);
    let asset = Site::get().asset(name).ok_or(HttpError::NotFound)?;
    Ok(asset.serve(request, body))
}

/// The best of brotli, gzip and identity that `accept_encoding` allows and `available` has
/// (RFC 9110 12.5.3): a coding with `q=0` is refused, `*` stands for any coding not named, and
/// identity is acceptable unless refused by name or by `*;q=0` (then it is still sent: a 406
/// for a page would help no one).
pub(super) fn choose_encoding(
    accept_encoding: Option<&[u8]>,
    available: impl Fn(Encoding) -> bool,
) -> Encoding {
    let Some(header) = accept_encoding.and_then(|value| std::str::from_utf8(value).ok()) else {
        return Encoding::Identity;
    };
    let mut best = (Encoding::Identity, 0.0_f32);
    for encoding in [Encoding::Brotli, Encoding::Gzip] {
        if !available(encoding) {
            continue;
        }
        let quality = quality_of(header, encoding.token());
        if quality > best.1 {
            best = (encoding, quality);
        }
    }
    best.0
}

/// The weight `header` gives `token`: its own entry's, else the wildcard's, else 0.
fn quality_of(header: &str, token: &str) -> f32 {
    let mut wildcard = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let quality = parts
            .filter_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())
                    .flatten()
            })
            .next()
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case(token)
            || (token == "gzip" && coding.eq_ignore_ascii_case("x-gzip"))
        {
            return quality;
        }
        if coding == "*" {
            wildcard = Some(quality);
        }
    }
    wildcard.unwrap_or(0.0)
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as RFC 9110 13.1.2
/// asks for this header: a `W/` prefix is ignored.
pub(super) fn etag_matches(if_none_match: Option<&[u8]>, etag: &str) -> bool {
    let Some(header) = if_none_match.and_then(|value| std::str::from_utf8(value).ok()) else {
        return false;
    };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn gzip_compress(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn brotli_compress(bytes: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    let parameters = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    let mut input = bytes;
    // Reading a slice and writing into a Vec cannot fail; an empty result is left unused.
    match brotli::BrotliCompress(&mut input, &mut compressed, &parameters) {
        Ok(_) => compressed,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
#[path = "web_tests.rs"]
mod tests;

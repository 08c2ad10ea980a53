//! Tests of the web page's serving: fingerprints, ETags and 304s, encodings, security headers.

use std::io::Read;

use http::{Method, StatusCode};

use super::*;

fn get<'a>(
    path: &'a str,
    accept_encoding: Option<&'a [u8]>,
    if_none_match: Option<&'a [u8]>,
) -> Request<'a> {
    let mut request = Request::new(&Method::GET, path, None, b"");
    request.headers.accept_encoding = accept_encoding;
    request.headers.if_none_match = if_none_match;
    request
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply.header(name).map(|value| value.to_string())
}

fn page_with(accept_encoding: Option<&[u8]>) -> (Reply, Vec<u8>) {
    let mut body = Vec::new();
    let reply = page(&get("/", accept_encoding, None), &mut body);
    (reply, body)
}

fn identity_page() -> String {
    let (reply, body) = page_with(None);
    assert_eq!(reply.status, StatusCode::OK);
    String::from_utf8(body).expect("the page is UTF-8")
}

#[test]
fn the_page_carries_a_strict_content_security_policy() {
    let (reply, _) = page_with(None);
    let policy = header(&reply, "content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(
        header(&reply, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        header(&reply, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(header(&reply, "cache-control").as_deref(), Some("no-cache"));
    assert_eq!(reply.content_type, "text/html; charset=utf-8");
}

#[test]
fn the_page_has_no_inline_script_or_style() {
    let page = identity_page();
    assert!(!page.contains("<style"), "inline style element");
    assert!(!page.contains(" style="), "inline style attribute");
    for script in page.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or("");
        assert!(tag.contains("src="), "inline script: <script{tag}>");
    }
    let handler = regex::Regex::new(r"<[^>]*\son[a-z]+\s*=").unwrap();
    assert!(!handler.is_match(&page), "an inline event handler");
}

#[test]
fn the_page_links_fingerprinted_assets_that_are_served_for_a_year() {
    let page = identity_page();
    let site = Site::get();
    for source in ["app.js", "style.css", "icon.svg"] {
        let name = site.fingerprinted_name(source).unwrap();
        assert_ne!(name, source);
        assert!(
            page.contains(&format!("/assets/{name}")),
            "{name} not linked"
        );
        let path = format!("/assets/{name}");
        let mut body = Vec::new();
        let reply = asset(&get(&path, None, None), &mut body).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!body.is_empty());
        assert_eq!(
            header(&reply, "cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            header(&reply, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
    // The written name is not served: it would be cached for a year under a name that
    // another release gives other content.
    let mut body = Vec::new();
    assert!(asset(&get("/assets/app.js", None, None), &mut body).is_err());
}

#[test]
fn module_imports_point_at_fingerprinted_names() {
    let site = Site::get();
    let app = site
        .asset(site.fingerprinted_name("app.js").unwrap())
        .unwrap();
    let text = std::str::from_utf8(&app.variants.last().unwrap().bytes).unwrap();
    let i18n = site.fingerprinted_name("i18n.js").unwrap();
    assert!(
        text.contains(&format!("\"./{i18n}\"")),
        "app.js imports {i18n}"
    );
    assert!(!text.contains("\"./i18n.js\""));
}

#[test]
fn every_import_of_every_module_is_a_served_fingerprinted_asset() {
    let site = Site::get();
    let import = regex::Regex::new(r#"from "\./([^"]+)""#).unwrap();
    let mut imports = 0;
    for source in &SOURCES {
        let name = site.fingerprinted_name(source.name).unwrap();
        let asset = site.asset(name).unwrap();
        let text = std::str::from_utf8(&asset.variants.last().unwrap().bytes).unwrap();
        for found in import.captures_iter(text) {
            let imported = &found[1];
            assert!(
                site.asset(imported).is_some(),
                "{} imports {imported}, which is not served (list it in SOURCES after its imports)",
                source.name
            );
            imports += 1;
        }
    }
    assert!(imports >= 10, "{imports}");
}

#[test]
fn a_matching_if_none_match_is_answered_304_without_a_body() {
    let (first, _) = page_with(None);
    let etag = header(&first, "etag").expect("an etag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let mut body = Vec::new();
    let reply = page(&get("/", None, Some(etag.as_bytes())), &mut body);
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&reply, "etag"), Some(etag.clone()));
    // Listed among others, or weak: still a match.
    let listed = format!("\"other\", W/{etag}");
    let reply = page(&get("/", None, Some(listed.as_bytes())), &mut body);
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    let reply = page(&get("/", None, Some(b"\"stale\"")), &mut body);
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!body.is_empty());
}

#[test]
fn each_encoding_has_its_own_etag() {
    let (identity, _) = page_with(None);
    let (gzip, _) = page_with(Some(b"gzip"));
    let (brotli, _) = page_with(Some(b"br"));
    let tags = [identity, gzip, brotli].map(|reply| header(&reply, "etag").unwrap());
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[1], tags[2]);
    assert_ne!(tags[0], tags[2]);
    // The gzip ETag does not validate the brotli variant.
    let mut body = Vec::new();
    let reply = page(&get("/", Some(b"br"), Some(tags[1].as_bytes())), &mut body);
    assert_eq!(reply.status, StatusCode::OK);
}

#[test]
fn brotli_and_gzip_variants_decode_to_the_page() {
    let page = identity_page();
    let (reply, body) = page_with(Some(b"gzip, deflate, br, zstd"));
    assert_eq!(header(&reply, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&reply, "vary").as_deref(), Some("accept-encoding"));
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, page.as_bytes());
    assert!(body.len() < page.len());

    let (reply, body) = page_with(Some(b"gzip"));
    assert_eq!(header(&reply, "content-encoding").as_deref(), Some("gzip"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, page.as_bytes());

    let (reply, body) = page_with(None);
    assert_eq!(header(&reply, "content-encoding"), None);
    assert_eq!(body, page.as_bytes());
}

#[test]
fn accept_encoding_is_read_with_its_weights() {
    let all = |_| true;
    let pick = |header: &str| choose_encoding(Some(header.as_bytes()), all);
    assert_eq!(pick("gzip, br"), Encoding::Brotli);
    assert_eq!(pick("br;q=0, gzip"), Encoding::Gzip);
    assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Encoding::Gzip);
    assert_eq!(pick("BR"), Encoding::Brotli);
    assert_eq!(pick("x-gzip"), Encoding::Gzip);
    assert_eq!(pick("*"), Encoding::Brotli);
    assert_eq!(pick("*;q=0"), Encoding::Identity);
    assert_eq!(pick("gzip;q=0, *;q=0.1"), Encoding::Brotli);
    assert_eq!(pick("identity"), Encoding::Identity);
    assert_eq!(pick("deflate, zstd"), Encoding::Identity);
    assert_eq!(pick(""), Encoding::Identity);
    assert_eq!(choose_encoding(None, all), Encoding::Identity);
    assert_eq!(choose_encoding(Some(b"\xff"), all), Encoding::Identity);
    // A coding without a smaller variant is not chosen.
    let no_brotli = |encoding| encoding != Encoding::Brotli;
    assert_eq!(
        choose_encoding(Some(b"br, gzip"), no_brotli),
        Encoding::Gzip
    );
}

#[test]
fn etag_matching_follows_if_none_match_rules() {
    assert!(etag_matches(Some(b"\"a\""), "\"a\""));
    assert!(etag_matches(Some(b"*"), "\"a\""));
    assert!(etag_matches(Some(b"W/\"a\""), "\"a\""));
    assert!(etag_matches(Some(b"\"b\" , \"a\""), "\"a\""));
    assert!(!etag_matches(Some(b"\"b\""), "\"a\""));
    assert!(!etag_matches(Some(b"a"), "\"a\""));
    assert!(!etag_matches(None, "\"a\""));
}

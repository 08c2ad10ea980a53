//! Secrets handed to clients: access and refresh tokens and device secrets.
//!
//! Each is 256 bits from the operating system's random source, sent as a kind prefix and the
//! bits in unpadded base64url (`gga_…` access, `ggr_…` refresh, `ggd_…` device secret). The
//! server keeps only a BLAKE3 hash of the token's text: a leaked table of hashes signs no one
//! in, and revoking a token is deleting its hash. A fast hash (not a password hash) is enough
//! because the secret has 256 bits of entropy: there is nothing to guess.
//!
//! BLAKE3 rather than SHA-256 because the access token is hashed on every authenticated play:
//! where the CPU lacks SHA extensions (and under callgrind, which hides them) software SHA-256
//! cost about 3,500 instructions per request, BLAKE3's SIMD compression a fraction of that
//! (docs/BENCHMARKS.md, "Accounts"). The text is hashed as sent, so checking a presented token
//! needs no decoding: a token of the wrong length is refused, any other that was not issued is
//! simply not found.
//!
//! A session's two tokens are not drawn on their own: each is derived (BLAKE3's key derivation)
//! from one 192-bit random *session seed*, drawn at sign-in and again at every refresh. A
//! program is handed the two tokens and never sees the seed; the web page is handed the seed
//! alone, in an HttpOnly cookie (`ggs_…`, see `http::session_cookie`), and the server derives the
//! token a request stands for from it. Either way the tables hold the tokens' hashes only, so
//! expiry, rotation and reuse detection are the same code for both.
//!
//! Looking a token up is by its hash, so the comparison that matters, of the hash the client's
//! token yields against the stored one, is a map lookup on a value the client cannot steer
//! without breaking SHA-256; the stored hash is compared again in constant time (`subtle`)
//! after the lookup, so no early-exit comparison ever sees secret material.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};
use subtle::ConstantTimeEq;

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Characters of the bytes in unpadded base64url.
const ENCODED_CHARS: usize = 43;
/// Prefix plus encoded bytes.
pub const TOKEN_CHARS: usize = 4 + ENCODED_CHARS;

/// What a secret is for; the prefix says which, so one kind is never accepted as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
    Device,
}

impl Kind {
    const fn prefix(self) -> &'static str {
        match self {
            Kind::Access => "gga_",
            Kind::Refresh => "ggr_",
            Kind::Device => "ggd_",
        }
    }
}

/// BLAKE3 `derive_key` contexts for a session seed's two tokens: fixed and unique to this use.
/// Changing one would end every session whose client holds only the seed (the web page's).
const ACCESS_CONTEXT: &str = "guess-game 2026-12-01 session seed to access token";
const REFRESH_CONTEXT: &str = "guess-game 2026-12-01 session seed to refresh token";

/// The contexts' keys, hashed once: `derive_key` would hash its context on every call, a
/// third of what authenticating a cookie costs (measured under callgrind).
static ACCESS_CONTEXT_KEY: LazyLock<ContextKey> =
    LazyLock::new(|| hash_derive_key_context(ACCESS_CONTEXT));
static REFRESH_CONTEXT_KEY: LazyLock<ContextKey> =
    LazyLock::new(|| hash_derive_key_context(REFRESH_CONTEXT));

/// BLAKE3 `derive_key(context, material)` for a context whose key is already hashed.
fn derive(context_key: &ContextKey, material: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_from_context_key(context_key)
        .update(material)
        .finalize()
        .as_bytes()
}

/// A token's BLAKE3 hash: what the server stores and looks up. Its equality is constant-time,
/// so the maps that look tokens up compare them that way and no second check is needed.
#[derive(Clone, Copy)]
pub struct TokenHash(pub [u8; 32]);

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for TokenHash {}

impl std::hash::Hash for TokenHash {
    /// The first eight bytes only: they are already uniform (a cryptographic hash of a random
    /// secret), so a map needs nothing more to spread them; equality still compares all 32.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut word = [0; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(word));
    }
}

impl std::fmt::Debug for TokenHash {
    /// Never the bytes: a hash is as good as the token to whoever can read the tables.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    /// Constant-time equality, for checking a stored hash against a presented one: four
    /// 64-bit words, each compared by `subtle` (a byte-at-a-time comparison showed in the
    /// authenticated play's instruction count).
    pub fn matches(&self, other: &TokenHash) -> bool {
        let words = |hash: &TokenHash| -> [u64; 4] {
            std::array::from_fn(|index| {
                let mut word = [0; 8];
                word.copy_from_slice(&hash.0[index * 8..index * 8 + 8]);
                u64::from_ne_bytes(word)
            })
        };
        let (mine, theirs) = (words(self), words(other));
        let equal = mine[0].ct_eq(&theirs[0])
            & mine[1].ct_eq(&theirs[1])
            & mine[2].ct_eq(&theirs[2])
            & mine[3].ct_eq(&theirs[3]);
        equal.into()
    }
}

impl TokenHash {
    /// Lowercase hex: how the shared directory names a token (never the token itself).
    pub fn to_hex(&self) -> String {
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 15)]));
        }
        text
    }

    /// The hash `to_hex` wrote, or None for anything else.
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
        let mut hash = [0; 32];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            hash[index] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(TokenHash(hash))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A freshly issued secret: its text goes to the client once, its hash to the store.
pub struct Issued {
    pub text: String,
    pub hash: TokenHash,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued(..)")
    }
}

/// The text of a token, on the stack: what a session seed yields for one request, so
/// authenticating a cookie allocates nothing.
#[derive(Clone, Copy)]
pub struct TokenText([u8; TOKEN_CHARS]);

impl TokenText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for TokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenText(..)")
    }
}

/// Random bytes in a session seed. 192 bits rather than a token's 256: far past any search
/// (a session's life is days), and small enough that the seed and its cookie's attributes
/// fit the 32 bytes every header slot of a reply already has (`http::reply`); 32 bytes made
/// every reply larger and cost the anonymous play ~280 instructions in copies (measured).
const SEED_BYTES: usize = 24;
/// Characters of a seed's bytes in unpadded base64url (24 bytes: 32, no partial character).
const SEED_ENCODED_CHARS: usize = 32;

/// The random bits a session's access and refresh tokens are derived from (see the module
/// comment). Written `ggs_` and 32 base64url characters, as the web page's cookie holds it.
#[derive(Clone, Copy)]
pub struct SessionSeed([u8; SEED_BYTES]);

/// The prefix of a session seed's text.
pub const SEED_PREFIX: &str = "ggs_";

/// A session seed's text, on the stack.
#[derive(Clone, Copy)]
pub struct SeedText([u8; 4 + SEED_ENCODED_CHARS]);

impl SeedText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SeedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedText(..)")
    }
}

impl SessionSeed {
    pub fn random() -> Result<SessionSeed, RandomFailed> {
        Ok(SessionSeed(random_bytes()?))
    }

    /// The seed written as `text` (`ggs_` and its bits in unpadded base64url), or None for
    /// anything else. Allocates nothing.
    pub fn parse(text: &[u8]) -> Option<SessionSeed> {
        let encoded = text.strip_prefix(SEED_PREFIX.as_bytes())?;
        if encoded.len() != SEED_ENCODED_CHARS {
            return None;
        }
        let mut bytes = [0; SEED_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes) {
            Ok(SEED_BYTES) => Some(SessionSeed(bytes)),
            _ => None,
        }
    }

    /// The seed's text: `ggs_` and 32 base64url characters.
    pub fn text(&self) -> SeedText {
        let mut text = [0; 4 + SEED_ENCODED_CHARS];
        text[..4].copy_from_slice(SEED_PREFIX.as_bytes());
        // 24 bytes are exactly 32 characters, so the slice is always large enough.
        let _ = URL_SAFE_NO_PAD.encode_slice(self.0, &mut text[4..]);
        SeedText(text)
    }

    /// The access token (`gga_…`) this seed stands for.
    pub fn access_token(&self) -> TokenText {
        encode_text(Kind::Access.prefix(), &derive(&ACCESS_CONTEXT_KEY, &self.0))
    }

    /// The refresh token (`ggr_…`) this seed stands for.
    pub fn refresh_token(&self) -> TokenText {
        encode_text(
            Kind::Refresh.prefix(),
            &derive(&REFRESH_CONTEXT_KEY, &self.0),
        )
    }

    /// The access and refresh tokens as freshly issued secrets: their text for a program,
    /// their hashes for the tables.
    pub fn issue(&self) -> (Issued, Issued) {
        let issued = |token: TokenText| Issued {
            hash: hash_text(token.as_bytes()),
            text: String::from_utf8_lossy(token.as_bytes()).into_owned(),
        };
        (issued(self.access_token()), issued(self.refresh_token()))
    }
}

impl PartialEq for SessionSeed {
    /// Constant-time, like every comparison of secret material here.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SessionSeed {}

impl std::fmt::Debug for SessionSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSeed(..)")
    }
}

/// A token: `prefix` and `bytes` in unpadded base64url.
fn encode_text(prefix: &str, bytes: &[u8; SECRET_BYTES]) -> TokenText {
    let mut text = [0; TOKEN_CHARS];
    text[..4].copy_from_slice(prefix.as_bytes());
    // 32 bytes are exactly 43 characters, so the slice is always large enough.
    let _ = URL_SAFE_NO_PAD.encode_slice(bytes, &mut text[4..]);
    TokenText(text)
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomFailed(getrandom::Error);

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomFailed> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(RandomFailed)?;
    Ok(bytes)
}

/// A new secret of `kind`.
pub fn issue(kind: Kind) -> Result<Issued, RandomFailed> {
    let bytes: [u8; SECRET_BYTES] = random_bytes()?;
    let mut text = String::with_capacity(TOKEN_CHARS);
    text.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
    let hash = hash_text(text.as_bytes());
    Ok(Issued { text, hash })
}

/// The hash of a presented secret of `kind`, or None when it cannot be one (wrong prefix or
/// length). Allocates nothing: it runs on every authenticated request.
pub fn hash_presented(kind: Kind, text: &[u8]) -> Option<TokenHash> {
    let encoded = text.strip_prefix(kind.prefix().as_bytes())?;
    (encoded.len() == ENCODED_CHARS).then(|| hash_text(text))
}

fn hash_text(text: &[u8]) -> TokenHash {
    TokenHash(*blake3::hash(text).as_bytes())
}

/// Lowercase hex of random bytes: account and session ids.
pub fn random_id<const N: usize>() -> Result<String, RandomFailed> {
    let bytes: [u8; N] = random_bytes()?;
    let mut text = String::with_capacity(2 * N);
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 15)]));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_hashes_back_to_its_hash_and_only_as_its_kind() {
        let issued = issue(Kind::Access).unwrap();
        assert_eq!(issued.text.len(), TOKEN_CHARS);
        assert!(issued.text.starts_with("gga_"));
        let hash = hash_presented(Kind::Access, issued.text.as_bytes()).unwrap();
        assert!(hash.matches(&issued.hash));
        assert_eq!(hash_presented(Kind::Refresh, issued.text.as_bytes()), None);
        assert_eq!(hash_presented(Kind::Device, issued.text.as_bytes()), None);
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let issued = issue(Kind::Refresh).unwrap();
        let text = issued.text.as_bytes();
        for bad in [&text[..text.len() - 1], b"ggr_", b"", &[b'g'; 200][..]] {
            assert_eq!(hash_presented(Kind::Refresh, bad), None, "{bad:?}");
        }
        // Right shape, never issued: it hashes, and the hash matches nothing issued.
        let forged = b"ggr_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";
        assert!(
            !hash_presented(Kind::Refresh, forged)
                .unwrap()
                .matches(&issued.hash)
        );
        let mut longer = text.to_vec();
        longer.push(b'A');
        assert_eq!(hash_presented(Kind::Refresh, &longer), None);
    }

    #[test]
    fn two_tokens_differ_and_debug_output_hides_them() {
        let a = issue(Kind::Device).unwrap();
        let b = issue(Kind::Device).unwrap();
        assert_ne!(a.text, b.text);
        assert!(!a.hash.matches(&b.hash));
        assert_eq!(format!("{a:?} {:?}", a.hash), "Issued(..) TokenHash(..)");
        assert_eq!(random_id::<12>().unwrap().len(), 24);
    }

    #[test]
    fn a_seed_survives_its_text_and_derives_distinct_tokens_of_each_kind() {
        let seed = SessionSeed::random().unwrap();
        let text = seed.text();
        assert!(text.as_bytes().starts_with(b"ggs_"));
        assert_eq!(SessionSeed::parse(text.as_bytes()), Some(seed));
        let access = seed.access_token();
        let refresh = seed.refresh_token();
        assert_ne!(access.as_bytes(), refresh.as_bytes());
        // A derived token is an ordinary token of its kind: it hashes as one, as issued.
        let (issued_access, issued_refresh) = seed.issue();
        assert_eq!(issued_access.text.as_bytes(), access.as_bytes());
        assert_eq!(issued_refresh.text.as_bytes(), refresh.as_bytes());
        let presented = hash_presented(Kind::Access, access.as_bytes()).unwrap();
        assert!(presented.matches(&issued_access.hash));
        let presented = hash_presented(Kind::Refresh, refresh.as_bytes()).unwrap();
        assert!(presented.matches(&issued_refresh.hash));
        assert_eq!(hash_presented(Kind::Access, refresh.as_bytes()), None);
        // The same seed always derives the same tokens; another seed others.
        assert_eq!(seed.access_token().as_bytes(), access.as_bytes());
        let other = SessionSeed::random().unwrap();
        assert_ne!(other.access_token().as_bytes(), access.as_bytes());
        assert_eq!(
            format!("{seed:?} {access:?}"),
            "SessionSeed(..) TokenText(..)"
        );
    }

    #[test]
    fn a_seeds_tokens_are_blake3_derive_key_of_it() {
        let seed = SessionSeed::random().unwrap();
        let expected = blake3::derive_key(ACCESS_CONTEXT, &seed.0);
        let access = seed.access_token();
        let decoded = URL_SAFE_NO_PAD.decode(&access.as_bytes()[4..]).unwrap();
        assert_eq!(decoded, expected);
        let expected = blake3::derive_key(REFRESH_CONTEXT, &seed.0);
        let refresh = seed.refresh_token();
        let decoded = URL_SAFE_NO_PAD.decode(&refresh.as_bytes()[4..]).unwrap();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn malformed_seed_texts_are_refused() {
        let seed = SessionSeed::random().unwrap();
        let text = seed.text();
        let text = text.as_bytes();
        let mut wrong_prefix = text.to_vec();
        wrong_prefix[2] = b'a';
        let mut longer = text.to_vec();
        longer.push(b'A');
        let bad_alphabet = format!("ggs_{}", "!".repeat(32));
        for bad in [
            &text[..text.len() - 1],
            b"ggs_",
            b"",
            &wrong_prefix,
            &longer,
            bad_alphabet.as_bytes(),
        ] {
            assert_eq!(
                SessionSeed::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A character changed is another seed: every text of the right shape is one.
        let mut changed = text.to_vec();
        changed[10] = if text[10] == b'A' { b'B' } else { b'A' };
        assert!(SessionSeed::parse(&changed).is_some_and(|other| other != seed));
    }

    #[test]
    fn a_hash_survives_hex_and_nothing_else_parses() {
        let issued = issue(Kind::Access).unwrap();
        let hex = issued.hash.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(TokenHash::from_hex(&hex).unwrap().matches(&issued.hash));
        for bad in [
            "",
            "00",
            &hex[..63],
            &format!("{hex}0"),
            &"g".repeat(64),
            &"é".repeat(32),
        ] {
            assert!(TokenHash::from_hex(bad).is_none(), "{bad}");
        }
    }
}

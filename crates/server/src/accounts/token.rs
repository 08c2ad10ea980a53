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
//! Looking a token up is by its hash, so the comparison that matters, of the hash the client's
//! token yields against the stored one, is a map lookup on a value the client cannot steer
//! without breaking SHA-256; the stored hash is compared again in constant time (`subtle`)
//! after the lookup, so no early-exit comparison ever sees secret material.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

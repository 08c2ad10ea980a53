//! What lets a player check the server instead of trusting it.
//!
//! Two mechanisms live here. A *commitment* is a SHA-256 hash binding one move, in one round of
//! one match, to a random salt: published before the opponent moves and opened (move and salt
//! revealed) afterwards, it proves the move was fixed in advance. Seats playing commit-reveal
//! send their own commitments; a bot seat's commitment is published when its round opens. A
//! *provably-fair draw* is how the computer picks a move in a single game: from an HMAC of a
//! client-chosen seed under a server seed whose hash the server published first, so neither side
//! alone decides the outcome and anyone holding both seeds can recompute every move.
//!
//! Both are recomputed outside this crate (`guess-game verify`, a browser), so the byte layouts
//! below are a wire format: changing one is a new version of the domain tag, never an edit.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Choice, Seat};

/// Prefixed to every commitment's input so that a commitment hash can never be mistaken for the
/// hash of anything else this system signs or hashes (such as a server seed).
pub const COMMITMENT_DOMAIN: &[u8] = b"guess-game/commitment/v1";

/// Bytes at or above this are rejected by [`fair_move`]: 255 = 3 * 85 is the largest multiple
/// of 3 a byte can hold, so the accepted bytes 0..255 fall evenly on the three moves.
const FAIR_ACCEPT_BELOW: u8 = 255;

/// 32 random bytes that hide a committed move until it is revealed. Without it a commitment to
/// one of three moves could be opened by hashing all three.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; 32]);

/// A SHA-256 commitment to one move; see [`commitment`] for what it covers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment(pub [u8; 32]);

/// Text that is not 64 hexadecimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hexadecimal digits (32 bytes)")]
pub struct InvalidHex;

/// The commitment to `choice` by `seat` in `round` of match `match_id`, under `salt`.
///
/// It is SHA-256 over these bytes, in order, with nothing between them:
///
/// | bytes | field |
/// |-------|-------|
/// | 24    | the ASCII domain tag `guess-game/commitment/v1` |
/// | 8     | the length of `match_id` in bytes, unsigned big-endian |
/// | n     | `match_id` as UTF-8 |
/// | 4     | `round`, unsigned big-endian (rounds count from 1) |
/// | 1     | the seat: `0x00` for A, `0x01` for B |
/// | 1     | the move: `0x00` rock, `0x01` paper, `0x02` scissors |
/// | 32    | the salt |
///
/// The length prefix is what makes the encoding unambiguous: the last bytes of a match id can
/// never be read as the round that follows it, whatever the id contains.
pub fn commitment(
    match_id: &str,
    round: u32,
    seat: Seat,
    choice: Choice,
    salt: &Salt,
) -> Commitment {
    let seat_byte = match seat {
        Seat::A => 0u8,
        Seat::B => 1u8,
    };
    let digest = Sha256::new()
        .chain_update(COMMITMENT_DOMAIN)
        .chain_update((match_id.len() as u64).to_be_bytes())
        .chain_update(match_id.as_bytes())
        .chain_update(round.to_be_bytes())
        .chain_update([seat_byte, choice as u8])
        .chain_update(salt.0)
        .finalize();
    Commitment(digest.into())
}

/// Whether `expected` is the commitment to this move. Compared in constant time: the expected
/// value is public, but a timing side channel is cheaper to rule out than to argue about.
pub fn verify_commitment(
    expected: &Commitment,
    match_id: &str,
    round: u32,
    seat: Seat,
    choice: Choice,
    salt: &Salt,
) -> bool {
    let actual = commitment(match_id, round, seat, choice, salt);
    actual.0.ct_eq(&expected.0).into()
}

/// The computer's move for game `nonce` of a provably-fair session.
///
/// The digest is HMAC-SHA256 keyed by `server_seed` over the ASCII text `"{client_seed}:{nonce}"`
/// (`nonce` in decimal). Its bytes are read in order; the first byte below 255 decides the move
/// by its remainder modulo 3: 0 rock, 1 paper, 2 scissors. Should all 32 bytes be 255 (a chance
/// of 2^-256), the digest is recomputed over `"{client_seed}:{nonce}:1"`, then `":2"`, and so on.
pub fn fair_move(server_seed: &[u8; 32], client_seed: &str, nonce: u64) -> Choice {
    let mut digest = fair_digest(server_seed, &format!("{client_seed}:{nonce}"));
    // Each extra digest fails with probability 2^-256, so this loop ends after its first pass in
    // every practical sense; it is written as a loop only so the function is total.
    let mut counter: u64 = 1;
    loop {
        if let Some(choice) = choice_from_digest(&digest) {
            return choice;
        }
        digest = fair_digest(server_seed, &format!("{client_seed}:{nonce}:{counter}"));
        counter = counter.wrapping_add(1);
    }
}

/// A server seed ready to draw many moves: HMAC's key schedule (two SHA-256 blocks) is done
/// once here instead of on every play, and the message is fed without formatting it into a
/// heap string. Draws exactly what [`fair_move`] draws (tested).
#[derive(Clone)]
pub struct SeedKey {
    mac: Hmac<Sha256>,
    seed: [u8; 32],
}

impl SeedKey {
    pub fn new(server_seed: &[u8; 32]) -> SeedKey {
        SeedKey {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(server_seed)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            seed: *server_seed,
        }
    }

    /// [`fair_move`] for this seed.
    pub fn fair_move(&self, client_seed: &str, nonce: u64) -> Choice {
        let mut mac = self.mac.clone();
        mac.update(client_seed.as_bytes());
        mac.update(b":");
        let mut digits = [0u8; 20];
        mac.update(decimal(nonce, &mut digits));
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        // A digest with no accepted byte (2^-256) takes the general path.
        choice_from_digest(&digest).unwrap_or_else(|| fair_move(&self.seed, client_seed, nonce))
    }
}

/// `value` in decimal ASCII, written into the end of `buffer`.
fn decimal(mut value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buffer[start..]
}

/// SHA-256 of the server seed: published before play so the seed revealed afterwards can be
/// checked to be the one that was used all along.
pub fn seed_commitment(server_seed: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(server_seed).into()
}

fn fair_digest(server_seed: &[u8; 32], message: &str) -> [u8; 32] {
    // HMAC accepts a key of any length, so a 32-byte key cannot be refused.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(server_seed)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The move the first accepted byte of `digest` stands for, if any byte is accepted.
fn choice_from_digest(digest: &[u8; 32]) -> Option<Choice> {
    digest
        .iter()
        .find(|&&byte| byte < FAIR_ACCEPT_BELOW)
        .map(|&byte| Choice::from_index(byte % 3))
}

/// Lowercase hexadecimal, two digits per byte.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Parses exactly 64 hexadecimal digits, either case, into 32 bytes.
pub fn from_hex32(text: &str) -> Result<[u8; 32], InvalidHex> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return Err(InvalidHex);
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Ok(bytes)
}

fn hex_value(digit: u8) -> Result<u8, InvalidHex> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(InvalidHex),
    }
}

/// Salts and commitments print, serialize and parse as 64 lowercase hex digits: the form a
/// person pastes into a verifier and the form a JSON log stays readable in.
macro_rules! hex_newtype {
    ($name:ident) => {
        impl $name {
            pub fn from_hex(text: &str) -> Result<$name, InvalidHex> {
                from_hex32(text).map($name)
            }

            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(Salt);
hex_newtype!(Commitment);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The server seed 0x00, 0x01, ..., 0x1f used by the fixed vectors below.
    fn counting_seed() -> [u8; 32] {
        std::array::from_fn(|index| index as u8)
    }

    // Every expected value in this module was computed outside Rust, with Python's `hmac` and
    // `hashlib`, from the layouts documented above, so a test passing means the documented format
    // and the code agree.

    #[test]
    fn fair_moves_match_vectors_computed_independently() {
        let expected = [
            Choice::Rock,     // digest starts 0x9f = 159, 159 % 3 = 0
            Choice::Scissors, // 0x71 = 113
            Choice::Paper,    // 0xa6 = 166
            Choice::Paper,
            Choice::Paper,
            Choice::Scissors,
        ];
        for (nonce, choice) in expected.into_iter().enumerate() {
            assert_eq!(
                fair_move(&counting_seed(), "alice", nonce as u64),
                choice,
                "nonce {nonce}"
            );
        }
    }

    #[test]
    fn a_leading_byte_of_255_is_skipped() {
        // HMAC(seed, "alice:270") = ff14...: 0xff is rejected, 0x14 = 20 gives scissors, where
        // reading 0xff would have given rock (255 % 3 = 0).
        assert_eq!(fair_move(&counting_seed(), "alice", 270), Choice::Scissors);
    }

    #[test]
    fn a_digest_of_only_rejected_bytes_draws_nothing() {
        assert_eq!(choice_from_digest(&[255; 32]), None);
        let mut last_accepted = [255; 32];
        last_accepted[31] = 7;
        assert_eq!(choice_from_digest(&last_accepted), Some(Choice::Paper));
    }

    #[test]
    fn seed_commitment_is_sha256_of_the_seed() {
        assert_eq!(
            to_hex(&seed_commitment(&counting_seed())),
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
    }

    #[test]
    fn commitments_match_vectors_computed_independently() {
        let zero = commitment("m-1", 1, Seat::A, Choice::Rock, &Salt([0; 32]));
        assert_eq!(
            zero.to_hex(),
            "49d4d6e9cdf56871b3e94252aff44c4fe55cb231cdb51458b6593badc1084b8c"
        );
        let other = commitment("match-42", 3, Seat::B, Choice::Scissors, &Salt([0xab; 32]));
        assert_eq!(
            other.to_hex(),
            "fb95b43fd598be60f995114f4cd313a1b06fd0f21b3e4d6c6a82c5bb8d1160af"
        );
    }

    #[test]
    fn hex_parsing_rejects_wrong_lengths_and_digits() {
        assert_eq!(from_hex32(""), Err(InvalidHex));
        assert_eq!(from_hex32(&"0".repeat(63)), Err(InvalidHex));
        assert_eq!(from_hex32(&"0".repeat(65)), Err(InvalidHex));
        assert_eq!(from_hex32(&format!("{}g", "0".repeat(63))), Err(InvalidHex));
        // Multi-byte characters must not be split into "digits".
        assert_eq!(from_hex32(&"é".repeat(32)), Err(InvalidHex));
        assert_eq!(from_hex32(&"AB".repeat(32)), Ok([0xab; 32]));
    }

    #[test]
    fn salts_serialize_as_hex_strings() {
        let salt = Salt([0x0f; 32]);
        let json = serde_json::to_string(&salt).unwrap();
        assert_eq!(json, format!("\"{}\"", "0f".repeat(32)));
        assert_eq!(serde_json::from_str::<Salt>(&json).unwrap(), salt);
        assert!(serde_json::from_str::<Salt>("\"0f\"").is_err());
    }

    fn any_choice() -> impl Strategy<Value = Choice> {
        prop::sample::select(Choice::ALL.to_vec())
    }

    fn any_seat() -> impl Strategy<Value = Seat> {
        prop::sample::select(Seat::BOTH.to_vec())
    }

    proptest! {
        #[test]
        fn a_seed_key_draws_what_fair_move_draws(
            seed in any::<[u8; 32]>(),
            client_seed in "[ -~]{0,64}",
            nonce in any::<u64>(),
        ) {
            let key = SeedKey::new(&seed);
            prop_assert_eq!(key.fair_move(&client_seed, nonce), fair_move(&seed, &client_seed, nonce));
        }

        #[test]
        fn a_commitment_opens_only_to_its_own_move(
            match_id in ".{0,12}", round in any::<u32>(), seat in any_seat(),
            choice in any_choice(), other in any_choice(), salt in any::<[u8; 32]>(),
        ) {
            let salt = Salt(salt);
            let made = commitment(&match_id, round, seat, choice, &salt);
            prop_assert!(verify_commitment(&made, &match_id, round, seat, choice, &salt));
            prop_assert_eq!(
                verify_commitment(&made, &match_id, round, seat, other, &salt),
                other == choice
            );
            let next_round = round.wrapping_add(1);
            prop_assert!(!verify_commitment(&made, &match_id, next_round, seat, choice, &salt));
            prop_assert!(!verify_commitment(&made, &match_id, round, seat.other(), choice, &salt));
        }

        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(from_hex32(&to_hex(&bytes)), Ok(bytes));
        }
    }
}

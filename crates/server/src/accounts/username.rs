//! Usernames: what a registered account signs in with.
//!
//! A username is 3 to 24 characters after Unicode NFC normalization, each a letter or a digit
//! (any script) or one of `_`, `-`, `.`. Two usernames that differ only in case or in
//! compatibility form are the same account: uniqueness is decided on the `key`, Unicode's
//! NFKC case fold (full case folding, so "STRASSE" is "straße" and "ΟΔΟΣ" is "οδοσ", and
//! compatibility forms, so a full-width "ａｄｍｉｎ" is "admin"). The text as given (after NFC) is
//! kept for display.

use unicode_normalization::UnicodeNormalization;

/// Fewest and most characters (Unicode scalar values, after NFC) in a username.
pub const MIN_CHARS: usize = 3;
pub const MAX_CHARS: usize = 24;

/// A valid username.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    /// As the user wrote it, NFC-normalized.
    text: String,
    /// The form uniqueness and lookups use: lowercase NFC.
    key: String,
}

/// Why a username was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("a username has 3 to 24 characters")]
    Length,
    #[error("a username holds only letters, digits, '_', '-' and '.'")]
    Character,
}

impl Username {
    pub fn parse(input: &str) -> Result<Username, UsernameError> {
        // Counting before normalizing would let a long decomposed input through the bound
        // only to shrink, or the reverse; the bound is on what is stored. The input itself is
        // at most the request body (4 KiB by default), so normalizing it first is bounded.
        let text: String = input.nfc().collect();
        let count = text.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&count) {
            return Err(UsernameError::Length);
        }
        if !text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(UsernameError::Character);
        }
        let key = fold(&text);
        Ok(Username { text, key })
    }

    /// Rebuilds a username stored earlier (already validated).
    pub fn from_stored(text: String) -> Username {
        let key = fold(&text);
        Username { text, key }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The case-insensitive key: equal for usernames that name the same account.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// NFKC, full case folding, NFKC again: folding can produce text that is no longer in NFKC.
fn fold(text: &str) -> String {
    use caseless::Caseless;
    let compatible: String = text.nfkc().collect();
    compatible.chars().default_case_fold().nfkc().collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_usernames_are_kept_as_written_and_keyed_in_lowercase() {
        let name = Username::parse("Ann_O.Neil-2").unwrap();
        assert_eq!(name.as_str(), "Ann_O.Neil-2");
        assert_eq!(name.key(), "ann_o.neil-2");
        assert!(Username::parse("Zoë").is_ok());
        assert!(Username::parse("игрок").is_ok());
        assert!(Username::parse("選手です").is_ok());
    }

    #[test]
    fn bad_usernames_say_why() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(25)), Err(UsernameError::Length));
        for bad in [
            "has space",
            "semi;colon",
            "tab\tx",
            "emoji😀",
            "zero\u{200b}width",
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::Character),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_username() {
        let composed = Username::parse("Zo\u{eb}").unwrap();
        let decomposed = Username::parse("Zoe\u{308}").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str().chars().count(), 3);
        assert_eq!(Username::parse("ZOË").unwrap().key(), composed.key());
    }

    #[test]
    fn full_case_folding_and_compatibility_forms_name_one_account() {
        let key = |name: &str| Username::parse(name).unwrap().key().to_owned();
        assert_eq!(key("ΟΔΟΣ"), key("οδος"));
        assert_eq!(key("ΟΔΟΣ"), key("οδοσ"));
        assert_eq!(key("STRASSE"), key("straße"));
        assert_eq!(key("ａｄｍｉｎ"), key("admin"));
    }

    proptest! {
        #[test]
        fn case_never_changes_the_key(name in "[A-Za-z0-9_.-]{3,24}") {
            let lower = Username::parse(&name.to_lowercase()).unwrap();
            let upper = Username::parse(&name.to_uppercase()).unwrap();
            prop_assert_eq!(lower.key(), upper.key());
        }

        #[test]
        fn parsing_never_panics_and_accepted_names_respect_the_bounds(input in "\\PC{0,40}") {
            if let Ok(name) = Username::parse(&input) {
                let count = name.as_str().chars().count();
                prop_assert!((MIN_CHARS..=MAX_CHARS).contains(&count));
            }
        }
    }
}

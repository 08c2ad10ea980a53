//! In-match chat: what a line may hold, and how often a connection may send one.

use unicode_normalization::UnicodeNormalization;

use protocol::MAX_CHAT_CHARS;

/// Why a chat line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    Empty,
    TooLong,
}

/// The line as it is relayed: NFC-normalised, control characters (C0, C1, DEL; newlines
/// included) removed, surrounding whitespace trimmed, at most [`MAX_CHAT_CHARS`] characters.
pub fn clean(text: &str) -> Result<String, LineError> {
    // Bounded before normalising: a message is at most 4 KiB, so this is too.
    let normalised: String = text.nfc().filter(|c| !c.is_control()).collect();
    let trimmed = normalised.trim();
    if trimmed.is_empty() {
        return Err(LineError::Empty);
    }
    if trimmed.chars().count() > MAX_CHAT_CHARS {
        return Err(LineError::TooLong);
    }
    Ok(trimmed.to_owned())
}

/// What the limiter says of one more line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Over the limit for the first time lately: refuse the line and warn.
    Warn,
    /// Over the limit again after a warning: close the connection (1008).
    Close,
}

/// A token bucket per connection: `burst` lines at once, refilled over `window` (5 per 10 s by
/// default). A refused line after a warning within the same window closes the connection.
#[derive(Clone, Copy, Debug)]
pub struct Limiter {
    tokens: f64,
    updated_ms: u64,
    warned_at_ms: Option<u64>,
}

impl Limiter {
    pub fn new(burst: u32, now_ms: u64) -> Self {
        Limiter {
            tokens: f64::from(burst),
            updated_ms: now_ms,
            warned_at_ms: None,
        }
    }

    pub fn check(&mut self, burst: u32, window_ms: u64, now_ms: u64) -> Verdict {
        let burst = f64::from(burst.max(1));
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64;
        self.tokens = (self.tokens + elapsed * burst / window_ms.max(1) as f64).min(burst);
        self.updated_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Send;
        }
        match self.warned_at_ms {
            Some(warned) if now_ms.saturating_sub(warned) < window_ms => Verdict::Close,
            _ => {
                self.warned_at_ms = Some(now_ms);
                Verdict::Warn
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_normalised_and_cleaned() {
        // "é" as e + combining acute becomes one character.
        assert_eq!(clean("  cafe\u{301}\n ").unwrap(), "caf\u{e9}");
        assert_eq!(clean("a\u{0}b\u{7f}c\u{85}d").unwrap(), "abcd");
        assert_eq!(clean(" \u{1b}\t "), Err(LineError::Empty));
        assert_eq!(clean(&"好".repeat(200)).unwrap().chars().count(), 200);
        assert_eq!(clean(&"好".repeat(201)), Err(LineError::TooLong));
        // Counted after normalisation: 200 decomposed letters are 200 characters.
        assert!(clean(&"e\u{301}".repeat(200)).is_ok());
    }

    #[test]
    fn flooding_is_warned_then_closed() {
        let mut limiter = Limiter::new(5, 0);
        for _ in 0..5 {
            assert_eq!(limiter.check(5, 10_000, 0), Verdict::Send);
        }
        assert_eq!(limiter.check(5, 10_000, 0), Verdict::Warn);
        assert_eq!(limiter.check(5, 10_000, 100), Verdict::Close);
    }

    #[test]
    fn the_bucket_refills_and_a_warning_lapses() {
        let mut limiter = Limiter::new(5, 0);
        for _ in 0..5 {
            limiter.check(5, 10_000, 0);
        }
        assert_eq!(limiter.check(5, 10_000, 0), Verdict::Warn);
        // 2 s later one token is back.
        assert_eq!(limiter.check(5, 10_000, 2_000), Verdict::Send);
        // Empty again within the warning's window: closed.
        assert_eq!(limiter.check(5, 10_000, 2_000), Verdict::Close);
        // A warning lapses after the window: flooding again later is warned first.
        let mut later = Limiter::new(1, 0);
        assert_eq!(later.check(1, 10_000, 0), Verdict::Send);
        assert_eq!(later.check(1, 10_000, 0), Verdict::Warn);
        assert_eq!(later.check(1, 10_000, 10_000), Verdict::Send);
        assert_eq!(later.check(1, 10_000, 10_000), Verdict::Warn);
        // A steady 1 line per 2 s is never refused.
        let mut steady = Limiter::new(5, 0);
        for second in 0..100 {
            assert_eq!(steady.check(5, 10_000, second * 2_000), Verdict::Send);
        }
    }
}

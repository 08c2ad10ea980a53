//! Passwords: the policy a new one must meet, and Argon2id hashing off the request path.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`): the parameters travel
//! with each hash, so raising them later is a setting, and a login with a hash made under
//! weaker parameters is rehashed ([`Verified::needs_rehash`]).
//!
//! Each hash takes `memory_kib` of memory and tens of milliseconds of a core. They run on
//! blocking threads behind a semaphore of [`Passwords::new`]'s `concurrency` permits, so a
//! storm of logins holds at most `concurrency × memory_kib` and leaves the other cores to the
//! game. A permit moves into the blocking task: a request that gives up (timeout, client gone)
//! cannot free its permit while its hash still runs, so the bound holds.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::token::random_bytes;

/// Fewest and most characters in a password.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 256;

/// OWASP's minimum for Argon2id (Password Storage Cheat Sheet): 19 MiB, 2 iterations, 1 lane.
pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
pub const MIN_ITERATIONS: u32 = 2;

/// The most common passwords of at least eight characters, from public breach corpora. A
/// password equal to one of them (ignoring case) is refused.
const COMMON: &str = include_str!("common-passwords.txt");

/// Why a new password was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("a password has 8 to 256 characters")]
    Length,
    #[error("this password is among the most common ones; choose another")]
    Common,
}

/// A password as it is checked and hashed: Unicode NFKC (NIST SP 800-63B), so the same
/// password typed on two keyboards that compose characters differently is one password.
pub fn normalize(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfkc().collect()
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), PasswordRejected> {
    if !(MIN_CHARS..=MAX_CHARS).contains(&password.chars().count()) {
        return Err(PasswordRejected::Length);
    }
    if COMMON
        .lines()
        .any(|common| common.eq_ignore_ascii_case(password))
    {
        return Err(PasswordRejected::Common);
    }
    Ok(())
}

/// Hashing failed inside the library (not a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Random(#[from] super::token::RandomFailed),
}

/// The outcome of checking a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash was made with weaker parameters than today's: store a new one.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on blocking threads, a bounded number at once.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    params: Params,
    /// A hash of a password nobody has, verified when a login names no account, so "no such
    /// user" costs what "wrong password" costs. Made on first use, on a blocking thread.
    decoy: Arc<OnceLock<String>>,
}

impl Passwords {
    /// `concurrency` hashes at once, each with `memory_kib` and `iterations` (at least
    /// OWASP's minimum; the caller validates settings).
    ///
    /// Parameters argon2 refuses (the settings' validation keeps them out) fall back to its
    /// defaults, which are OWASP's minimum.
    pub fn new(concurrency: usize, memory_kib: u32, iterations: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            params: Params::new(memory_kib, iterations, 1, None).unwrap_or_default(),
            decoy: Arc::new(OnceLock::new()),
        }
    }

    /// Hashes a new password (already checked against the policy).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_now(&params, password.as_bytes()))
            .await?
    }

    /// Checks `password` against `stored`, or against the decoy when there is no account, in
    /// the same time either way.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let params = self.params.clone();
        let decoy = Arc::clone(&self.decoy);
        let verified = self
            .run(move || {
                let stored = match stored {
                    Some(stored) => stored,
                    None => decoy
                        .get_or_init(|| {
                            let password: [u8; 16] = random_bytes().unwrap_or([7; 16]);
                            hash_now(&params, &password).unwrap_or_default()
                        })
                        .clone(),
                };
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Verified {
                        matches: false,
                        needs_rehash: false,
                    };
                };
                let matches = argon2(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                Verified {
                    matches,
                    needs_rehash: matches && weaker_than(&parsed, &params),
                }
            })
            .await?;
        Ok(Verified {
            matches: verified.matches && known,
            needs_rehash: verified.needs_rehash && known,
        })
    }

    /// Hashes running or waiting right now, for the metrics.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Hash("the hashing semaphore was closed".to_owned()))?;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?)
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &[u8]) -> Result<String, HashError> {
    let salt_bytes: [u8; 16] = random_bytes()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|error| HashError::Hash(error.to_string()))?;
    argon2(params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| HashError::Hash(error.to_string()))
}

/// Whether `stored` was made with less memory or fewer iterations than `current`, or not with
/// Argon2id.
fn weaker_than(stored: &PasswordHash<'_>, current: &Params) -> bool {
    if stored.algorithm != argon2::ARGON2ID_IDENT {
        return true;
    }
    match Params::try_from(stored) {
        Ok(params) => params.m_cost() < current.m_cost() || params.t_cost() < current.t_cost(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_long_and_common_passwords() {
        assert_eq!(check_policy("short"), Err(PasswordRejected::Length));
        assert_eq!(
            check_policy(&"x".repeat(257)),
            Err(PasswordRejected::Length)
        );
        assert_eq!(check_policy("password"), Err(PasswordRejected::Common));
        assert_eq!(check_policy("PassWord1"), Err(PasswordRejected::Common));
        assert_eq!(check_policy("12345678"), Err(PasswordRejected::Common));
        assert!(check_policy("correct horse battery staple").is_ok());
        // Characters, not bytes: eight two-byte letters are enough.
        assert!(check_policy("ééééééé").is_err());
        assert!(check_policy("éééééééé").is_ok());
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_password() {
        assert_eq!(
            normalize("caf\u{e9}caf\u{e9}"),
            normalize("cafe\u{301}cafe\u{301}")
        );
    }

    #[test]
    fn the_bundled_list_has_only_passwords_the_length_rule_would_not_catch() {
        let count = COMMON.lines().count();
        assert!(count >= 100, "{count}");
        for line in COMMON.lines() {
            assert!(line.chars().count() >= MIN_CHARS, "{line:?}");
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_carries_owasp_parameters() {
        let passwords = Passwords::new(2, MIN_MEMORY_KIB, MIN_ITERATIONS);
        let hash = passwords
            .hash("a long enough secret".to_owned())
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let right = passwords
            .verify("a long enough secret".to_owned(), Some(hash.clone()))
            .await
            .unwrap();
        assert_eq!(
            right,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = passwords
            .verify("another secret!!".to_owned(), Some(hash))
            .await
            .unwrap();
        assert!(!wrong.matches);
        let nobody = passwords
            .verify("anything at all".to_owned(), None)
            .await
            .unwrap();
        assert!(!nobody.matches);
    }

    #[tokio::test]
    async fn raising_the_parameters_rehashes_on_the_next_login() {
        let old = Passwords::new(1, MIN_MEMORY_KIB, MIN_ITERATIONS);
        let hash = old.hash("a long enough secret".to_owned()).await.unwrap();
        let stronger = Passwords::new(1, MIN_MEMORY_KIB, MIN_ITERATIONS + 1);
        let verified = stronger
            .verify("a long enough secret".to_owned(), Some(hash))
            .await
            .unwrap();
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        let garbage = stronger
            .verify(
                "a long enough secret".to_owned(),
                Some("not a phc string".to_owned()),
            )
            .await
            .unwrap();
        assert!(!garbage.matches);
    }
}

//! Secrets: generation, hashing and constant-time comparison.
//!
//! Passwords are hashed with argon2id at OWASP's minimum parameters
//! (m = 19 MiB, t = 2, p = 1; OWASP Password Storage Cheat Sheet; RFC 9106).
//! Session tokens, CSRF tokens and API key secrets are 256-bit random values,
//! so a fast SHA-256 is enough to store them: there is nothing to brute-force.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of API key ids, which also tells a key's Bearer token from a
/// session token.
pub const API_KEY_PREFIX: &str = "fk_";

/// Errors of secret handling.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// Hashing failed (parameters or input out of range).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// argon2id with m = 19,456 KiB, t = 2, p = 1.
fn argon2() -> Result<Argon2<'static>, SecretError> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// `n` random bytes from the operating system.
///
/// # Errors
///
/// [`SecretError::Random`].
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(buf)
}

/// A 256-bit random token, base64url without padding (43 characters).
///
/// # Errors
///
/// [`SecretError::Random`].
pub fn random_token() -> Result<String, SecretError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// SHA-256 of a high-entropy token, hex: what the database stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two hex digests in constant time.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Hashes a password with argon2id and a fresh random salt; returns the PHC
/// string. CPU-heavy (tens of ms): call from `spawn_blocking`.
///
/// # Errors
///
/// [`SecretError::Hash`].
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let hash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verifies a password against a PHC string (argon2's own comparison is
/// constant-time). A malformed stored hash verifies as false.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match argon2() {
        Ok(a) => a.verify_password(password.as_bytes(), phc).is_ok(),
        Err(_) => false,
    }
}

/// A PHC string of a password nobody knows, verified against when a login
/// names an unknown user, so that the answer takes as long as for a real one
/// and timing does not reveal which user names exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let password = random_token().unwrap_or_else(|_| "decoy".to_owned());
        hash_password(&password).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_argon2id_with_owasp_parameters() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(phc, hash_password("correct horse battery staple").unwrap());
    }

    #[test]
    fn tokens_are_256_bit_and_hashed() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token().unwrap());
        assert_eq!(token_hash("abc").len(), 64);
        assert!(digests_equal(&token_hash("abc"), &token_hash("abc")));
        assert!(!digests_equal(&token_hash("abc"), &token_hash("abd")));
        assert!(!digests_equal("ab", "abc"));
    }
}

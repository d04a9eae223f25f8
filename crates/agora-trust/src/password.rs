//! Passwords of the people who sign in to a node's web interface: Argon2id (RFC 9106) with
//! a random salt, kept as a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), which
//! carries its own parameters so they can be raised later without breaking stored hashes.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::TrustError;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// OWASP's recommended Argon2id setting: 19 MiB of memory, two passes, one lane.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters"),
    )
}

/// Hashes a new password; refuses one that is too short.
pub fn hash_password(password: &str) -> Result<String, TrustError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(TrustError::Key(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| TrustError::Key(format!("cannot hash the password: {e}")))
}

/// True when `password` matches the stored PHC string. A malformed stored hash never
/// matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A new random password: 20 characters from an alphabet without look-alikes (about 112
/// bits), for accounts made by a program (the demo, `agora user add` without a password).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Spends the time of one verification without a stored hash, for a sign-in with an unknown
/// user name, so that a sign-in takes as long whether or not the name exists. Always false.
pub fn verify_nobody(password: &str) -> bool {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let secret = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(secret.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let _ = verify_password(password, decoy);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let a = generate_password();
        assert_eq!(a.chars().count(), 20);
        assert!(hash_password(&a).is_ok());
        assert_ne!(a, generate_password());
    }

    #[test]
    fn short_passwords_and_malformed_hashes_are_refused() {
        assert!(hash_password("short").is_err());
        assert!(!verify_password("anything at all", "not a hash"));
        assert!(!verify_nobody("anything at all"));
    }
}

//! Secrets the other layers hand out and check: random tokens, the digest under which a
//! token is stored (never the token), constant-time comparison, and HMAC-SHA256 key
//! derivation. Here so that every crate asks one place for them.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 32 random bytes from the operating system's generator, as 64 hex digits.
pub fn random_hex() -> String {
    hex::encode(crate::random_secret())
}

/// A one-time code of `n` decimal digits, each uniform (random bytes of 250 and above are
/// drawn again, so that `byte % 10` favours no digit).
pub fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::random_secret() {
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    out
}

/// The SHA-256 of a high-entropy secret (an API token, a session or enrolment secret), as
/// hex: what the store keeps instead of the secret. Passwords are not high-entropy and
/// go through `password` (Argon2id) instead.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_length_asked_and_fresh() {
        let (a, b) = (random_digits(8), random_digits(8));
        assert!(a.len() == 8 && a.bytes().all(|c| c.is_ascii_digit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(random_digits(40).len(), 40);
    }

    #[test]
    fn random_secrets_are_long_and_fresh() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn digests_and_comparisons() {
        assert_eq!(
            secret_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "abcd"));
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! The signatures on an agreement: the owner signs first, the consumer countersigns, and
//! an agreement is applied only while both verify over its terms.

use agora_model::{Agreement, Negotiation};
use base64::Engine as _;

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Checks an Ed25519 signature given as base64 with a base64 public key.
pub fn signature_verifies(agreement: &Agreement, signature: &str, key: &str) -> bool {
    let (Some(sig), Some(key)) = (unb64(signature), unb64(key)) else {
        return false;
    };
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return false;
    };
    agora_trust::verify_signature(&key, &agreement.signing_bytes(), &sig).is_ok()
}

/// Why an agreement's signatures do not hold, if they do not.
pub fn check_signatures(n: &Negotiation) -> Result<&Agreement, String> {
    let a = n
        .agreement
        .as_ref()
        .ok_or_else(|| format!("negotiation {} holds no agreement", n.id))?;
    let s = &n.signatures;
    for (who, sig, key) in [
        ("owner", &s.owner, &s.owner_key),
        ("consumer", &s.consumer, &s.consumer_key),
    ] {
        let (Some(sig), Some(key)) = (sig, key) else {
            return Err(format!("agreement {} lacks the {who}'s signature", a.id));
        };
        if !signature_verifies(a, sig, key) {
            return Err(format!(
                "the {who}'s signature on agreement {} does not match its terms: the record \
                 was altered, and the agreement is not applied",
                a.id
            ));
        }
    }
    Ok(a)
}

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

/// Where an agreement stands, as verification finds it: what every page and command shows
/// (never the stored state alone, which an altered record keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementStatus {
    /// Both signatures verify and today is within its validity.
    InForce {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// Both signatures verify; it starts later.
    NotYet {
        from: chrono::DateTime<chrono::Utc>,
    },
    Expired {
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Revoked, rejected or withdrawn.
    Ended {
        reason: String,
    },
    /// Still being signed.
    Unsigned,
    /// Signed by both; the negotiation is being closed.
    Closing,
    /// A signature is missing or does not verify over the terms: not applied.
    Unverified {
        why: String,
    },
}

impl AgreementStatus {
    /// Whether queries may read under it.
    pub fn in_force(&self) -> bool {
        matches!(self, Self::InForce { .. })
    }
}

impl std::fmt::Display for AgreementStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let day = |t: &chrono::DateTime<chrono::Utc>| t.format("%-d %B %Y").to_string();
        match self {
            Self::InForce { until } => write!(
                f,
                "in force until {}: both signatures verify over its terms",
                day(until)
            ),
            Self::NotYet { from } => write!(f, "signed; in force from {}", day(from)),
            Self::Expired { at } => write!(f, "expired on {}", day(at)),
            Self::Ended { reason } => write!(f, "ended: {reason}"),
            Self::Unsigned => f.write_str("not in force: not signed by both members yet"),
            Self::Closing => {
                f.write_str("signed by both; in force once the owner's node closes the negotiation")
            }
            Self::Unverified { why } => write!(f, "NOT in force: {why}"),
        }
    }
}

/// The status of a negotiation's agreement, from its signatures and validity; `None` while
/// it holds no agreement.
pub fn agreement_status(
    n: &Negotiation,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<AgreementStatus> {
    use agora_model::{NegotiationState, Validity};
    let a = n.agreement.as_ref()?;
    if n.state == NegotiationState::Terminated {
        return Some(AgreementStatus::Ended {
            reason: n
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".into()),
        });
    }
    let both_signed = n.signatures.owner.is_some() && n.signatures.consumer.is_some();
    if !both_signed && n.state != NegotiationState::Finalized {
        return Some(AgreementStatus::Unsigned);
    }
    if let Err(why) = check_signatures(n) {
        return Some(AgreementStatus::Unverified { why });
    }
    Some(match a.validity(now) {
        Validity::Valid if n.state == NegotiationState::Finalized => AgreementStatus::InForce {
            until: a.valid_until,
        },
        Validity::Valid => AgreementStatus::Closing,
        Validity::NotYet(from) => AgreementStatus::NotYet { from },
        Validity::Expired(at) => AgreementStatus::Expired { at },
    })
}

//! Signed documents (the trust list) and signed messages (every node-to-node request and
//! response).
//!
//! Every signature covers a domain-separation label first, so a signature made for one
//! purpose can never be replayed as another.
//!
//! **Request signature** (header `Agora-Signature`), over the lines
//! `agora-request-v1`, method, path with query, hex SHA-256 of the body, sender member,
//! recipient member, timestamp (RFC 3339, milliseconds, UTC), nonce — joined by `\n`.
//! The header value is `v1;from=SENDER;to=RECIPIENT;ts=TIMESTAMP;nonce=NONCE;sig=BASE64`.
//!
//! **Response signature** (header `Agora-Response-Signature`, or the last message of a
//! Flight stream), over `agora-response-v1`, the request's nonce, the status, hex SHA-256
//! of the response body (or of the whole stream), responder, timestamp. Header value:
//! `v1;from=RESPONDER;ts=TIMESTAMP;sig=BASE64`.

use agora_model::{MemberId, SignedTrustList, TrustList};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::TrustError;
use crate::keys::{MemberKey, verify_signature};

pub const REQUEST_HEADER: &str = "agora-signature";
pub const RESPONSE_HEADER: &str = "agora-response-signature";

/// Lower-case hex SHA-256.
pub fn digest_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Running digest over the messages of a stream (an Arrow Flight answer): each message's
/// header and body, each prefixed by its length as 8 bytes big-endian, so no two different
/// streams share a digest. The final, signed message is not part of it.
///
/// The hash is BLAKE3 (256-bit output, the same 128-bit collision resistance as SHA-256):
/// bulk answers run to hundreds of megabytes and both ends digest every byte, and SHA-256
/// even with the CPU's SHA extensions (about 1 GB/s per core) would cost more than the rest
/// of the transfer. The text form names the algorithm: `blake3:` and 64 hex digits.
#[derive(Clone, Default)]
pub struct StreamDigest(blake3::Hasher);

/// The prefix of a stream digest's text form.
pub const STREAM_DIGEST_PREFIX: &str = "blake3:";

impl StreamDigest {
    pub fn update(&mut self, header: &[u8], body: &[u8]) {
        for part in [header, body] {
            self.0.update(&(part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
    }

    /// `blake3:` and the lower-case hex of the digest so far.
    pub fn hex(&self) -> String {
        format!("{STREAM_DIGEST_PREFIX}{}", self.0.finalize().to_hex())
    }
}

fn ts_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a request signature covers besides the parties and time.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body_digest: &'a str,
}

/// A parsed `Agora-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSignature {
    pub from: MemberId,
    pub to: MemberId,
    pub timestamp: DateTime<Utc>,
    pub nonce: String,
    pub signature: Vec<u8>,
}

fn request_message(
    t: &RequestTarget<'_>,
    from: &MemberId,
    to: &MemberId,
    ts: &str,
    nonce: &str,
) -> Vec<u8> {
    format!(
        "agora-request-v1\n{}\n{}\n{}\n{from}\n{to}\n{ts}\n{nonce}",
        t.method, t.path, t.body_digest
    )
    .into_bytes()
}

fn new_nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl RequestSignature {
    /// Signs a request from `from` to `to` now, with a fresh random nonce.
    pub fn sign(
        key: &MemberKey,
        target: &RequestTarget<'_>,
        from: &MemberId,
        to: &MemberId,
        now: DateTime<Utc>,
    ) -> Self {
        // Signed text and header carry the same millisecond precision.
        let ts = ts_text(now);
        let timestamp = DateTime::parse_from_rfc3339(&ts)
            .expect("own timestamp parses")
            .with_timezone(&Utc);
        let nonce = new_nonce();
        let signature = key
            .sign(&request_message(target, from, to, &ts, &nonce))
            .to_vec();
        Self {
            from: from.clone(),
            to: to.clone(),
            timestamp,
            nonce,
            signature,
        }
    }

    pub fn header(&self) -> String {
        format!(
            "v1;from={};to={};ts={};nonce={};sig={}",
            self.from,
            self.to,
            ts_text(self.timestamp),
            self.nonce,
            B64.encode(&self.signature)
        )
    }

    pub fn signature_b64(&self) -> String {
        B64.encode(&self.signature)
    }

    /// The nonce of a request-signature header, or an empty string when there is no
    /// readable header (a refusal then signs over an empty nonce).
    pub fn nonce_of(header: Option<&str>) -> String {
        header
            .and_then(|h| Self::parse(h).ok())
            .map(|s| s.nonce)
            .unwrap_or_default()
    }

    pub fn parse(header: &str) -> Result<Self, TrustError> {
        let f = Fields::parse(header, &["from", "to", "ts", "nonce", "sig"])?;
        let nonce = f.get("nonce").to_owned();
        if nonce.len() < 16 || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("the nonce must be 16 to 64 hex digits"));
        }
        Ok(Self {
            from: MemberId::parse(f.get("from")).map_err(|e| malformed(&e.to_string()))?,
            to: MemberId::parse(f.get("to")).map_err(|e| malformed(&e.to_string()))?,
            timestamp: parse_ts(f.get("ts"))?,
            nonce,
            signature: B64
                .decode(f.get("sig"))
                .map_err(|_| malformed("the signature is not base64"))?,
        })
    }

    /// Checks the signature with the sender's certified key, and the timestamp against
    /// `now` within `tolerance`. Replays (a nonce seen before) are the store's to refuse.
    pub fn verify(
        &self,
        public_key: &[u8; 32],
        target: &RequestTarget<'_>,
        now: DateTime<Utc>,
        tolerance: chrono::Duration,
    ) -> Result<(), TrustError> {
        check_skew(self.timestamp, now, tolerance)?;
        let msg = request_message(
            target,
            &self.from,
            &self.to,
            &ts_text(self.timestamp),
            &self.nonce,
        );
        verify_signature(public_key, &msg, &self.signature)
            .map_err(|_| TrustError::BadSignature(format!("the request signature of member {} does not match the request (tampered, or signed with another key)", self.from)))
    }
}

fn check_skew(
    ts: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: chrono::Duration,
) -> Result<(), TrustError> {
    let skew = (now - ts).abs();
    if skew > tolerance {
        return Err(TrustError::ClockSkew {
            skew_ms: skew.num_milliseconds(),
            tolerance_ms: tolerance.num_milliseconds(),
        });
    }
    Ok(())
}

/// A parsed response signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSignature {
    pub from: MemberId,
    pub timestamp: DateTime<Utc>,
    pub signature: Vec<u8>,
}

fn response_message(
    request_nonce: &str,
    status: u16,
    body_digest: &str,
    from: &MemberId,
    ts: &str,
) -> Vec<u8> {
    format!("agora-response-v1\n{request_nonce}\n{status}\n{body_digest}\n{from}\n{ts}")
        .into_bytes()
}

impl ResponseSignature {
    pub fn sign(
        key: &MemberKey,
        request_nonce: &str,
        status: u16,
        body_digest: &str,
        from: &MemberId,
        now: DateTime<Utc>,
    ) -> Self {
        let ts = ts_text(now);
        let timestamp = DateTime::parse_from_rfc3339(&ts)
            .expect("own timestamp parses")
            .with_timezone(&Utc);
        let signature = key
            .sign(&response_message(
                request_nonce,
                status,
                body_digest,
                from,
                &ts,
            ))
            .to_vec();
        Self {
            from: from.clone(),
            timestamp,
            signature,
        }
    }

    pub fn header(&self) -> String {
        format!(
            "v1;from={};ts={};sig={}",
            self.from,
            ts_text(self.timestamp),
            B64.encode(&self.signature)
        )
    }

    pub fn signature_b64(&self) -> String {
        B64.encode(&self.signature)
    }

    pub fn parse(header: &str) -> Result<Self, TrustError> {
        let f = Fields::parse(header, &["from", "ts", "sig"])?;
        Ok(Self {
            from: MemberId::parse(f.get("from")).map_err(|e| malformed(&e.to_string()))?,
            timestamp: parse_ts(f.get("ts"))?,
            signature: B64
                .decode(f.get("sig"))
                .map_err(|_| malformed("the signature is not base64"))?,
        })
    }

    /// Checks that the responder signed this response to our request.
    pub fn verify(
        &self,
        public_key: &[u8; 32],
        request_nonce: &str,
        status: u16,
        body_digest: &str,
    ) -> Result<(), TrustError> {
        let msg = response_message(
            request_nonce,
            status,
            body_digest,
            &self.from,
            &ts_text(self.timestamp),
        );
        verify_signature(public_key, &msg, &self.signature).map_err(|_| {
            TrustError::BadSignature(format!(
                "the response signature of member {} does not match the response (tampered, or signed with another key)",
                self.from
            ))
        })
    }
}

fn malformed(why: &str) -> TrustError {
    TrustError::BadSignature(format!("malformed signature header: {why}"))
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, TrustError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| malformed("the timestamp is not RFC 3339"))
}

struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    fn parse(header: &'a str, required: &[&str]) -> Result<Self, TrustError> {
        let mut parts = header.split(';');
        if parts.next() != Some("v1") {
            return Err(malformed("unknown version (expected v1)"));
        }
        let mut fields = Vec::new();
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| malformed(&format!("{p:?} is not key=value")))?;
            if fields.iter().any(|(fk, _)| *fk == k) {
                return Err(malformed(&format!("{k} given twice")));
            }
            fields.push((k, v));
        }
        for r in required {
            if !fields.iter().any(|(k, _)| k == r) {
                return Err(malformed(&format!("{r} is missing")));
            }
        }
        Ok(Self(fields))
    }
    fn get(&self, k: &str) -> &'a str {
        self.0
            .iter()
            .find(|(fk, _)| *fk == k)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    }
}

const TRUST_LIST_LABEL: &[u8] = b"agora-trust-list-v1\n";

/// Signs a trust list with the authority's root key.
pub fn sign_trust_list(list: &TrustList, root: &crate::pki::RootCa) -> SignedTrustList {
    {
        let payload = serde_json::to_string_pretty(list).expect("trust lists serialise");
        let mut msg = TRUST_LIST_LABEL.to_vec();
        msg.extend_from_slice(payload.as_bytes());
        SignedTrustList {
            signature: B64.encode(root.key().sign(&msg)),
            signer: root.info.fingerprint.clone(),
            payload,
        }
    }
}

/// Verifies a published trust list's signature with the root certificate's key and parses
/// it. Expiry is not judged here: callers decide with their grace period.
pub fn verify_trust_list(
    signed: &SignedTrustList,
    root: &crate::pki::CertInfo,
) -> Result<TrustList, TrustError> {
    let this = signed;
    {
        let bad = |why: String| TrustError::TrustList(why);
        if this.signer != root.fingerprint {
            return Err(bad(format!(
                "it was signed by root {} but this node trusts root {}",
                short(&this.signer),
                short(&root.fingerprint)
            )));
        }
        let sig = B64
            .decode(&this.signature)
            .map_err(|_| bad("its signature is not base64".into()))?;
        let mut msg = TRUST_LIST_LABEL.to_vec();
        msg.extend_from_slice(this.payload.as_bytes());
        verify_signature(&root.public_key, &msg, &sig).map_err(|_| {
            bad(
                "its signature does not match its content (tampered, or signed by another key)"
                    .into(),
            )
        })?;
        let list: TrustList = serde_json::from_str(&this.payload)
            .map_err(|e| bad(format!("its content is malformed: {e}")))?;
        if list.format != TrustList::FORMAT {
            return Err(bad(format!("unsupported format version {}", list.format)));
        }
        if list.ecosystem != root.ecosystem {
            return Err(bad(format!(
                "it is for ecosystem {:?}, but the root is of {:?}",
                list.ecosystem, root.ecosystem
            )));
        }
        Ok(list)
    }
}

/// The first 16 hex digits of a fingerprint, for messages.
pub fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_digests_name_blake3_and_depend_on_message_boundaries() {
        let mut a = StreamDigest::default();
        a.update(b"ab", b"c");
        let mut b = StreamDigest::default();
        b.update(b"a", b"bc");
        assert_ne!(
            a.hex(),
            b.hex(),
            "moving a byte between header and body changes it"
        );
        let mut same = StreamDigest::default();
        same.update(b"ab", b"c");
        assert_eq!(a.hex(), same.hex());
        // BLAKE3 over len(header) ‖ header ‖ len(body) ‖ body.
        let mut framed = Vec::new();
        framed.extend_from_slice(&2u64.to_be_bytes());
        framed.extend_from_slice(b"ab");
        framed.extend_from_slice(&1u64.to_be_bytes());
        framed.extend_from_slice(b"c");
        assert_eq!(
            a.hex(),
            format!("blake3:{}", blake3::hash(&framed).to_hex())
        );
        assert_eq!(StreamDigest::default().hex().len(), "blake3:".len() + 64);
    }

    fn m(s: &str) -> MemberId {
        MemberId::parse(s).unwrap()
    }

    const TARGET: RequestTarget<'static> = RequestTarget {
        method: "POST",
        path: "/exchange/v1/catalog",
        body_digest: "abc",
    };

    #[test]
    fn request_signatures_round_trip_through_the_header() {
        let k = MemberKey::generate().unwrap();
        let now = Utc::now();
        let s = RequestSignature::sign(&k, &TARGET, &m("tax-office"), &m("health-insurer"), now);
        let parsed = RequestSignature::parse(&s.header()).unwrap();
        assert_eq!(parsed, s);
        parsed
            .verify(&k.public(), &TARGET, now, chrono::Duration::seconds(30))
            .unwrap();
    }

    #[test]
    fn any_change_to_a_signed_request_breaks_its_signature() {
        let k = MemberKey::generate().unwrap();
        let now = Utc::now();
        let s = RequestSignature::sign(&k, &TARGET, &m("tax-office"), &m("health-insurer"), now);
        let tol = chrono::Duration::seconds(30);
        for t in [
            RequestTarget {
                method: "GET",
                ..TARGET
            },
            RequestTarget {
                path: "/exchange/v1/other",
                ..TARGET
            },
            RequestTarget {
                body_digest: "abd",
                ..TARGET
            },
        ] {
            assert!(matches!(
                s.verify(&k.public(), &t, now, tol),
                Err(TrustError::BadSignature(_))
            ));
        }
        let mut other = s.clone();
        other.to = m("statistics-office");
        assert!(other.verify(&k.public(), &TARGET, now, tol).is_err());
        let mut other = s.clone();
        other.nonce = "00".repeat(16);
        assert!(other.verify(&k.public(), &TARGET, now, tol).is_err());
        let stranger = MemberKey::generate().unwrap();
        assert!(s.verify(&stranger.public(), &TARGET, now, tol).is_err());
    }

    #[test]
    fn requests_outside_the_clock_tolerance_are_refused() {
        let k = MemberKey::generate().unwrap();
        let then = Utc::now() - chrono::Duration::seconds(120);
        let s = RequestSignature::sign(&k, &TARGET, &m("tax-office"), &m("health-insurer"), then);
        let e = s
            .verify(
                &k.public(),
                &TARGET,
                Utc::now(),
                chrono::Duration::seconds(30),
            )
            .unwrap_err();
        assert!(matches!(e, TrustError::ClockSkew { .. }), "{e}");
        assert!(e.to_string().contains("clock"), "{e}");
    }

    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        for h in [
            "",
            "v2;from=a",
            "v1;from=tax-office",
            "v1;from=tax-office;to=x;ts=now;nonce=00;sig=%%",
            "v1;from=tax-office;from=tax-office;to=health-insurer;ts=2026-01-01T00:00:00Z;nonce=00112233445566778899aabbccddeeff;sig=AA==",
        ] {
            assert!(RequestSignature::parse(h).is_err(), "{h}");
        }
    }

    #[test]
    fn response_signatures_bind_the_request_nonce_status_and_body() {
        let k = MemberKey::generate().unwrap();
        let r = ResponseSignature::sign(&k, "n1", 200, "d1", &m("tax-office"), Utc::now());
        let p = ResponseSignature::parse(&r.header()).unwrap();
        p.verify(&k.public(), "n1", 200, "d1").unwrap();
        assert!(p.verify(&k.public(), "n2", 200, "d1").is_err());
        assert!(p.verify(&k.public(), "n1", 500, "d1").is_err());
        assert!(p.verify(&k.public(), "n1", 200, "d2").is_err());
    }

    proptest::proptest! {
        #[test]
        fn header_parsing_never_panics(s in ".{0,200}") {
            let _ = RequestSignature::parse(&s);
            let _ = ResponseSignature::parse(&s);
        }
    }
}

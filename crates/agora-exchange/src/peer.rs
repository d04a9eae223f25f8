//! Signed requests to other members' nodes over mutual TLS, with the responder's signature
//! checked against the certificate it presented, and both recorded in the exchange log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_model::{
    Direction, ExchangeEnd, ExchangeStart, MemberId, Standing, TrustList, TrustedMember,
};
use agora_trust::sign::{REQUEST_HEADER, RESPONSE_HEADER};
use agora_trust::{
    IdentityCell, MemberKey, RequestSignature, RequestTarget, ResponseSignature, digest_hex,
    inspect, tls,
};
use bytes::Bytes;
use chrono::Utc;

use crate::{ExchangeError, ExchangeJournal};

/// What the caller needs to sign as this member.
pub struct Signer<'a> {
    pub member: &'a MemberId,
    pub key: &'a MemberKey,
}

/// A client for other members' exchange listeners. Cheap to clone; keeps connections.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    journal: Arc<dyn ExchangeJournal>,
}

/// The largest answer read from a peer.
const MAX_ANSWER: usize = 64 << 20;

/// A verified answer from a peer.
#[derive(Debug)]
pub struct PeerResponse {
    pub status: u16,
    pub body: Bytes,
    /// The public key of the certificate the peer answered with (which its signature on
    /// the answer was checked with).
    pub key: [u8; 32],
}

impl PeerClient {
    pub fn new(
        root: &agora_trust::CertificateDer<'static>,
        identity: Arc<IdentityCell>,
        journal: Arc<dyn ExchangeJournal>,
        timeout: Duration,
    ) -> Result<Self, ExchangeError> {
        let cfg = tls::client_config(root, Some(identity), &[b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .tls_info(true)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ExchangeError::Setup(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Self { http, journal })
    }

    /// Reads `path` at `peer`: see [`PeerClient::post`].
    pub async fn get(
        &self,
        signer: &Signer<'_>,
        list: &TrustList,
        peer: &TrustedMember,
        path: &str,
    ) -> Result<PeerResponse, ExchangeError> {
        self.call(signer, list, peer, reqwest::Method::GET, path, Vec::new())
            .await
    }

    /// Sends `body` to `path` at `peer` as a signed request and returns the answer once
    /// the response signature verified with the key of the certificate the peer presented
    /// (which must be the peer's, on `list`). Every call is logged, whatever its outcome.
    pub async fn post(
        &self,
        signer: &Signer<'_>,
        list: &TrustList,
        peer: &TrustedMember,
        path: &str,
        body: Vec<u8>,
    ) -> Result<PeerResponse, ExchangeError> {
        self.call(signer, list, peer, reqwest::Method::POST, path, body)
            .await
    }

    async fn call(
        &self,
        signer: &Signer<'_>,
        list: &TrustList,
        peer: &TrustedMember,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<PeerResponse, ExchangeError> {
        let base = peer
            .endpoints
            .exchange
            .as_deref()
            .ok_or_else(|| ExchangeError::Refused {
                peer: peer.id.to_string(),
                reason: "it publishes no exchange endpoint in the trust list".into(),
            })?;
        let started = Instant::now();
        let body_digest = digest_hex(&body);
        let target = RequestTarget {
            method: method.as_str(),
            path,
            body_digest: &body_digest,
        };
        let sig = RequestSignature::sign(signer.key, &target, signer.member, &peer.id, Utc::now());
        let start = ExchangeStart {
            direction: Direction::Outbound,
            peer: peer.id.clone(),
            peer_certificate: String::new(),
            operation: format!("{} {path}", method.as_str()),
            nonce: sig.nonce.clone(),
            requested_at: sig.timestamp,
            request_digest: body_digest.clone(),
            request_signature: sig.signature_b64(),
        };
        let result = self
            .exchange(list, peer, base, method, path, body, &sig)
            .await;
        let mut start = start;
        let end = match &result {
            Ok((resp, cert, rsig)) => {
                start.peer_certificate = cert.clone();
                ExchangeEnd {
                    response_digest: digest_hex(&resp.body),
                    response_signature: rsig.clone(),
                    outcome: if !crate::is_refusal(resp.status) {
                        "ok".into()
                    } else {
                        format!("refused: status {}", resp.status)
                    },
                    duration_ms: started.elapsed().as_millis() as i64,
                    rows: 0,
                    bytes: resp.body.len() as i64,
                    ..Default::default()
                }
            }
            Err(e) => ExchangeEnd {
                outcome: format!("failed: {e}"),
                duration_ms: started.elapsed().as_millis() as i64,
                ..Default::default()
            },
        };
        if let Err(e) = self.journal.recorded(&start, &end).await {
            tracing::error!(peer = %peer.id, error = %e, "cannot record an outbound exchange");
        }
        result.map(|(r, _, _)| r)
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        list: &TrustList,
        peer: &TrustedMember,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        sig: &RequestSignature,
    ) -> Result<(PeerResponse, String, String), ExchangeError> {
        let who = peer.id.to_string();
        let resp = self
            .http
            .request(method, format!("{}{path}", base.trim_end_matches('/')))
            .header(REQUEST_HEADER, sig.header())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ExchangeError::unreachable(&who, "request", &e))?;
        let status = resp.status().as_u16();
        let cert_der = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| ExchangeError::Protocol {
                peer: who.clone(),
                reason: "no certificate on the connection".into(),
            })?;
        let cert = inspect(&cert_der)?;
        // The responder must be the member we called, in good standing.
        let (member, _) = cert.member()?;
        if member != peer.id {
            return Err(ExchangeError::Refused {
                peer: who,
                reason: format!("the endpoint answered with the certificate of member {member}"),
            });
        }
        match list.standing(&member, &cert.fingerprint) {
            Standing::Trusted { .. } => {}
            other => {
                return Err(ExchangeError::Refused {
                    peer: who,
                    reason: format!("its certificate is not in good standing ({other:?})"),
                });
            }
        }
        let rsig_header = resp
            .headers()
            .get(RESPONSE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut resp = resp;
        let mut read = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ExchangeError::unreachable(&who, "reading the answer", &e))?
        {
            if read.len() + chunk.len() > MAX_ANSWER {
                return Err(ExchangeError::Protocol {
                    peer: who,
                    reason: format!("its answer is larger than {MAX_ANSWER} bytes"),
                });
            }
            read.extend_from_slice(&chunk);
        }
        let body = Bytes::from(read);
        let rsig_header = rsig_header.ok_or_else(|| ExchangeError::Protocol {
            peer: who.clone(),
            reason: format!("the answer (status {status}) is not signed"),
        })?;
        let rsig = ResponseSignature::parse(&rsig_header)?;
        if rsig.from != peer.id {
            return Err(ExchangeError::Protocol {
                peer: who,
                reason: format!("the answer is signed as member {}", rsig.from),
            });
        }
        rsig.verify(&cert.public_key, &sig.nonce, status, &digest_hex(&body))?;
        if crate::is_refusal(status) {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ExchangeError::Refused {
                peer: who,
                reason: message,
            });
        }
        Ok((
            PeerResponse {
                status,
                body,
                key: cert.public_key,
            },
            cert.fingerprint,
            rsig.signature_b64(),
        ))
    }
}

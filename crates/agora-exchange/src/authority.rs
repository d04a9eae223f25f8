//! Calls to the ecosystem authority: enrolment (authority pinned by the token's root
//! fingerprint), further certificates (mutual TLS with the node's certificate), trust lists.

use std::sync::Arc;
use std::time::Duration;

use agora_model::paths::{CERTIFICATES, ENROL, TRUST_LIST};
use agora_model::{CertificateRequest, EnrolRequest, IssuedBundle, SignedTrustList};
use agora_trust::{CertificateDer, IdentityCell, tls};
use serde::de::DeserializeOwned;

use crate::ExchangeError;

const TIMEOUT: Duration = Duration::from_secs(15);

/// What the authority made of a checkpoint to witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witnessing {
    /// Cosigned: the checkpoint with the authority's cosignature.
    Cosigned(String),
    /// The authority last witnessed a log of this size: prove consistency from it.
    FromSize(u64),
    /// The authority found the log inconsistent with what it witnessed, and says why.
    Inconsistent(String),
}

/// A client of one authority.
#[derive(Clone)]
pub struct AuthorityClient {
    base: String,
    http: reqwest::Client,
}

fn client(cfg: rustls::ClientConfig) -> Result<reqwest::Client, ExchangeError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| ExchangeError::Setup(format!("cannot build the HTTPS client: {e}")))
}

impl AuthorityClient {
    /// For enrolment: the authority must present a chain to the root with this fingerprint.
    pub fn pinned(base: &str, root_fingerprint: &str) -> Result<Self, ExchangeError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: client(tls::pinned_client_config(root_fingerprint)?)?,
        })
    }

    /// For enrolled nodes: verifies the authority against the root, and presents the
    /// node's certificate when given.
    pub fn with_root(
        base: &str,
        root: &CertificateDer<'static>,
        identity: Option<Arc<IdentityCell>>,
    ) -> Result<Self, ExchangeError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: client(tls::client_config(root, identity, &[b"http/1.1"])?)?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ExchangeError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ExchangeError::unreachable(&self.base, what, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(ExchangeError::Refused {
                peer: format!("the authority at {}", self.base),
                reason: format!("{what} refused ({}): {message}", status.as_u16()),
            });
        }
        resp.json().await.map_err(|e| ExchangeError::Protocol {
            peer: format!("the authority at {}", self.base),
            reason: format!("{what}: unreadable answer: {e}"),
        })
    }

    pub async fn enrol(&self, req: &EnrolRequest) -> Result<IssuedBundle, ExchangeError> {
        self.send(
            self.http.post(format!("{}{ENROL}", self.base)).json(req),
            "enrolment",
        )
        .await
    }

    pub async fn request_certificate(
        &self,
        req: &CertificateRequest,
    ) -> Result<IssuedBundle, ExchangeError> {
        self.send(
            self.http
                .post(format!("{}{CERTIFICATES}", self.base))
                .json(req),
            "certificate request",
        )
        .await
    }

    /// Asks for a linkage key (only as an owner's node, over mutual TLS).
    pub async fn linkage_key(
        &self,
        req: &agora_model::LinkageKeyRequest,
    ) -> Result<agora_model::LinkageKeyGrant, ExchangeError> {
        self.send(
            self.http
                .post(format!("{}{}", self.base, agora_model::paths::LINKAGE_KEYS))
                .json(req),
            "linkage key request",
        )
        .await
    }

    /// Asks the authority to witness a checkpoint (over mutual TLS).
    pub async fn witness(
        &self,
        req: &agora_model::WitnessRequest,
    ) -> Result<Witnessing, ExchangeError> {
        let url = format!("{}{}", self.base, agora_model::paths::WITNESS);
        let resp = self
            .http
            .post(url)
            .json(req)
            .send()
            .await
            .map_err(|e| ExchangeError::unreachable(&self.base, "witnessing", &e))?;
        let status = resp.status().as_u16();
        let witnessed = resp
            .headers()
            .get(agora_model::WITNESSED_SIZE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = resp.text().await.unwrap_or_default();
        let message = || {
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.clone())
        };
        match (status, witnessed) {
            (200, _) => {
                let reply: agora_model::WitnessReply =
                    serde_json::from_str(&body).map_err(|e| ExchangeError::Protocol {
                        peer: format!("the authority at {}", self.base),
                        reason: format!("witnessing: unreadable answer: {e}"),
                    })?;
                Ok(Witnessing::Cosigned(reply.cosigned))
            }
            (409, Some(n)) => Ok(Witnessing::FromSize(n)),
            (422, _) => Ok(Witnessing::Inconsistent(message())),
            _ => Err(ExchangeError::Refused {
                peer: format!("the authority at {}", self.base),
                reason: format!("witnessing refused ({status}): {}", message()),
            }),
        }
    }

    pub async fn trust_list(&self) -> Result<SignedTrustList, ExchangeError> {
        self.send(
            self.http.get(format!("{}{TRUST_LIST}", self.base)),
            "trust list download",
        )
        .await
    }
}

//! The ecosystem authority: creates the ecosystem's root, admits members with one-time
//! enrolment tokens, certifies the keys members generate themselves, revokes, and publishes
//! the signed trust list. Independent of how it is asked (HTTP in `agora-server`, the
//! command line in `agora`).

mod witness;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agora_model::{
    CertificateKind, CertificateRequest, Endpoints, EnrolRequest, IssuedBundle, LinkageKeyGrant,
    LinkageKeyRequest, ListedCertificate, MemberId, Revocation, SignedTrustList, TrustList,
    TrustedMember, https_host,
};
use agora_store::{AdmittedMember, AuthorityRecord, IssuedCertificate, Store, StoreError};
use agora_trust::pki::{AUTHORITY_UNIT, cert_to_pem, certs_from_pem};
use agora_trust::{
    CertInfo, CertificateDer, EnrolmentToken, IdentityCell, IssueRequest, MemberKey, RootCa,
    TrustError, check_csr, inspect, sign_trust_list,
};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error(
        "{0} holds no authority: run `agora authority init --data-dir {0} --ecosystem ID` first"
    )]
    NotInitialised(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Trust(#[from] TrustError),
    #[error("the data directory {path} is not usable: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    /// A checkpoint to witness was proved from another size than the one witnessed last.
    #[error(
        "this authority last witnessed {witnessed} entries of the log; prove consistency from there"
    )]
    WitnessConflict { witnessed: u64 },
    /// A member's log is not consistent with what the authority witnessed before.
    #[error("{0}")]
    Inconsistent(String),
}

/// What kind of failure an authority error is, for the server to map to its codes
/// without looking inside store errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityErrorKind {
    /// The enrolment token is unknown, used or expired.
    EnrolmentRefused,
    /// The member is revoked.
    Revoked,
    /// No such member.
    NotFound,
    /// The request is refused for another stated reason.
    Refused,
    /// Some other part of the request is wrong.
    BadRequest,
    /// The authority failed for reasons of its own.
    Internal,
    /// The request was made against an older state (witnessing: another size).
    Conflict,
    /// What the member showed contradicts what the authority saw before.
    Inconsistent,
}

impl AuthorityError {
    /// What kind of failure this is.
    pub fn kind(&self) -> AuthorityErrorKind {
        use AuthorityErrorKind as K;
        match self {
            Self::Store(StoreError::EnrolmentRefused(_)) => K::EnrolmentRefused,
            Self::Store(StoreError::MemberRevoked(_)) => K::Revoked,
            Self::Store(StoreError::MemberNotFound(_)) => K::NotFound,
            Self::Refused(_) => K::Refused,
            Self::WitnessConflict { .. } => K::Conflict,
            Self::Inconsistent(_) => K::Inconsistent,
            _ if self.is_user_error() => K::BadRequest,
            _ => K::Internal,
        }
    }

    /// The size a witness conflict names: the size the authority last witnessed.
    pub fn witnessed_size(&self) -> Option<u64> {
        match self {
            Self::WitnessConflict { witnessed } => Some(*witnessed),
            _ => None,
        }
    }

    /// True when the requester is at fault (bad token, bad request, revoked member).
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Store(e) => matches!(
                e,
                StoreError::EnrolmentRefused(_)
                    | StoreError::MemberNotFound(_)
                    | StoreError::MemberRevoked(_)
                    | StoreError::CertificateNotFound(_)
                    | StoreError::AlreadyInitialised(_)
            ),
            Self::Trust(
                TrustError::Certificate(_) | TrustError::BadSignature(_) | TrustError::Key(_),
            ) => true,
            Self::Refused(_) | Self::WitnessConflict { .. } | Self::Inconsistent(_) => true,
            _ => false,
        }
    }
}

/// Lifetimes the authority gives out.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    pub data_dir: PathBuf,
    pub store_url: Option<String>,
    /// Validity of member certificates (nodes renew when a third is left).
    pub certificate_validity: Duration,
    /// Validity of each published trust list; nodes refresh well before.
    pub list_validity: Duration,
    /// Validity of enrolment tokens.
    pub token_validity: Duration,
}

impl AuthorityConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store_url: None,
            certificate_validity: Duration::days(30),
            list_validity: Duration::hours(1),
            token_validity: Duration::hours(24),
        }
    }
}

const ROOT_CERT: &str = "root.crt";
const ROOT_KEY: &str = "root.key";
/// The secrets linkage keys are derived from, one line per generation (`EPOCH HEX`).
const LINKAGE_SECRETS: &str = "linkage.keys";
const ROOT_VALIDITY_DAYS: i64 = 3650;

/// A running authority. Cheap to share behind an `Arc`.
pub struct Authority {
    store: Store,
    root: RootCa,
    config: AuthorityConfig,
    ecosystem: String,
    /// The last list signed, reused while nothing changed and it is fresh.
    published: Mutex<Option<(i64, DateTime<Utc>, SignedTrustList)>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("ecosystem", &self.ecosystem)
            .finish_non_exhaustive()
    }
}

async fn open_store(cfg: &AuthorityConfig) -> Result<Store, AuthorityError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| AuthorityError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source: e,
    })?;
    Ok(match &cfg.store_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_in_dir(&cfg.data_dir).await?,
    })
}

fn read_root(dir: &Path) -> Result<RootCa, AuthorityError> {
    let pem =
        std::fs::read_to_string(dir.join(ROOT_CERT)).map_err(|e| AuthorityError::DataDir {
            path: dir.join(ROOT_CERT).display().to_string(),
            source: e,
        })?;
    let cert = certs_from_pem(&pem)?.remove(0);
    let key = MemberKey::read(&dir.join(ROOT_KEY))?;
    Ok(RootCa::load(cert, key)?)
}

impl Authority {
    /// Creates a new ecosystem: its root key and certificate (key file mode 0600) and the
    /// authority's records. `url` is the authority's public base URL.
    pub async fn init(
        cfg: AuthorityConfig,
        ecosystem: &str,
        url: &str,
    ) -> Result<Self, AuthorityError> {
        MemberId::parse(ecosystem).map_err(|_| {
            AuthorityError::Refused(format!(
                "invalid ecosystem id {ecosystem:?}: use 2 to 63 lower-case letters, digits and hyphens"
            ))
        })?;
        let store = open_store(&cfg).await?;
        if let Some(a) = store.authority().await? {
            return Err(StoreError::AlreadyInitialised(a.ecosystem).into());
        }
        let now = Utc::now();
        let root = RootCa::create(
            ecosystem,
            now - Duration::minutes(5),
            now + Duration::days(ROOT_VALIDITY_DAYS),
        )?;
        // Key first, then certificate, then the records: a crash leaves either nothing
        // usable (init again after removing the files) or a complete authority.
        root.key().write(&cfg.data_dir.join(ROOT_KEY))?;
        agora_trust::write_public(&cfg.data_dir.join(ROOT_CERT), root.cert_pem().as_bytes())?;
        LinkageSecrets::ensure(&cfg.data_dir)?;
        store.init_authority(ecosystem, url).await?;
        tracing::info!(ecosystem, root = %root.info.fingerprint, "authority created");
        Ok(Self::assemble(store, root, cfg, ecosystem.to_owned()))
    }

    pub async fn open(cfg: AuthorityConfig) -> Result<Self, AuthorityError> {
        let store = open_store(&cfg).await?;
        let record = store
            .authority()
            .await?
            .ok_or_else(|| AuthorityError::NotInitialised(cfg.data_dir.display().to_string()))?;
        let root = read_root(&cfg.data_dir)?;
        if root.ecosystem() != record.ecosystem {
            return Err(AuthorityError::Refused(format!(
                "the root certificate in {} is of ecosystem {:?}, but the records are of {:?}",
                cfg.data_dir.display(),
                root.ecosystem(),
                record.ecosystem
            )));
        }
        LinkageSecrets::ensure(&cfg.data_dir)?;
        Ok(Self::assemble(store, root, cfg, record.ecosystem))
    }

    fn assemble(store: Store, root: RootCa, config: AuthorityConfig, ecosystem: String) -> Self {
        Self {
            store,
            root,
            config,
            ecosystem,
            published: Mutex::new(None),
        }
    }

    pub fn ecosystem(&self) -> &str {
        &self.ecosystem
    }
    pub fn root(&self) -> &RootCa {
        &self.root
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }

    pub async fn record(&self) -> Result<AuthorityRecord, AuthorityError> {
        self.store.authority().await?.ok_or_else(|| {
            AuthorityError::NotInitialised(self.config.data_dir.display().to_string())
        })
    }

    /// Sets the URL published in the trust list (where nodes renew and fetch lists).
    pub async fn set_url(&self, url: &str) -> Result<(), AuthorityError> {
        Ok(self.store.set_authority_url(url).await?)
    }

    /// The authority's own TLS identity for `hosts`: a fresh key and a certificate from
    /// the root, presented with the root after it (so enrolling nodes can pin it).
    pub fn server_identity(
        &self,
        hosts: Vec<String>,
    ) -> Result<std::sync::Arc<IdentityCell>, AuthorityError> {
        let key = MemberKey::generate()?;
        let csr = check_csr(&agora_trust::make_csr(
            &key,
            &MemberId::parse("authority").expect("valid id"),
            CertificateKind::Node,
        )?)?;
        let now = Utc::now();
        let cert = self.root.issue(
            &csr,
            &IssueRequest {
                ecosystem: self.ecosystem.clone(),
                common_name: format!("authority of {}", self.ecosystem),
                unit: AUTHORITY_UNIT.into(),
                hosts,
                server: true,
                not_before: now - Duration::minutes(5),
                not_after: now + self.config.certificate_validity,
            },
        )?;
        Ok(IdentityCell::new(
            vec![cert, self.root.cert_der.clone()],
            &key,
        )?)
    }

    /// Admits `member` (or renews its admission) and returns a one-time enrolment token.
    pub async fn admit(
        &self,
        member: &MemberId,
        name: &str,
    ) -> Result<EnrolmentToken, AuthorityError> {
        if name.trim().is_empty() {
            return Err(AuthorityError::Refused(
                "a member needs a name (--name \"Tax Office\")".into(),
            ));
        }
        let secret = self
            .store
            .admit_member(member, name.trim(), self.config.token_validity)
            .await?;
        tracing::info!(member = %member, "member admitted");
        Ok(EnrolmentToken {
            member: member.clone(),
            secret,
            root_fingerprint: self.root.info.fingerprint.clone(),
        })
    }

    fn validity(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = Utc::now();
        (
            now - Duration::minutes(5),
            now + self.config.certificate_validity,
        )
    }

    fn hosts_of(endpoints: &Endpoints) -> Result<Vec<String>, AuthorityError> {
        let mut hosts = Vec::new();
        if let Some(url) = &endpoints.exchange {
            let host = https_host(url).ok_or_else(|| {
                AuthorityError::Refused(format!(
                    "the exchange endpoint {url:?} is not an https:// URL with a host"
                ))
            })?;
            hosts.push(host);
        }
        Ok(hosts)
    }

    fn record_of(
        &self,
        der: &CertificateDer<'static>,
        member: &MemberId,
        kind: CertificateKind,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let info = inspect(der)?;
        Ok(IssuedCertificate {
            fingerprint: info.fingerprint,
            serial: info.serial,
            member: member.clone(),
            kind,
            not_before: info.not_before,
            not_after: info.not_after,
            issued_at: Utc::now(),
            cert_pem: cert_to_pem(der),
            revoked_at: None,
            revoked_reason: None,
        })
    }

    async fn bundle(&self, cert_pem: String) -> Result<IssuedBundle, AuthorityError> {
        Ok(IssuedBundle {
            certificate: cert_pem,
            root_certificate: self.root.cert_pem(),
            trust_list: self.trust_list().await?,
        })
    }

    /// Enrols a node: checks the one-time token and the request's proof of possession,
    /// certifies the node's own key, and records it — all or nothing.
    pub async fn enrol(&self, req: &EnrolRequest) -> Result<IssuedBundle, AuthorityError> {
        let admitted = self.store.enrolment_member(&req.token).await?;
        if admitted.id != req.member {
            return Err(StoreError::EnrolmentRefused(format!(
                "the token was issued for member {}, not {}",
                admitted.id, req.member
            ))
            .into());
        }
        let csr = check_csr(&req.csr)?;
        let hosts = Self::hosts_of(&req.endpoints)?;
        let (nb, na) = self.validity();
        let der = self.root.issue(
            &csr,
            &IssueRequest::member(
                &self.ecosystem,
                &req.member,
                CertificateKind::Node,
                hosts,
                nb,
                na,
            ),
        )?;
        let record = self.record_of(&der, &req.member, CertificateKind::Node)?;
        self.store
            .complete_enrolment(&req.token, &req.endpoints, &record)
            .await?;
        tracing::info!(member = %req.member, serial = %record.serial, "member enrolled");
        self.bundle(record.cert_pem).await
    }

    /// Issues a further certificate to a member authenticated by `presented` (its current,
    /// verified certificate): a node renewal, or a client-tool certificate.
    pub async fn issue_further(
        &self,
        presented: &CertInfo,
        req: &CertificateRequest,
    ) -> Result<IssuedBundle, AuthorityError> {
        let (member, admitted) = self.node_in_good_standing(presented).await?;
        let csr = check_csr(&req.csr)?;
        let endpoints = req.endpoints.clone().unwrap_or(admitted.endpoints);
        let hosts = match req.kind {
            CertificateKind::Node => Self::hosts_of(&endpoints)?,
            CertificateKind::Client => Vec::new(),
        };
        let (nb, na) = self.validity();
        let der = self.root.issue(
            &csr,
            &IssueRequest::member(&self.ecosystem, &member, req.kind, hosts, nb, na),
        )?;
        let rec = self.record_of(&der, &member, req.kind)?;
        let new_endpoints = match req.kind {
            CertificateKind::Node => req.endpoints.as_ref(),
            CertificateKind::Client => None,
        };
        self.store.record_certificate(&rec, new_endpoints).await?;
        tracing::info!(member = %member, kind = req.kind.as_str(), serial = %rec.serial, "certificate issued");
        self.bundle(rec.cert_pem).await
    }

    /// Gives an owner's node the key for pseudonyms shared with `consumer` for `purpose`:
    /// the same key to every owner that asks, so that their pseudonyms join, but never to
    /// the consumer itself (which could otherwise compute the pseudonym of any identifier
    /// it knows). Keys are derived from the authority's secret of the generation asked
    /// for; see ARCHITECTURE.md, key management.
    pub async fn issue_linkage_key(
        &self,
        presented: &CertInfo,
        req: &LinkageKeyRequest,
    ) -> Result<LinkageKeyGrant, AuthorityError> {
        let (member, _) = self.node_in_good_standing(presented).await?;
        if !agora_model::PURPOSES.contains(&req.purpose.as_str()) {
            return Err(AuthorityError::Refused(format!(
                "unknown purpose {:?}: linkage keys exist only for the purposes of the vocabulary",
                req.purpose
            )));
        }
        if member == req.consumer {
            return Err(AuthorityError::Refused(format!(
                "member {member} asked for the linkage key of its own agreements: only owners \
                 sharing with a consumer hold it, never the consumer"
            )));
        }
        let consumer = self
            .store
            .admitted_member(&req.consumer)
            .await?
            .ok_or_else(|| StoreError::MemberNotFound(req.consumer.to_string()))?;
        if consumer.revoked_at.is_some() {
            return Err(StoreError::MemberRevoked(req.consumer.to_string()).into());
        }
        let secrets = LinkageSecrets::read(&self.config.data_dir)?;
        let epoch = req.epoch.unwrap_or_else(|| secrets.current());
        let key = secrets
            .derive(epoch, &self.ecosystem, &req.purpose, &req.consumer)
            .ok_or_else(|| {
                AuthorityError::Refused(format!("there is no linkage key generation {epoch}"))
            })?;
        tracing::info!(owner = %member, consumer = %req.consumer, purpose = %req.purpose, epoch, "linkage key issued");
        Ok(LinkageKeyGrant {
            purpose: req.purpose.clone(),
            consumer: req.consumer.clone(),
            epoch,
            key_hex: hex::encode(key),
        })
    }

    /// Starts a new generation of linkage keys: agreements made from now on use it, those
    /// already in force keep theirs. Returns the new generation.
    pub fn rotate_linkage_keys(&self) -> Result<u32, AuthorityError> {
        LinkageSecrets::rotate(&self.config.data_dir)
    }

    /// The member whose node certificate `presented` is, provided the certificate was
    /// issued here and neither it nor the member is revoked.
    pub(crate) async fn node_in_good_standing(
        &self,
        presented: &CertInfo,
    ) -> Result<(MemberId, AdmittedMember), AuthorityError> {
        let (member, kind) = presented.member()?;
        let record = self
            .store
            .issued_certificate(&presented.fingerprint)
            .await?
            .ok_or_else(|| {
                AuthorityError::Refused(format!(
                    "certificate {} was not issued by this authority",
                    presented.serial
                ))
            })?;
        if record.revoked_at.is_some() {
            return Err(AuthorityError::Refused(format!(
                "certificate {} of member {member} is revoked",
                presented.serial
            )));
        }
        let admitted = self
            .store
            .admitted_member(&member)
            .await?
            .ok_or_else(|| StoreError::MemberNotFound(member.to_string()))?;
        if admitted.revoked_at.is_some() {
            return Err(StoreError::MemberRevoked(member.to_string()).into());
        }
        if kind != CertificateKind::Node {
            return Err(AuthorityError::Refused(
                "only a member's node certificate can ask the authority for this".into(),
            ));
        }
        Ok((member, admitted))
    }

    pub async fn revoke_member(
        &self,
        member: &MemberId,
        reason: &str,
    ) -> Result<usize, AuthorityError> {
        let n = self.store.revoke_member(member, reason).await?;
        tracing::warn!(member = %member, certificates = n, reason, "member revoked");
        Ok(n)
    }

    pub async fn revoke_certificate(
        &self,
        fingerprint: &str,
        reason: &str,
    ) -> Result<(), AuthorityError> {
        self.store.revoke_certificate(fingerprint, reason).await?;
        tracing::warn!(fingerprint, reason, "certificate revoked");
        Ok(())
    }

    pub async fn members(&self) -> Result<Vec<AdmittedMember>, AuthorityError> {
        Ok(self.store.admitted_members().await?)
    }

    pub async fn certificates(&self) -> Result<Vec<IssuedCertificate>, AuthorityError> {
        Ok(self.store.issued_certificates().await?)
    }

    /// Builds the trust list from the records as they are now.
    pub async fn build_trust_list(&self) -> Result<TrustList, AuthorityError> {
        let record = self.record().await?;
        let now = Utc::now();
        let members = self.store.admitted_members().await?;
        let certs = self.store.issued_certificates().await?;
        let mut listed = Vec::new();
        for m in members.iter().filter(|m| m.revoked_at.is_none()) {
            let certificates: Vec<ListedCertificate> = certs
                .iter()
                .filter(|c| c.member == m.id && c.revoked_at.is_none() && c.not_after > now)
                .map(|c| ListedCertificate {
                    fingerprint: c.fingerprint.clone(),
                    serial: c.serial.clone(),
                    kind: c.kind,
                    not_before: c.not_before,
                    not_after: c.not_after,
                })
                .collect();
            listed.push(TrustedMember {
                id: m.id.clone(),
                name: m.name.clone(),
                endpoints: m.endpoints.clone(),
                certificates,
            });
        }
        // Revocations stay listed until the certificate would have expired anyway.
        let revocations = certs
            .iter()
            .filter(|c| c.not_after > now)
            .filter_map(|c| {
                c.revoked_at.map(|at| Revocation {
                    member: c.member.clone(),
                    fingerprint: c.fingerprint.clone(),
                    serial: c.serial.clone(),
                    revoked_at: at,
                    reason: c.revoked_reason.clone().unwrap_or_default(),
                })
            })
            .collect();
        Ok(TrustList {
            format: TrustList::FORMAT,
            ecosystem: self.ecosystem.clone(),
            sequence: record.list_sequence,
            issued_at: now,
            expires_at: now + self.config.list_validity,
            authority_url: record.url,
            members: listed,
            revocations,
        })
    }

    /// The current signed trust list: re-signed when the records changed (also by another
    /// process, such as the CLI) or when half of the last one's validity has passed.
    pub async fn trust_list(&self) -> Result<SignedTrustList, AuthorityError> {
        let seq = self.record().await?.list_sequence;
        let now = Utc::now();
        if let Some((s, signed_at, list)) = self.published.lock().expect("lock").as_ref()
            && *s == seq
            && now - *signed_at < self.config.list_validity / 2
        {
            return Ok(list.clone());
        }
        let list = self.build_trust_list().await?;
        let signed = sign_trust_list(&list, &self.root);
        *self.published.lock().expect("lock") = Some((seq, now, signed.clone()));
        Ok(signed)
    }
}

/// The authority's linkage secrets, one per generation, in a file of mode 0600.
struct LinkageSecrets(Vec<(u32, [u8; 32])>);

impl LinkageSecrets {
    fn path(dir: &Path) -> PathBuf {
        dir.join(LINKAGE_SECRETS)
    }

    fn bad(dir: &Path, why: impl std::fmt::Display) -> AuthorityError {
        AuthorityError::Refused(format!(
            "the linkage secrets in {} are unreadable ({why}); restore the file from backup",
            Self::path(dir).display()
        ))
    }

    fn read(dir: &Path) -> Result<Self, AuthorityError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| AuthorityError::DataDir {
            path: path.display().to_string(),
            source: e,
        })?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (epoch, secret) = line
                .split_once(' ')
                .ok_or_else(|| Self::bad(dir, "a line is not `EPOCH HEX`"))?;
            let epoch: u32 = epoch.parse().map_err(|e| Self::bad(dir, e))?;
            let bytes = hex::decode(secret.trim()).map_err(|e| Self::bad(dir, e))?;
            let secret: [u8; 32] = bytes
                .try_into()
                .map_err(|_| Self::bad(dir, "a secret is not 32 bytes"))?;
            out.push((epoch, secret));
        }
        if out.is_empty() {
            return Err(Self::bad(dir, "it holds no secret"));
        }
        Ok(Self(out))
    }

    fn write(dir: &Path, secrets: &[(u32, [u8; 32])]) -> Result<(), AuthorityError> {
        let text: String = secrets
            .iter()
            .map(|(e, s)| format!("{e} {}\n", hex::encode(s)))
            .collect();
        agora_trust::write_private(&Self::path(dir), text.as_bytes())?;
        Ok(())
    }

    fn fresh() -> Result<[u8; 32], AuthorityError> {
        Ok(agora_trust::random_secret())
    }

    /// Creates the first generation if there is none yet.
    fn ensure(dir: &Path) -> Result<(), AuthorityError> {
        if Self::path(dir).exists() {
            return Ok(());
        }
        Self::write(dir, &[(1, Self::fresh()?)])
    }

    fn rotate(dir: &Path) -> Result<u32, AuthorityError> {
        let mut secrets = Self::read(dir)?.0;
        let next = secrets.iter().map(|(e, _)| *e).max().unwrap_or(0) + 1;
        secrets.push((next, Self::fresh()?));
        Self::write(dir, &secrets)?;
        tracing::info!(epoch = next, "linkage key generation started");
        Ok(next)
    }

    fn current(&self) -> u32 {
        self.0.iter().map(|(e, _)| *e).max().unwrap_or(1)
    }

    /// HMAC-SHA256 under the generation's secret of a domain-separated label naming the
    /// ecosystem, purpose and consumer.
    fn derive(
        &self,
        epoch: u32,
        ecosystem: &str,
        purpose: &str,
        consumer: &MemberId,
    ) -> Option<[u8; 32]> {
        let (_, secret) = self.0.iter().find(|(e, _)| *e == epoch)?;
        let label = format!("agora-linkage-key-v1\n{ecosystem}\n{purpose}\n{consumer}");
        Some(agora_trust::secrets::hmac_sha256(secret, label.as_bytes()))
    }
}

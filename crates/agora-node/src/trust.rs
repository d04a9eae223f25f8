//! A node's membership of an ecosystem: its own key and certificate, the ecosystem's root,
//! and the last good trust list, kept in `DATA_DIR/trust/`:
//!
//! | file | what |
//! |---|---|
//! | `node.key` | the node's Ed25519 private key (mode 0600; never leaves the node) |
//! | `node.crt` | its member certificate, issued by the authority |
//! | `root.crt` | the ecosystem's root certificate |
//! | `trust-list.json` | the last trust list that verified, as signed by the authority |

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use agora_exchange::AuthorityClient;
use agora_model::{
    CertificateKind, CertificateRequest, Endpoints, EnrolRequest, IssuedBundle, MemberId,
    SignedTrustList, Standing, TrustList, TrustedMember,
};
use agora_trust::pki::{cert_to_pem, certs_from_pem};
use agora_trust::{
    CertInfo, CertificateDer, EnrolmentToken, IdentityCell, MemberKey, TrustError, inspect,
    make_csr, verify_trust_list, write_public,
};
use chrono::{DateTime, Duration, Utc};

use crate::NodeError;

const KEY: &str = "node.key";
/// The key before the last renewal, kept until the new certificate is in place.
const PREVIOUS_KEY: &str = "node.key.previous";
const CERT: &str = "node.crt";
const ROOT: &str = "root.crt";
const LIST: &str = "trust-list.json";

/// Timing rules of a node's membership.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// How long a negotiation may take: one not finalized by then is terminated by both
    /// sides.
    pub negotiation_timeout: Duration,
    /// How often the trust list is fetched from the authority.
    pub refresh_every: Duration,
    /// How long after its expiry a trust list is still used; beyond it the node stops
    /// serving and calling other members.
    pub grace: Duration,
    /// Largest accepted difference between a signed request's time and this node's clock.
    pub clock_tolerance: Duration,
    /// How long another member's node may stay silent (connecting, or in the middle of an
    /// answer) before the call fails.
    pub peer_timeout: Duration,
}

impl Default for TrustSettings {
    fn default() -> Self {
        Self {
            refresh_every: Duration::seconds(60),
            grace: Duration::minutes(10),
            clock_tolerance: Duration::seconds(30),
            peer_timeout: Duration::seconds(30),
            negotiation_timeout: Duration::days(7),
        }
    }
}

/// The node's key and certificates, replaced together on renewal.
pub struct Material {
    pub root: CertificateDer<'static>,
    pub root_info: CertInfo,
    pub key: MemberKey,
    pub cert: CertificateDer<'static>,
    pub info: CertInfo,
}

/// Where the node stands with its trust list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ListStatus {
    Valid {
        sequence: i64,
        expires_at: DateTime<Utc>,
    },
    /// Expired, but within the grace period: still used, refresh urgently.
    Grace {
        sequence: i64,
        expired_at: DateTime<Utc>,
        serving_until: DateTime<Utc>,
    },
    /// Expired beyond the grace period: the node refuses remote requests.
    Expired {
        sequence: i64,
        expired_at: DateTime<Utc>,
    },
}

impl ListStatus {
    pub fn usable(&self) -> bool {
        !matches!(self, Self::Expired { .. })
    }
}

/// A node's membership of an ecosystem.
pub struct NodeTrust {
    dir: PathBuf,
    member: MemberId,
    settings: TrustSettings,
    material: RwLock<Arc<Material>>,
    identity: Arc<IdentityCell>,
    list: RwLock<(Arc<TrustList>, SignedTrustList)>,
    /// When the list was last fetched because a peer was not on it (see
    /// [`NodeTrust::check_peer_fresh`]).
    pulled_on_miss: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for NodeTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTrust")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |e| {
        NodeError::Trust(TrustError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, NodeError> {
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    Ok(certs_from_pem(&pem)?.remove(0))
}

fn read_list(path: &Path) -> Result<SignedTrustList, NodeError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| {
        NodeError::Trust(TrustError::TrustList(format!(
            "{} is not a signed trust list: {e}",
            path.display()
        )))
    })
}

/// The trust directory of a data directory.
pub fn trust_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("trust")
}

/// Checks an issued bundle against what we asked for and pinned, and verifies its list.
fn check_bundle(
    bundle: &IssuedBundle,
    key: &MemberKey,
    member: &MemberId,
    kind: CertificateKind,
    expected_root: &str,
) -> Result<
    (
        CertificateDer<'static>,
        CertInfo,
        CertificateDer<'static>,
        CertInfo,
        TrustList,
    ),
    NodeError,
> {
    let root = certs_from_pem(&bundle.root_certificate)?.remove(0);
    let root_info = inspect(&root)?;
    if root_info.fingerprint != expected_root {
        return Err(NodeError::Trust(TrustError::Certificate(format!(
            "the authority answered with root {} but the token pins root {}",
            root_info.fingerprint, expected_root
        ))));
    }
    let cert = certs_from_pem(&bundle.certificate)?.remove(0);
    let info = inspect(&cert)?;
    if info.member()? != (member.clone(), kind) || info.public_key != key.public() {
        return Err(NodeError::Trust(TrustError::Certificate(
            "the authority issued a certificate for another member, kind or key".into(),
        )));
    }
    let list = verify_trust_list(&bundle.trust_list, &root_info)?;
    Ok((root, root_info, cert, info, list))
}

impl NodeTrust {
    /// Loads the membership of an enrolled node; `None` when the node never enrolled.
    pub fn load(
        data_dir: &Path,
        member: &MemberId,
        settings: TrustSettings,
    ) -> Result<Option<Self>, NodeError> {
        let dir = trust_dir(data_dir);
        if !dir.join(CERT).exists() {
            return Ok(None);
        }
        let root = read_cert(&dir.join(ROOT))?;
        let root_info = inspect(&root)?;
        let mut key = MemberKey::read(&dir.join(KEY))?;
        let cert = read_cert(&dir.join(CERT))?;
        let info = inspect(&cert)?;
        // A renewal interrupted between its key and certificate leaves the new key with the
        // old (still valid) certificate: use the previous key with it, renew again later.
        if info.public_key != key.public()
            && let Ok(previous) = MemberKey::read(&dir.join(PREVIOUS_KEY))
            && previous.public() == info.public_key
        {
            tracing::warn!(
                "an interrupted renewal left the previous key in use; it will be renewed again"
            );
            previous.write(&dir.join(KEY))?;
            key = previous;
        }
        if info.public_key != key.public() {
            return Err(NodeError::Trust(TrustError::Certificate(format!(
                "{} does not belong to {}; enrol the node again",
                dir.join(CERT).display(),
                dir.join(KEY).display()
            ))));
        }
        if &info.member()?.0 != member {
            return Err(NodeError::Trust(TrustError::Certificate(format!(
                "the certificate in {} is for member {}, but this node is {member}",
                dir.display(),
                info.member()?.0
            ))));
        }
        let signed = read_list(&dir.join(LIST))?;
        let list = verify_trust_list(&signed, &root_info)?;
        let identity = IdentityCell::new(vec![cert.clone()], &key)?;
        Ok(Some(Self {
            dir,
            member: member.clone(),
            settings,
            material: RwLock::new(Arc::new(Material {
                root,
                root_info,
                key,
                cert,
                info,
            })),
            identity,
            list: RwLock::new((Arc::new(list), signed)),
            pulled_on_miss: Default::default(),
        }))
    }

    /// Enrols the node with the authority at `authority_url`: generates the node's key
    /// here, sends only a signing request, checks the answer against the root pinned by
    /// the token, and writes key, certificates and list. The certificate is written last,
    /// so an interrupted enrolment leaves the node not enrolled.
    pub async fn enrol(
        data_dir: &Path,
        member: &MemberId,
        authority_url: &str,
        token: &EnrolmentToken,
        endpoints: Endpoints,
        settings: TrustSettings,
    ) -> Result<Self, NodeError> {
        let client = AuthorityClient::pinned(authority_url, &token.root_fingerprint)?;
        let t = Self::enrol_through(data_dir, member, token, endpoints, settings, async |req| {
            Ok(client.enrol(&req).await?)
        })
        .await?;
        tracing::info!(member = %member, authority = authority_url, "node enrolled");
        Ok(t)
    }

    /// Enrols the node by handing its request to `issue` (the authority over HTTPS, or an
    /// authority in the same process); the answer is checked as [`NodeTrust::enrol`] says.
    pub async fn enrol_through(
        data_dir: &Path,
        member: &MemberId,
        token: &EnrolmentToken,
        endpoints: Endpoints,
        settings: TrustSettings,
        issue: impl AsyncFnOnce(EnrolRequest) -> Result<IssuedBundle, NodeError>,
    ) -> Result<Self, NodeError> {
        if &token.member != member {
            return Err(NodeError::Trust(TrustError::Certificate(format!(
                "the enrolment token is for member {}, but this node is {member}",
                token.member
            ))));
        }
        let dir = trust_dir(data_dir);
        let key = MemberKey::generate()?;
        let csr = make_csr(&key, member, CertificateKind::Node)?;
        let bundle = issue(EnrolRequest {
            member: member.clone(),
            token: token.secret.clone(),
            csr,
            endpoints,
        })
        .await?;
        let (root, _, cert, _, _) = check_bundle(
            &bundle,
            &key,
            member,
            CertificateKind::Node,
            &token.root_fingerprint,
        )?;
        key.write(&dir.join(KEY))?;
        write_public(&dir.join(ROOT), cert_to_pem(&root).as_bytes())?;
        write_public(
            &dir.join(LIST),
            serde_json::to_string_pretty(&bundle.trust_list)
                .expect("lists serialise")
                .as_bytes(),
        )?;
        write_public(&dir.join(CERT), cert_to_pem(&cert).as_bytes())?;
        Self::load(data_dir, member, settings)?.ok_or_else(|| {
            NodeError::Trust(TrustError::Certificate(
                "enrolment left no certificate".into(),
            ))
        })
    }

    pub fn member(&self) -> &MemberId {
        &self.member
    }
    pub fn settings(&self) -> &TrustSettings {
        &self.settings
    }
    pub fn material(&self) -> Arc<Material> {
        self.material.read().expect("lock").clone()
    }
    /// The TLS identity (certificate and key), swapped in place on renewal.
    pub fn identity(&self) -> Arc<IdentityCell> {
        self.identity.clone()
    }
    pub fn list(&self) -> Arc<TrustList> {
        self.list.read().expect("lock").0.clone()
    }
    pub fn signed_list(&self) -> SignedTrustList {
        self.list.read().expect("lock").1.clone()
    }

    pub fn status(&self, now: DateTime<Utc>) -> ListStatus {
        let list = self.list();
        match list.expired_for(now) {
            None => ListStatus::Valid {
                sequence: list.sequence,
                expires_at: list.expires_at,
            },
            Some(d) if d <= self.settings.grace => ListStatus::Grace {
                sequence: list.sequence,
                expired_at: list.expires_at,
                serving_until: list.expires_at + self.settings.grace,
            },
            Some(_) => ListStatus::Expired {
                sequence: list.sequence,
                expired_at: list.expires_at,
            },
        }
    }

    /// Why other members will refuse this node, as its own trust list says: its
    /// certificate revoked, or the member no longer listed (or listed without this
    /// certificate). `None` while it stands.
    pub fn own_standing_problem(&self) -> Option<String> {
        let list = self.list();
        let fingerprint = self.material().info.fingerprint.clone();
        match list.standing(&self.member, &fingerprint) {
            agora_model::Standing::Trusted { .. } => None,
            agora_model::Standing::Revoked(r) => Some(format!(
                "the authority revoked this node's certificate at {} ({}): other members refuse it; enrol again with a new token",
                r.revoked_at, r.reason
            )),
            agora_model::Standing::UnknownMember => Some(format!(
                "the trust list no longer names member {}: other members refuse this node; ask the authority",
                self.member
            )),
            agora_model::Standing::UnknownCertificate { .. } => Some(
                "the trust list does not hold this node's certificate: other members refuse it; renew or enrol again".to_owned(),
            ),
        }
    }

    /// Refuses while the trust list is expired beyond the grace period.
    pub fn ensure_usable(&self, now: DateTime<Utc>) -> Result<Arc<TrustList>, NodeError> {
        match self.status(now) {
            ListStatus::Expired { expired_at, .. } => Err(NodeError::TrustListExpired {
                expired_at,
                grace_minutes: self.settings.grace.num_minutes(),
            }),
            _ => Ok(self.list()),
        }
    }

    /// Takes a newly fetched list if it verifies and is not older than the current one.
    /// Returns whether it replaced the current list.
    pub fn accept_list(&self, signed: SignedTrustList) -> Result<bool, NodeError> {
        let material = self.material();
        let list = verify_trust_list(&signed, &material.root_info)?;
        let current = self.list();
        if list.sequence < current.sequence {
            return Err(NodeError::Trust(TrustError::TrustList(format!(
                "it has sequence {} but this node already has {} (a rollback)",
                list.sequence, current.sequence
            ))));
        }
        if list.sequence == current.sequence && list.issued_at <= current.issued_at {
            return Ok(false);
        }
        write_public(
            &self.dir.join(LIST),
            serde_json::to_string_pretty(&signed)
                .expect("lists serialise")
                .as_bytes(),
        )?;
        *self.list.write().expect("lock") = (Arc::new(list), signed);
        Ok(true)
    }

    pub(crate) fn authority(&self) -> Result<AuthorityClient, NodeError> {
        let material = self.material();
        Ok(AuthorityClient::with_root(
            &self.list().authority_url,
            &material.root,
            Some(self.identity()),
        )?)
    }

    /// The linkage key for pseudonyms shared with `consumer` for `purpose`, of generation
    /// `epoch` (the current one when `None`): read from the node's key directory, or asked
    /// of the authority once and kept there (mode 0600).
    pub async fn linkage_key(
        &self,
        purpose: &str,
        consumer: &MemberId,
        epoch: Option<u32>,
    ) -> Result<(u32, [u8; 32]), NodeError> {
        let dir = self.dir.join("linkage");
        if let Some(e) = epoch
            && let Some(key) = read_linkage_key(&dir, purpose, consumer, e)?
        {
            return Ok((e, key));
        }
        let grant = self
            .authority()?
            .linkage_key(&agora_model::LinkageKeyRequest {
                purpose: purpose.to_owned(),
                consumer: consumer.clone(),
                epoch,
            })
            .await?;
        let bytes = hex::decode(&grant.key_hex)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| NodeError::PeerRefused {
                peer: "the authority".into(),
                reason: "it sent a linkage key that is not 32 bytes".into(),
            })?;
        std::fs::create_dir_all(&dir).map_err(|e| NodeError::DataDirNotWritable {
            path: dir.display().to_string(),
            source: e,
        })?;
        agora_trust::write_private(
            &linkage_key_path(&dir, purpose, consumer, grant.epoch),
            grant.key_hex.as_bytes(),
        )?;
        Ok((grant.epoch, bytes))
    }

    /// Fetches the trust list from the authority and takes it if it verifies.
    pub async fn refresh(&self) -> Result<bool, NodeError> {
        let signed = self.authority()?.trust_list().await?;
        self.accept_list(signed)
    }

    /// Whether the node certificate has less than a third of its lifetime left.
    pub fn renewal_due(&self, now: DateTime<Utc>) -> bool {
        let m = self.material();
        let life = m.info.not_after - m.info.not_before;
        m.info.not_after - now < life / 3
    }

    /// Renews the node certificate with a fresh key; the new identity is used from the
    /// next handshake on. `endpoints` replaces the published endpoints when given.
    pub async fn renew(&self, endpoints: Option<Endpoints>) -> Result<(), NodeError> {
        let key = MemberKey::generate()?;
        let csr = make_csr(&key, &self.member, CertificateKind::Node)?;
        let bundle = self
            .authority()?
            .request_certificate(&CertificateRequest {
                kind: CertificateKind::Node,
                csr,
                endpoints,
            })
            .await?;
        let root_fp = self.material().root_info.fingerprint.clone();
        let (root, root_info, cert, info, _) =
            check_bundle(&bundle, &key, &self.member, CertificateKind::Node, &root_fp)?;
        // Key and certificate are replaced as a pair. Each write is atomic; the old key is
        // kept first, so that a crash between the two writes leaves a pair `load` can use.
        self.material().key.write(&self.dir.join(PREVIOUS_KEY))?;
        key.write(&self.dir.join(KEY))?;
        write_public(&self.dir.join(CERT), cert_to_pem(&cert).as_bytes())?;
        let _ = std::fs::remove_file(self.dir.join(PREVIOUS_KEY));
        self.identity.replace(vec![cert.clone()], &key)?;
        *self.material.write().expect("lock") = Arc::new(Material {
            root,
            root_info,
            key,
            cert,
            info,
        });
        self.accept_list(bundle.trust_list)?;
        tracing::info!(member = %self.member, "node certificate renewed");
        Ok(())
    }

    /// Obtains a certificate for one of the member's client tools (Flight SQL, scripts):
    /// the key is generated here and written with the certificate and the root to `out`.
    pub async fn client_certificate(&self, out: &Path) -> Result<ClientFiles, NodeError> {
        let key = MemberKey::generate()?;
        let csr = make_csr(&key, &self.member, CertificateKind::Client)?;
        let bundle = self
            .authority()?
            .request_certificate(&CertificateRequest {
                kind: CertificateKind::Client,
                csr,
                endpoints: None,
            })
            .await?;
        let root_fp = self.material().root_info.fingerprint.clone();
        let (root, _, cert, info, _) = check_bundle(
            &bundle,
            &key,
            &self.member,
            CertificateKind::Client,
            &root_fp,
        )?;
        let files = ClientFiles {
            key: out.join("client.key"),
            certificate: out.join("client.crt"),
            root: out.join("root.crt"),
            fingerprint: info.fingerprint,
        };
        key.write(&files.key)?;
        write_public(&files.certificate, cert_to_pem(&cert).as_bytes())?;
        write_public(&files.root, cert_to_pem(&root).as_bytes())?;
        self.accept_list(bundle.trust_list)?;
        Ok(files)
    }

    /// [`NodeTrust::check_peer`], fetching the trust list from the authority first when
    /// the peer is not on this node's copy: a member the authority admitted a moment ago
    /// is admitted at once rather than at the next scheduled refresh. At most one such
    /// fetch every [`PULL_ON_MISS_EVERY`], so unknown certificates cannot make the node
    /// flood its authority.
    pub async fn check_peer_fresh(
        &self,
        presented: &CertInfo,
        now: DateTime<Utc>,
    ) -> Result<(TrustedMember, CertificateKind), NodeError> {
        let first = self.check_peer(presented, now);
        let unknown = match &first {
            Err(NodeError::PeerRefused { reason, .. }) => reason.contains(NOT_LISTED),
            _ => false,
        };
        if !unknown || !self.may_pull_on_miss() {
            return first;
        }
        match self.refresh().await {
            Ok(true) => {
                tracing::info!(peer = %presented.common_name, "trust list fetched for a peer not on it");
                self.check_peer(presented, now)
            }
            Ok(false) => first,
            Err(e) => {
                tracing::warn!(peer = %presented.common_name, error = %e, "cannot fetch the trust list");
                first
            }
        }
    }

    fn may_pull_on_miss(&self) -> bool {
        let mut last = self.pulled_on_miss.lock().expect("lock");
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < PULL_ON_MISS_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Decides whether a verified peer certificate belongs to a member in good standing.
    pub fn check_peer(
        &self,
        presented: &CertInfo,
        now: DateTime<Utc>,
    ) -> Result<(TrustedMember, CertificateKind), NodeError> {
        let list = self.ensure_usable(now)?;
        let refuse = |reason: String| NodeError::PeerRefused {
            peer: presented.common_name.clone(),
            reason,
        };
        if presented.ecosystem != list.ecosystem {
            return Err(refuse(format!(
                "its certificate is of ecosystem {:?}, not {:?}",
                presented.ecosystem, list.ecosystem
            )));
        }
        let (member, kind) = presented.member().map_err(|e| refuse(e.to_string()))?;
        match list.standing(&member, &presented.fingerprint) {
            Standing::Trusted { member, .. } => Ok((member.clone(), kind)),
            Standing::Revoked(r) => Err(refuse(format!(
                "its certificate {} was revoked at {} ({})",
                r.serial, r.revoked_at, r.reason
            ))),
            Standing::UnknownMember => Err(refuse(format!(
                "member {member} is {NOT_LISTED} (sequence {}); {NEWLY_ADMITTED}",
                list.sequence
            ))),
            Standing::UnknownCertificate { .. } => Err(refuse(format!(
                "its certificate {} is {NOT_LISTED} (sequence {}) for member {member}; {NEWLY_ADMITTED}",
                presented.serial, list.sequence
            ))),
        }
    }
}

/// How often a peer missing from the trust list may make the node fetch the list.
pub const PULL_ON_MISS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

const NOT_LISTED: &str = "not on the trust list";
const NEWLY_ADMITTED: &str = "a member the authority admitted or renewed moments ago is \
    accepted once this node has fetched the new list (at once, or within a minute); \
    otherwise ask the authority";

/// A client tool's files, as written by [`NodeTrust::client_certificate`].
#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub key: PathBuf,
    pub certificate: PathBuf,
    pub root: PathBuf,
    pub fingerprint: String,
}

fn linkage_key_path(dir: &Path, purpose: &str, consumer: &MemberId, epoch: u32) -> PathBuf {
    // Purposes and member ids are lower-case letters, digits, `_` and `-`: safe file names.
    dir.join(format!("{purpose}--{consumer}--{epoch}.key"))
}

/// Where the node keeps its secret for the record keys and cell noise of aggregate
/// agreements.
fn cell_key_path(data_dir: &Path) -> PathBuf {
    trust_dir(data_dir).join("cell-key.secret")
}

/// The node's secret for record keys and cell noise: made on first use (32 random bytes,
/// hex, mode 0600) and kept for good, so a subject keeps its record key and a cell its
/// noise across queries, agreements and restarts. Another process that made one first
/// wins: what is on disk after writing is what is used.
pub(crate) fn cell_key(data_dir: &Path) -> Result<agora_engine::CellKeySecret, NodeError> {
    let damaged = "the cell-key secret is damaged; restore it from a backup (a new one would \
                   change every aggregate answer's noise)";
    Ok(agora_engine::CellKeySecret::new(lasting_secret(
        data_dir,
        &cell_key_path(data_dir),
        damaged,
    )?))
}

/// The node's secret for the tags of the subjects whose records its answers carry
/// (`trust/subject-key.secret`): made on first use and kept for good, like the cell key,
/// so a subject has one tag in every entry of the log.
pub(crate) fn subject_key(data_dir: &Path) -> Result<agora_trust::tlog::SubjectKey, NodeError> {
    let damaged = "the subject-key secret is damaged; restore it from a backup (a new one \
                   would give every subject new tags, and older log entries could no longer \
                   be shown to the people they are about)";
    let path = trust_dir(data_dir).join("subject-key.secret");
    Ok(agora_trust::tlog::SubjectKey::new(lasting_secret(
        data_dir, &path, damaged,
    )?))
}

/// A 32-byte secret at `path` (hex, mode 0600), made on first use. Another process that
/// made one first wins: what is on disk after writing is what is used.
fn lasting_secret(data_dir: &Path, path: &Path, damaged: &str) -> Result<[u8; 32], NodeError> {
    let read = |path: &Path| read_hex_key(path, damaged);
    if let Some(k) = read(path)? {
        return Ok(k);
    }
    let dir = trust_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| NodeError::DataDirNotWritable {
        path: dir.display().to_string(),
        source: e,
    })?;
    // Written only if still absent (a hard link fails on an existing file).
    let fresh = hex::encode(agora_trust::random_secret());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("secret");
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    agora_trust::write_private(&tmp, fresh.as_bytes())?;
    let _ = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    read(path)?.ok_or_else(|| NodeError::BadLocation {
        path: path.display().to_string(),
        reason: "the secret could not be written".into(),
    })
}

fn read_linkage_key(
    dir: &Path,
    purpose: &str,
    consumer: &MemberId,
    epoch: u32,
) -> Result<Option<[u8; 32]>, NodeError> {
    read_hex_key(
        &linkage_key_path(dir, purpose, consumer, epoch),
        "the linkage key file is damaged; delete it and it is fetched again",
    )
}

/// A 32-byte key kept as hex in a file: `None` if the file is absent, an error saying
/// `damaged` if it does not hold one.
fn read_hex_key(path: &Path, damaged: &str) -> Result<Option<[u8; 32]>, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Some)
            .ok_or_else(|| NodeError::BadLocation {
                path: path.display().to_string(),
                reason: damaged.to_owned(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::DataDirNotWritable {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

//! The citizen portal's side of a resident's history: for every member of the ecosystem,
//! the resident's tag at that member (asked for blindly and checked against the subject
//! key the member's witnessed checkpoint states), the bucket of the member's subject index
//! the tag is in (checked against the index root the same checkpoint states), and every
//! entry the index lists for the tag (each checked to be in the member's log). What comes
//! out is verified or says why it is not: a member that leaves an access out of its answer
//! no longer matches the checkpoint it signed and the authority cosigned.

use agora_model::{
    AuditEntry, MemberId, SubjectConsentAnswer, SubjectConsentRequest, SubjectHistoryAnswer,
    SubjectHistoryRequest, SubjectHoldingsAnswer, SubjectHoldingsRequest, SubjectTagAnswer,
    SubjectTagRequest, TrustedMember, audit_origin, paths, witness_name,
};
use agora_trust::tlog::{self, Hash, IndexElement, SubjectLine, SubjectTag, TagRequest};
use chrono::{DateTime, Utc};

use crate::{Node, NodeError};

/// What one resident's history is made of, member by member.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CitizenHistory {
    pub members: Vec<MemberHistory>,
}

/// One member's part of a resident's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberHistory {
    pub member: MemberId,
    pub name: String,
    /// The titles of the member's products that hold records about the resident; or why
    /// the member could not be asked.
    pub holdings: Result<Vec<String>, String>,
    /// The accesses, verified; or why they could not be.
    pub outcome: Result<VerifiedHistory, String>,
}

/// Every access to a resident's records in one member's log, up to a witnessed checkpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedHistory {
    /// The checkpoint's size: no other access exists among the log's first `size` entries.
    pub size: u64,
    /// When the authority cosigned the checkpoint.
    pub witnessed_at: DateTime<Utc>,
    /// The checkpoint itself, for whoever wants to check it again.
    pub checkpoint: String,
    pub accesses: Vec<CitizenAccess>,
}

/// One access to a resident's records: the log entry and its inclusion proof.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CitizenAccess {
    pub index: u64,
    pub entry: AuditEntry,
    pub proof: Vec<String>,
}

/// One member's answer to a resident's consent change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberConsent {
    pub member: MemberId,
    pub name: String,
    /// Whether the member holds the resident (and so applied the change), or why it could
    /// not be asked.
    pub outcome: Result<bool, String>,
}

fn check_subject_id(id: &str) -> Result<(), NodeError> {
    if id.is_empty() || id.len() > 64 {
        return Err(NodeError::BadInput(
            "a subject identifier has between 1 and 64 characters".into(),
        ));
    }
    Ok(())
}

/// Pages of one history answer a portal reads at most (each holds up to
/// [`crate::subjects::HISTORY_PAGE`] entries).
const MAX_PAGES: usize = 200;

fn hashes(hex_hashes: &[String]) -> Result<Vec<Hash>, String> {
    hex_hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Hash)
                .ok_or_else(|| format!("{h:?} is not a hash"))
        })
        .collect()
}

/// What the portal knows of a member's log before asking it anything.
pub struct LogKeys<'a> {
    pub origin: String,
    /// The key the member's node answered with (its checkpoints are signed with it).
    pub node: [u8; 32],
    pub witness: String,
    pub root: &'a [u8; 32],
}

impl LogKeys<'_> {
    /// Opens a checkpoint: signed by the member's node and cosigned by the authority, with
    /// its subject line.
    fn open(&self, note: &str) -> Result<(tlog::Checkpoint, SubjectLine, u64), String> {
        let cp = tlog::open_checkpoint(note.as_bytes(), &self.origin, &self.node)
            .map_err(|e| format!("its checkpoint does not verify: {e}"))?;
        let time = tlog::check_cosignature(note.as_bytes(), &self.witness, self.root)
            .map_err(|e| format!("its checkpoint is not witnessed by the authority: {e}"))?;
        let line = SubjectLine::from_extension(cp.extension())
            .map_err(|e| e.to_string())?
            .ok_or("its checkpoint states no subject index")?;
        Ok((cp, line, time))
    }
}

/// Checks a member's answer for `tag` (obtained with the subject key `key_used`) and keeps
/// the accesses it proves.
pub fn verify_history(
    keys: &LogKeys,
    tag: &SubjectTag,
    key_used: &[u8; 32],
    pages: &[SubjectHistoryAnswer],
) -> Result<VerifiedHistory, String> {
    let first = pages.first().ok_or("it gave no answer")?;
    let (cp, line, time) = keys.open(&first.checkpoint)?;
    if &line.key != key_used {
        return Err("its subject key changed between the tag and the history".into());
    }
    let bucket = tlog::bucket_of(tag);
    let mut elements = Vec::with_capacity(first.elements.len());
    for e in &first.elements {
        let t = hex::decode(&e.tag)
            .ok()
            .and_then(|b| SubjectTag::try_from(b).ok())
            .ok_or("its bucket lists something that is not a tag")?;
        elements.push(IndexElement {
            tag: t,
            entries: e.entries.clone(),
        });
    }
    if first.bucket != bucket {
        return Err(format!(
            "it answered for bucket {} instead of {bucket}",
            first.bucket
        ));
    }
    tlog::check_bucket(line.index, bucket, &elements, &hashes(&first.proof)?)
        .map_err(|e| e.to_string())?;
    let listed = elements
        .iter()
        .find(|e| &e.tag == tag)
        .map(|e| e.entries.clone())
        .unwrap_or_default();
    if listed.last().is_some_and(|n| *n >= cp.size()) {
        return Err("its index lists an entry beyond its checkpoint".into());
    }
    let mut accesses = Vec::with_capacity(listed.len());
    for n in listed {
        let given = pages
            .iter()
            .flat_map(|p| p.entries.iter())
            .find(|e| e.index == n)
            .ok_or_else(|| format!("it did not give entry {n}, which its index lists"))?;
        let proof = hashes(&given.proof)?;
        tlog::check_inclusion(&proof, cp.size(), *cp.hash(), n, given.entry.as_bytes())
            .map_err(|e| e.to_string())?;
        let entry: AuditEntry = serde_json::from_str(&given.entry)
            .map_err(|e| format!("entry {n} is not a log entry: {e}"))?;
        accesses.push(CitizenAccess {
            index: n,
            entry,
            proof: given.proof.clone(),
        });
    }
    Ok(VerifiedHistory {
        size: cp.size(),
        witnessed_at: DateTime::from_timestamp(time as i64, 0).unwrap_or_default(),
        checkpoint: first.checkpoint.clone(),
        accesses,
    })
}

impl Node {
    /// The verified history of the resident with identifier `person_id` across every member
    /// of the ecosystem (this node included): which accesses each member's log holds to
    /// their records, proven complete up to a witnessed checkpoint.
    pub async fn citizen_history(&self, person_id: &str) -> Result<CitizenHistory, NodeError> {
        check_subject_id(person_id)?;
        let trust = self.enrolled()?;
        let list = trust.ensure_usable(Utc::now())?;
        let digest = agora_engine::subject_digest(person_id);
        let asks = list.members.iter().map(|m| async move {
            let (holdings, outcome) = match self.member_history(m, digest).await {
                Ok((holdings, history)) => (holdings, Ok(history)),
                Err(e) => (Err(e.clone()), Err(e)),
            };
            MemberHistory {
                member: m.id.clone(),
                name: m.name.clone(),
                holdings,
                outcome,
            }
        });
        let members = futures::future::join_all(asks).await;
        Ok(CitizenHistory { members })
    }

    async fn member_history(
        &self,
        member: &TrustedMember,
        digest: tlog::SubjectDigest,
    ) -> Result<(Result<Vec<String>, String>, VerifiedHistory), String> {
        let trust = self.enrolled().map_err(|e| e.to_string())?;
        let material = trust.material();
        let mut keys = self.log_keys(&trust.list().ecosystem, member, &material);
        let (tag, key, size) = self.member_tag(member, digest, &mut keys).await?;
        let remote = (&member.id != self.member()).then_some(member);
        let (pages, holdings) = tokio::join!(
            self.history_pages(remote, tag, size),
            self.member_holdings(remote, &tag)
        );
        Ok((holdings, verify_history(&keys, &tag, &key, &pages?)?))
    }

    /// The titles of the products of `member` (this node when `None`) that hold the subject
    /// with `tag`.
    async fn member_holdings(
        &self,
        member: Option<&TrustedMember>,
        tag: &SubjectTag,
    ) -> Result<Vec<String>, String> {
        let req = SubjectHoldingsRequest {
            bucket: tlog::bucket_of(tag),
        };
        let answer: SubjectHoldingsAnswer = match member {
            Some(m) => self.ask(m, paths::SUBJECT_HOLDINGS, &req).await?.0,
            None => self
                .subject_holdings(self.member(), &req)
                .await
                .map_err(|e| e.to_string())?,
        };
        let mine = hex::encode(tag);
        Ok(answer
            .products
            .into_iter()
            .filter(|p| p.tags.contains(&mine))
            .map(|p| p.title)
            .collect())
    }

    /// What a member's log is checked with, before it is asked anything.
    fn log_keys<'a>(
        &self,
        ecosystem: &str,
        member: &TrustedMember,
        material: &'a crate::trust::Material,
    ) -> LogKeys<'a> {
        LogKeys {
            origin: audit_origin(ecosystem, &member.id),
            node: material.key.public(),
            witness: witness_name(ecosystem),
            root: &material.root_info.public_key,
        }
    }

    /// The resident's tag at `member` (asked for blindly, and checked with the subject key
    /// of the member's witnessed checkpoint), that key, and the checkpoint's size; `keys`
    /// learns the key the member's node answered with.
    async fn member_tag(
        &self,
        member: &TrustedMember,
        digest: tlog::SubjectDigest,
        keys: &mut LogKeys<'_>,
    ) -> Result<(SubjectTag, [u8; 32], Option<u64>), String> {
        if &member.id == self.member() {
            let node = self.clone();
            let tag = tokio::task::spawn_blocking(move || node.tags_of(&[digest]))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?[0];
            let key = self.subject_public_key().map_err(|e| e.to_string())?;
            return Ok((tag, key, None));
        }
        let (request, blinded) = TagRequest::new(digest).map_err(|e| e.to_string())?;
        let body = SubjectTagRequest {
            blinded: hex::encode(blinded),
        };
        let (answer, node_key): (SubjectTagAnswer, _) =
            self.ask(member, paths::SUBJECT_TAG, &body).await?;
        keys.node = node_key;
        let (cp, line, _) = keys.open(&answer.checkpoint)?;
        let tag = request
            .finish(
                &hex::decode(&answer.evaluation).unwrap_or_default(),
                &hex::decode(&answer.proof).unwrap_or_default(),
                &line.key,
            )
            .map_err(|e| e.to_string())?;
        Ok((tag, line.key, Some(cp.size())))
    }

    /// The resident with identifier `person_id` withdraws (or grants again) consent for
    /// `purpose` at every member of the ecosystem; each member says whether it holds them
    /// (and so applied it), or why it could not be asked.
    pub async fn citizen_consent(
        &self,
        person_id: &str,
        purpose: &str,
        withdrawn: bool,
    ) -> Result<Vec<MemberConsent>, NodeError> {
        check_subject_id(person_id)?;
        let trust = self.enrolled()?;
        let list = trust.ensure_usable(Utc::now())?;
        let digest = agora_engine::subject_digest(person_id);
        let asks = list.members.iter().map(|m| async move {
            let outcome = self.member_consent(m, digest, purpose, withdrawn).await;
            MemberConsent {
                member: m.id.clone(),
                name: m.name.clone(),
                outcome,
            }
        });
        Ok(futures::future::join_all(asks).await)
    }

    async fn member_consent(
        &self,
        member: &TrustedMember,
        digest: tlog::SubjectDigest,
        purpose: &str,
        withdrawn: bool,
    ) -> Result<bool, String> {
        let trust = self.enrolled().map_err(|e| e.to_string())?;
        let material = trust.material();
        let mut keys = self.log_keys(&trust.list().ecosystem, member, &material);
        let (tag, _, _) = self.member_tag(member, digest, &mut keys).await?;
        let req = SubjectConsentRequest {
            tag: hex::encode(tag),
            purpose: purpose.to_owned(),
            withdrawn,
        };
        let answer: SubjectConsentAnswer = if &member.id == self.member() {
            self.receive_consent(self.member(), &req)
                .await
                .map_err(|e| e.to_string())?
        } else {
            self.ask(member, paths::SUBJECT_CONSENT, &req).await?.0
        };
        Ok(answer.held)
    }

    /// Every page of the bucket of `tag` at `member` (this node when `None`).
    async fn history_pages(
        &self,
        member: Option<&TrustedMember>,
        tag: SubjectTag,
        size: Option<u64>,
    ) -> Result<Vec<SubjectHistoryAnswer>, String> {
        let mut pages: Vec<SubjectHistoryAnswer> = Vec::new();
        let mut req = SubjectHistoryRequest {
            bucket: tlog::bucket_of(&tag),
            size,
            after: None,
        };
        loop {
            let page = match member {
                Some(m) => self.ask(m, paths::SUBJECT_HISTORY, &req).await?.0,
                None => self
                    .subject_history(self.member(), &req)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let more = page.more;
            req.after = page.entries.last().map(|e| e.index);
            if req.size.is_none() {
                req.size = tlog::read_checkpoint(page.checkpoint.as_bytes())
                    .ok()
                    .map(|c| c.size());
            }
            pages.push(page);
            if !more || req.after.is_none() {
                return Ok(pages);
            }
            if pages.len() >= MAX_PAGES {
                return Err(format!(
                    "its answer runs past {MAX_PAGES} pages; it is not read further"
                ));
            }
        }
    }

    /// A signed request to another member's exchange listener, and its answer read as `T`
    /// with the key of the certificate it came with.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        member: &TrustedMember,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<(T, [u8; 32]), String> {
        let trust = self.enrolled().map_err(|e| e.to_string())?;
        let list = trust.list();
        let material = trust.material();
        let signer = agora_exchange::Signer {
            member: self.member(),
            key: &material.key,
        };
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let resp = self
            .peer_client()
            .map_err(|e| e.to_string())?
            .post(&signer, &list, member, path, body)
            .await
            .map_err(|e| e.to_string())?;
        let answer = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("its answer is not understood: {e}"))?;
        Ok((answer, resp.key))
    }
}

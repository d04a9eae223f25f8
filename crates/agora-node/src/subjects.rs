//! Whose records the node's answers carried, and what it shows the people they are about.
//!
//! An answer under a record-level agreement is accounted for in its log entry by the tags
//! of its subjects (see `agora_trust::tlog::SubjectSet`); the tags are kept beside the log
//! and in the **subject index** (`agora_trust::tlog::SubjectIndex`), whose root every
//! checkpoint states with the node's public subject key. A citizen portal the node's
//! owner named (`[citizens] portals` in `node.toml`) may ask for a subject's tag blindly
//! and for one bucket of the index with its proofs, a bounded number of times a minute;
//! the node learns nothing of whom it is asked about.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use agora_model::{
    BucketElement, MemberId, ProvenEntry, SubjectHistoryAnswer, SubjectHistoryRequest,
    SubjectTagAnswer, SubjectTagRequest,
};
use agora_trust::tlog::{self, IndexElement, SubjectDigest, SubjectIndex, SubjectLine, SubjectTag};

use crate::{Node, NodeError};

/// Tags kept in memory, so that a subject's tag is computed once (each costs about 50 µs
/// of a core); past it the cache starts again.
const TAG_CACHE: usize = 1_000_000;

/// Subject indexes kept (by log size), from which the next is computed.
const INDEXES_KEPT: usize = 8;

/// Entries in one page of a history answer.
pub const HISTORY_PAGE: usize = 500;

/// The node's subject tags and indexes, kept between answers.
#[derive(Default)]
pub(crate) struct Subjects {
    tags: std::sync::Mutex<HashMap<SubjectDigest, SubjectTag>>,
    indexes: tokio::sync::Mutex<BTreeMap<u64, SubjectIndex>>,
    /// Per portal: the start of its current minute and the lookups in it.
    lookups: std::sync::Mutex<HashMap<MemberId, (Instant, u32)>>,
}

fn damaged(what: impl std::fmt::Display) -> NodeError {
    NodeError::Transparency(format!("the subject index is damaged: {what}"))
}

/// The elements of one bucket, from the store's rows (tag, entry) in order.
fn elements_of(rows: Vec<(Vec<u8>, u64)>) -> Result<Vec<IndexElement>, NodeError> {
    let mut out: Vec<IndexElement> = Vec::new();
    for (tag, entry) in rows {
        let tag: SubjectTag = tag
            .try_into()
            .map_err(|t: Vec<u8>| damaged(format!("a tag of {} bytes", t.len())))?;
        match out.last_mut() {
            Some(e) if e.tag == tag => e.entries.push(entry),
            _ => out.push(IndexElement {
                tag,
                entries: vec![entry],
            }),
        }
    }
    Ok(out)
}

impl Node {
    /// The tags of these subjects (computed once per subject, then remembered). Blocking:
    /// call it off the async threads.
    pub(crate) fn tags_of(&self, digests: &[SubjectDigest]) -> Result<Vec<SubjectTag>, NodeError> {
        let key = self.subject_key()?;
        let cache = &self.inner.subjects.tags;
        let mut tags = Vec::with_capacity(digests.len());
        let mut missing = Vec::new();
        {
            let known = cache.lock().expect("lock");
            for d in digests {
                match known.get(d) {
                    Some(t) => tags.push(*t),
                    None => missing.push(*d),
                }
            }
        }
        let made: Vec<(SubjectDigest, SubjectTag)> =
            missing.into_iter().map(|d| (d, key.tag(&d))).collect();
        let mut known = cache.lock().expect("lock");
        if known.len() + made.len() > TAG_CACHE {
            known.clear();
        }
        for (d, t) in made {
            tags.push(t);
            if known.len() < TAG_CACHE {
                known.insert(d, t);
            }
        }
        Ok(tags)
    }

    /// Puts into an answer's log context what its query read under agreements: under
    /// record-level agreements, the count of the subjects whose rows it read and the Merkle
    /// root over their tags (no identifier: see `agora_trust::tlog::SubjectSet`); under
    /// aggregate agreements, the sizes of the groups released.
    pub(crate) async fn account(
        &self,
        ledger: &agora_engine::AccessLedger,
        context: &mut agora_model::AuditContext,
    ) -> Result<(), NodeError> {
        if !ledger.record_agreements().is_empty() {
            let _turn =
                self.inner.accounting.acquire().await.map_err(|e| {
                    NodeError::Transparency(format!("subject accounting stopped: {e}"))
                })?;
            let node = self.clone();
            let digests = ledger.subjects();
            let (count, root, tags) = tokio::task::spawn_blocking(move || {
                let set = tlog::SubjectSet::from_tags(node.tags_of(&digests)?);
                set.root()
                    .map(|root| (set.len(), root, set.tags().concat()))
                    .map_err(|e| NodeError::Transparency(e.to_string()))
            })
            .await
            .map_err(|e| NodeError::Transparency(format!("subject accounting stopped: {e}")))??;
            context.subjects = Some(agora_model::SubjectCommitment {
                count,
                root: hex::encode(root.0),
            });
            context.subject_tags = tags;
        }
        context.groups = ledger
            .aggregates()
            .into_iter()
            .map(|(agreement, g)| agora_model::GroupRelease {
                agreement,
                sizes: g.shown,
                shown: g.shown_count,
                withheld: g.withheld,
            })
            .collect();
        Ok(())
    }

    /// What this node's log entries commit to for an answer that carried these subjects'
    /// records (identifiers as the products hold them).
    pub fn subject_commitment(
        &self,
        ids: &[&str],
    ) -> Result<agora_model::SubjectCommitment, NodeError> {
        let digests: Vec<_> = ids
            .iter()
            .map(|id| agora_engine::subject_digest(id))
            .collect();
        let set = tlog::SubjectSet::new(&self.subject_key()?, &digests);
        let root = set
            .root()
            .map_err(|e| NodeError::Transparency(e.to_string()))?;
        Ok(agora_model::SubjectCommitment {
            count: set.len(),
            root: hex::encode(root.0),
        })
    }

    /// The subjects entry `index` commits to (their tags, kept beside the log), if any.
    pub async fn log_subjects(&self, index: u64) -> Result<Option<tlog::SubjectSet>, NodeError> {
        let Some(bytes) = self.store().log_subject_tags(index).await? else {
            return Ok(None);
        };
        if bytes.len() % 64 != 0 {
            return Err(NodeError::Transparency(format!(
                "the subject tags of entry {index} are damaged ({} bytes)",
                bytes.len()
            )));
        }
        let tags = bytes
            .chunks_exact(64)
            .map(|c| {
                let mut t = [0u8; 64];
                t.copy_from_slice(c);
                t
            })
            .collect();
        Ok(Some(tlog::SubjectSet::from_tags(tags)))
    }

    /// This node's tags of the subjects with these identifiers, computed once per subject
    /// and remembered (blocking: about 50 µs a subject the first time).
    pub fn subject_tags(&self, ids: &[&str]) -> Result<Vec<SubjectTag>, NodeError> {
        let digests: Vec<_> = ids
            .iter()
            .map(|id| agora_engine::subject_digest(id))
            .collect();
        self.tags_of(&digests)
    }

    /// This node's tag of the subject with identifier `id` (what its entries commit to).
    pub fn subject_tag(&self, id: &str) -> Result<SubjectTag, NodeError> {
        Ok(self.subject_key()?.tag(&agora_engine::subject_digest(id)))
    }

    /// The public half of this node's subject key (its checkpoints state it).
    pub fn subject_public_key(&self) -> Result<[u8; 32], NodeError> {
        Ok(self.subject_key()?.public_key())
    }

    /// The subject index over the log's first `size` entries.
    pub(crate) async fn subject_index(&self, size: u64) -> Result<SubjectIndex, NodeError> {
        let mut kept = self.inner.subjects.indexes.lock().await;
        if let Some(i) = kept.get(&size) {
            return Ok(i.clone());
        }
        let (from, mut index) = kept
            .range(..size)
            .next_back()
            .map_or((0, SubjectIndex::default()), |(n, i)| (*n, i.clone()));
        for bucket in self.store().log_subject_buckets(from, size).await? {
            let elements = elements_of(self.store().log_subject_bucket(bucket, size).await?)?;
            let hash = tlog::bucket_hash(bucket, &elements).map_err(damaged)?;
            index.set(bucket, hash);
        }
        kept.insert(size, index.clone());
        while kept.len() > INDEXES_KEPT {
            kept.pop_first();
        }
        Ok(index)
    }

    /// The checkpoint line committing to the node's subject key and index at `size`.
    pub(crate) async fn subject_line(&self, size: u64) -> Result<SubjectLine, NodeError> {
        let index = self.subject_index(size).await?.root().map_err(damaged)?;
        Ok(SubjectLine {
            key: self.subject_key()?.public_key(),
            index,
        })
    }

    /// Admits a lookup by `peer` when this node's owner named it a citizen portal and it
    /// has lookups left this minute.
    pub(crate) fn admit_lookup(&self, peer: &MemberId) -> Result<(), NodeError> {
        let settings = &self.inner.citizens;
        if peer == self.member() {
            return Ok(());
        }
        if !settings.portals.contains(peer) {
            return Err(NodeError::Forbidden(format!(
                "member {peer} is not a citizen portal this node answers about the people its \
                 records are about; its operator names portals under [citizens] in node.toml"
            )));
        }
        let now = Instant::now();
        let mut lookups = self.inner.subjects.lookups.lock().expect("lock");
        let (start, count) = lookups.entry(peer.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            (*start, *count) = (now, 0);
        }
        if *count >= settings.lookups_per_minute {
            let wait = Duration::from_secs(60).saturating_sub(now.duration_since(*start));
            return Err(NodeError::RateLimited(format!(
                "this node answers {} subject lookups a minute from one portal; ask again in {} s",
                settings.lookups_per_minute,
                wait.as_secs().max(1)
            )));
        }
        *count += 1;
        Ok(())
    }

    /// The latest checkpoint the authority cosigned (size and note), or `size`'s.
    async fn witnessed_checkpoint(&self, size: Option<u64>) -> Result<(u64, String), NodeError> {
        let found = match size {
            None => self.store().last_witnessed_checkpoint().await?,
            Some(n) => self
                .store()
                .checkpoint(Some(n))
                .await?
                .filter(|c| c.size == n)
                .and_then(|c| c.witnessed.map(|w| (c.size, w))),
        };
        found.ok_or_else(|| {
            NodeError::NotFound(match size {
                None => "no checkpoint of this node's log is witnessed yet; ask again in a few \
                         seconds"
                    .into(),
                Some(n) => format!("this node has no witnessed checkpoint of {n} entries"),
            })
        })
    }

    /// Evaluates a subject's blinded digest for a citizen portal, with the latest witnessed
    /// checkpoint (which states the subject key to check the answer with).
    pub async fn evaluate_subject_tag(
        &self,
        peer: &MemberId,
        req: &SubjectTagRequest,
    ) -> Result<SubjectTagAnswer, NodeError> {
        self.admit_lookup(peer)?;
        let blinded = hex::decode(&req.blinded)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| NodeError::BadInput("blinded must be 32 bytes in hex".into()))?;
        let (evaluation, proof) = self
            .subject_key()?
            .blind_evaluate(&blinded)
            .map_err(|e| NodeError::BadInput(e.to_string()))?;
        let (_, checkpoint) = self.witnessed_checkpoint(None).await?;
        Ok(SubjectTagAnswer {
            evaluation: hex::encode(evaluation),
            proof: hex::encode(proof),
            checkpoint,
        })
    }

    /// One bucket of the subject index at a witnessed checkpoint, for a citizen portal:
    /// every element, the bucket's proof, and a page of the entries the elements list,
    /// each with its inclusion proof.
    pub async fn subject_history(
        &self,
        peer: &MemberId,
        req: &SubjectHistoryRequest,
    ) -> Result<SubjectHistoryAnswer, NodeError> {
        self.admit_lookup(peer)?;
        let (size, checkpoint) = self.witnessed_checkpoint(req.size).await?;
        let index = self.subject_index(size).await?;
        let elements = elements_of(self.store().log_subject_bucket(req.bucket, size).await?)?;
        let proof = index.prove(req.bucket).map_err(damaged)?;
        let mut listed: Vec<u64> = elements
            .iter()
            .flat_map(|e| e.entries.iter().copied())
            .filter(|n| req.after.is_none_or(|a| *n > a))
            .collect();
        listed.sort_unstable();
        listed.dedup();
        let more = listed.len() > HISTORY_PAGE;
        listed.truncate(HISTORY_PAGE);
        let mut entries = Vec::with_capacity(listed.len());
        for n in listed {
            let data = self.store().log_entry_data(n, n + 1).await?.remove(0);
            let proof = self.store().log_inclusion_proof(size, n).await?;
            entries.push(ProvenEntry {
                index: n,
                entry: String::from_utf8_lossy(&data).into_owned(),
                proof: proof.iter().map(|h| hex::encode(h.0)).collect(),
            });
        }
        Ok(SubjectHistoryAnswer {
            checkpoint,
            bucket: req.bucket,
            elements: elements
                .into_iter()
                .map(|e| BucketElement {
                    tag: hex::encode(e.tag),
                    entries: e.entries,
                })
                .collect(),
            proof: proof.iter().map(|h| hex::encode(h.0)).collect(),
            entries,
            more,
        })
    }
}

//! The node's transparency log, seen from the node: every record the store writes has its
//! entry in the log (the store appends it in the same group, before anyone is answered);
//! here the node signs checkpoints of the log, at most one a second while it grows, and
//! has the ecosystem's authority witness each one. The authority cosigns a checkpoint only
//! after checking that the log extends the one it witnessed before, so a node whose log
//! was rewritten, forked or truncated cannot get a cosignature again — and the node says
//! so on its administration page and in `/readyz`.

use std::time::Duration;

use agora_exchange::Witnessing;
use agora_model::{WitnessRequest, audit_origin, witness_name};
use agora_store::StoredCheckpoint;
use agora_trust::tlog;
use chrono::{DateTime, Utc};

use crate::{Node, NodeError};

/// How often the node signs a checkpoint of a log that grew.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Where the witnessing of the node's log stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WitnessState {
    /// The size of the latest checkpoint the authority cosigned, and when.
    pub witnessed_size: Option<u64>,
    pub witnessed_at: Option<DateTime<Utc>>,
    /// Why the last attempt to have a checkpoint witnessed failed (the authority was
    /// unreachable, …), if it did.
    pub problem: Option<String>,
    /// The authority's finding that this log contradicts what it witnessed before.
    pub inconsistent: Option<String>,
}

impl Node {
    /// The C2SP origin of this node's log (`agora/ECOSYSTEM/MEMBER`), once enrolled.
    pub fn log_origin(&self) -> Option<String> {
        let trust = self.trust()?;
        Some(audit_origin(&trust.list().ecosystem, self.member()))
    }

    /// Where the witnessing of the node's log stands.
    pub fn witness_state(&self) -> WitnessState {
        self.inner.witnessing.lock().expect("lock").clone()
    }

    fn set_witness_state(&self, change: impl FnOnce(&mut WitnessState)) {
        change(&mut self.inner.witnessing.lock().expect("lock"));
    }

    /// Signs a checkpoint of the log if it grew since the last one, and has the authority
    /// witness the latest checkpoint if it has not yet. Returns the latest checkpoint.
    /// A node not enrolled has no key to sign with, and signs nothing.
    pub async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, NodeError> {
        let (Some(trust), Some(origin)) = (self.trust(), self.log_origin()) else {
            return Ok(None);
        };
        let (size, root) = self.store().log_head().await?;
        if size == 0 {
            return Ok(None);
        }
        let key = trust.material().key.clone();
        let latest = self.store().checkpoint(None).await?;
        // A new checkpoint when the log grew; the same one signed again when the node's
        // key was renewed since (the authority witnesses it again with the new key).
        let stale = latest.as_ref().is_some_and(|c| {
            c.size == size
                && tlog::open_checkpoint(c.note.as_bytes(), &origin, &key.public()).is_err()
        });
        if latest.as_ref().is_none_or(|c| c.size < size) || stale {
            let line = self.subject_line(size).await?;
            let note = tlog::sign_checkpoint_with(&origin, size, root, &line.to_extension(), &key)
                .map_err(|e| NodeError::Transparency(e.to_string()))?;
            let note = String::from_utf8(note).expect("a note is text");
            if stale {
                self.store().replace_checkpoint(size, &note).await?;
            } else {
                self.store().put_checkpoint(size, &note).await?;
            }
        }
        let Some(latest) = self.store().checkpoint(None).await? else {
            return Ok(None);
        };
        if latest.witnessed.is_none() && self.witness_state().inconsistent.is_none() {
            self.witness(&latest).await;
        }
        Ok(self.store().checkpoint(None).await?)
    }

    /// Asks the authority to cosign `checkpoint`, proving consistency from the size it
    /// last witnessed.
    async fn witness(&self, checkpoint: &StoredCheckpoint) {
        let Some(trust) = self.trust() else { return };
        let client = match trust.authority() {
            Ok(c) => c,
            Err(e) => return self.set_witness_state(|s| s.problem = Some(e.to_string())),
        };
        let mut old = match self.witness_state().witnessed_size {
            Some(n) => n,
            None => match self.store().last_witnessed_checkpoint().await {
                Ok(w) => w.map_or(0, |(n, _)| n),
                Err(e) => return self.set_witness_state(|s| s.problem = Some(e.to_string())),
            },
        };
        // At most twice: once from what the node believes, once from what the authority says.
        for _ in 0..2 {
            if old > checkpoint.size {
                let why = format!(
                    "the authority witnessed {old} entries of this node's log, but it holds {}: \
                     the log was truncated or restored from an older copy",
                    checkpoint.size
                );
                tracing::error!(
                    witnessed = old,
                    size = checkpoint.size,
                    "transparency log truncated"
                );
                return self.set_witness_state(|s| s.inconsistent = Some(why));
            }
            let proof = if old == 0 {
                Vec::new()
            } else {
                match self
                    .store()
                    .log_consistency_proof(checkpoint.size, old)
                    .await
                {
                    Ok(p) => p.iter().map(|h| hex::encode(h.0)).collect(),
                    Err(e) => return self.set_witness_state(|s| s.problem = Some(e.to_string())),
                }
            };
            let req = WitnessRequest {
                checkpoint: checkpoint.note.clone(),
                old_size: old,
                consistency: proof,
            };
            match client.witness(&req).await {
                Ok(Witnessing::Cosigned(note)) => return self.witnessed(checkpoint, note).await,
                Ok(Witnessing::FromSize(n)) => old = n,
                Ok(Witnessing::Inconsistent(why)) => {
                    tracing::error!(reason = %why, "the authority found this node's log inconsistent");
                    return self.set_witness_state(|s| s.inconsistent = Some(why));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot have the checkpoint witnessed");
                    return self.set_witness_state(|s| s.problem = Some(e.to_string()));
                }
            }
        }
    }

    /// Keeps a cosigned checkpoint once its cosignature checks out with the root's key.
    async fn witnessed(&self, checkpoint: &StoredCheckpoint, note: String) {
        let Some(trust) = self.trust() else { return };
        let witness = witness_name(&trust.list().ecosystem);
        let root_key = trust.material().root_info.public_key;
        if let Err(e) = tlog::check_cosignature(note.as_bytes(), &witness, &root_key) {
            return self.set_witness_state(|s| {
                s.problem = Some(format!("the authority's cosignature does not verify: {e}"))
            });
        }
        if let Err(e) = self
            .store()
            .put_witnessed_checkpoint(checkpoint.size, &note)
            .await
        {
            return self.set_witness_state(|s| s.problem = Some(e.to_string()));
        }
        self.set_witness_state(|s| {
            s.witnessed_size = Some(checkpoint.size);
            s.witnessed_at = Some(Utc::now());
            s.problem = None;
        });
    }

    /// Signs and has witnessed a checkpoint every [`CHECKPOINT_EVERY`] while the log
    /// grows, until `shutdown`.
    pub async fn run_checkpoints(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.checkpoint().await {
                tracing::warn!(error = %e, "cannot sign a checkpoint of the transparency log");
            }
            tokio::select! {
                () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

/// The proof that an entry is in the node's log, against a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    /// The entry as the log holds it (JSON text; its bytes are what is hashed).
    pub entry: String,
    /// The checkpoint (a signed note, cosigned by the authority once witnessed).
    pub checkpoint: String,
    pub size: u64,
    /// Hex SHA-256 hashes, leaf to root.
    pub proof: Vec<String>,
}

impl Node {
    /// The log's size and root as the store last committed them (unsigned).
    pub async fn log_head(&self) -> Result<(u64, tlog::Hash), NodeError> {
        Ok(self.store().log_head().await?)
    }

    /// The latest checkpoint as stored (signed, and cosigned once witnessed).
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, NodeError> {
        Ok(self.store().checkpoint(None).await?)
    }

    /// The checkpoint to publish: the latest the authority cosigned (anyone holding the
    /// ecosystem's root can check it; the log has grown from it by at most a second's
    /// entries), or the latest the node signed while none is witnessed.
    pub async fn log_checkpoint(&self) -> Result<Option<String>, NodeError> {
        if let Some((_, note)) = self.store().last_witnessed_checkpoint().await? {
            return Ok(Some(note));
        }
        Ok(self.store().checkpoint(None).await?.map(|c| c.note))
    }

    /// The first `width` hashes of a tile (`None` when the log has not that many).
    pub async fn log_tile(
        &self,
        level: u8,
        index: u64,
        width: u32,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        let want = width as usize * tlog::HASH_SIZE;
        Ok(self
            .store()
            .log_tile(level, index)
            .await?
            .filter(|d| d.len() >= want)
            .map(|mut d| {
                d.truncate(want);
                d
            }))
    }

    /// The first `width` entries of bundle `index`, in the C2SP encoding.
    pub async fn log_bundle(&self, index: u64, width: u32) -> Result<Option<Vec<u8>>, NodeError> {
        let (size, _) = self.store().log_head().await?;
        let end = index.saturating_mul(256).saturating_add(u64::from(width));
        if end > size {
            return Ok(None);
        }
        Ok(Some(self.store().log_bundle(index, end).await?))
    }

    /// Entry `index` as the log holds it (JSON text), if the log has it.
    pub async fn log_entry(&self, index: u64) -> Result<Option<String>, NodeError> {
        let (size, _) = self.store().log_head().await?;
        if index >= size {
            return Ok(None);
        }
        let mut data = self.store().log_entry_data(index, index + 1).await?;
        Ok(data
            .pop()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The proof that entry `index` is in the log, against the latest checkpoint that
    /// holds it (signing one when the entry is newer than every checkpoint).
    pub async fn log_inclusion(&self, index: u64) -> Result<InclusionProof, NodeError> {
        let (size, _) = self.store().log_head().await?;
        if index >= size {
            return Err(NodeError::NotFound(format!(
                "the log holds {size} entries; there is no entry {index}"
            )));
        }
        let mut latest = self.store().checkpoint(None).await?;
        if latest.as_ref().is_none_or(|c| c.size <= index) {
            latest = self.checkpoint().await?;
        }
        let c = latest.filter(|c| c.size > index).ok_or_else(|| {
            NodeError::NotFound(format!(
                "no checkpoint holds entry {index} yet: the node signs checkpoints once it is enrolled"
            ))
        })?;
        let proof = self.store().log_inclusion_proof(c.size, index).await?;
        let entry = self
            .store()
            .log_entry_data(index, index + 1)
            .await?
            .remove(0);
        Ok(InclusionProof {
            index,
            entry: String::from_utf8_lossy(&entry).into_owned(),
            checkpoint: c.witnessed.unwrap_or(c.note),
            size: c.size,
            proof: proof.iter().map(|h| hex::encode(h.0)).collect(),
        })
    }

    /// The log's entries an auditor asks for, newest first.
    pub async fn audit_entries(
        &self,
        filter: &agora_model::EntryFilter,
    ) -> Result<Vec<agora_model::LoggedEntry>, NodeError> {
        Ok(self.store().log_entries(filter).await?)
    }
}

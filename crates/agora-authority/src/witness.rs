//! The authority as the witness of its members' transparency logs. A node sends each new
//! checkpoint of its log with the proof that the log the authority last witnessed is a
//! prefix of it; the authority checks the node's signature (with the key of the node
//! certificate it presents), the proof, and cosigns (C2SP `tlog-cosignature`). What it
//! cosigned last is kept; a checkpoint that contradicts it — a rewritten or forked log, a
//! log smaller than one already witnessed — is refused and recorded as an alert, shown by
//! the authority's `/readyz`.

use agora_model::{WitnessReply, WitnessRequest, audit_origin, witness_name};
use agora_store::{WitnessAlert, Witnessed};
use agora_trust::CertInfo;
use agora_trust::tlog::{self, Hash};
use chrono::Utc;

use crate::{Authority, AuthorityError};

/// Proof hashes accepted, at most (a consistency proof of a log of 2^64 entries has 128).
const MAX_PROOF: usize = 130;

fn parse_hashes(hexes: &[String]) -> Result<Vec<Hash>, AuthorityError> {
    if hexes.len() > MAX_PROOF {
        return Err(AuthorityError::Refused(format!(
            "a consistency proof has at most {MAX_PROOF} hashes; this one has {}",
            hexes.len()
        )));
    }
    hexes
        .iter()
        .map(|h| {
            let bytes = hex::decode(h)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    AuthorityError::Refused(format!("{h:?} is not a hex SHA-256 hash"))
                })?;
            Ok(Hash(bytes.try_into().expect("32 bytes")))
        })
        .collect()
}

impl Authority {
    /// The name under which this authority cosigns checkpoints.
    pub fn witness_name(&self) -> String {
        witness_name(self.ecosystem())
    }

    /// Witnesses a checkpoint of the log of the member whose node certificate is
    /// `presented` (see the module's documentation).
    pub async fn witness(
        &self,
        presented: &CertInfo,
        req: &WitnessRequest,
    ) -> Result<WitnessReply, AuthorityError> {
        let (member, _) = self.node_in_good_standing(presented).await?;
        let origin = audit_origin(self.ecosystem(), &member);
        if req.checkpoint.len() > 4096 {
            return Err(AuthorityError::Refused(
                "a checkpoint is at most 4096 bytes".into(),
            ));
        }
        let checkpoint =
            tlog::open_checkpoint(req.checkpoint.as_bytes(), &origin, &presented.public_key)
                .map_err(|e| AuthorityError::Refused(format!("the checkpoint of {member}: {e}")))?;
        let (size, root) = (checkpoint.size(), *checkpoint.hash());
        let seen = self.store().witnessed(member.as_str()).await?;
        let alert = |witnessed: u64, reason: String| WitnessAlert {
            member: member.to_string(),
            detected_at: Utc::now(),
            witnessed_size: witnessed,
            claimed_size: size,
            reason,
        };
        if let Some(w) = &seen {
            if size < w.size {
                let reason = format!(
                    "the log of {member} holds {size} entries, fewer than the {} this authority \
                     witnessed at {}: it was truncated or restored from an older copy",
                    w.size, w.witnessed_at
                );
                return Err(self.inconsistent(alert(w.size, reason)).await);
            }
            if req.old_size != w.size {
                return Err(AuthorityError::WitnessConflict { witnessed: w.size });
            }
            if let Some(reason) = subject_line_changed(&member, &w.note, &checkpoint, size, w.size)
            {
                return Err(self.inconsistent(alert(w.size, reason)).await);
            }
            let old_root = parse_hashes(std::slice::from_ref(&w.root))?[0];
            let proof = parse_hashes(&req.consistency)?;
            if let Err(e) = tlog::check_consistency(&proof, size, root, w.size, old_root) {
                let reason = format!(
                    "the log of {member} at {size} entries does not extend the log of {} \
                     entries this authority witnessed at {}: it was rewritten or forked ({e})",
                    w.size, w.witnessed_at
                );
                return Err(self.inconsistent(alert(w.size, reason)).await);
            }
        } else if req.old_size != 0 {
            return Err(AuthorityError::WitnessConflict { witnessed: 0 });
        }
        let now = Utc::now();
        let cosigned = tlog::cosign_checkpoint(
            req.checkpoint.as_bytes(),
            &self.witness_name(),
            self.root().key(),
            now.timestamp().max(0) as u64,
        )
        .map_err(|e| AuthorityError::Refused(e.to_string()))?;
        let cosigned = String::from_utf8(cosigned).expect("a note is text");
        let record = Witnessed {
            member: member.to_string(),
            origin,
            size,
            root: hex::encode(root.0),
            note: cosigned.clone(),
            witnessed_at: now,
        };
        if !self
            .store()
            .put_witnessed(&record, seen.as_ref().map(|w| w.size))
            .await?
        {
            // Another request moved it meanwhile: the node tries again from there.
            let now_seen = self.store().witnessed(member.as_str()).await?;
            return Err(AuthorityError::WitnessConflict {
                witnessed: now_seen.map_or(0, |w| w.size),
            });
        }
        tracing::debug!(member = %member, size, "checkpoint witnessed");
        Ok(WitnessReply { cosigned })
    }

    async fn inconsistent(&self, alert: WitnessAlert) -> AuthorityError {
        tracing::error!(member = %alert.member, witnessed = alert.witnessed_size, claimed = alert.claimed_size, reason = %alert.reason, "a member's log is inconsistent with what was witnessed");
        if let Err(e) = self.store().record_witness_alert(&alert).await {
            tracing::error!(error = %e, "cannot record a witness alert");
        }
        AuthorityError::Inconsistent(alert.reason)
    }

    /// The inconsistencies detected in members' logs, newest first.
    pub async fn witness_alerts(&self, limit: u32) -> Result<Vec<WitnessAlert>, AuthorityError> {
        Ok(self.store().witness_alerts(limit).await?)
    }
}

/// Why a checkpoint's subject line contradicts the one witnessed before, if it does: at
/// the same size it must state the same index (no two indexes of one log), and the subject
/// key never changes once stated (or every subject's tags would).
fn subject_line_changed(
    member: &agora_model::MemberId,
    witnessed_note: &str,
    new: &tlog::Checkpoint,
    size: u64,
    witnessed: u64,
) -> Option<String> {
    let old = tlog::read_checkpoint(witnessed_note.as_bytes()).ok()?;
    let old_line = tlog::SubjectLine::from_extension(old.extension()).ok()??;
    let Ok(Some(new_line)) = tlog::SubjectLine::from_extension(new.extension()) else {
        return Some(format!(
            "the checkpoint of {member} no longer states its subject index"
        ));
    };
    if new_line.key != old_line.key {
        return Some(format!(
            "the log of {member} states another subject key than the one this authority \
             witnessed: every subject's tags would change"
        ));
    }
    if size == witnessed && new_line.index != old_line.index {
        return Some(format!(
            "the log of {member} at {size} entries states another subject index than the one \
             this authority witnessed: it was forked"
        ));
    }
    None
}

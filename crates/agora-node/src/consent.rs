//! Residents' consent, at an owner and at the portal.
//!
//! For purposes whose legal basis is consent, a resident withdraws (or grants again) their
//! consent in the citizen portal. The portal obtains the resident's tag at each member
//! blindly and sends it with the purpose ([`agora_model::paths::SUBJECT_CONSENT`]); a
//! member that holds the resident finds which of its subjects has that tag, records the
//! change (with the catalog version bumped in the same transaction, so the next query binds
//! its agreements afresh) and logs it as a `consent` entry committing to the tag — which
//! puts it in the subject index, so the resident sees it in their history. Every agreement
//! whose legal basis is consent then leaves that subject's rows out (the engine's row
//! filter, below the consumer's plan). A member that does not hold the resident cannot
//! link the tag to anyone and records nothing.

use agora_model::{
    AuditEntry, AuditKind, MemberId, SubjectCommitment, SubjectConsentAnswer, SubjectConsentRequest,
};
use agora_trust::tlog::{SubjectSet, SubjectTag};

use crate::{Node, NodeError};

/// Whether `purpose` is a word of the purposes vocabulary's form.
fn check_purpose(purpose: &str) -> Result<(), NodeError> {
    let ok = (1..=64).contains(&purpose.len())
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NodeError::BadInput(format!(
            "{purpose:?} is not a purpose: lower-case letters, digits and underscores"
        )))
    }
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Node {
    /// A resident's consent change, from a citizen portal this node answers.
    pub async fn receive_consent(
        &self,
        peer: &MemberId,
        req: &SubjectConsentRequest,
    ) -> Result<SubjectConsentAnswer, NodeError> {
        self.admit_lookup(peer)?;
        check_purpose(&req.purpose)?;
        let tag: SubjectTag = hex::decode(&req.tag)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| NodeError::BadInput("tag must be 64 bytes in hex".into()))?;
        let Some(subject) = self.subject_with_tag(&tag).await? else {
            return Ok(SubjectConsentAnswer { held: false });
        };
        let root = SubjectSet::from_tags(vec![tag])
            .root()
            .map_err(|e| NodeError::Transparency(e.to_string()))?;
        let mut entry = AuditEntry::new(
            AuditKind::Consent,
            format!("consent:{}", req.purpose),
            peer.as_str(),
        )
        .peer(peer.as_str())
        .purpose(&req.purpose)
        .outcome(if req.withdrawn {
            "withdrawn"
        } else {
            "granted"
        });
        entry.subjects = Some(SubjectCommitment {
            count: 1,
            root: hex::encode(root.0),
        });
        self.store()
            .set_consent(&req.purpose, &subject, req.withdrawn, entry, tag.to_vec())
            .await?;
        tracing::info!(portal = %peer, purpose = %req.purpose, withdrawn = req.withdrawn, "consent changed");
        Ok(SubjectConsentAnswer { held: true })
    }

    /// The subject of this node's products whose tag is `tag`, if it holds one.
    async fn subject_with_tag(&self, tag: &SubjectTag) -> Result<Option<String>, NodeError> {
        for p in self.store().all_products().await? {
            // The product's tags as its data is now (each subject's tag is computed once, so
            // this costs a read of the product) tell whether it holds the subject; only then
            // are its identifiers read again to find which.
            if self
                .product_tags(&p, std::time::Duration::ZERO)
                .await?
                .is_none_or(|tags| tags.binary_search(tag).is_err())
            {
                continue;
            }
            let Some(ids) = self.subject_ids(&p).await? else {
                continue;
            };
            let digests: Vec<_> = ids
                .iter()
                .map(|id| agora_engine::subject_digest(id))
                .collect();
            let node = self.clone();
            let tags = tokio::task::spawn_blocking(move || node.tags_of(&digests))
                .await
                .map_err(|e| NodeError::Transparency(format!("tagging stopped: {e}")))??;
            if let Some(i) = tags.iter().position(|t| t == tag) {
                return Ok(Some(ids[i].clone()));
            }
        }
        Ok(None)
    }

    /// Every subject a product holds (identifiers as text), if it has a subject column.
    pub(crate) async fn subject_ids(
        &self,
        p: &agora_model::Product,
    ) -> Result<Option<Vec<String>>, NodeError> {
        let Some(column) = agora_model::AgreementTerms::subject_column(&p.metadata) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT DISTINCT CAST({} AS VARCHAR) FROM {} WHERE {} IS NOT NULL",
            quoted(column),
            quoted(p.name.as_str()),
            quoted(column)
        );
        // Every subject the product holds (a page as large as the product).
        let page = self.query(&sql).await?.text_page(0, usize::MAX - 1).await?;
        Ok(Some(
            page.rows
                .into_iter()
                .filter_map(|mut r| r.pop().flatten())
                .collect(),
        ))
    }
}

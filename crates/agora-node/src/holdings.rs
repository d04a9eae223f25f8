//! Which of a node's products hold records about a resident, told to a citizen portal
//! without the node learning who asks: the portal asks for one bucket (a tag's first byte)
//! of the tags of every product's subjects and looks for the resident's tag itself. A
//! product's tags are computed once per version of it and kept for
//! [`HOLDINGS_KEPT_FOR`] (its data is read in place and may change under it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_model::{HeldProduct, MemberId, SubjectHoldingsAnswer, SubjectHoldingsRequest};
use agora_trust::tlog::{SubjectTag, bucket_of};

use crate::{Node, NodeError};

/// How long a product's subject tags are kept before its data is read again.
pub const HOLDINGS_KEPT_FOR: Duration = Duration::from_secs(600);

/// A product's subject tags (ascending), for the version of it they were computed from.
struct KeptTags {
    version: i64,
    at: Instant,
    tags: Arc<Vec<SubjectTag>>,
}

/// Per product, its kept tags.
#[derive(Default)]
pub(crate) struct Holdings(std::sync::Mutex<HashMap<String, KeptTags>>);

impl Node {
    /// The tags of the subjects `p` holds (ascending), if it has a subject column; kept ones
    /// when computed less than `max_age` ago.
    pub(crate) async fn product_tags(
        &self,
        p: &agora_model::Product,
        max_age: Duration,
    ) -> Result<Option<Arc<Vec<SubjectTag>>>, NodeError> {
        let kept = self
            .inner
            .holdings
            .0
            .lock()
            .expect("lock")
            .get(p.name.as_str())
            .filter(|k| k.version == p.version && k.at.elapsed() < max_age)
            .map(|k| k.tags.clone());
        if kept.is_some() {
            return Ok(kept);
        }
        let Some(ids) = self.subject_ids(p).await? else {
            return Ok(None);
        };
        let digests: Vec<_> = ids
            .iter()
            .map(|id| agora_engine::subject_digest(id))
            .collect();
        let node = self.clone();
        let mut tags = tokio::task::spawn_blocking(move || node.tags_of(&digests))
            .await
            .map_err(|e| NodeError::Transparency(format!("tagging stopped: {e}")))??;
        tags.sort_unstable();
        tags.dedup();
        let tags = Arc::new(tags);
        self.inner.holdings.0.lock().expect("lock").insert(
            p.name.to_string(),
            KeptTags {
                version: p.version,
                at: Instant::now(),
                tags: tags.clone(),
            },
        );
        Ok(Some(tags))
    }

    /// One bucket of the tags of every product's subjects, for a citizen portal.
    pub async fn subject_holdings(
        &self,
        peer: &MemberId,
        req: &SubjectHoldingsRequest,
    ) -> Result<SubjectHoldingsAnswer, NodeError> {
        self.admit_lookup(peer)?;
        let mut products = Vec::new();
        for p in self.store().all_products().await? {
            let Some(tags) = self.product_tags(&p, HOLDINGS_KEPT_FOR).await? else {
                continue;
            };
            let start = tags.partition_point(|t| bucket_of(t) < req.bucket);
            let end = tags.partition_point(|t| bucket_of(t) <= req.bucket);
            products.push(HeldProduct {
                product: p.name.to_string(),
                title: p.metadata.title.clone(),
                tags: tags[start..end].iter().map(hex::encode).collect(),
            });
        }
        Ok(SubjectHoldingsAnswer {
            bucket: req.bucket,
            products,
        })
    }
}

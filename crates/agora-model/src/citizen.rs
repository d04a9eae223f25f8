//! What a citizen portal asks a member's node about one resident, and what it is told,
//! over the signed exchange channel (see `agora_trust::tlog::SubjectIndex` for the
//! commitments these carry). The member learns nothing about the resident: the tag is
//! asked for blinded, and the history is asked for by one byte of the tag.

use serde::{Deserialize, Serialize};

/// `POST` [`crate::paths::SUBJECT_TAG`]: a blinded subject digest (RFC 9497, hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectTagRequest {
    pub blinded: String,
}

/// The node's evaluation of a blinded digest and its proof (hex); the asker checks them
/// against the subject key in the node's witnessed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectTagAnswer {
    pub evaluation: String,
    pub proof: String,
    /// The node's latest witnessed checkpoint, whose `agora-subjects` line states the
    /// subject key the evaluation is checked with.
    pub checkpoint: String,
}

/// `POST` [`crate::paths::SUBJECT_HISTORY`]: one bucket of the node's subject index, at a
/// witnessed checkpoint, with the entries it lists from `after` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectHistoryRequest {
    pub bucket: u8,
    /// The checkpoint's size (later pages of one answer); the latest witnessed by default.
    #[serde(default)]
    pub size: Option<u64>,
    /// Only entries after this index (later pages).
    #[serde(default)]
    pub after: Option<u64>,
}

/// One subject of a bucket: its tag (hex) and the entries that carried its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketElement {
    pub tag: String,
    pub entries: Vec<u64>,
}

/// An entry of the log with its inclusion proof (hex hashes) in the answer's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenEntry {
    pub index: u64,
    /// The entry as the log holds it (JSON text; its bytes are what is hashed).
    pub entry: String,
    pub proof: Vec<String>,
}

/// A bucket of the node's subject index at a witnessed checkpoint: every element, the
/// bucket's proof in the index the checkpoint commits to, and the entries the elements
/// list (in order of index, a page at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectHistoryAnswer {
    /// The checkpoint, signed by the node and cosigned by the authority.
    pub checkpoint: String,
    pub bucket: u8,
    pub elements: Vec<BucketElement>,
    pub proof: Vec<String>,
    pub entries: Vec<ProvenEntry>,
    /// Whether more entries follow (ask again with `after` the last one's index).
    pub more: bool,
}

/// `POST` [`crate::paths::SUBJECT_CONSENT`]: a resident withdraws (or grants again) consent
/// for a purpose, named by their tag at the member (hex), which the portal obtained blindly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectConsentRequest {
    pub tag: String,
    pub purpose: String,
    pub withdrawn: bool,
}

/// Whether the member holds the resident (and so applied the change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectConsentAnswer {
    pub held: bool,
}

/// `POST` [`crate::paths::SUBJECT_HOLDINGS`]: one bucket of the tags of the subjects each of
/// the member's products holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectHoldingsRequest {
    pub bucket: u8,
}

/// One product with a subject column, and the tags (hex) of its subjects in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldProduct {
    pub product: String,
    pub title: String,
    pub tags: Vec<String>,
}

/// Every product of the member with a subject column, with its bucket of tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectHoldingsAnswer {
    pub bucket: u8,
    pub products: Vec<HeldProduct>,
}

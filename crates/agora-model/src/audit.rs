//! Entries of a node's transparency log: one per event that an auditor or a resident may
//! later ask about (an exchange, an access by the node's own people, a policy decision, a
//! negotiation step, a signature, a revocation, a token or user change, a consent change).
//!
//! An entry is the JSON of [`AuditEntry`], fields in declaration order, so the same event
//! always gives the same bytes. The log stores and proves entries as bytes; the filterable
//! fields are repeated in the store's index so that an auditor's filters need not decode
//! every entry, and `agora audit verify` checks that the index says what the entries say.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The largest entry the log takes, in bytes (C2SP `tlog-tiles` entry bundles prefix each
/// entry with a 16-bit length).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What kind of event an entry records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A call between members, as the exchange log holds it (each side logs its own).
    Exchange,
    /// A query by this node's own people or tools that read data products.
    Access,
    /// A policy decision on a request for access.
    Decision,
    /// A step of a negotiation (a request, an offer, an acceptance, a refusal, …).
    Negotiation,
    /// A signature on an agreement.
    Signature,
    /// An agreement or a certificate revoked.
    Revocation,
    /// An API token issued or revoked.
    Token,
    /// A web user added, changed or removed.
    User,
    /// A resident's consent granted or withdrawn.
    Consent,
}

impl AuditKind {
    pub const ALL: [AuditKind; 9] = [
        Self::Exchange,
        Self::Access,
        Self::Decision,
        Self::Negotiation,
        Self::Signature,
        Self::Revocation,
        Self::Token,
        Self::User,
        Self::Consent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::Access => "access",
            Self::Decision => "decision",
            Self::Negotiation => "negotiation",
            Self::Signature => "signature",
            Self::Revocation => "revocation",
            Self::Token => "token",
            Self::User => "user",
            Self::Consent => "consent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The subjects whose rows an answer carried, committed without naming them: how many,
/// and the root of a Merkle tree over their keyed hashes (see the node's accounting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectCommitment {
    pub count: u64,
    /// Hex SHA-256 root.
    pub root: String,
}

/// What an answer read, for its log entry: the products (as named in SQL), the
/// agreements they were read under, those agreements' purposes, and whose records left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    /// Comma-separated.
    pub products: String,
    /// Comma-separated agreement ids.
    pub agreements: String,
    /// Comma-separated.
    pub purposes: String,
    /// The agreements' legal bases, comma-separated.
    pub legal_bases: String,
    pub subjects: Option<SubjectCommitment>,
    /// Per aggregate agreement read: the sizes of the groups it released.
    pub groups: Vec<GroupRelease>,
    /// The tags `subjects` commits to, concatenated in ascending order (64 bytes each):
    /// kept by the owner beside the entry, never in it.
    pub subject_tags: Vec<u8>,
}

/// What an aggregate answer released under one agreement: its groups' sizes (in distinct
/// subjects), never who is in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRelease {
    pub agreement: String,
    /// The sizes of the groups shown, largest first (at most 10 000 of them).
    pub sizes: Vec<u64>,
    /// How many groups were shown.
    pub shown: u64,
    /// How many groups were withheld as too small.
    pub withheld: u64,
}

impl AuditEntry {
    /// Adds what an answer read.
    pub fn context(mut self, c: &AuditContext) -> Self {
        self = self
            .product(c.products.clone())
            .agreement(c.agreements.clone())
            .purpose(c.purposes.clone());
        self.subjects = c.subjects.clone();
        if !c.legal_bases.is_empty() {
            self = self.with("legal_basis", c.legal_bases.clone());
        }
        if !c.groups.is_empty() {
            self = self.with(
                "groups",
                serde_json::to_value(&c.groups).unwrap_or_default(),
            );
        }
        self
    }
}

/// A node asks its authority to witness a checkpoint of its log: the checkpoint (a signed
/// note), the size of the checkpoint the authority last witnessed of this log, and the
/// proof (hex hashes) that the log of that size is a prefix of this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessRequest {
    pub checkpoint: String,
    pub old_size: u64,
    pub consistency: Vec<String>,
}

/// The authority's answer: the checkpoint with its cosignature added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReply {
    pub cosigned: String,
}

/// The origin (C2SP name) of a member's transparency log in an ecosystem.
pub fn audit_origin(ecosystem: &str, member: &crate::MemberId) -> String {
    format!("agora/{ecosystem}/{member}")
}

/// The name under which an ecosystem's authority cosigns checkpoints.
pub fn witness_name(ecosystem: &str) -> String {
    format!("agora/{ecosystem}/authority")
}

/// The header of a 409 answer to a [`WitnessRequest`]: the size the authority last
/// witnessed, to prove consistency from.
pub const WITNESSED_SIZE_HEADER: &str = "agora-witnessed-size";

/// One event, as the transparency log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub kind: AuditKind,
    pub at: DateTime<Utc>,
    /// The record this entry is the proof of, in the table that indexes it
    /// (`exchange:42`, `access:UUID`, `negotiation:ID:3`, …).
    pub reference: String,
    /// Who acted: a member, `token:ID (LABEL)`, `user:NAME`, `cli:USER` or `node`.
    pub actor: String,
    /// The other member, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The products concerned, as named in SQL, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// What came of it (`answered`, `refused: …`, `granted`, …).
    pub outcome: String,
    /// For answers that carried records: whose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<SubjectCommitment>,
    /// The rest of the record, as its kind has it.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// An entry as the log holds it, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEntry {
    pub index: u64,
    pub entry: AuditEntry,
}

/// What an auditor asks of the log's entries; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub kind: Option<String>,
    pub peer: Option<String>,
    /// Matches a product named among the entry's products.
    pub product: Option<String>,
    pub agreement: Option<String>,
    pub purpose: Option<String>,
    /// Matches outcomes that start with it (`refused` matches `refused: …`).
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The record the entry is about (`exchange:42`, …).
    pub reference: Option<String>,
    /// Entries with an index below it (for paging backwards).
    pub before: Option<u64>,
    pub limit: u32,
}

/// Why an entry cannot be logged or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditEntryError {
    #[error("a log entry holds at most {MAX_ENTRY_BYTES} bytes; this one has {0}")]
    TooLarge(usize),
    #[error("the log entry is not an Agora audit entry: {0}")]
    Malformed(String),
}

impl AuditEntry {
    /// A new entry of `kind` about `reference`, now.
    pub fn new(kind: AuditKind, reference: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            kind,
            at: Utc::now(),
            reference: reference.into(),
            actor: actor.into(),
            peer: None,
            product: None,
            agreement: None,
            purpose: None,
            outcome: String::new(),
            subjects: None,
            detail: serde_json::Map::new(),
        }
    }

    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    pub fn peer(mut self, peer: impl Into<String>) -> Self {
        self.peer = Some(peer.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn product(mut self, product: impl Into<String>) -> Self {
        self.product = Some(product.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn agreement(mut self, agreement: impl Into<String>) -> Self {
        self.agreement = Some(agreement.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    /// The entry's bytes, as the log holds and proves them.
    pub fn encode(&self) -> Result<Vec<u8>, AuditEntryError> {
        let bytes = serde_json::to_vec(self).expect("an audit entry serialises");
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(AuditEntryError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, AuditEntryError> {
        serde_json::from_slice(bytes).map_err(|e| AuditEntryError::Malformed(e.to_string()))
    }
}

/// The columns of [`entries_csv`].
pub const CSV_COLUMNS: [&str; 13] = [
    "index",
    "at",
    "kind",
    "reference",
    "actor",
    "peer",
    "product",
    "agreement",
    "purpose",
    "legal_basis",
    "outcome",
    "subjects",
    "entry",
];

/// Entries as CSV (RFC 4180) for a spreadsheet: one row each, the fields an auditor filters
/// on, and the whole entry as JSON in the last column. A cell that a spreadsheet would take
/// for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return — texts a
/// peer or a consumer's query chose can end up in an outcome) is prefixed with `'`.
pub fn entries_csv(entries: &[LoggedEntry]) -> String {
    fn cell(text: &str) -> String {
        match text.chars().next() {
            Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
            _ => text.to_owned(),
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = |row: Vec<String>| {
        // Writing to memory cannot fail.
        w.write_record(&row)
            .expect("a CSV row is written to memory");
    };
    write(CSV_COLUMNS.iter().map(|c| (*c).to_owned()).collect());
    for e in entries {
        let x = &e.entry;
        let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or_default());
        let legal = x
            .detail
            .get("legal_basis")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        write(vec![
            e.index.to_string(),
            x.at.to_rfc3339(),
            x.kind.to_string(),
            cell(&x.reference),
            cell(&x.actor),
            opt(&x.peer),
            opt(&x.product),
            opt(&x.agreement),
            opt(&x.purpose),
            cell(legal),
            cell(&x.outcome),
            x.subjects
                .as_ref()
                .map(|s| s.count.to_string())
                .unwrap_or_default(),
            cell(&serde_json::to_string(x).unwrap_or_default()),
        ]);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        let e = AuditEntry::new(AuditKind::Exchange, "exchange:7", "tax-office")
            .peer("social-benefits")
            .outcome("=HYPERLINK(\"http://evil\",\"x\")")
            .with("legal_basis", "+cmd");
        let csv = entries_csv(&[LoggedEntry { index: 3, entry: e }]);
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(r.headers().unwrap().len(), CSV_COLUMNS.len());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "3");
        assert_eq!(&row[5], "social-benefits");
        assert_eq!(&row[9], "'+cmd");
        assert_eq!(&row[10], "'=HYPERLINK(\"http://evil\",\"x\")");
        assert!(row[12].starts_with("{\"kind\":\"exchange\""));
    }

    #[test]
    fn an_entry_round_trips_and_encodes_the_same_each_time() {
        let e = AuditEntry::new(AuditKind::Exchange, "exchange:7", "tax-office")
            .peer("social-benefits")
            .product("annual_incomes")
            .outcome("answered")
            .with("rows", 12);
        let bytes = e.encode().unwrap();
        assert_eq!(AuditEntry::decode(&bytes).unwrap(), e);
        assert_eq!(e.clone().encode().unwrap(), bytes);
        assert!(!String::from_utf8(bytes).unwrap().contains("agreement"));
    }

    #[test]
    fn an_oversized_entry_is_refused() {
        let e = AuditEntry::new(AuditKind::Access, "access:1", "cli:root")
            .with("sql", "x".repeat(MAX_ENTRY_BYTES));
        assert!(matches!(e.encode(), Err(AuditEntryError::TooLarge(_))));
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AuditKind::parse("nothing"), None);
    }
}

//! What one query took out of the node under agreements, for the transparency log: the
//! subjects whose rows a record-level agreement's table passed into the consumer's query,
//! and the sizes of the groups an aggregate agreement's table released.
//!
//! A query that may account gets an [`AccessLedger`] in its session (the engine puts one in
//! every query it starts). The enforced table then reads the product's subject column next
//! to the agreed columns, below the masks, and its [`EnforcementBoundaryExec`] notes each
//! row's subject and drops the column before anything of the consumer's plan sees the
//! batch: the identifier never reaches the consumer's query, the answer or an error. Every
//! row that passes the agreement's row filter and the conditions that were evaluated below
//! the boundary counts as read, whatever the consumer's plan then does with it (an `ORDER
//! BY … LIMIT 1` reads all of them to choose one), so the set is what the answer was
//! computed from.
//!
//! The ledger keeps a [`SubjectDigest`] of each identifier — SHA-256 of its text, cut to
//! 16 bytes — never the identifier, and at most [`MAX_SUBJECTS`] of them: a query reading
//! more subjects fails with an error saying so, rather than leaving the node unaccounted.
//!
//! [`EnforcementBoundaryExec`]: super::boundary::EnforcementBoundaryExec

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use sha2::{Digest, Sha256};

use crate::EngineError;

/// The most distinct subjects one query may read under record-level agreements (about
/// 40 bytes of memory each).
pub const MAX_SUBJECTS: usize = 5_000_000;

/// The most group sizes one aggregate answer records; more are summarised.
pub const MAX_GROUPS: usize = 10_000;

/// A subject identifier as the ledger keeps it.
pub type SubjectDigest = [u8; 16];

/// The digest of one subject identifier's text (as the product holds it; numbers as their
/// decimal text).
pub fn subject_digest(id: &str) -> SubjectDigest {
    let full = Sha256::new()
        .chain_update(b"agora subject\0")
        .chain_update(id.as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The sizes of the groups one aggregate of an aggregate agreement released or withheld.
#[derive(Debug, Default)]
pub(crate) struct GroupSizes {
    agreement: String,
    sizes: Mutex<Groups>,
}

/// Group sizes in distinct subjects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Groups {
    /// The sizes of the groups shown (at most [`MAX_GROUPS`], largest first after
    /// [`AccessLedger::aggregates`]).
    pub shown: Vec<u64>,
    /// How many groups were shown in all (`shown` may hold fewer).
    pub shown_count: u64,
    /// How many groups were withheld as too small.
    pub withheld: u64,
}

impl GroupSizes {
    pub(crate) fn new(agreement: &str) -> Arc<Self> {
        Arc::new(Self {
            agreement: agreement.to_owned(),
            sizes: Mutex::default(),
        })
    }

    /// Notes one group's size in subjects, and whether it was shown.
    pub(crate) fn note(&self, subjects: u64, shown: bool) {
        let mut g = self.sizes.lock().expect("group sizes lock");
        if !shown {
            g.withheld += 1;
            return;
        }
        g.shown_count += 1;
        if g.shown.len() < MAX_GROUPS {
            g.shown.push(subjects);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    subjects: HashSet<SubjectDigest>,
    /// The record-level agreements that read rows.
    agreements: std::collections::BTreeSet<String>,
    groups: Vec<Arc<GroupSizes>>,
}

/// What one query read under agreements. Shared by the query's plan and its caller, who
/// reads it once the answer has been sent.
#[derive(Debug, Default)]
pub struct AccessLedger {
    inner: Mutex<Inner>,
}

impl AccessLedger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Notes the subjects of one batch (the product's subject column, as it is).
    pub(crate) fn note_subjects(&self, agreement: &str, ids: &ArrayRef) -> Result<()> {
        let text = match ids.data_type() {
            DataType::Utf8 => Arc::clone(ids),
            _ => arrow::compute::cast(ids, &DataType::Utf8)?,
        };
        let text = text.as_string::<i32>();
        let digests: Vec<SubjectDigest> = text.iter().flatten().map(subject_digest).collect();
        let mut inner = self.inner.lock().expect("ledger lock");
        if !inner.agreements.contains(agreement) {
            inner.agreements.insert(agreement.to_owned());
        }
        inner.subjects.extend(digests);
        if inner.subjects.len() > MAX_SUBJECTS {
            return Err(DataFusionError::External(Box::new(
                EngineError::AccessDenied(format!(
                    "the query reads the rows of more than {MAX_SUBJECTS} subjects under \
                     agreement {agreement}, more than the node accounts for in one query; \
                     narrow it with a WHERE condition"
                )),
            )));
        }
        Ok(())
    }

    /// Follows the group sizes of one aggregate.
    pub(crate) fn attach(&self, groups: Arc<GroupSizes>) {
        let mut inner = self.inner.lock().expect("ledger lock");
        if !inner.groups.iter().any(|g| Arc::ptr_eq(g, &groups)) {
            inner.groups.push(groups);
        }
    }

    /// The subjects whose rows the query read under record-level agreements, sorted.
    pub fn subjects(&self) -> Vec<SubjectDigest> {
        let inner = self.inner.lock().expect("ledger lock");
        let mut out: Vec<SubjectDigest> = inner.subjects.iter().copied().collect();
        out.sort_unstable();
        out
    }

    /// The record-level agreements under which the query read rows.
    pub fn record_agreements(&self) -> Vec<String> {
        let inner = self.inner.lock().expect("ledger lock");
        inner.agreements.iter().cloned().collect()
    }

    /// Per aggregate agreement, the sizes of the groups its aggregates released and how
    /// many they withheld (shown sizes largest first).
    pub fn aggregates(&self) -> BTreeMap<String, Groups> {
        let inner = self.inner.lock().expect("ledger lock");
        let mut out: BTreeMap<String, Groups> = BTreeMap::new();
        for g in &inner.groups {
            let sizes = g.sizes.lock().expect("group sizes lock").clone();
            let entry = out.entry(g.agreement.clone()).or_default();
            entry.shown_count += sizes.shown_count;
            entry.withheld += sizes.withheld;
            entry.shown.extend(sizes.shown);
        }
        for groups in out.values_mut() {
            groups.shown.sort_unstable_by(|a, b| b.cmp(a));
            groups.shown.truncate(MAX_GROUPS);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_digests_are_of_the_text_and_distinct() {
        assert_eq!(subject_digest("12345678901"), subject_digest("12345678901"));
        assert_ne!(subject_digest("12345678901"), subject_digest("12345678902"));
        let ledger = AccessLedger::new();
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![
            Some(12345678901),
            None,
            Some(12345678901),
        ]));
        ledger.note_subjects("a-1", &ints).unwrap();
        assert_eq!(ledger.subjects(), vec![subject_digest("12345678901")]);
        assert_eq!(ledger.record_agreements(), vec!["a-1".to_owned()]);
    }

    #[test]
    fn group_sizes_are_summarised_per_agreement() {
        let ledger = AccessLedger::new();
        let g = GroupSizes::new("a-2");
        ledger.attach(Arc::clone(&g));
        ledger.attach(Arc::clone(&g));
        g.note(7, true);
        g.note(12, true);
        g.note(2, false);
        let groups = &ledger.aggregates()["a-2"];
        assert_eq!(groups.shown, vec![12, 7]);
        assert_eq!((groups.shown_count, groups.withheld), (2, 1));
    }
}

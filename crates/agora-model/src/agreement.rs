//! The terms of a sharing agreement: what a consumer may see of one product, and how.
//!
//! Plain data with validation against the product's schema and column roles. The owner's
//! node enforces these terms inside its query engine on every query a consumer sends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ColumnRole, ColumnSchema, DisclosureControl, ProductMetadata};

/// The smallest number of distinct subjects a group may have in an aggregate answer,
/// unless the agreement sets a larger one.
pub const DEFAULT_MIN_GROUP_SIZE: u32 = 5;

/// How a consumer may read a product under an agreement.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// Row-level records (with the agreement's columns, masks and row filter).
    Records,
    /// Aggregate queries only; groups with fewer than `min_group_size` distinct subjects
    /// are suppressed.
    Aggregate,
    /// Pseudonymised subject keys and the allowed columns only, for record linkage.
    Linkage,
}

impl AccessMode {
    pub const ALL: [AccessMode; 3] = [Self::Records, Self::Aggregate, Self::Linkage];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Aggregate => "aggregate",
            Self::Linkage => "linkage",
        }
    }
}

impl fmt::Display for AccessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessMode {
    type Err = TermsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| TermsError::UnknownMode(s.to_owned()))
    }
}

/// What a consumer sees of one column instead of its value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mask {
    /// Nothing: the column is there, every value is null.
    Redact,
    /// A date or time cut to the first day of its month.
    TruncateToMonth,
    /// A date or time cut to the first day of its year.
    TruncateToYear,
    /// A number generalised to the lower bound of its band: `floor(x / width) * width`.
    Band { width: f64 },
    /// A keyed pseudonym (HMAC-SHA256 under the agreement's linkage key, hex).
    Pseudonym,
    /// A code cut to its first `length` characters (a level of a hierarchy such as
    /// diagnosis chapters or postcode districts).
    Prefix { length: u32 },
}

impl Mask {
    /// The text form used by the CLI and in explanations: `redact`, `month`, `year`,
    /// `band:WIDTH`, `pseudonym`.
    pub fn label(&self) -> String {
        match self {
            Self::Redact => "redact".into(),
            Self::TruncateToMonth => "month".into(),
            Self::TruncateToYear => "year".into(),
            Self::Band { width } => format!("band:{width}"),
            Self::Pseudonym => "pseudonym".into(),
            Self::Prefix { length } => format!("prefix:{length}"),
        }
    }
}

impl Mask {
    /// What the mask does to a column, in plain words.
    pub fn describe(&self) -> String {
        match self {
            Self::Redact => "left out (always empty)".into(),
            Self::TruncateToMonth => "cut to the month".into(),
            Self::TruncateToYear => "cut to the year".into(),
            Self::Band { width } => format!("given in bands of {width}"),
            Self::Pseudonym => "replaced by a pseudonym (the same person always gets the same one for this purpose; only the owner can turn it back)".into(),
            Self::Prefix { length } => format!("cut to its first {length} characters"),
        }
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl FromStr for Mask {
    type Err = TermsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redact" => Ok(Self::Redact),
            "month" => Ok(Self::TruncateToMonth),
            "year" => Ok(Self::TruncateToYear),
            "pseudonym" => Ok(Self::Pseudonym),
            _ if s.starts_with("prefix:") => match s["prefix:".len()..].parse::<u32>() {
                Ok(length) if length > 0 => Ok(Self::Prefix { length }),
                _ => Err(TermsError::BadMask(format!(
                    "{s:?}: a prefix length must be a whole number of at least 1, as in prefix:3"
                ))),
            },
            _ => match s.strip_prefix("band:").map(str::parse::<f64>) {
                Some(Ok(width)) if width.is_finite() && width > 0.0 => Ok(Self::Band { width }),
                Some(_) => Err(TermsError::BadMask(format!(
                    "{s:?}: a band width must be a positive number, as in band:10"
                ))),
                None => Err(TermsError::BadMask(format!(
                    "{s:?} is not a mask; use redact, month, year, band:WIDTH, prefix:LENGTH or pseudonym"
                ))),
            },
        }
    }
}

/// One column the consumer may read, with its mask if any.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnTerm {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
}

impl ColumnTerm {
    /// Parses the CLI's list form: `name` or `name=MASK`, comma-separated
    /// (`person_id=pseudonym,registered_on=month,skills`).
    pub fn parse_list(spec: &str) -> Result<Vec<Self>, TermsError> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (name, mask) = match item.split_once('=') {
                    Some((n, m)) => (n.trim(), Some(m.trim().parse::<Mask>()?)),
                    None => (item, None),
                };
                if name.is_empty() {
                    return Err(TermsError::BadMask(format!(
                        "{item:?} names no column; write column or column=mask"
                    )));
                }
                Ok(Self {
                    name: name.to_owned(),
                    mask,
                })
            })
            .collect()
    }
}

/// What an agreement lets its consumer read of one product.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementTerms {
    /// The columns the consumer may read, in this order; every other column is invisible.
    pub columns: Vec<ColumnTerm>,
    /// Only rows for which this SQL condition over the product's columns holds are visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    pub mode: AccessMode,
    /// Aggregate mode: the smallest group (in distinct subjects) an answer may show.
    #[serde(default = "default_min_group_size")]
    pub min_group_size: u32,
    /// The most rows one query may return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Aggregate mode: the columns that may only be aggregated (summed, averaged, counted),
    /// never grouped by or compared. Every other agreed column but the subject is a
    /// dimension, grouped and filtered at the level its mask sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<String>,
    /// Aggregate mode: how released cells are protected (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureControl>,
    /// What one of the consumer's queries may cost the owner's node, where the owner gives
    /// this consumer less than the node's own limits (they never loosen them).
    #[serde(default, skip_serializing_if = "QueryBounds::is_unbounded")]
    pub query_limits: QueryBounds,
}

/// Bounds an agreement puts on each query under it, on top of the owner node's limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBounds {
    /// The longest one query may run, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u32>,
    /// The most memory one query may hold on the owner's node, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<u32>,
}

impl QueryBounds {
    /// True when the agreement adds no bound of its own.
    pub fn is_unbounded(&self) -> bool {
        self.max_seconds.is_none() && self.max_memory_mib.is_none()
    }
}

fn default_min_group_size() -> u32 {
    DEFAULT_MIN_GROUP_SIZE
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TermsError {
    #[error("unknown access mode {0:?}; use records, aggregate or linkage")]
    UnknownMode(String),
    #[error("bad mask {0}")]
    BadMask(String),
    #[error("the terms name column {column:?}, which {product} does not have")]
    UnknownColumn { product: String, column: String },
    #[error("the terms name column {0:?} twice")]
    DuplicateColumn(String),
    #[error("the terms allow no columns; name at least one")]
    NoColumns,
    #[error("mask {mask} does not fit column {column:?} of type {data_type}: {reason}")]
    MaskMismatch {
        column: String,
        mask: String,
        data_type: String,
        reason: &'static str,
    },
    #[error("{0}")]
    Mode(String),
    #[error("the minimum group size must be at least {DEFAULT_MIN_GROUP_SIZE}, not {0}")]
    GroupTooSmall(u32),
    #[error("the maximum number of rows must be at least 1")]
    NoRows,
    #[error("query_limits.{0} must be at least 1; leave it out for the node's own limit")]
    ZeroBound(&'static str),
    #[error("disclosure.{field} {reason}")]
    Disclosure { field: &'static str, reason: String },
    #[error("dimension {column:?}: {reason}")]
    Dimension { column: String, reason: String },
    #[error("measure {column:?}: {reason}")]
    Measure { column: String, reason: String },
    #[error("{field} applies to aggregate agreements only; leave it out in {mode} mode")]
    AggregateOnly {
        field: &'static str,
        mode: AccessMode,
    },
}

/// Whether a mask, by its label's kind (`redact`, `month`, `year`, `band`, `prefix`,
/// `pseudonym`), fits a column of this type and role: what forms offer. (The terms'
/// validation refuses the type mismatches whatever a form offered.)
pub fn mask_fits(kind: &str, data_type: &str, role: ColumnRole) -> bool {
    match kind {
        "" | "redact" => true,
        "month" | "year" => is_temporal(data_type),
        "band" => is_numeric(data_type),
        "prefix" => is_text(data_type),
        "pseudonym" => matches!(role, ColumnRole::SubjectId | ColumnRole::DirectIdentifier),
        _ => false,
    }
}

fn is_temporal(t: &str) -> bool {
    t.starts_with("Date") || t.starts_with("Timestamp")
}

fn is_text(t: &str) -> bool {
    matches!(t, "Utf8" | "LargeUtf8" | "Utf8View")
}

fn is_numeric(t: &str) -> bool {
    ["Int", "UInt", "Float", "Decimal"]
        .iter()
        .any(|p| t.starts_with(p))
}

impl AgreementTerms {
    /// The role the steward gave `column`.
    fn role(metadata: &ProductMetadata, column: &str) -> ColumnRole {
        metadata
            .columns
            .get(column)
            .map(|a| a.role)
            .unwrap_or_default()
    }

    /// The product's subject-identifier column, if the steward marked one.
    pub fn subject_column(metadata: &ProductMetadata) -> Option<&str> {
        metadata
            .columns
            .iter()
            .find(|(_, a)| a.role == ColumnRole::SubjectId)
            .map(|(n, _)| n.as_str())
    }

    /// Checks the terms against the product: columns exist, masks fit their types, and
    /// the mode's rules hold. The row filter's SQL is checked by the query engine.
    pub fn validate(
        &self,
        product: &str,
        schema: &[ColumnSchema],
        metadata: &ProductMetadata,
    ) -> Result<(), TermsError> {
        if self.columns.is_empty() {
            return Err(TermsError::NoColumns);
        }
        if self.min_group_size < DEFAULT_MIN_GROUP_SIZE {
            return Err(TermsError::GroupTooSmall(self.min_group_size));
        }
        if self.max_rows == Some(0) {
            return Err(TermsError::NoRows);
        }
        if self.query_limits.max_seconds == Some(0) {
            return Err(TermsError::ZeroBound("max_seconds"));
        }
        if self.query_limits.max_memory_mib == Some(0) {
            return Err(TermsError::ZeroBound("max_memory_mib"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for term in &self.columns {
            if !seen.insert(term.name.as_str()) {
                return Err(TermsError::DuplicateColumn(term.name.clone()));
            }
            let column = schema.iter().find(|c| c.name == term.name).ok_or_else(|| {
                TermsError::UnknownColumn {
                    product: product.to_owned(),
                    column: term.name.clone(),
                }
            })?;
            let mismatch = |reason| TermsError::MaskMismatch {
                column: term.name.clone(),
                mask: term.mask.map(|m| m.label()).unwrap_or_default(),
                data_type: column.data_type.clone(),
                reason,
            };
            match term.mask {
                Some(Mask::TruncateToMonth | Mask::TruncateToYear)
                    if !is_temporal(&column.data_type) =>
                {
                    return Err(mismatch("only dates and times can be truncated"));
                }
                Some(Mask::Band { .. }) if !is_numeric(&column.data_type) => {
                    return Err(mismatch("only numbers can be put in bands"));
                }
                Some(Mask::Prefix { .. }) if !is_text(&column.data_type) => {
                    return Err(mismatch("only text can be cut to a prefix"));
                }
                _ => {}
            }
        }
        let subject = Self::subject_column(metadata);
        if self.mode != AccessMode::Aggregate {
            if !self.measures.is_empty() {
                return Err(TermsError::AggregateOnly {
                    field: "measures",
                    mode: self.mode,
                });
            }
            if self.disclosure.is_some() {
                return Err(TermsError::AggregateOnly {
                    field: "disclosure",
                    mode: self.mode,
                });
            }
        }
        match self.mode {
            AccessMode::Records => {}
            AccessMode::Aggregate => {
                let Some(subject) = subject else {
                    return Err(TermsError::Mode(format!(
                        "aggregate mode counts groups in distinct subjects, and {product} has no \
                         column with role subject_id; the owner must mark one first"
                    )));
                };
                let shown = self.columns.iter().find(|c| c.name == subject);
                if shown.is_none_or(|c| c.mask.is_some()) {
                    return Err(TermsError::Mode(format!(
                        "aggregate mode counts groups in distinct subjects: include the subject \
                         column {subject:?} among the columns, unmasked (no answer shows it; it \
                         may only be counted)"
                    )));
                }
                self.validate_tabulation(schema, metadata, subject)?;
            }
            AccessMode::Linkage => {
                let Some(subject) = subject else {
                    return Err(TermsError::Mode(format!(
                        "linkage mode pseudonymises the subject identifier, and {product} has no \
                         column with role subject_id; the owner must mark one first"
                    )));
                };
                for term in &self.columns {
                    let role = Self::role(metadata, &term.name);
                    if term.name == subject && term.mask != Some(Mask::Pseudonym) {
                        return Err(TermsError::Mode(format!(
                            "in linkage mode the subject identifier {subject:?} is shared only \
                             as a pseudonym (mask pseudonym)"
                        )));
                    }
                    if role == ColumnRole::DirectIdentifier
                        && !matches!(term.mask, Some(Mask::Redact | Mask::Pseudonym))
                    {
                        return Err(TermsError::Mode(format!(
                            "in linkage mode direct identifiers such as {:?} are not shared; \
                             leave the column out or mask it",
                            term.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Aggregate mode: measures are agreed numeric columns, unmasked, never the subject or a
    /// direct identifier; dimensions (the other agreed columns but the subject) are not
    /// direct identifiers and use only generalising masks; the disclosure control is given
    /// and valid.
    fn validate_tabulation(
        &self,
        schema: &[ColumnSchema],
        metadata: &ProductMetadata,
        subject: &str,
    ) -> Result<(), TermsError> {
        let data_type = |name: &str| {
            schema
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.data_type.as_str())
                .unwrap_or_default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.measures {
            let bad = |reason: &str| TermsError::Measure {
                column: m.clone(),
                reason: reason.to_owned(),
            };
            if !seen.insert(m.as_str()) {
                return Err(bad("is named twice"));
            }
            let Some(term) = self.columns.iter().find(|c| &c.name == m) else {
                return Err(bad(
                    "is not among the agreed columns; add it to the columns",
                ));
            };
            if m == subject {
                return Err(bad("is the subject identifier, which may only be counted"));
            }
            if term.mask.is_some() {
                return Err(bad("is summed as it is; remove its mask"));
            }
            if Self::role(metadata, m) == ColumnRole::DirectIdentifier {
                return Err(bad("is a direct identifier"));
            }
            let t = data_type(m);
            if !(is_numeric(t) || t == "Boolean") {
                return Err(TermsError::Measure {
                    column: m.clone(),
                    reason: format!("is of type {t}; only numbers and booleans can be summed"),
                });
            }
        }
        for term in self.dimensions(subject) {
            let bad = |reason: &str| TermsError::Dimension {
                column: term.name.clone(),
                reason: reason.to_owned(),
            };
            match Self::role(metadata, &term.name) {
                ColumnRole::DirectIdentifier => {
                    return Err(bad(
                        "is a direct identifier, and a table grouped by it shows single people",
                    ));
                }
                ColumnRole::SubjectId => {
                    return Err(bad("is a subject identifier; it may only be counted"));
                }
                _ => {}
            }
            if matches!(term.mask, Some(Mask::Redact | Mask::Pseudonym)) {
                return Err(bad(
                    "a dimension is grouped by its values: use no mask or a generalising one \
                     (month, year, band:WIDTH, prefix:LENGTH)",
                ));
            }
        }
        let Some(disclosure) = &self.disclosure else {
            return Err(TermsError::Disclosure {
                field: "disclosure",
                reason: "is required in aggregate mode: say how cells are perturbed and when \
                         sums are withheld (for example the standard configuration: count=2:1, \
                         magnitude=0.1:0.5, p=10)"
                    .into(),
            });
        };
        disclosure.validate(self.min_group_size)
    }

    /// Aggregate mode: the agreed columns that may be grouped and filtered by: all but the
    /// measures and the subject column (`subject`, from the product's metadata).
    pub fn dimensions<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a ColumnTerm> {
        self.columns
            .iter()
            .filter(move |c| c.name != subject && !self.measures.contains(&c.name))
    }

    /// The columns a consumer sees under these terms, in order, with the types their masks
    /// give them (what the owner's enforced table returns; see the engine's
    /// `EnforcedTable`). Columns the product lacks are left out (validation reports them).
    pub fn view_schema(&self, schema: &[ColumnSchema], subject: Option<&str>) -> Vec<ColumnSchema> {
        self.columns
            .iter()
            .filter_map(|term| {
                let column = schema.iter().find(|c| c.name == term.name)?;
                let mask = if self.mode == AccessMode::Linkage && subject == Some(&term.name[..]) {
                    Some(Mask::Pseudonym)
                } else {
                    term.mask
                };
                Some(match mask {
                    None => column.clone(),
                    Some(Mask::Pseudonym) => ColumnSchema::new(&term.name, "Utf8", true),
                    Some(_) => ColumnSchema::new(&term.name, &column.data_type, true),
                })
            })
            .collect()
    }

    /// Whether any column is shared as a pseudonym (the agreement then needs a linkage key).
    pub fn uses_pseudonyms(&self) -> bool {
        self.mode == AccessMode::Linkage
            || self.columns.iter().any(|c| c.mask == Some(Mask::Pseudonym))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn column_lists_parse_with_masks() {
        let cols = ColumnTerm::parse_list("person_id=pseudonym, months=band:6,skills,").unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[0].mask, Some(Mask::Pseudonym));
        assert_eq!(cols[1].mask, Some(Mask::Band { width: 6.0 }));
        assert_eq!(cols[2].mask, None);
        assert!(ColumnTerm::parse_list("a=scramble").is_err());
        assert!(ColumnTerm::parse_list("=redact").is_err());
    }

    #[test]
    fn the_view_schema_follows_the_masks() {
        let terms = AgreementTerms {
            columns: ColumnTerm::parse_list("person_id,birth_date=year,given_name=redact").unwrap(),
            row_filter: None,
            mode: AccessMode::Linkage,
            min_group_size: 5,
            max_rows: None,
            measures: vec![],
            disclosure: None,
            query_limits: Default::default(),
        };
        let view = terms.view_schema(&schema(), Some("person_id"));
        let names: Vec<_> = view
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
            .collect();
        assert_eq!(
            names,
            [
                ("person_id", "Utf8", true),
                ("birth_date", "Date32", true),
                ("given_name", "Utf8", true)
            ]
        );
    }

    fn schema() -> Vec<ColumnSchema> {
        [
            ("person_id", "Utf8"),
            ("given_name", "Utf8"),
            ("birth_date", "Date32"),
            ("income", "Float64"),
            ("municipality", "Utf8"),
        ]
        .into_iter()
        .map(|(n, t)| ColumnSchema {
            name: n.into(),
            data_type: t.into(),
            nullable: false,
        })
        .collect()
    }

    fn metadata(with_subject: bool) -> ProductMetadata {
        let mut columns = serde_json::json!({
            "given_name": {"role": "direct_identifier"},
            "birth_date": {"role": "quasi_identifier"},
        });
        if with_subject {
            columns["person_id"] = serde_json::json!({"role": "subject_id"});
        }
        serde_json::from_value(serde_json::json!({
            "title": "Residents",
            "owner": "population-registry",
            "classification": "personal",
            "columns": columns,
        }))
        .unwrap()
    }

    fn terms(mode: AccessMode, columns: &[(&str, Option<Mask>)]) -> AgreementTerms {
        AgreementTerms {
            columns: columns
                .iter()
                .map(|(n, m)| ColumnTerm {
                    name: n.to_string(),
                    mask: *m,
                })
                .collect(),
            row_filter: None,
            mode,
            min_group_size: DEFAULT_MIN_GROUP_SIZE,
            max_rows: None,
            measures: vec![],
            disclosure: (mode == AccessMode::Aggregate).then(DisclosureControl::standard),
            query_limits: Default::default(),
        }
    }

    fn check(t: &AgreementTerms, subject: bool) -> Result<(), TermsError> {
        t.validate("residents", &schema(), &metadata(subject))
    }

    #[test]
    fn records_terms_name_existing_columns_once_with_fitting_masks() {
        let ok = terms(
            AccessMode::Records,
            &[
                ("person_id", Some(Mask::Pseudonym)),
                ("birth_date", Some(Mask::TruncateToYear)),
                ("income", Some(Mask::Band { width: 1000.0 })),
                ("given_name", Some(Mask::Redact)),
            ],
        );
        assert_eq!(check(&ok, true), Ok(()));
        let unknown = terms(AccessMode::Records, &[("shoe_size", None)]);
        assert!(matches!(
            check(&unknown, true),
            Err(TermsError::UnknownColumn { .. })
        ));
        let twice = terms(AccessMode::Records, &[("income", None), ("income", None)]);
        assert!(matches!(
            check(&twice, true),
            Err(TermsError::DuplicateColumn(_))
        ));
        let month_of_text = terms(
            AccessMode::Records,
            &[("municipality", Some(Mask::TruncateToMonth))],
        );
        assert!(matches!(
            check(&month_of_text, true),
            Err(TermsError::MaskMismatch { .. })
        ));
        let band_of_date = terms(
            AccessMode::Records,
            &[("birth_date", Some(Mask::Band { width: 5.0 }))],
        );
        assert!(matches!(
            check(&band_of_date, true),
            Err(TermsError::MaskMismatch { .. })
        ));
        assert_eq!(
            check(&terms(AccessMode::Records, &[]), true),
            Err(TermsError::NoColumns)
        );
        let mut small = ok.clone();
        small.min_group_size = 2;
        assert_eq!(check(&small, true), Err(TermsError::GroupTooSmall(2)));
        let mut none = ok;
        none.max_rows = Some(0);
        assert_eq!(check(&none, true), Err(TermsError::NoRows));
    }

    #[test]
    fn aggregate_terms_need_the_subject_column_to_count_groups_in() {
        let ok = terms(
            AccessMode::Aggregate,
            &[("person_id", None), ("municipality", None)],
        );
        assert_eq!(check(&ok, true), Ok(()));
        assert!(matches!(check(&ok, false), Err(TermsError::Mode(_))));
        let without = terms(AccessMode::Aggregate, &[("municipality", None)]);
        assert!(matches!(check(&without, true), Err(TermsError::Mode(_))));
        let redacted = terms(
            AccessMode::Aggregate,
            &[("person_id", Some(Mask::Redact)), ("municipality", None)],
        );
        assert!(matches!(check(&redacted, true), Err(TermsError::Mode(_))));
    }

    fn tabulation(measures: &[&str], columns: &[(&str, Option<Mask>)]) -> AgreementTerms {
        let mut t = terms(AccessMode::Aggregate, columns);
        t.measures = measures.iter().map(|m| m.to_string()).collect();
        t
    }

    #[test]
    fn aggregate_terms_declare_fitting_dimensions_and_measures() {
        let ok = tabulation(
            &["income"],
            &[
                ("person_id", None),
                ("municipality", Some(Mask::Prefix { length: 3 })),
                ("birth_date", Some(Mask::TruncateToYear)),
                ("income", None),
            ],
        );
        assert_eq!(check(&ok, true), Ok(()));
        let dims: Vec<_> = ok
            .dimensions("person_id")
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(dims, ["municipality", "birth_date"]);
        let err = |t: &AgreementTerms| check(t, true).unwrap_err();
        // A measure that is not agreed, of text, masked, the subject, or named twice.
        let unknown = tabulation(&["wealth"], &[("person_id", None), ("income", None)]);
        assert!(matches!(err(&unknown), TermsError::Measure { column, .. } if column == "wealth"));
        let text = tabulation(
            &["municipality"],
            &[("person_id", None), ("municipality", None)],
        );
        assert!(err(&text).to_string().contains("only numbers and booleans"));
        let masked = tabulation(
            &["income"],
            &[
                ("person_id", None),
                ("income", Some(Mask::Band { width: 10.0 })),
            ],
        );
        assert!(matches!(err(&masked), TermsError::Measure { .. }));
        let subject = tabulation(&["person_id"], &[("person_id", None)]);
        assert!(matches!(err(&subject), TermsError::Measure { .. }));
        let twice = tabulation(
            &["income", "income"],
            &[("person_id", None), ("income", None)],
        );
        assert!(matches!(err(&twice), TermsError::Measure { .. }));
        // A direct identifier as a dimension, or a dimension hidden by its mask.
        let named = tabulation(&[], &[("person_id", None), ("given_name", None)]);
        assert!(
            matches!(err(&named), TermsError::Dimension { column, .. } if column == "given_name")
        );
        let redacted = tabulation(
            &[],
            &[("person_id", None), ("municipality", Some(Mask::Redact))],
        );
        assert!(matches!(err(&redacted), TermsError::Dimension { .. }));
        // A prefix of something that is not text.
        let prefix = tabulation(
            &[],
            &[
                ("person_id", None),
                ("income", Some(Mask::Prefix { length: 2 })),
            ],
        );
        assert!(matches!(err(&prefix), TermsError::MaskMismatch { .. }));
        // The disclosure control is required, and checked.
        let mut none = ok.clone();
        none.disclosure = None;
        assert!(matches!(
            err(&none),
            TermsError::Disclosure {
                field: "disclosure",
                ..
            }
        ));
        let mut bad = ok.clone();
        bad.disclosure.as_mut().unwrap().count_noise.max = 9;
        assert!(
            err(&bad)
                .to_string()
                .starts_with("disclosure.count_noise.max"),
            "{}",
            err(&bad)
        );
        // Measures and disclosure control belong to aggregate mode only.
        let mut records = ok;
        records.mode = AccessMode::Records;
        assert!(matches!(
            err(&records),
            TermsError::AggregateOnly {
                field: "measures",
                ..
            }
        ));
        records.measures.clear();
        assert!(matches!(
            err(&records),
            TermsError::AggregateOnly {
                field: "disclosure",
                ..
            }
        ));
    }

    #[test]
    fn linkage_terms_share_the_subject_only_as_a_pseudonym_and_no_direct_identifier() {
        let ok = terms(
            AccessMode::Linkage,
            &[("person_id", Some(Mask::Pseudonym)), ("income", None)],
        );
        assert_eq!(check(&ok, true), Ok(()));
        let plain = terms(
            AccessMode::Linkage,
            &[("person_id", None), ("income", None)],
        );
        assert!(matches!(check(&plain, true), Err(TermsError::Mode(_))));
        let named = terms(
            AccessMode::Linkage,
            &[("person_id", Some(Mask::Pseudonym)), ("given_name", None)],
        );
        assert!(matches!(check(&named, true), Err(TermsError::Mode(_))));
        assert!(matches!(check(&ok, false), Err(TermsError::Mode(_))));
    }

    #[test]
    fn unknown_fields_in_terms_are_refused() {
        let bad = serde_json::from_value::<AgreementTerms>(serde_json::json!({
            "mode": "records", "columns": [{"name": "x"}], "rowfilter": "true"
        }));
        assert!(bad.is_err());
        let mode = serde_json::from_value::<AgreementTerms>(serde_json::json!({
            "mode": "everything", "columns": [{"name": "x"}]
        }));
        assert!(mode.is_err());
    }

    proptest! {
        #[test]
        fn mask_labels_parse_back(width in 0.001f64..1e9) {
            for m in [Mask::Redact, Mask::TruncateToMonth, Mask::TruncateToYear,
                      Mask::Pseudonym, Mask::Band { width },
                      Mask::Prefix { length: (width as u32).max(1) }] {
                prop_assert_eq!(m.label().parse::<Mask>().unwrap(), m);
            }
        }

        #[test]
        fn mask_parsing_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Mask>();
            let _ = s.parse::<AccessMode>();
        }
    }
}

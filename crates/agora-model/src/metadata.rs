use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ColumnSchema, MemberId, Retention};

/// How sensitive a data product is; drives what sharing modes are permitted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Open,
    Internal,
    Personal,
    Sensitive,
}

impl Classification {
    pub const ALL: [Classification; 4] =
        [Self::Open, Self::Internal, Self::Personal, Self::Sensitive];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Internal => "internal",
            Self::Personal => "personal",
            Self::Sensitive => "sensitive",
        }
    }

    /// Whether other members may read a product of this class only under a sharing
    /// agreement (everything but open data). The one place this rule is stated.
    pub fn needs_agreement(self) -> bool {
        self != Self::Open
    }

    /// What the class means for who may read the data, in plain words.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Open => "anyone may read it",
            Self::Internal => "other members read it under an agreement",
            Self::Personal => "about people: read under an agreement, identifiers protected",
            Self::Sensitive => "special categories of personal data: never shared row by row",
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Classification {
    type Err = MetadataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| MetadataError::UnknownClassification(s.to_owned()))
    }
}

/// What a column means for privacy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// The identifier of the data subject (e.g. `person_id`); links records across products.
    SubjectId,
    /// Identifies a person on its own (name, address).
    DirectIdentifier,
    /// Identifies a person in combination with others (birth date, postcode, sex).
    QuasiIdentifier,
    /// A sensitive attribute (diagnosis, income).
    Sensitive,
    #[default]
    None,
}

impl ColumnRole {
    pub const ALL: [ColumnRole; 5] = [
        Self::SubjectId,
        Self::DirectIdentifier,
        Self::QuasiIdentifier,
        Self::Sensitive,
        Self::None,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubjectId => "subject_id",
            Self::DirectIdentifier => "direct_identifier",
            Self::QuasiIdentifier => "quasi_identifier",
            Self::Sensitive => "sensitive",
            Self::None => "none",
        }
    }
}

impl fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnRole {
    type Err = MetadataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| MetadataError::UnknownRole(s.to_owned()))
    }
}

/// Data themes of the EU Publications Office vocabulary used by DCAT-AP.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Theme {
    Agri,
    Econ,
    Educ,
    Ener,
    Envi,
    Gove,
    Heal,
    Intr,
    Just,
    Regi,
    Soci,
    Tech,
    Tran,
}

impl Theme {
    pub const ALL: [Theme; 13] = [
        Self::Agri,
        Self::Econ,
        Self::Educ,
        Self::Ener,
        Self::Envi,
        Self::Gove,
        Self::Heal,
        Self::Intr,
        Self::Just,
        Self::Regi,
        Self::Soci,
        Self::Tech,
        Self::Tran,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Self::Agri => "AGRI",
            Self::Econ => "ECON",
            Self::Educ => "EDUC",
            Self::Ener => "ENER",
            Self::Envi => "ENVI",
            Self::Gove => "GOVE",
            Self::Heal => "HEAL",
            Self::Intr => "INTR",
            Self::Just => "JUST",
            Self::Regi => "REGI",
            Self::Soci => "SOCI",
            Self::Tech => "TECH",
            Self::Tran => "TRAN",
        }
    }
    /// Plain-language label, used in search and in the web interface.
    pub fn label(self) -> &'static str {
        match self {
            Self::Agri => "Agriculture, fisheries, forestry and food",
            Self::Econ => "Economy and finance",
            Self::Educ => "Education, culture and sport",
            Self::Ener => "Energy",
            Self::Envi => "Environment",
            Self::Gove => "Government and public sector",
            Self::Heal => "Health",
            Self::Intr => "International issues",
            Self::Just => "Justice, legal system and public safety",
            Self::Regi => "Regions and cities",
            Self::Soci => "Population and society",
            Self::Tech => "Science and technology",
            Self::Tran => "Transport",
        }
    }
}

impl FromStr for Theme {
    type Err = MetadataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| MetadataError::UnknownTheme(s.to_owned()))
    }
}

/// How often the product is updated (EU frequency vocabulary, subset).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateFrequency {
    Continuous,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Annual,
    Irregular,
    Never,
}

impl UpdateFrequency {
    pub const ALL: [UpdateFrequency; 9] = [
        Self::Continuous,
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Quarterly,
        Self::Annual,
        Self::Irregular,
        Self::Never,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continuous => "continuous",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Quarterly => "quarterly",
            Self::Annual => "annual",
            Self::Irregular => "irregular",
            Self::Never => "never",
        }
    }
}

impl FromStr for UpdateFrequency {
    type Err = MetadataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| MetadataError::UnknownFrequency(s.to_owned()))
    }
}

/// What the steward says about one column.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnAnnotation {
    #[serde(default)]
    pub role: ColumnRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Descriptive and legal metadata of a data product.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductMetadata {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub owner: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub themes: Vec<Theme>,
    pub classification: Classification,
    /// Annotations per column, keyed by column name. Columns not listed have role `none`.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnAnnotation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_frequency: Option<UpdateFrequency>,
    /// The purposes (from the purposes vocabulary) other members may request the product
    /// for; none means it cannot be requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("unknown purpose {0:?}: use purposes from the vocabulary ({list})", list = crate::PURPOSES.join(", "))]
    UnknownPurpose(String),
    #[error("unknown classification {0:?}: use one of open, internal, personal, sensitive")]
    UnknownClassification(String),
    #[error(
        "unknown column role {0:?}: use one of subject_id, direct_identifier, quasi_identifier, sensitive, none"
    )]
    UnknownRole(String),
    #[error("unknown theme {0:?}: use a DCAT-AP data theme code such as ECON, SOCI, HEAL, GOVE")]
    UnknownTheme(String),
    #[error(
        "unknown update frequency {0:?}: use one of continuous, hourly, daily, weekly, monthly, quarterly, annual, irregular, never"
    )]
    UnknownFrequency(String),
    #[error("the title must not be empty")]
    EmptyTitle,
    #[error("{field} is too long ({len} characters; at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("metadata names column {column:?}, which the data does not have (columns: {known})")]
    UnknownColumn { column: String, known: String },
    #[error(
        "metadata declares column {column:?} as {declared}, but the data has it as {actual}: fix the sidecar or the data"
    )]
    TypeMismatch {
        column: String,
        declared: String,
        actual: String,
    },
    #[error("more than one column has the role subject_id ({0}); a product has at most one")]
    SeveralSubjectIds(String),
    #[error("products classified {0} must state a legal basis")]
    MissingLegalBasis(Classification),
    #[error("keyword {0:?} is empty or longer than 64 characters")]
    BadKeyword(String),
}

impl MetadataError {
    /// The error for a column the schema lacks, listing the columns it has.
    pub fn unknown_column(column: &str, schema: &[ColumnSchema]) -> Self {
        Self::UnknownColumn {
            column: column.to_owned(),
            known: schema
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 10_000;

impl ProductMetadata {
    /// Minimal metadata for a product: its title, owner and classification.
    pub fn new(title: impl Into<String>, owner: MemberId, classification: Classification) -> Self {
        Self {
            title: title.into(),
            description: String::new(),
            owner,
            contact: None,
            keywords: Vec::new(),
            themes: Vec::new(),
            classification,
            columns: BTreeMap::new(),
            legal_basis: None,
            retention: None,
            update_frequency: None,
            purposes: Vec::new(),
        }
    }

    /// Role of a column (`none` when unannotated).
    pub fn role_of(&self, column: &str) -> ColumnRole {
        self.columns.get(column).map(|c| c.role).unwrap_or_default()
    }

    /// Checks the metadata on its own and against the product's schema.
    pub fn validate(&self, schema: &[ColumnSchema]) -> Result<(), MetadataError> {
        if self.title.trim().is_empty() {
            return Err(MetadataError::EmptyTitle);
        }
        for (field, value, max) in [
            ("title", &self.title, MAX_TITLE),
            ("description", &self.description, MAX_DESCRIPTION),
        ] {
            let len = value.chars().count();
            if len > max {
                return Err(MetadataError::TooLong { field, len, max });
            }
        }
        for k in &self.keywords {
            if k.trim().is_empty() || k.chars().count() > 64 {
                return Err(MetadataError::BadKeyword(k.clone()));
            }
        }
        for p in &self.purposes {
            if !crate::PURPOSES.contains(&p.as_str()) {
                return Err(MetadataError::UnknownPurpose(p.clone()));
            }
        }
        for name in self.columns.keys() {
            if !schema.iter().any(|c| &c.name == name) {
                return Err(MetadataError::unknown_column(name, schema));
            }
        }
        let subject_ids: Vec<&str> = self
            .columns
            .iter()
            .filter(|(_, a)| a.role == ColumnRole::SubjectId)
            .map(|(n, _)| n.as_str())
            .collect();
        if subject_ids.len() > 1 {
            return Err(MetadataError::SeveralSubjectIds(subject_ids.join(", ")));
        }
        if matches!(
            self.classification,
            Classification::Personal | Classification::Sensitive
        ) && self
            .legal_basis
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(MetadataError::MissingLegalBasis(self.classification));
        }
        Ok(())
    }

    /// Applies a partial update; the caller validates the result.
    pub fn apply(&mut self, patch: MetadataPatch) {
        let MetadataPatch {
            title,
            description,
            contact,
            keywords,
            themes,
            classification,
            columns,
            legal_basis,
            retention,
            update_frequency,
            purposes,
        } = patch;
        if let Some(v) = purposes {
            self.purposes = v;
        }
        if let Some(v) = title {
            self.title = v;
        }
        if let Some(v) = description {
            self.description = v;
        }
        if let Some(v) = contact {
            self.contact = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = keywords {
            self.keywords = v;
        }
        if let Some(v) = themes {
            self.themes = v;
        }
        if let Some(v) = classification {
            self.classification = v;
        }
        if let Some(v) = columns {
            for (name, ann) in v {
                self.columns.insert(name, ann);
            }
        }
        if let Some(v) = legal_basis {
            self.legal_basis = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = retention {
            self.retention = Some(v);
        }
        if let Some(v) = update_frequency {
            self.update_frequency = Some(v);
        }
    }
}

/// A partial metadata update. Absent fields stay as they are; columns listed replace
/// the annotation of that column only. The owner cannot change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
    #[serde(default)]
    pub themes: Option<Vec<Theme>>,
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub columns: Option<BTreeMap<String, ColumnAnnotation>>,
    #[serde(default)]
    pub legal_basis: Option<String>,
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub update_frequency: Option<UpdateFrequency>,
    #[serde(default)]
    pub purposes: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<ColumnSchema> {
        vec![
            ColumnSchema::new("person_id", "Utf8", false),
            ColumnSchema::new("income", "Float64", true),
        ]
    }

    fn meta() -> ProductMetadata {
        let mut m = ProductMetadata::new(
            "Income",
            MemberId::parse("tax-office").unwrap(),
            Classification::Personal,
        );
        m.legal_basis = Some("Taxation Act §12".into());
        m
    }

    #[test]
    fn validates_columns_against_schema() {
        let mut m = meta();
        m.columns.insert(
            "salary".into(),
            ColumnAnnotation {
                role: ColumnRole::Sensitive,
                description: None,
            },
        );
        let err = m.validate(&schema()).unwrap_err();
        assert!(err.to_string().contains("\"salary\""), "{err}");
        assert!(err.to_string().contains("person_id, income"), "{err}");
    }

    #[test]
    fn personal_data_needs_legal_basis() {
        let mut m = meta();
        m.legal_basis = None;
        assert_eq!(
            m.validate(&schema()),
            Err(MetadataError::MissingLegalBasis(Classification::Personal))
        );
    }

    #[test]
    fn one_subject_id_at_most() {
        let mut m = meta();
        for c in ["person_id", "income"] {
            m.columns.insert(
                c.into(),
                ColumnAnnotation {
                    role: ColumnRole::SubjectId,
                    description: None,
                },
            );
        }
        assert!(matches!(
            m.validate(&schema()),
            Err(MetadataError::SeveralSubjectIds(_))
        ));
    }

    #[test]
    fn patch_keeps_absent_fields() {
        let mut m = meta();
        m.keywords = vec!["tax".into()];
        m.apply(MetadataPatch {
            title: Some("Declared income".into()),
            ..Default::default()
        });
        assert_eq!(m.title, "Declared income");
        assert_eq!(m.keywords, vec!["tax".to_string()]);
    }

    #[test]
    fn vocabularies_parse() {
        assert_eq!("econ".parse::<Theme>().unwrap(), Theme::Econ);
        assert!("money".parse::<Theme>().is_err());
        assert_eq!(
            "quasi_identifier".parse::<ColumnRole>().unwrap(),
            ColumnRole::QuasiIdentifier
        );
        assert!("secret".parse::<Classification>().is_err());
    }
}

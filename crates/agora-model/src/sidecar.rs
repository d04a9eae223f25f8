//! Sidecar metadata files: TOML next to the data.
//!
//! For a file `income.parquet` the sidecar is `income.parquet.agora.toml` or
//! `income.agora.toml`; for a folder it is `agora.toml` inside the folder. Every field is
//! optional; what the sidecar gives is overridden by what the command line or API request
//! gives explicitly. See README.md ("Sidecar metadata") for an example.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{
    Classification, ColumnAnnotation, ColumnRole, ColumnSchema, MemberId, MetadataError,
    ProductMetadata, Retention, SourceFormat, Theme, UpdateFrequency,
};

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarSource {
    pub format: Option<SourceFormat>,
    /// CSV field delimiter, e.g. ";" or "\t".
    pub delimiter: Option<String>,
    pub has_header: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarColumn {
    #[serde(default)]
    pub role: Option<ColumnRole>,
    #[serde(default)]
    pub description: Option<String>,
    /// Optional assertion of the column's Arrow type (`Int64`, `Utf8`, ...). Registration
    /// fails if the data disagrees.
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
}

/// The parsed content of a sidecar file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    pub name: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub owner: Option<MemberId>,
    pub contact: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub themes: Option<Vec<Theme>>,
    pub classification: Option<Classification>,
    pub legal_basis: Option<String>,
    pub retention: Option<Retention>,
    pub update_frequency: Option<UpdateFrequency>,
    /// Purposes other members may request the product for.
    pub purposes: Option<Vec<String>>,
    #[serde(default)]
    pub source: SidecarSource,
    #[serde(default)]
    pub columns: BTreeMap<String, SidecarColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarError {
    #[error("sidecar {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("sidecar {path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: MetadataError,
    },
}

impl Sidecar {
    /// Parses sidecar TOML; `path` is only used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, SidecarError> {
        toml::from_str(text).map_err(|e| SidecarError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Checks the sidecar against the schema found in the data: every column it names must
    /// exist, and any type it asserts must match.
    pub fn check_schema(&self, schema: &[ColumnSchema], path: &str) -> Result<(), SidecarError> {
        let invalid = |source| SidecarError::Invalid {
            path: path.to_owned(),
            source,
        };
        for (name, col) in &self.columns {
            let Some(actual) = schema.iter().find(|c| &c.name == name) else {
                return Err(invalid(MetadataError::unknown_column(name, schema)));
            };
            if let Some(declared) = &col.data_type
                && !declared.eq_ignore_ascii_case(&actual.data_type)
            {
                return Err(invalid(MetadataError::TypeMismatch {
                    column: name.clone(),
                    declared: declared.clone(),
                    actual: actual.data_type.clone(),
                }));
            }
        }
        Ok(())
    }

    /// Builds product metadata from the sidecar, with fallbacks for what it does not say.
    pub fn to_metadata(&self, default_owner: &MemberId, default_title: &str) -> ProductMetadata {
        ProductMetadata {
            title: self
                .title
                .clone()
                .unwrap_or_else(|| default_title.to_owned()),
            description: self.description.clone().unwrap_or_default(),
            owner: self.owner.clone().unwrap_or_else(|| default_owner.clone()),
            contact: self.contact.clone(),
            keywords: self.keywords.clone().unwrap_or_default(),
            themes: self.themes.clone().unwrap_or_default(),
            classification: self.classification.unwrap_or(Classification::Internal),
            columns: self
                .columns
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        ColumnAnnotation {
                            role: c.role.unwrap_or_default(),
                            description: c.description.clone(),
                        },
                    )
                })
                .collect(),
            legal_basis: self.legal_basis.clone(),
            retention: self.retention,
            update_frequency: self.update_frequency,
            purposes: self.purposes.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
title = "Job seekers"
description = "People registered as looking for work."
classification = "personal"
legal_basis = "Employment Services Act, section 7"
retention = "P10Y"
update_frequency = "daily"
keywords = ["unemployment", "skills"]
themes = ["ECON", "SOCI"]

[source]
format = "csv"
delimiter = ";"

[columns.person_id]
role = "subject_id"
type = "Utf8"

[columns.skills]
description = "Comma-separated skills"
"#;

    #[test]
    fn parses_example() {
        let s = Sidecar::parse(EXAMPLE, "x.agora.toml").unwrap();
        assert_eq!(s.source.delimiter.as_deref(), Some(";"));
        let owner = MemberId::parse("employment-agency").unwrap();
        let m = s.to_metadata(&owner, "fallback");
        assert_eq!(m.title, "Job seekers");
        assert_eq!(m.role_of("person_id"), ColumnRole::SubjectId);
        assert_eq!(m.role_of("skills"), ColumnRole::None);
        assert_eq!(m.retention.unwrap().years, 10);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Sidecar::parse("titel = \"x\"", "a.agora.toml").unwrap_err();
        assert!(err.to_string().contains("titel"), "{err}");
        assert!(err.to_string().contains("a.agora.toml"), "{err}");
    }

    #[test]
    fn bad_vocabulary_is_named() {
        let err = Sidecar::parse("classification = \"secret\"", "a.toml").unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn contradictions_with_schema() {
        let s = Sidecar::parse(EXAMPLE, "x.toml").unwrap();
        let schema = vec![
            ColumnSchema::new("person_id", "Int64", false),
            ColumnSchema::new("skills", "Utf8", true),
        ];
        let err = s.check_schema(&schema, "x.toml").unwrap_err();
        assert!(err.to_string().contains("Int64"), "{err}");
        let schema = vec![ColumnSchema::new("person_id", "Utf8", false)];
        let err = s.check_schema(&schema, "x.toml").unwrap_err();
        assert!(err.to_string().contains("\"skills\""), "{err}");
    }
}

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "invalid member id {0:?}: use 2 to 63 lower-case letters, digits and hyphens, starting with a letter"
    )]
    Member(String),
    #[error(
        "invalid product name {0:?}: use 1 to 63 lower-case letters, digits and underscores, starting with a letter"
    )]
    Product(String),
}

/// A member of the ecosystem, e.g. `employment-agency`. Stable, DNS-label-like.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemberId(String);

impl MemberId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (2..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Member(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MemberId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<MemberId> for String {
    fn from(m: MemberId) -> String {
        m.0
    }
}
/// Debug output is the quoted id, as for a string: messages that quote an id with `{:?}`
/// read `"tax-office"`, never `MemberId("tax-office")`.
impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Quoted, as [`MemberId`]'s.
impl fmt::Debug for ProductName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a data product within its owner's node; it is also its SQL table name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Product(s.to_owned()))
        }
    }

    /// Derives a product name from a file or folder name: `Job Seekers-2024.csv` → `job_seekers_2024`.
    pub fn derive_from(stem: &str) -> Result<Self, IdError> {
        let mut out = String::new();
        for c in stem.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
        }
        let trimmed = out.trim_end_matches('_');
        let name = if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            format!("t_{trimmed}")
        } else {
            trimmed.to_owned()
        };
        let name: String = name.chars().take(63).collect();
        Self::parse(name.trim_end_matches('_')).map_err(|_| IdError::Product(stem.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductName {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<ProductName> for String {
    fn from(m: ProductName) -> String {
        m.0
    }
}
impl fmt::Display for ProductName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_in_messages_read_as_quoted_names_not_rust_types() {
        let p = ProductName::parse("annual_incomes").unwrap();
        let m = MemberId::parse("tax-office").unwrap();
        assert_eq!(
            format!("{p:?} of {m:?}"),
            r#""annual_incomes" of "tax-office""#
        );
    }

    #[test]
    fn member_ids() {
        assert!(MemberId::parse("employment-agency").is_ok());
        assert!(MemberId::parse("a").is_err());
        assert!(MemberId::parse("Tax").is_err());
        assert!(MemberId::parse("tax-").is_err());
        assert!(MemberId::parse("1tax").is_err());
    }

    #[test]
    fn product_names_derive() {
        assert_eq!(
            ProductName::derive_from("Job Seekers-2024")
                .unwrap()
                .as_str(),
            "job_seekers_2024"
        );
        assert_eq!(
            ProductName::derive_from("2024 data").unwrap().as_str(),
            "t_2024_data"
        );
        assert!(ProductName::derive_from("---").is_err());
    }

    proptest! {
        #[test]
        fn derived_names_are_valid_or_error(s in ".{0,100}") {
            if let Ok(n) = ProductName::derive_from(&s) {
                prop_assert!(ProductName::parse(n.as_str()).is_ok());
            }
        }

        #[test]
        fn member_id_parse_never_panics(s in ".{0,80}") {
            let _ = MemberId::parse(&s);
        }
    }
}

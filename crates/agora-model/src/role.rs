//! The roles of a node's API tokens and web users.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a token may do. Analyst, steward and admin each include the ones before them;
/// the auditor reads the node's records of what happened (the transparency log, every
/// access, decision and agreement) and no data, and the admin may do that too.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Search the catalog and query data.
    Analyst,
    /// Also register, update and remove data products.
    Steward,
    /// Also manage API tokens.
    Admin,
    /// Read the transparency log and the records it proves; no data, no changes.
    Auditor,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Steward => "steward",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
    /// True when this role includes `needed`.
    pub fn allows(self, needed: ApiRole) -> bool {
        match (self, needed) {
            (Self::Auditor, n) => n == Self::Auditor,
            (Self::Admin, _) => true,
            (_, Self::Auditor) => false,
            (s, n) => s >= n,
        }
    }
}

impl fmt::Display for ApiRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "analyst" => Ok(Self::Analyst),
            "steward" => Ok(Self::Steward),
            "admin" => Ok(Self::Admin),
            "auditor" => Ok(Self::Auditor),
            other => Err(format!(
                "unknown role {other:?}: use analyst, steward, admin or auditor"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auditor_reads_records_and_no_data_and_an_admin_may_audit() {
        use ApiRole::*;
        assert!(Auditor.allows(Auditor));
        for data in [Analyst, Steward, Admin] {
            assert!(!Auditor.allows(data), "an auditor is no {data}");
        }
        assert!(Admin.allows(Auditor));
        assert!(!Analyst.allows(Auditor) && !Steward.allows(Auditor));
        assert!(Steward.allows(Analyst) && !Analyst.allows(Steward));
        for r in [Analyst, Steward, Admin, Auditor] {
            assert_eq!(r.as_str().parse::<ApiRole>().unwrap(), r);
        }
    }
}

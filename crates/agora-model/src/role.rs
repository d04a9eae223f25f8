//! The roles of a node's API tokens and web users.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a token may do. Each role includes the ones below it.
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
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Steward => "steward",
            Self::Admin => "admin",
        }
    }
    /// True when this role includes `needed`.
    pub fn allows(self, needed: ApiRole) -> bool {
        self >= needed
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
            other => Err(format!(
                "unknown role {other:?}: use analyst, steward or admin"
            )),
        }
    }
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A retention period as an ISO 8601 duration of whole years, months, weeks or days
/// (`P10Y`, `P18M`, `P6W`, `P30D`, `P1Y6M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Retention {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Retention {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("ISO 8601 duration of years, months, weeks or days"))
            .examples(["P10Y"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Retention {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid retention period {0:?}: write an ISO 8601 duration such as P10Y, P18M, P6W or P30D"
)]
pub struct RetentionError(pub String);

impl Retention {
    /// Approximate length in days (a year is 365 days, a month 30), for comparisons.
    pub fn approx_days(&self) -> u64 {
        u64::from(self.years) * 365
            + u64::from(self.months) * 30
            + u64::from(self.weeks) * 7
            + u64::from(self.days)
    }
}

impl FromStr for Retention {
    type Err = RetentionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RetentionError(s.to_owned());
        let rest = s.strip_prefix('P').ok_or_else(err)?;
        if rest.is_empty() {
            return Err(err());
        }
        let mut r = Retention {
            years: 0,
            months: 0,
            weeks: 0,
            days: 0,
        };
        let mut num = String::new();
        // Designators must come in order Y, M, W, D, each at most once.
        let mut last = 0u8;
        for c in rest.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                if num.len() > 6 {
                    return Err(err());
                }
                continue;
            }
            if num.is_empty() {
                return Err(err());
            }
            let n: u32 = num.parse().map_err(|_| err())?;
            num.clear();
            let (rank, slot) = match c {
                'Y' => (1, &mut r.years),
                'M' => (2, &mut r.months),
                'W' => (3, &mut r.weeks),
                'D' => (4, &mut r.days),
                _ => return Err(err()),
            };
            if rank <= last {
                return Err(err());
            }
            last = rank;
            *slot = n;
        }
        if !num.is_empty() {
            return Err(err());
        }
        Ok(r)
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        let parts = [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ];
        if parts.iter().all(|(n, _)| *n == 0) {
            return f.write_str("0D");
        }
        for (n, d) in parts {
            if n > 0 {
                write!(f, "{n}{d}")?;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for Retention {
    type Error = RetentionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<Retention> for String {
    fn from(r: Retention) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_common_periods() {
        assert_eq!("P10Y".parse::<Retention>().unwrap().years, 10);
        let r: Retention = "P1Y6M".parse().unwrap();
        assert_eq!((r.years, r.months), (1, 6));
        for bad in [
            "",
            "P",
            "10Y",
            "PY",
            "P1M1Y",
            "P1Y1Y",
            "P1H",
            "P1",
            "P1234567D",
        ] {
            assert!(bad.parse::<Retention>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_roundtrips(y in 0u32..100, m in 0u32..100, w in 0u32..100, d in 0u32..1000) {
            let r = Retention { years: y, months: m, weeks: w, days: d };
            let back: Retention = r.to_string().parse().unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = s.parse::<Retention>();
        }
    }
}

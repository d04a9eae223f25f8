//! Statistical disclosure control of aggregate agreements: how an owner protects the cells
//! of the tables a consumer asks for, as statistical offices run remote tabulation.
//!
//! Every released cell is protected three ways (the engine applies them; see the engine's
//! `enforce::tabulate`):
//!
//! - the **minimum-contributor rule**: a cell is shown only when at least k distinct
//!   subjects feed it, and a sum only when at least k subjects have a value in it;
//! - **cell-key perturbation**: every subject has a permanent random record key; a cell's
//!   key is the sum of its contributors' keys, and its noise a fixed function of that key,
//!   so the same cell always gets the same noise however it is asked for, and two cells
//!   that differ by one subject get unrelated noise. Counts move by at most
//!   `count_noise.max` with variance `count_noise.variance`; sums move by a fraction in
//!   `magnitude_noise` of the cell's largest contribution, up or down;
//! - a **dominance rule** for sums: a sum is withheld when a few contributors make up most
//!   of it.
//!
//! This is not differential privacy: it stops exact recovery of any one subject's value by
//! differencing, but many different cells built around one subject can narrow an estimate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TermsError;

/// The disclosure-control configuration an aggregate agreement signs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureControl {
    /// Perturbation of counts.
    pub count_noise: CountNoise,
    /// Perturbation of sums and averages.
    pub magnitude_noise: MagnitudeNoise,
    /// When a sum is withheld because a few contributors dominate it.
    pub dominance: Dominance,
}

/// Counts move by an integer in `-max..=max` with mean 0 and the given variance (the
/// maximum-entropy distribution with those moments).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountNoise {
    pub max: u32,
    pub variance: f64,
}

/// Sums move, up or down, by a fraction between `min` and `max` of the cell's largest
/// contribution (a subject's total in the cell).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagnitudeNoise {
    pub min: f64,
    pub max: f64,
}

/// The dominance rule for sums.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dominance {
    /// The p % rule: withheld when the total less its two largest contributions is below
    /// p % of the largest (the second contributor could estimate the first within p %).
    PPercent { p: f64 },
    /// (n, k)-dominance: withheld when the n largest contributions exceed k % of the total.
    NK { n: u32, k: f64 },
}

/// The largest count noise a configuration may ask for (larger would make counts useless
/// and the table of probabilities long).
pub const MAX_COUNT_NOISE: u32 = 10;

impl DisclosureControl {
    /// The configuration the tools propose when a request names none: counts move by at
    /// most 2 (variance 1), sums by 10–50 % of their largest contribution, the p % rule
    /// with p = 10.
    pub fn standard() -> Self {
        Self {
            count_noise: CountNoise {
                max: 2,
                variance: 1.0,
            },
            magnitude_noise: MagnitudeNoise { min: 0.1, max: 0.5 },
            dominance: Dominance::PPercent { p: 10.0 },
        }
    }

    /// Checks every field; errors name the field (`disclosure.count_noise.variance`…).
    pub fn validate(&self, min_group_size: u32) -> Result<(), TermsError> {
        let bad = |field: &'static str, reason: String| TermsError::Disclosure { field, reason };
        let CountNoise { max, variance } = self.count_noise;
        if max == 0 || max > MAX_COUNT_NOISE {
            return Err(bad(
                "count_noise.max",
                format!("must be between 1 and {MAX_COUNT_NOISE}, not {max}"),
            ));
        }
        if max >= min_group_size {
            return Err(bad(
                "count_noise.max",
                format!(
                    "must be smaller than the minimum group size ({min_group_size}), not {max}, \
                     so that no shown count can be perturbed to zero"
                ),
            ));
        }
        // The uniform distribution on -max..=max has the largest variance possible there.
        let ceiling = f64::from(max) * f64::from(max + 1) / 3.0;
        if !(variance.is_finite() && variance > 0.0 && variance <= ceiling) {
            return Err(bad(
                "count_noise.variance",
                format!(
                    "must be above 0 and at most {ceiling} (the variance of the uniform \
                     distribution on -{max}..{max}), not {variance}"
                ),
            ));
        }
        let MagnitudeNoise { min, max } = self.magnitude_noise;
        if !(min.is_finite() && max.is_finite() && 0.0 < min && min <= max && max <= 1.0) {
            return Err(bad(
                "magnitude_noise",
                format!(
                    "needs 0 < min <= max <= 1 (fractions of the largest contribution), not min {min}, max {max}"
                ),
            ));
        }
        match self.dominance {
            Dominance::PPercent { p } if !(p.is_finite() && p > 0.0 && p <= 100.0) => Err(bad(
                "dominance.p",
                format!("must be above 0 and at most 100 (a percentage), not {p}"),
            )),
            Dominance::NK { n, .. } if n == 0 || n > 10 => Err(bad(
                "dominance.n",
                format!("must be between 1 and 10 contributors, not {n}"),
            )),
            Dominance::NK { k, .. } if !(k.is_finite() && k > 0.0 && k < 100.0) => Err(bad(
                "dominance.k",
                format!("must be above 0 and below 100 (a percentage), not {k}"),
            )),
            _ => Ok(()),
        }
    }

    /// The text form of the command line: `standard`, or comma-separated settings
    /// `count=MAX:VARIANCE`, `magnitude=MIN:MAX`, `p=P` or `nk=N:K`, each replacing the
    /// standard one (`count=3:1.5,p=15`).
    pub fn parse(spec: &str) -> Result<Self, TermsError> {
        let mut out = Self::standard();
        let bad = |field: &'static str, reason: String| TermsError::Disclosure { field, reason };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "standard" {
                continue;
            }
            let (key, value) = item.split_once('=').ok_or_else(|| {
                bad(
                    "disclosure",
                    format!("{item:?} is not a setting; write standard, count=MAX:VARIANCE, magnitude=MIN:MAX, p=P or nk=N:K"),
                )
            })?;
            let pair = |field: &'static str| -> Result<(f64, f64), TermsError> {
                let (a, b) = value.split_once(':').ok_or_else(|| {
                    bad(
                        field,
                        format!("{value:?} needs two numbers separated by ':'"),
                    )
                })?;
                let num = |s: &str| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| bad(field, format!("{s:?} is not a number")))
                };
                Ok((num(a)?, num(b)?))
            };
            match key.trim() {
                "count" => {
                    let (m, v) = pair("count_noise")?;
                    if m.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&m) {
                        return Err(bad("count_noise.max", format!("{m} is not a whole number")));
                    }
                    out.count_noise = CountNoise {
                        max: m as u32,
                        variance: v,
                    };
                }
                "magnitude" => {
                    let (min, max) = pair("magnitude_noise")?;
                    out.magnitude_noise = MagnitudeNoise { min, max };
                }
                "p" => {
                    let p = value
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| bad("dominance.p", format!("{value:?} is not a number")))?;
                    out.dominance = Dominance::PPercent { p };
                }
                "nk" => {
                    let (n, k) = pair("dominance")?;
                    if n.fract() != 0.0 || !(0.0..=10.0).contains(&n) {
                        return Err(bad(
                            "dominance.n",
                            format!("{n} is not a whole number from 1 to 10"),
                        ));
                    }
                    out.dominance = Dominance::NK { n: n as u32, k };
                }
                other => {
                    return Err(bad(
                        "disclosure",
                        format!("unknown setting {other:?}; use count, magnitude, p or nk"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for DisclosureControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "count={}:{},magnitude={}:{},",
            self.count_noise.max,
            self.count_noise.variance,
            self.magnitude_noise.min,
            self.magnitude_noise.max
        )?;
        match self.dominance {
            Dominance::PPercent { p } => write!(f, "p={p}"),
            Dominance::NK { n, k } => write!(f, "nk={n}:{k}"),
        }
    }
}

impl FromStr for DisclosureControl {
    type Err = TermsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Dominance {
    /// Plain words for pages and explanations.
    pub fn describe(&self) -> String {
        match self {
            Self::PPercent { p } => format!(
                "a sum is withheld when its total less its two largest contributions is below {p} % of the largest"
            ),
            Self::NK { n, k } => format!(
                "a sum is withheld when its {n} largest contributions make up more than {k} % of it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_standard_configuration_is_valid_and_round_trips_as_text() {
        let s = DisclosureControl::standard();
        assert_eq!(s.validate(5), Ok(()));
        assert_eq!(s.to_string().parse::<DisclosureControl>().unwrap(), s);
        let nk = DisclosureControl::parse("count=3:1.5,nk=2:85").unwrap();
        assert_eq!(nk.count_noise.max, 3);
        assert_eq!(nk.dominance, Dominance::NK { n: 2, k: 85.0 });
        assert_eq!(nk.to_string().parse::<DisclosureControl>().unwrap(), nk);
    }

    fn field(r: Result<(), TermsError>) -> &'static str {
        match r {
            Err(TermsError::Disclosure { field, .. }) => field,
            other => panic!("expected a disclosure error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_configurations_name_their_field() {
        let mut c = DisclosureControl::standard();
        c.count_noise.max = 0;
        assert_eq!(field(c.validate(5)), "count_noise.max");
        c.count_noise.max = 5;
        assert_eq!(field(c.validate(5)), "count_noise.max");
        c.count_noise.max = 2;
        c.count_noise.variance = 2.5;
        assert_eq!(field(c.validate(5)), "count_noise.variance");
        c.count_noise.variance = f64::NAN;
        assert_eq!(field(c.validate(5)), "count_noise.variance");
        c.count_noise.variance = 1.0;
        c.magnitude_noise.min = 0.6;
        assert_eq!(field(c.validate(5)), "magnitude_noise");
        c.magnitude_noise.min = 0.1;
        c.dominance = Dominance::PPercent { p: 0.0 };
        assert_eq!(field(c.validate(5)), "dominance.p");
        c.dominance = Dominance::NK { n: 0, k: 50.0 };
        assert_eq!(field(c.validate(5)), "dominance.n");
        c.dominance = Dominance::NK { n: 1, k: 100.0 };
        assert_eq!(field(c.validate(5)), "dominance.k");
        assert!(DisclosureControl::parse("count=2").is_err());
        assert!(DisclosureControl::parse("noise=3").is_err());
        assert!(DisclosureControl::parse("p=ten").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = serde_json::from_value::<DisclosureControl>(serde_json::json!({
            "count_noise": {"max": 2, "variance": 1.0},
            "magnitude_noise": {"min": 0.1, "max": 0.5},
            "dominance": {"rule": "p_percent", "p": 10.0},
            "seed": 4
        }));
        assert!(bad.is_err());
        let rule = serde_json::from_value::<Dominance>(serde_json::json!({"rule": "none"}));
        assert!(rule.is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = DisclosureControl::parse(&s);
        }
    }
}

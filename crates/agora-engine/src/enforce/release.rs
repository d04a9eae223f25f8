//! What the disclosure rules and the cell-key noise make of a cell's contributors: the
//! figures `agora_tabulate` releases.
//!
//! Every figure is computed from the contributors alone and exactly — sums in fixed point
//! (`FRACTION_BITS` binary places, values clamped to ±2⁶²), counts as integers — so the same
//! cell releases the same figure whatever order its rows arrived in, and no figure needs a
//! sort: the dominance rules look only at a cell's ten largest contributions, kept in one
//! pass.

use std::sync::Arc;

use agora_model::Dominance;
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StructArray};
use arrow::datatypes::DataType;
use datafusion::common::Result;

use super::tabulate::{Cell, Output, Protection};

/// Binary places of the fixed point in which sums are kept.
const FRACTION_BITS: i32 = 32;
/// The largest magnitude a value is totalled at (larger values count as this much, so a
/// sum of up to 2³² of them cannot overflow).
const LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62

/// A value in the fixed point of sums (NaN is never passed: it is no value).
pub(crate) fn fixed(x: f64) -> i128 {
    (x.clamp(-LIMIT, LIMIT) * f64::from(FRACTION_BITS).exp2()).round() as i128
}

/// A fixed-point total as a number.
fn unfixed(x: i128) -> f64 {
    x as f64 / f64::from(FRACTION_BITS).exp2()
}

/// The most contributions a dominance rule looks at (`DisclosureControl` allows n ≤ 10).
const TOP: usize = 10;

/// One figure's contributions, as the rules need them: how many contributors, their total,
/// the total of their sizes and the largest sizes (descending).
#[derive(Debug, Default)]
pub(crate) struct Figure {
    contributors: u64,
    total: i128,
    size: i128,
    top: [i128; TOP],
}

impl Figure {
    pub(crate) fn of(contributions: impl IntoIterator<Item = i128>) -> Self {
        let mut f = Self::default();
        for c in contributions {
            f.contributors += 1;
            f.total += c;
            let s = c.abs();
            f.size += s;
            if s > f.top[TOP - 1] {
                let at = f.top.partition_point(|&t| t >= s);
                f.top.copy_within(at..TOP - 1, at + 1);
                f.top[at] = s;
            }
        }
        f
    }

    /// Whether a few contributions dominate the figure.
    pub(crate) fn dominated(&self, rule: &Dominance) -> bool {
        if self.size == 0 {
            return false;
        }
        match *rule {
            Dominance::PPercent { p } => {
                let (first, second) = (self.top[0], self.top[1]);
                ((self.size - first - second) as f64) < p / 100.0 * first as f64
            }
            Dominance::NK { n, k } => {
                let top: i128 = self.top.iter().take(n as usize).sum();
                top as f64 > k / 100.0 * self.size as f64
            }
        }
    }
}

/// The noise of one cell: deterministic in the cell key and each figure's label.
struct Noise<'a> {
    protection: &'a Protection,
    table: &'a [f64],
    hasher: siphasher::sip::SipHasher24,
    cell_key: u64,
}

impl Noise<'_> {
    fn uniform(&self, label: &str) -> u64 {
        let mut bytes = self.cell_key.to_le_bytes().to_vec();
        bytes.extend_from_slice(label.as_bytes());
        self.hasher.hash(&bytes)
    }

    /// An integer of `-max..=max` drawn from the agreed table.
    fn count(&self, label: &str) -> f64 {
        let u = (self.uniform(label) >> 11) as f64 / (1u64 << 53) as f64;
        let at = self
            .table
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.table.len() - 1);
        at as f64 - f64::from(self.protection.control.count_noise.max)
    }

    /// A fraction of the agreed range of `largest`, up or down.
    fn magnitude(&self, label: &str, largest: f64) -> f64 {
        let h = self.uniform(label);
        let sign = if h >> 63 == 1 { 1.0 } else { -1.0 };
        let u = (h & ((1u64 << 53) - 1)) as f64 / (1u64 << 53) as f64;
        let m = &self.protection.control.magnitude_noise;
        sign * (m.min + (m.max - m.min) * u) * largest
    }
}

/// The figures of one cell.
struct Figures<'a> {
    p: &'a Protection,
    cell: &'a Cell,
    noise: Noise<'a>,
}

impl Figures<'_> {
    fn passes(&self, figure: &Figure) -> bool {
        figure.contributors >= self.p.min_contributors
            && !figure.dominated(&self.p.control.dominance)
    }

    /// A count: its contributions are each contributor's rows or values.
    fn count(&self, figure: &Figure, label: &str) -> Option<f64> {
        self.passes(figure)
            .then(|| (figure.total as f64 + self.noise.count(label)).max(0.0))
    }

    /// A sum, released to 10 significant digits (far finer than its noise).
    fn sum(&self, figure: &Figure, label: &str) -> Option<f64> {
        self.passes(figure).then(|| {
            let largest = unfixed(figure.top[0]);
            significant(
                unfixed(figure.total) + self.noise.magnitude(label, largest),
                10,
            )
        })
    }

    /// The contributions of input `i` of the contributors with a value in it: their totals
    /// or their numbers of values.
    fn input(&self, i: usize, totals: bool) -> Figure {
        let n = self.p.inputs.len();
        let c = self.cell;
        Figure::of(
            (0..c.keys.len())
                .filter(|&e| c.values[e * n + i] > 0)
                .map(|e| {
                    if totals {
                        c.sums[e * n + i]
                    } else {
                        i128::from(c.values[e * n + i])
                    }
                }),
        )
    }

    fn output(&self, output: &Output) -> Option<f64> {
        let label = |kind: &str, i: usize| format!("{kind}:{}", self.p.inputs[i].0);
        match output {
            Output::Rows => self.count(
                &Figure::of(self.cell.rows.iter().map(|&r| i128::from(r))),
                "rows",
            ),
            Output::Subjects => Some(self.cell.keys.len() as f64 + self.noise.count("subjects")),
            Output::Values(i) => self.count(&self.input(*i, false), &label("count", *i)),
            Output::Sum(i) => self.sum(&self.input(*i, true), &label("sum", *i)),
            Output::Avg(i) => {
                let total = self.sum(&self.input(*i, true), &label("sum", *i));
                let values = self.count(&self.input(*i, false), &label("count", *i));
                match (total, values) {
                    (Some(t), Some(c)) if c > 0.0 => Some(significant(t / c, 10)),
                    _ => None,
                }
            }
        }
    }
}

/// What the rules and the noise make of each cell (its contributors distinct): the struct
/// array of `Protection::fields`.
pub(crate) fn release(p: &Protection, cells: &[Cell]) -> Result<ArrayRef> {
    let table = p.count_table();
    let mut shown = Vec::with_capacity(cells.len());
    let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(cells.len()); p.outputs.len()];
    for cell in cells {
        let visible = cell.keys.len() as u64 >= p.min_contributors;
        p.groups.note(cell.keys.len() as u64, visible);
        shown.push(visible);
        let figures = Figures {
            p,
            cell,
            noise: Noise {
                protection: p,
                table: &table,
                hasher: p.secret.noise_hasher(),
                cell_key: cell.keys.iter().fold(0u64, |a, &b| a.wrapping_add(b)),
            },
        };
        for (j, output) in p.outputs.iter().enumerate() {
            columns[j].push(visible.then(|| figures.output(output)).flatten());
        }
    }
    let fields = p.fields();
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(BooleanArray::from(shown))];
    for (values, field) in columns.into_iter().zip(fields.iter().skip(1)) {
        arrays.push(match field.data_type() {
            DataType::Int64 => Arc::new(
                values
                    .into_iter()
                    .map(|v| v.map(|x| x.round() as i64))
                    .collect::<Int64Array>(),
            ),
            _ => Arc::new(values.into_iter().collect::<Float64Array>()),
        });
    }
    Ok(Arc::new(StructArray::try_new(fields, arrays, None)?))
}

/// `x` rounded to `digits` significant digits.
fn significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = digits - 1 - x.abs().log10().floor() as i32;
    let factor = 10f64.powi(scale.clamp(-300, 300));
    (x * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dominated(rule: &Dominance, contributions: &[i128]) -> bool {
        Figure::of(contributions.iter().copied()).dominated(rule)
    }

    #[test]
    fn dominance_rules_find_cells_made_by_few() {
        let p10 = Dominance::PPercent { p: 10.0 };
        // One large value among zeros is dominated; even contributions are not.
        assert!(dominated(&p10, &[100, 0, 0, 0, 0]));
        assert!(!dominated(&p10, &[1; 5]));
        // Two large: the rest (5) is below 10 % of the largest (100).
        assert!(dominated(&p10, &[100, 90, 1, 2, 2]));
        assert!(!dominated(&p10, &[100, 90, 10, 2, 2]));
        // Wherever the large ones come.
        assert!(dominated(&p10, &[1, 2, 90, 2, 100]));
        let nk = Dominance::NK { n: 2, k: 85.0 };
        assert!(dominated(&nk, &[50, 40, 5, 3, 2]));
        assert!(dominated(&nk, &[3, 5, 40, 2, 50]));
        assert!(!dominated(&nk, &[30, 30, 20, 10, 10]));
        // Negative contributions count by their size.
        assert!(dominated(&p10, &[-100, 0, 1, 0, 0]));
        // No contributions, or only zeros: nothing to dominate.
        assert!(!dominated(&p10, &[]));
        assert!(!dominated(&nk, &[0, 0, 0, 0, 0]));
    }

    #[test]
    fn the_largest_contributions_are_kept_in_order() {
        let values: Vec<i128> = (0..1000).map(|i| (i * 7919) % 1009).collect();
        let f = Figure::of(values.iter().copied());
        let mut sorted = values.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(f.top.to_vec(), sorted[..TOP].to_vec());
        assert_eq!(f.total, values.iter().sum::<i128>());
        assert_eq!(f.contributors, 1000);
    }

    #[test]
    fn fixed_point_sums_do_not_depend_on_order() {
        let values = [0.1, 1e-3, 12_345.678_9, -7.25, 1e15, 3.3];
        let forward: i128 = values.iter().map(|&v| fixed(v)).sum();
        let backward: i128 = values.iter().rev().map(|&v| fixed(v)).sum();
        assert_eq!(forward, backward);
        let exact: f64 = values.iter().sum();
        assert!((unfixed(forward) - exact).abs() <= 1e-12 * exact.abs());
        // Whole numbers are exact; huge and infinite values are clamped, never overflow.
        assert_eq!(unfixed(fixed(-42.0)), -42.0);
        assert_eq!(fixed(f64::INFINITY), fixed(LIMIT));
        let many: i128 = std::iter::repeat_n(fixed(f64::MAX), 1 << 20).sum();
        assert!(many > 0);
    }

    #[test]
    fn significant_digits() {
        assert_eq!(significant(123_456_789_012.0, 10), 123_456_789_000.0);
        assert_eq!(significant(0.0, 10), 0.0);
        assert_eq!(significant(-1.234_567_890_12, 10), -1.234_567_89);
    }
}

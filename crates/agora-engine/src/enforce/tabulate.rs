//! The protected aggregate of aggregate agreements: one aggregate function that computes a
//! cell of a table with its statistical disclosure control applied.
//!
//! `agora_tabulate(subject, input…)` (never in the session's registry: only the aggregate
//! rewrite puts it in a plan) gathers, per cell, the cell's contributors — each subject's
//! rows and, per input column, its total and its number of values — keyed by the subject's
//! **record key**: SipHash-2-4 of the subject identifier's text under the owner's secret,
//! permanent for the subject. From them it releases a struct of the requested outputs
//! (`o0`, `o1`, …) and whether the cell may be shown (`shown`):
//!
//! - **minimum contributors**: the cell is shown only with at least k distinct subjects;
//!   a count of a column's values, a sum or an average only when at least k subjects have a
//!   value in it (the rows that actually feed it);
//! - **dominance**: a sum (and the count of rows, whose contributions are each subject's
//!   rows) is withheld when the p % or (n, k) rule finds it dominated by its largest
//!   contributions;
//! - **cell-key perturbation**: the cell key is the sum of its contributors' record keys;
//!   each output's noise is a function of the cell key and the output's label (`rows`,
//!   `subjects`, `count:COLUMN`, `sum:COLUMN`) alone, so the same cell gets the same noise
//!   whichever query asks for it, and cells that differ by one subject get unrelated noise.
//!   Counts move by an integer of the agreement's table of probabilities (the
//!   maximum-entropy distribution on `-max..=max` with the agreed variance, mean 0); sums
//!   by a fraction of the cell's largest contribution, up or down.
//!
//! Rows without a subject identifier are left out: they cannot be counted as anyone.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use agora_model::{DisclosureControl, Dominance};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StructArray,
    UInt32Array, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, UInt32Type, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use siphasher::sip::SipHasher24;

/// The owner's secret for record keys and cell noise (32 bytes: two SipHash keys).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CellKeySecret([u8; 32]);

impl CellKeySecret {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn record_hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_key(self.0[..16].try_into().expect("16 bytes"))
    }

    fn noise_hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_key(self.0[16..].try_into().expect("16 bytes"))
    }
}

impl fmt::Debug for CellKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CellKeySecret(…)")
    }
}

/// What one output of the protected aggregate releases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Output {
    /// `count(*)`: the cell's rows.
    Rows,
    /// `count(DISTINCT subject)`: the cell's subjects.
    Subjects,
    /// `count(column)`: the rows with a value of input `i`.
    Values(usize),
    /// `sum(column)` of input `i`.
    Sum(usize),
    /// `avg(column)` of input `i`: the released sum over the released count of values.
    Avg(usize),
}

/// Everything one protected aggregate needs, fixed at planning.
#[derive(Debug, PartialEq)]
pub(crate) struct Protection {
    pub agreement: String,
    pub min_contributors: u64,
    pub control: DisclosureControl,
    pub secret: CellKeySecret,
    /// The input columns' names (noise labels) and whether their sums are whole numbers.
    pub inputs: Vec<(String, bool)>,
    pub outputs: Vec<Output>,
}

impl std::hash::Hash for Protection {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.agreement.hash(state);
        self.outputs.hash(state);
    }
}

impl Protection {
    fn output_type(&self, o: &Output) -> DataType {
        match o {
            Output::Rows | Output::Subjects | Output::Values(_) => DataType::Int64,
            Output::Sum(i) if self.inputs[*i].1 => DataType::Int64,
            Output::Sum(_) | Output::Avg(_) => DataType::Float64,
        }
    }

    /// The struct the aggregate returns: `shown`, then `o0`, `o1`, ….
    pub(crate) fn fields(&self) -> Fields {
        std::iter::once(Field::new("shown", DataType::Boolean, false))
            .chain(
                self.outputs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| Field::new(format!("o{i}"), self.output_type(o), true)),
            )
            .collect()
    }

    /// The cumulative probabilities of count noise `-max..=max`: the maximum-entropy
    /// distribution with mean 0 and the agreed variance, `p(d) ∝ exp(-λ d²)`.
    fn count_table(&self) -> Vec<f64> {
        let max = i64::from(self.control.count_noise.max);
        let target = self.control.count_noise.variance;
        let variance = |lambda: f64| {
            let (mut z, mut v) = (0.0, 0.0);
            for d in -max..=max {
                let w = (-lambda * (d * d) as f64).exp();
                z += w;
                v += w * (d * d) as f64;
            }
            v / z
        };
        // The variance falls from the uniform one (λ = 0) towards 0 as λ grows.
        let (mut lo, mut hi) = (0.0f64, 64.0f64);
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            if variance(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let lambda = (lo + hi) / 2.0;
        let weights: Vec<f64> = (-max..=max)
            .map(|d| (-lambda * (d * d) as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect()
    }
}

/// Record keys are uniformly random (SipHash outputs), so they are their own hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap = HashMap<u64, u32, BuildHasherDefault<KeyHasher>>;

/// One cell's contributors.
#[derive(Default)]
struct Cell {
    index: KeyMap,
    keys: Vec<u64>,
    rows: Vec<u64>,
    /// Per contributor, per input: its total and its number of values.
    sums: Vec<f64>,
    values: Vec<u32>,
}

/// Bytes one contributor takes, roughly (map entry and vectors).
fn contributor_bytes(inputs: usize) -> usize {
    16 + 8 + 8 + 8 + inputs * 12
}

impl Cell {
    fn contributor(&mut self, key: u64, inputs: usize, grown: &mut usize) -> usize {
        let next = self.keys.len() as u32;
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.keys.push(key);
            self.rows.push(0);
            self.sums.extend(std::iter::repeat_n(0.0, inputs));
            self.values.extend(std::iter::repeat_n(0, inputs));
            *grown += contributor_bytes(inputs);
        }
        i as usize
    }
}

/// The aggregate function; see the module's documentation.
#[derive(Debug)]
pub(crate) struct TabulateUdaf {
    protection: Arc<Protection>,
    signature: Signature,
}

impl PartialEq for TabulateUdaf {
    fn eq(&self, other: &Self) -> bool {
        self.protection == other.protection
    }
}
impl Eq for TabulateUdaf {}
impl std::hash::Hash for TabulateUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.protection.hash(state)
    }
}

impl TabulateUdaf {
    pub(crate) fn new(protection: Protection) -> Self {
        Self {
            protection: Arc::new(protection),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for TabulateUdaf {
    fn name(&self) -> &str {
        "agora_tabulate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.protection.fields()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleCell(Tabulator::new(Arc::clone(
            &self.protection,
        )))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str, t: DataType| {
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(t, false))),
                true,
            ))
        };
        Ok(vec![
            list("keys", DataType::UInt64),
            list("rows", DataType::UInt64),
            list("sums", DataType::Float64),
            list("values", DataType::UInt32),
        ])
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Tabulator::new(Arc::clone(&self.protection))))
    }
}

/// The cells of one aggregation, by group index.
pub(crate) struct Tabulator {
    protection: Arc<Protection>,
    record: SipHasher24,
    cells: Vec<Cell>,
    bytes: usize,
}

impl Tabulator {
    fn new(protection: Arc<Protection>) -> Self {
        Self {
            record: protection.secret.record_hasher(),
            protection,
            cells: Vec::new(),
            bytes: 0,
        }
    }

    fn inputs(&self) -> usize {
        self.protection.inputs.len()
    }

    /// The record key of every row's subject (None: no subject).
    fn record_keys(&self, subjects: &ArrayRef) -> Result<Vec<Option<u64>>> {
        let text = match subjects.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Arc::clone(subjects),
            _ => arrow::compute::cast(subjects, &DataType::Utf8)?,
        };
        let hash = |v: Option<&str>| v.map(|s| self.record.hash(s.as_bytes()));
        Ok(match text.data_type() {
            DataType::Utf8View => text.as_string_view().iter().map(hash).collect(),
            DataType::LargeUtf8 => text.as_string::<i64>().iter().map(hash).collect(),
            _ => text.as_string::<i32>().iter().map(hash).collect(),
        })
    }

    /// The inputs as numbers (booleans as 0 and 1; text only for its null-ness).
    fn numeric_inputs(&self, values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
        values
            .iter()
            .map(|v| match v.data_type() {
                t if t.is_numeric() => Ok(arrow::compute::cast(v, &DataType::Float64)?),
                DataType::Boolean => Ok(arrow::compute::cast(v, &DataType::Float64)?),
                _ => {
                    // Only counted: a value of 0 wherever there is one.
                    let zeros: Float64Array = (0..v.len())
                        .map(|r| (!v.is_null(r)).then_some(0.0))
                        .collect();
                    Ok(Arc::new(zeros) as ArrayRef)
                }
            })
            .collect()
    }

    fn ensure(&mut self, groups: usize) {
        if self.cells.len() < groups {
            self.cells.resize_with(groups, Cell::default);
        }
    }

    fn emit(&mut self, emit_to: EmitTo) -> Vec<Cell> {
        let cells = emit_to.take_needed(&mut self.cells);
        let gone: usize = cells
            .iter()
            .map(|c| c.keys.len() * contributor_bytes(self.protection.inputs.len()))
            .sum();
        self.bytes = self.bytes.saturating_sub(gone);
        cells
    }
}

impl GroupsAccumulator for Tabulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (subjects, inputs) = values
            .split_first()
            .ok_or_else(|| DataFusionError::Internal("agora_tabulate needs a subject".into()))?;
        let keys = self.record_keys(subjects)?;
        let inputs = self.numeric_inputs(inputs)?;
        let inputs: Vec<&Float64Array> = inputs
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let n = self.inputs();
        self.ensure(total_num_groups);
        let mut grown = 0;
        for (row, &group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let Some(key) = keys[row] else { continue };
            let cell = &mut self.cells[group];
            let c = cell.contributor(key, n, &mut grown);
            cell.rows[c] += 1;
            for (i, input) in inputs.iter().enumerate() {
                if input.is_valid(row) {
                    cell.sums[c * n + i] += input.value(row);
                    cell.values[c * n + i] += 1;
                }
            }
        }
        self.bytes += grown;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let cells = self.emit(emit_to);
        release(&self.protection, &cells)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let cells = self.emit(emit_to);
        let mut offsets = vec![0usize];
        let mut sum_offsets = vec![0usize];
        let (mut keys, mut rows, mut sums, mut counts) = (vec![], vec![], vec![], vec![]);
        for cell in &cells {
            keys.extend_from_slice(&cell.keys);
            rows.extend_from_slice(&cell.rows);
            sums.extend_from_slice(&cell.sums);
            counts.extend_from_slice(&cell.values);
            offsets.push(keys.len());
            sum_offsets.push(sums.len());
        }
        let list = |offsets: &[usize], values: ArrayRef| -> ArrayRef {
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(values.data_type().clone(), false)),
                OffsetBuffer::from_lengths(offsets.windows(2).map(|w| w[1] - w[0])),
                values,
                None,
            ))
        };
        Ok(vec![
            list(&offsets, Arc::new(UInt64Array::from(keys))),
            list(&offsets, Arc::new(UInt64Array::from(rows))),
            list(&sum_offsets, Arc::new(Float64Array::from(sums))),
            list(&sum_offsets, Arc::new(UInt32Array::from(counts))),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [keys, rows, sums, counts] = values else {
            return Err(DataFusionError::Internal(
                "agora_tabulate's state has four lists".into(),
            ));
        };
        let (keys, rows, sums, counts) = (
            keys.as_list::<i32>(),
            rows.as_list::<i32>(),
            sums.as_list::<i32>(),
            counts.as_list::<i32>(),
        );
        let n = self.inputs();
        self.ensure(total_num_groups);
        let mut grown = 0;
        for (row, &group) in group_indices.iter().enumerate() {
            if keys.is_null(row) {
                continue;
            }
            let k = keys.value(row);
            let r = rows.value(row);
            let s = sums.value(row);
            let c = counts.value(row);
            let (k, r, s, c) = (
                k.as_primitive::<UInt64Type>(),
                r.as_primitive::<UInt64Type>(),
                s.as_primitive::<Float64Type>(),
                c.as_primitive::<UInt32Type>(),
            );
            let cell = &mut self.cells[group];
            for j in 0..k.len() {
                let at = cell.contributor(k.value(j), n, &mut grown);
                cell.rows[at] += r.value(j);
                for i in 0..n {
                    cell.sums[at * n + i] += s.value(j * n + i);
                    cell.values[at * n + i] += c.value(j * n + i);
                }
            }
        }
        self.bytes += grown;
        Ok(())
    }

    /// Each row as a cell of its own (DataFusion skips partial aggregation this way when
    /// it reduces little): one contributor, or none for a row without a subject.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut single = Tabulator::new(Arc::clone(&self.protection));
        let rows = values.first().map_or(0, |v| v.len());
        let groups: Vec<usize> = (0..rows).collect();
        single.update_batch(values, &groups, opt_filter, rows)?;
        single.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.cells.capacity() * std::mem::size_of::<Cell>()
            + self.bytes
    }
}

/// The single-group form DataFusion uses where it does not group.
struct SingleCell(Tabulator);

impl fmt::Debug for SingleCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SingleCell")
    }
}

impl Accumulator for SingleCell {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.ensure(1);
        let array = GroupsAccumulator::evaluate(&mut self.0, EmitTo::All)?;
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        GroupsAccumulator::size(&self.0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.ensure(1);
        GroupsAccumulator::state(&mut self.0, EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}

/// What the rules and the noise make of each cell: the struct array of `Protection::fields`.
fn release(p: &Protection, cells: &[Cell]) -> Result<ArrayRef> {
    let table = p.count_table();
    let noise = p.secret.noise_hasher();
    let n = p.inputs.len();
    let k = p.min_contributors;
    let mut shown = Vec::with_capacity(cells.len());
    let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(cells.len()); p.outputs.len()];
    for cell in cells {
        let subjects = cell.keys.len() as u64;
        let visible = subjects >= k;
        shown.push(visible);
        let cell_key = cell.keys.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        let uniform = |label: &str| {
            let mut bytes = cell_key.to_le_bytes().to_vec();
            bytes.extend_from_slice(label.as_bytes());
            noise.hash(&bytes)
        };
        let count_noise = |label: &str| {
            let u = (uniform(label) >> 11) as f64 / (1u64 << 53) as f64;
            let at = table.iter().position(|&c| u < c).unwrap_or(table.len() - 1);
            at as f64 - f64::from(p.control.count_noise.max)
        };
        let magnitude_noise = |label: &str, largest: f64| {
            let h = uniform(label);
            let sign = if h >> 63 == 1 { 1.0 } else { -1.0 };
            let u = (h & ((1u64 << 53) - 1)) as f64 / (1u64 << 53) as f64;
            let m = &p.control.magnitude_noise;
            sign * (m.min + (m.max - m.min) * u) * largest
        };
        // Per input: the contributions of the subjects with a value, and their count.
        let contributions = |i: usize, totals: bool| -> Vec<f64> {
            (0..cell.keys.len())
                .filter(|c| cell.values[c * n + i] > 0)
                .map(|c| {
                    if totals {
                        cell.sums[c * n + i]
                    } else {
                        f64::from(cell.values[c * n + i])
                    }
                })
                .collect()
        };
        let count = |contrib: &[f64], label: &str| -> Option<f64> {
            (contrib.len() as u64 >= k && !dominated(&p.control.dominance, contrib))
                .then(|| (contrib.iter().sum::<f64>() + count_noise(label)).max(0.0))
        };
        let sum = |contrib: &[f64], label: &str| -> Option<f64> {
            if (contrib.len() as u64) < k || dominated(&p.control.dominance, contrib) {
                return None;
            }
            let largest = contrib.iter().fold(0.0f64, |a, b| a.max(b.abs()));
            // Released to 10 significant digits: the same cell gives the same figure
            // whatever order its rows were added in (far finer than its noise).
            Some(significant(
                ordered_sum(contrib) + magnitude_noise(label, largest),
                10,
            ))
        };
        for (j, output) in p.outputs.iter().enumerate() {
            let value = if !visible {
                None
            } else {
                match output {
                    Output::Rows => {
                        let rows: Vec<f64> = cell.rows.iter().map(|&r| r as f64).collect();
                        count(&rows, "rows")
                    }
                    Output::Subjects => Some(subjects as f64 + count_noise("subjects")),
                    Output::Values(i) => count(
                        &contributions(*i, false),
                        &format!("count:{}", p.inputs[*i].0),
                    ),
                    Output::Sum(i) => {
                        sum(&contributions(*i, true), &format!("sum:{}", p.inputs[*i].0))
                    }
                    Output::Avg(i) => {
                        let total =
                            sum(&contributions(*i, true), &format!("sum:{}", p.inputs[*i].0));
                        let values = count(
                            &contributions(*i, false),
                            &format!("count:{}", p.inputs[*i].0),
                        );
                        match (total, values) {
                            (Some(t), Some(c)) if c > 0.0 => Some(significant(t / c, 10)),
                            _ => None,
                        }
                    }
                }
            };
            columns[j].push(value);
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

/// The sum of `values` added in one order (ascending), whatever order they came in.
fn ordered_sum(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v.iter().sum()
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

/// Whether a few contributions dominate a total (contributions taken in absolute value).
fn dominated(rule: &Dominance, contributions: &[f64]) -> bool {
    let mut sizes: Vec<f64> = contributions.iter().map(|c| c.abs()).collect();
    let total: f64 = sizes.iter().sum();
    if total == 0.0 {
        return false;
    }
    sizes.sort_unstable_by(|a, b| b.total_cmp(a));
    match *rule {
        Dominance::PPercent { p } => {
            let first = sizes.first().copied().unwrap_or(0.0);
            let second = sizes.get(1).copied().unwrap_or(0.0);
            total - first - second < p / 100.0 * first
        }
        Dominance::NK { n, k } => {
            let top: f64 = sizes.iter().take(n as usize).sum();
            top > k / 100.0 * total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_model::DisclosureControl;

    fn protection(outputs: Vec<Output>) -> Protection {
        Protection {
            agreement: "a-1".into(),
            min_contributors: 5,
            control: DisclosureControl::standard(),
            secret: CellKeySecret::new([7; 32]),
            inputs: vec![("income".into(), true)],
            outputs,
        }
    }

    #[test]
    fn the_count_table_has_the_agreed_moments() {
        for (max, variance) in [(2, 1.0), (3, 1.5), (1, 0.5), (5, 0.2)] {
            let mut p = protection(vec![]);
            p.control.count_noise.max = max;
            p.control.count_noise.variance = variance;
            let table = p.count_table();
            assert_eq!(table.len(), 2 * max as usize + 1);
            assert!((table.last().unwrap() - 1.0).abs() < 1e-12);
            let mut prev = 0.0;
            let (mut mean, mut var) = (0.0, 0.0);
            for (i, c) in table.iter().enumerate() {
                let d = i as f64 - f64::from(max);
                mean += (c - prev) * d;
                var += (c - prev) * d * d;
                prev = *c;
            }
            assert!(mean.abs() < 1e-9, "mean {mean}");
            assert!(
                (var - variance).abs() < 1e-6,
                "variance {var} for {variance}"
            );
        }
    }

    #[test]
    fn dominance_rules_find_cells_made_by_few() {
        let p10 = Dominance::PPercent { p: 10.0 };
        // One large value among zeros is dominated; even contributions are not.
        assert!(dominated(&p10, &[100.0, 0.0, 0.0, 0.0, 0.0]));
        assert!(!dominated(&p10, &[1.0; 5]));
        // Two large: the rest (5) is below 10 % of the largest (100).
        assert!(dominated(&p10, &[100.0, 90.0, 1.0, 2.0, 2.0]));
        assert!(!dominated(&p10, &[100.0, 90.0, 10.0, 2.0, 2.0]));
        let nk = Dominance::NK { n: 2, k: 85.0 };
        assert!(dominated(&nk, &[50.0, 40.0, 5.0, 3.0, 2.0]));
        assert!(!dominated(&nk, &[30.0, 30.0, 20.0, 10.0, 10.0]));
        // Negative contributions count by their size.
        assert!(dominated(&p10, &[-100.0, 0.0, 1.0, 0.0, 0.0]));
    }
}

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

use agora_model::DisclosureControl;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, ListArray, UInt32Array,
    UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Fields, Float64Type, UInt32Type, UInt64Type,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use siphasher::sip::SipHasher24;

use super::release;

/// The type of the fixed-point totals in the partial state (raw `i128`s).
const SUM_TYPE: DataType = DataType::Decimal128(38, 0);

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

    pub(crate) fn noise_hasher(&self) -> SipHasher24 {
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
#[derive(Debug)]
pub(crate) struct Protection {
    pub agreement: String,
    pub min_contributors: u64,
    pub control: DisclosureControl,
    pub secret: CellKeySecret,
    /// The input columns' names (noise labels) and whether their sums are whole numbers.
    pub inputs: Vec<(String, bool)>,
    pub outputs: Vec<Output>,
    /// Where released and withheld groups' sizes are noted for the transparency log.
    pub groups: Arc<super::GroupSizes>,
}

impl PartialEq for Protection {
    fn eq(&self, other: &Self) -> bool {
        self.agreement == other.agreement
            && self.min_contributors == other.min_contributors
            && self.control == other.control
            && self.secret == other.secret
            && self.inputs == other.inputs
            && self.outputs == other.outputs
            && Arc::ptr_eq(&self.groups, &other.groups)
    }
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
    pub(crate) fn count_table(&self) -> Vec<f64> {
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

/// Entries a cell gathers beyond twice its distinct contributors before it merges them.
const SLACK: usize = 1 << 16;

/// One cell's entries: per entry a record key, its rows and, per input, its total (in the
/// fixed point of `release::fixed`) and its number of values. Rows are appended as entries
/// and partial states are appended whole; entries of one key are merged into one
/// (`consolidate`) only before release, or when the entries outgrow the distinct
/// contributors last seen by `SLACK`, so memory stays within about twice the contributors.
#[derive(Default)]
pub(crate) struct Cell {
    pub keys: Vec<u64>,
    pub rows: Vec<u64>,
    pub sums: Vec<i128>,
    pub values: Vec<u32>,
    /// The number of entries after the last consolidation (all distinct).
    distinct: usize,
}

/// Bytes one entry takes.
fn entry_bytes(inputs: usize) -> usize {
    8 + 8 + inputs * (16 + 4)
}

impl Cell {
    fn outgrown(&self) -> bool {
        self.keys.len() > 2 * self.distinct + SLACK
    }

    /// Merges the entries of each key into one (the first's place); returns the entries
    /// removed.
    fn consolidate(&mut self, inputs: usize) -> usize {
        let before = self.keys.len();
        if self.distinct == before {
            return 0;
        }
        let mut index = KeyMap::with_capacity_and_hasher(before, Default::default());
        let mut out = Cell {
            keys: Vec::with_capacity(before),
            rows: Vec::with_capacity(before),
            sums: Vec::with_capacity(before * inputs),
            values: Vec::with_capacity(before * inputs),
            distinct: 0,
        };
        for (e, &key) in self.keys.iter().enumerate() {
            let next = out.keys.len() as u32;
            let at = *index.entry(key).or_insert(next) as usize;
            if at == next as usize {
                out.keys.push(key);
                out.rows.push(self.rows[e]);
                out.sums
                    .extend_from_slice(&self.sums[e * inputs..(e + 1) * inputs]);
                out.values
                    .extend_from_slice(&self.values[e * inputs..(e + 1) * inputs]);
            } else {
                out.rows[at] += self.rows[e];
                for i in 0..inputs {
                    out.sums[at * inputs + i] += self.sums[e * inputs + i];
                    out.values[at * inputs + i] += self.values[e * inputs + i];
                }
            }
        }
        out.distinct = out.keys.len();
        *self = out;
        before - self.distinct
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
            list("sums", SUM_TYPE),
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
            .map(|c| c.keys.len() * entry_bytes(self.inputs()))
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
        self.ensure(total_num_groups);
        let mut added: isize = 0;
        for (row, &group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let Some(key) = keys[row] else { continue };
            let cell = &mut self.cells[group];
            cell.keys.push(key);
            cell.rows.push(1);
            for input in &inputs {
                // NaN is no value.
                let value = input.is_valid(row).then(|| input.value(row));
                match value.filter(|v| !v.is_nan()) {
                    Some(v) => {
                        cell.sums.push(release::fixed(v));
                        cell.values.push(1);
                    }
                    None => {
                        cell.sums.push(0);
                        cell.values.push(0);
                    }
                }
            }
            added += 1;
            if cell.outgrown() {
                added -= cell.consolidate(inputs.len()) as isize;
            }
        }
        self.bytes = self
            .bytes
            .saturating_add_signed(added * entry_bytes(inputs.len()) as isize);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.inputs();
        let mut cells = self.emit(emit_to);
        for cell in &mut cells {
            cell.consolidate(n);
        }
        release::release(&self.protection, &cells)
    }

    /// The cells' entries as they are (a key may repeat: the final aggregation merges).
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
        let sums = Decimal128Array::from(sums).with_data_type(SUM_TYPE);
        Ok(vec![
            list(&offsets, Arc::new(UInt64Array::from(keys))),
            list(&offsets, Arc::new(UInt64Array::from(rows))),
            list(&sum_offsets, Arc::new(sums)),
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
        let mut added: isize = 0;
        for (row, &group) in group_indices.iter().enumerate() {
            if keys.is_null(row) {
                continue;
            }
            let (k, r, s, c) = (
                keys.value(row),
                rows.value(row),
                sums.value(row),
                counts.value(row),
            );
            let (k, r, s, c) = (
                k.as_primitive::<UInt64Type>(),
                r.as_primitive::<UInt64Type>(),
                s.as_primitive::<Decimal128Type>(),
                c.as_primitive::<UInt32Type>(),
            );
            if r.len() != k.len() || s.len() != k.len() * n || c.len() != k.len() * n {
                return Err(DataFusionError::Internal(
                    "agora_tabulate's state lists differ in length".into(),
                ));
            }
            let cell = &mut self.cells[group];
            cell.keys.extend_from_slice(k.values());
            cell.rows.extend_from_slice(r.values());
            cell.sums.extend_from_slice(s.values());
            cell.values.extend_from_slice(c.values());
            added += k.len() as isize;
            if cell.outgrown() {
                added -= cell.consolidate(n) as isize;
            }
        }
        self.bytes = self
            .bytes
            .saturating_add_signed(added * entry_bytes(n) as isize);
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
            groups: crate::enforce::GroupSizes::new("a-1"),
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

    /// Rows of (group, subject, income) as one batch into `t`.
    fn feed(t: &mut Tabulator, rows: &[(usize, &str, Option<f64>)]) {
        let subjects: ArrayRef = Arc::new(arrow::array::StringArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ));
        let incomes: ArrayRef = Arc::new(Float64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ));
        let groups: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let n = groups.iter().max().map_or(0, |g| g + 1);
        t.update_batch(&[subjects, incomes], &groups, None, n)
            .unwrap();
    }

    fn table() -> Arc<Protection> {
        Arc::new(protection(vec![
            Output::Rows,
            Output::Subjects,
            Output::Sum(0),
            Output::Avg(0),
        ]))
    }

    /// 40 subjects in two cells, each with three rows (one without an income).
    fn rows() -> Vec<(usize, String, Option<f64>)> {
        (0..120)
            .map(|i| {
                let s = i % 40;
                let income = (i % 3 != 0).then(|| 1000.0 + (s * 37 % 101) as f64 + 0.01 * i as f64);
                (s % 2, format!("P{s:03}"), income)
            })
            .collect()
    }

    fn borrowed(rows: &[(usize, String, Option<f64>)]) -> Vec<(usize, &str, Option<f64>)> {
        rows.iter().map(|(g, s, v)| (*g, s.as_str(), *v)).collect()
    }

    #[test]
    fn row_order_and_partial_states_never_change_a_figure() {
        let rows = rows();
        let mut whole = Tabulator::new(table());
        feed(&mut whole, &borrowed(&rows));
        let expected = whole.evaluate(EmitTo::All).unwrap();

        // Reversed, in two partial aggregations merged in the other order.
        let mut reversed = rows.clone();
        reversed.reverse();
        let (a, b) = reversed.split_at(50);
        let mut parts = Vec::new();
        for half in [a, b] {
            let mut t = Tabulator::new(table());
            feed(&mut t, &borrowed(half));
            t.ensure(2);
            parts.push(t.state(EmitTo::All).unwrap());
        }
        let mut merged = Tabulator::new(table());
        for state in parts.iter().rev() {
            merged.merge_batch(state, &[0, 1], 2).unwrap();
        }
        assert_eq!(
            merged.evaluate(EmitTo::All).unwrap().as_ref(),
            expected.as_ref()
        );
    }

    #[test]
    fn entries_of_one_subject_are_merged_before_they_outgrow_memory() {
        let mut t = Tabulator::new(table());
        let same: Vec<(usize, &str, Option<f64>)> = vec![(0, "P1", Some(1.0)); 10_000];
        for _ in 0..20 {
            feed(&mut t, &same);
        }
        // 200 000 rows of one subject never hold more than the slack in entries.
        assert!(
            t.cells[0].keys.len() <= SLACK + 2,
            "{}",
            t.cells[0].keys.len()
        );
        assert!(t.size() < 2 * SLACK * entry_bytes(1) + 4096);
        t.cells[0].consolidate(1);
        assert_eq!(t.cells[0].keys.len(), 1);
        assert_eq!(t.cells[0].rows[0], 200_000);
        assert_eq!(t.cells[0].values[0], 200_000);
        assert_eq!(t.cells[0].sums[0], release::fixed(200_000.0));
    }
}

//! The terms of an agreement, as a form (to request or counter-offer) and as a summary.

use agora_model::{
    AccessMode, AgreementTerms, ColumnRole, ColumnSchema, ColumnTerm, DEFAULT_MIN_GROUP_SIZE,
    DisclosureControl, Mask, ProductMetadata,
};
use maud::{Markup, html};

use crate::layout::{FieldError, field_error};

/// What the terms part of a form holds, as typed (so that it can be shown again).
#[derive(Debug, Clone, Default)]
pub(crate) struct TermsInput {
    pub mode: String,
    /// Per column of the product, in its order: (name, chosen, mask, band width or prefix
    /// length).
    pub columns: Vec<(String, bool, String, String)>,
    /// Aggregate mode: the columns chosen as measures.
    pub measures: Vec<String>,
    pub row_filter: String,
    pub max_rows: String,
    /// The longest one query may run, in seconds (empty: the owner node's limit).
    pub max_seconds: String,
    /// The most memory one query may hold, in MiB (empty: the owner node's limit).
    pub max_memory_mib: String,
    pub min_group_size: String,
    /// Aggregate mode: the disclosure control in its text form.
    pub disclosure: String,
}

/// A posted form's value for `name`, trimmed; empty when the form has no such field.
pub(crate) fn form_value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// The masks a form offers, as (value, label).
const MASKS: &[(&str, &str)] = &[
    ("", "As it is"),
    ("redact", "Hidden (redact)"),
    ("month", "Date cut to the month"),
    ("year", "Date cut to the year"),
    ("band", "Number in bands"),
    ("prefix", "Code cut to a prefix"),
    ("pseudonym", "Pseudonym"),
];

fn mask_value(m: &Option<Mask>) -> (String, String) {
    match m {
        None => (String::new(), String::new()),
        Some(Mask::Band { width }) => ("band".into(), width.to_string()),
        Some(Mask::Prefix { length }) => ("prefix".into(), length.to_string()),
        Some(other) => (other.label(), String::new()),
    }
}

impl TermsInput {
    /// Blank terms over a product's columns (none chosen, records mode).
    pub fn blank(schema: &[ColumnSchema]) -> Self {
        Self {
            mode: String::new(),
            columns: schema
                .iter()
                .map(|c| (c.name.clone(), false, String::new(), String::new()))
                .collect(),
            measures: Vec::new(),
            row_filter: String::new(),
            max_rows: String::new(),
            max_seconds: String::new(),
            max_memory_mib: String::new(),
            min_group_size: DEFAULT_MIN_GROUP_SIZE.to_string(),
            disclosure: "standard".into(),
        }
    }

    /// Terms already proposed, shown over a product's columns.
    pub fn from_terms(schema: &[ColumnSchema], t: &AgreementTerms) -> Self {
        Self {
            mode: t.mode.as_str().to_owned(),
            columns: schema
                .iter()
                .map(|c| match t.columns.iter().find(|x| x.name == c.name) {
                    Some(x) => {
                        let (m, w) = mask_value(&x.mask);
                        (c.name.clone(), true, m, w)
                    }
                    None => (c.name.clone(), false, String::new(), String::new()),
                })
                .collect(),
            measures: t.measures.clone(),
            row_filter: t.row_filter.clone().unwrap_or_default(),
            max_rows: t.max_rows.map(|m| m.to_string()).unwrap_or_default(),
            max_seconds: (t.query_limits.max_seconds)
                .map(|m| m.to_string())
                .unwrap_or_default(),
            max_memory_mib: (t.query_limits.max_memory_mib)
                .map(|m| m.to_string())
                .unwrap_or_default(),
            min_group_size: t.min_group_size.to_string(),
            disclosure: t
                .disclosure
                .as_ref()
                .map_or_else(|| "standard".into(), |d| d.to_string()),
        }
    }

    /// Reads the terms fields of a posted form (`col.NAME`, `mask.NAME`, `band.NAME`,
    /// `measure.NAME`, `mode`, `row_filter`, `max_rows`, `max_seconds`, `max_memory_mib`, `min_group_size`,
    /// `disclosure`)
    /// over a product's columns.
    pub fn from_form(schema: &[ColumnSchema], pairs: &[(String, String)]) -> Self {
        let get = |k: &str| form_value(pairs, k);
        Self {
            mode: get("mode"),
            columns: schema
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        !get(&format!("col.{}", c.name)).is_empty(),
                        get(&format!("mask.{}", c.name)),
                        get(&format!("band.{}", c.name)),
                    )
                })
                .collect(),
            measures: schema
                .iter()
                .filter(|c| !get(&format!("measure.{}", c.name)).is_empty())
                .map(|c| c.name.clone())
                .collect(),
            row_filter: get("row_filter"),
            max_rows: get("max_rows"),
            max_seconds: get("max_seconds"),
            max_memory_mib: get("max_memory_mib"),
            min_group_size: get("min_group_size"),
            disclosure: get("disclosure"),
        }
    }

    /// The terms, or what is wrong with them, field by field. What needs the product's
    /// data (types against masks, the row filter) is checked by the node afterwards.
    pub fn to_terms(&self) -> Result<AgreementTerms, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mode = match self.mode.parse::<AccessMode>() {
            Ok(m) => Some(m),
            Err(_) => {
                errors.push(FieldError {
                    field: "mode",
                    message: "Choose how the data may be used".into(),
                });
                None
            }
        };
        let columns = self.column_terms(&mut errors);
        let max_rows = if self.max_rows.is_empty() {
            None
        } else {
            match self.max_rows.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    errors.push(FieldError {
                        field: "max_rows",
                        message: "The most rows per query must be a whole number greater than 0, or left empty".into(),
                    });
                    None
                }
            }
        };
        let query_limits = self.query_bounds(&mut errors);
        let min_group_size = self.min_group_size(&mut errors);
        let aggregate = mode == Some(AccessMode::Aggregate);
        let disclosure = if aggregate {
            self.disclosure(&mut errors)
        } else {
            None
        };
        let measures = if aggregate {
            self.measures.clone()
        } else {
            Vec::new()
        };
        match (mode, errors.is_empty()) {
            (Some(mode), true) => Ok(AgreementTerms {
                columns,
                row_filter: (!self.row_filter.is_empty()).then(|| self.row_filter.clone()),
                mode,
                min_group_size,
                max_rows,
                measures,
                disclosure,
                query_limits,
            }),
            _ => Err(errors),
        }
    }

    /// The chosen columns with their masks.
    fn column_terms(&self, errors: &mut Vec<FieldError>) -> Vec<ColumnTerm> {
        let mut columns = Vec::new();
        for (name, chosen, mask, band) in &self.columns {
            if !chosen {
                continue;
            }
            columns.push(ColumnTerm {
                name: name.clone(),
                mask: column_mask(name, mask, band, errors),
            });
        }
        if columns.is_empty() {
            errors.push(FieldError {
                field: "columns",
                message: "Choose at least one column".into(),
            });
        }
        columns
    }

    /// The agreement's own limits on each query's time and memory.
    fn query_bounds(&self, errors: &mut Vec<FieldError>) -> agora_model::QueryBounds {
        let mut bound = |field: &'static str, value: &str, what: &str| {
            if value.is_empty() {
                return None;
            }
            match value.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    errors.push(FieldError {
                        field,
                        message: format!(
                            "{what} must be a whole number greater than 0, or left empty"
                        ),
                    });
                    None
                }
            }
        };
        agora_model::QueryBounds {
            max_seconds: bound("max_seconds", &self.max_seconds, "The longest query time"),
            max_memory_mib: bound(
                "max_memory_mib",
                &self.max_memory_mib,
                "The most memory per query",
            ),
        }
    }

    fn min_group_size(&self, errors: &mut Vec<FieldError>) -> u32 {
        if self.min_group_size.is_empty() {
            return DEFAULT_MIN_GROUP_SIZE;
        }
        match self.min_group_size.parse::<u32>() {
            Ok(n) if n >= DEFAULT_MIN_GROUP_SIZE => n,
            _ => {
                errors.push(FieldError {
                    field: "min_group_size",
                    message: format!(
                        "The smallest group must be a whole number of at least {DEFAULT_MIN_GROUP_SIZE}"
                    ),
                });
                DEFAULT_MIN_GROUP_SIZE
            }
        }
    }

    fn disclosure(&self, errors: &mut Vec<FieldError>) -> Option<DisclosureControl> {
        match DisclosureControl::parse(&self.disclosure) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(FieldError {
                    field: "disclosure",
                    message: format!("The disclosure control is not valid: {e}"),
                });
                None
            }
        }
    }
}

/// Column `name`'s mask as the form gives it (a mask's name, and a band width or prefix
/// length where it takes one).
fn column_mask(name: &str, mask: &str, band: &str, errors: &mut Vec<FieldError>) -> Option<Mask> {
    let mut wrong = |message: String| {
        errors.push(FieldError {
            field: "columns",
            message,
        });
        None
    };
    match mask {
        "" => None,
        "band" => match band.parse::<f64>() {
            Ok(w) if w > 0.0 && w.is_finite() => Some(Mask::Band { width: w }),
            _ => wrong(format!(
                "Enter a band width greater than 0 for column {name}, for example 1000"
            )),
        },
        "prefix" => match band.parse::<u32>() {
            Ok(n) if n > 0 => Some(Mask::Prefix { length: n }),
            _ => wrong(format!(
                "Enter a prefix length of at least 1 for column {name}, for example 3"
            )),
        },
        other => match other.parse::<Mask>() {
            Ok(m) => Some(m),
            Err(_) => wrong(format!("Choose a mask from the list for column {name}")),
        },
    }
}

fn mode_hint(m: AccessMode) -> &'static str {
    match m {
        AccessMode::Records => {
            "Rows, with the chosen columns, masks and row filter. Not allowed for sensitive products."
        }
        AccessMode::Aggregate => {
            "Only tables of counts, sums and averages by the chosen dimensions; every figure is perturbed, small groups are left out and sums dominated by a few are withheld."
        }
        AccessMode::Linkage => {
            "Pseudonymised keys and the chosen columns, to link records with other products for the same purpose."
        }
    }
}

fn error_class(errors: &[FieldError], field: &str) -> &'static str {
    if field_error(errors, field).is_some() {
        "field field--error"
    } else {
        "field"
    }
}

fn error_line(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @for e in errors.iter().filter(|e| e.field == field) {
            p.field__error { span.visually-hidden { "Error: " } (e.message) }
        }
    }
}

/// The terms fields of a form.
pub(crate) fn fields(
    input: &TermsInput,
    metadata: &ProductMetadata,
    schema: &[ColumnSchema],
    errors: &[FieldError],
) -> Markup {
    let role_of = |col: &str| {
        metadata
            .columns
            .get(col)
            .map(|a| a.role)
            .unwrap_or(ColumnRole::None)
    };
    let type_of = |col: &str| {
        schema
            .iter()
            .find(|c| c.name == col)
            .map(|c| c.data_type.as_str())
            .unwrap_or("")
    };
    html! {
        div class=(error_class(errors, "mode")) {
            fieldset.fieldset aria-describedby="mode-hint" {
                legend { "How may the data be used?" }
                p.hint id="mode-hint" { "The owner's node enforces this on every query." }
                (error_line(errors, "mode"))
                div.radios {
                    @for (i, m) in AccessMode::ALL.iter().enumerate() {
                        @let id = if i == 0 { "mode".to_owned() } else { format!("mode-{}", m.as_str()) };
                        div.radio {
                            input type="radio" id=(id) name="mode" value=(m.as_str())
                                checked[input.mode == m.as_str()] aria-describedby={ (id) "-hint" };
                            label for=(id) { (m.as_str()) }
                            p.hint id={ (id) "-hint" } { (mode_hint(*m)) }
                        }
                    }
                }
            }
        }
        div class=(error_class(errors, "columns")) {
            fieldset.fieldset {
                legend { "Which columns, and how masked?" }
                p.hint { "Only the columns you choose can be read. A mask changes what is seen: a pseudonym replaces an identifier with a code that only the owner can map back." }
                (error_line(errors, "columns"))
                div.table-wrap {
                    table.terms-table {
                        caption.visually-hidden { "Columns to request" }
                        thead { tr { th scope="col" { "Column" } th scope="col" { "Type and role" } th scope="col" { "Mask" } th scope="col" { "Band width or prefix length" } th scope="col" { "Measure (aggregate mode)" } } }
                        tbody {
                            @for (i, (name, chosen, mask, band)) in input.columns.iter().enumerate() {
                                @let id = if i == 0 { "columns".to_owned() } else { format!("col-{i}") };
                                tr {
                                    th scope="row" {
                                        div.checkbox {
                                            input type="checkbox" id=(id) name={ "col." (name) } value="on" checked[*chosen];
                                            label for=(id) { code { (name) } }
                                        }
                                    }
                                    td { (crate::layout::plain_type(type_of(name))) ", " (crate::layout::plain_role(role_of(name))) }
                                    td {
                                        label.visually-hidden for={ "mask-" (i) } { "Mask for " (name) }
                                        select id={ "mask-" (i) } name={ "mask." (name) } {
                                            @for (value, label) in MASKS {
                                                // Only masks that apply to the column's type and role (and one
                                                // already chosen, so that it can be seen and changed).
                                                @if mask == value || agora_model::mask_fits(value, type_of(name), role_of(name)) {
                                                    option value=(value) selected[mask == value] { (label) }
                                                }
                                            }
                                        }
                                    }
                                    td {
                                        label.visually-hidden for={ "band-" (i) } { "Band width or prefix length for " (name) }
                                        input.input--short type="text" inputmode="decimal" id={ "band-" (i) } name={ "band." (name) } value=(band);
                                    }
                                    td {
                                        div.checkbox {
                                            input type="checkbox" id={ "measure-" (i) } name={ "measure." (name) } value="on" checked[input.measures.contains(name)];
                                            label for={ "measure-" (i) } { span.visually-hidden { (name) " " } "only summed" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        div class=(error_class(errors, "row_filter")) {
            label for="row_filter" { "Only rows where (optional)" }
            p.hint id="row_filter-hint" { "An SQL condition over the product's columns, for example: municipality = 'Northport'" }
            (error_line(errors, "row_filter"))
            input.input--wide type="text" id="row_filter" name="row_filter" value=(input.row_filter) aria-describedby="row_filter-hint" spellcheck="false";
        }
        div class=(error_class(errors, "max_rows")) {
            label for="max_rows" { "Most rows per query (optional)" }
            (error_line(errors, "max_rows"))
            input.input--short type="text" inputmode="numeric" id="max_rows" name="max_rows" value=(input.max_rows);
        }
        div class=(error_class(errors, "max_seconds")) {
            label for="max_seconds" { "Longest time per query, in seconds (optional)" }
            p.hint id="max_seconds-hint" { "Less than the owner's node allows each query; leave empty for the node's own limit." }
            (error_line(errors, "max_seconds"))
            input.input--short type="text" inputmode="numeric" id="max_seconds" name="max_seconds" value=(input.max_seconds) aria-describedby="max_seconds-hint";
        }
        div class=(error_class(errors, "max_memory_mib")) {
            label for="max_memory_mib" { "Most memory per query, in MiB (optional)" }
            p.hint id="max_memory_mib-hint" { "Less than the owner's node allows each query; leave empty for the node's own limit." }
            (error_line(errors, "max_memory_mib"))
            input.input--short type="text" inputmode="numeric" id="max_memory_mib" name="max_memory_mib" value=(input.max_memory_mib) aria-describedby="max_memory_mib-hint";
        }
        div class=(error_class(errors, "min_group_size")) {
            label for="min_group_size" { "Smallest group in an answer" }
            p.hint id="min_group_size-hint" { "Aggregate mode only: groups of fewer people than this are left out. At least " (DEFAULT_MIN_GROUP_SIZE) "." }
            (error_line(errors, "min_group_size"))
            input.input--short type="text" inputmode="numeric" id="min_group_size" name="min_group_size" value=(input.min_group_size) aria-describedby="min_group_size-hint";
        }
        div class=(error_class(errors, "disclosure")) {
            label for="disclosure" { "Disclosure control" }
            p.hint id="disclosure-hint" { "Aggregate mode only: standard (counts perturbed by at most 2, sums by 10–50 % of their largest contribution, the p % rule with p = 10), or settings such as count=3:1.5,magnitude=0.2:0.6,nk=2:85." }
            (error_line(errors, "disclosure"))
            input.input--wide type="text" id="disclosure" name="disclosure" value=(input.disclosure) aria-describedby="disclosure-hint" spellcheck="false";
        }
    }
}

/// Terms as a summary list and a column table.
pub(crate) fn summary(t: &AgreementTerms, caption: &str) -> Markup {
    html! {
        dl.summary {
            div { dt { "Mode" } dd { (t.mode.as_str()) " – " (mode_hint(t.mode)) } }
            div { dt { "Rows" } dd { @match &t.row_filter { Some(f) => { "Only where " code { (f) } }, None => "Every row" } } }
            div { dt { "Most rows per query" } dd { @match t.max_rows { Some(m) => (m), None => "No limit" } } }
            @if let Some(s) = t.query_limits.max_seconds {
                div { dt { "Longest time per query" } dd { (s) " seconds" } }
            }
            @if let Some(m) = t.query_limits.max_memory_mib {
                div { dt { "Most memory per query" } dd { (m) " MiB" } }
            }
            @if t.mode == AccessMode::Aggregate {
                div { dt { "Smallest group" } dd { (t.min_group_size) " people" } }
                div { dt { "Measures" } dd { @if t.measures.is_empty() { "None: counts only" } @else { (t.measures.join(", ")) } } }
                @if let Some(d) = &t.disclosure {
                    div { dt { "Disclosure control" } dd {
                        "Counts move by at most " (d.count_noise.max) " (variance " (d.count_noise.variance) "); sums by "
                        (d.magnitude_noise.min * 100.0) "–" (d.magnitude_noise.max * 100.0) " % of their largest contribution; "
                        (d.dominance.describe()) "."
                    } }
                }
            }
        }
        div.table-wrap {
            table {
                caption { (caption) }
                thead { tr { th scope="col" { "Column" } th scope="col" { "Seen as" } } }
                tbody {
                    @for c in &t.columns {
                        tr {
                            th scope="row" { code { (c.name) } }
                            td { @match &c.mask {
                                None => "As it is",
                                Some(m) => (mask_words(m)),
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// A mask in words.
pub(crate) fn mask_words(m: &Mask) -> String {
    match m {
        Mask::Redact => "Hidden: every value is empty".into(),
        Mask::TruncateToMonth => "Cut to the first day of the month".into(),
        Mask::TruncateToYear => "Cut to the first day of the year".into(),
        Mask::Band { width } => format!("In bands of {width}"),
        Mask::Prefix { length } => format!("Cut to its first {length} characters"),
        Mask::Pseudonym => "Pseudonym (HMAC-SHA256 under the purpose's linkage key)".into(),
    }
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

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_posted_form_becomes_terms() {
        let input = TermsInput::from_form(
            &schema(),
            &pairs(&[
                ("mode", "linkage"),
                ("col.person_id", "on"),
                ("mask.person_id", "pseudonym"),
                ("col.income", "on"),
                ("mask.income", "band"),
                ("band.income", "1000"),
                ("max_rows", "500"),
            ]),
        );
        let t = input.to_terms().unwrap();
        assert_eq!(t.mode, AccessMode::Linkage);
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.columns[0].mask, Some(Mask::Pseudonym));
        assert_eq!(t.columns[1].mask, Some(Mask::Band { width: 1000.0 }));
        assert_eq!(t.max_rows, Some(500));
        assert_eq!(t.min_group_size, DEFAULT_MIN_GROUP_SIZE);
        // And back again, for a counter-offer prefilled with the request.
        let again = TermsInput::from_terms(&schema(), &t).to_terms().unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn every_mistake_is_named_with_its_field() {
        let input = TermsInput::from_form(
            &schema(),
            &pairs(&[
                ("mode", "everything"),
                ("col.income", "on"),
                ("mask.income", "band"),
                ("band.income", "-3"),
                ("max_rows", "many"),
                ("min_group_size", "2"),
            ]),
        );
        let errors = input.to_terms().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["mode", "columns", "max_rows", "min_group_size"]);
        let none = TermsInput::from_form(&schema(), &pairs(&[("mode", "records")]));
        assert_eq!(
            none.to_terms().unwrap_err()[0].message,
            "Choose at least one column"
        );
    }
}

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ProductMetadata, ProductName};

/// File format of a product's data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Parquet,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// The format implied by a file name, if any (`.csv`, `.csv.gz`, `.tsv`, `.parquet`, `.parq`).
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let base = ["gz", "bz2", "xz", "zst"]
            .iter()
            .find_map(|ext| lower.strip_suffix(&format!(".{ext}")))
            .unwrap_or(&lower);
        if base.ends_with(".csv") || base.ends_with(".tsv") {
            Some(Self::Csv)
        } else if base.ends_with(".parquet") || base.ends_with(".parq") {
            Some(Self::Parquet)
        } else {
            None
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceFormat {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(SourceError::UnknownFormat(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("unknown data format {0:?}: use csv or parquet")]
    UnknownFormat(String),
    #[error("invalid CSV delimiter {0:?}: give a single ASCII character such as ',' ';' or '\\t'")]
    BadDelimiter(String),
    #[error(
        "unsupported location {0:?}: give a local path or a URL with scheme file://, s3://, gs://, az://, http:// or https://"
    )]
    UnsupportedLocation(String),
}

/// Where a product's data lives and how to read it. The data is never copied.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataSource {
    /// A URL: `file:///abs/path` for local files or folders, or an object store URL.
    pub location: String,
    pub format: SourceFormat,
    /// For CSV: the field delimiter (default `,`).
    #[serde(default = "default_delimiter", with = "delimiter_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = ","))]
    pub delimiter: u8,
    /// For CSV: whether the first line holds column names (default true).
    #[serde(default = "default_true")]
    pub has_header: bool,
}

mod delimiter_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&char::from(*d).to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let s = String::deserialize(d)?;
        super::DataSource::parse_delimiter(&s).map_err(serde::de::Error::custom)
    }
}

fn default_delimiter() -> u8 {
    b','
}
fn default_true() -> bool {
    true
}

impl DataSource {
    pub const SCHEMES: [&'static str; 6] = ["file", "s3", "gs", "az", "http", "https"];

    pub fn new(location: impl Into<String>, format: SourceFormat) -> Result<Self, SourceError> {
        let location = location.into();
        let scheme_ok = location
            .split_once("://")
            .is_some_and(|(s, rest)| Self::SCHEMES.contains(&s) && !rest.is_empty());
        if !scheme_ok {
            return Err(SourceError::UnsupportedLocation(location));
        }
        Ok(Self {
            location,
            format,
            delimiter: b',',
            has_header: true,
        })
    }

    pub fn is_local(&self) -> bool {
        self.location.starts_with("file://")
    }

    /// Parses a delimiter as written by a person: `,` `;` `|` `\t` or `tab`.
    pub fn parse_delimiter(s: &str) -> Result<u8, SourceError> {
        match s {
            "\\t" | "tab" | "\t" => Ok(b'\t'),
            _ if s.len() == 1 && s.is_ascii() && s != "\n" && s != "\"" => Ok(s.as_bytes()[0]),
            _ => Err(SourceError::BadDelimiter(s.to_owned())),
        }
    }
}

/// A column as found in the data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// The Arrow data type, as Arrow displays it (`Int64`, `Utf8`, `Date32`, ...).
    pub data_type: String,
    pub nullable: bool,
}

impl ColumnSchema {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
            nullable,
        }
    }
}

/// Measured facts about one column.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub null_count: u64,
    /// Approximate number of distinct values (HyperLogLog).
    pub distinct_estimate: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// How the values spread: equal-width bins for numbers and dates, the commonest
    /// values for text with few distinct values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// The smallest count a histogram bin shows to other members of a product that is not
/// open (the default smallest group of aggregate agreements); smaller counts are withheld.
pub const HISTOGRAM_MIN_COUNT: u64 = 5;

/// A column's distribution, as bins in order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `range` (equal-width bins of numbers or dates) or `values` (the commonest values).
    pub kind: String,
    pub bins: Vec<HistogramBin>,
}

/// One bin of a histogram.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// What the bin holds (`1000 – 1999`, `2024-01 – 2024-03`, `Northport`); absent
    /// where withheld from other members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Rows in the bin; absent where withheld (fewer than [`HISTOGRAM_MIN_COUNT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Histogram {
    /// The histogram as other members may see it of a product that is not open: the shape
    /// only. Range bins lose their labels (they would give the extremes away), value bins
    /// are dropped (values of personal data are themselves personal), and counts below
    /// [`HISTOGRAM_MIN_COUNT`] are withheld.
    pub fn shape_only(&self) -> Option<Self> {
        if self.kind != "range" {
            return None;
        }
        Some(Self {
            kind: self.kind.clone(),
            bins: self
                .bins
                .iter()
                .map(|b| HistogramBin {
                    label: None,
                    count: b.count.filter(|c| *c >= HISTOGRAM_MIN_COUNT),
                })
                .collect(),
        })
    }
}

/// Measured facts about a product, computed at registration.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductProfile {
    pub row_count: u64,
    pub columns: Vec<ColumnProfile>,
    pub computed_at: DateTime<Utc>,
}

/// A registered data product.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: ProductName,
    pub source: DataSource,
    pub schema: Vec<ColumnSchema>,
    pub metadata: ProductMetadata,
    pub profile: ProductProfile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incremented on every change to the product's metadata.
    pub version: i64,
}

/// What a node publishes to the other members about one of its products: metadata, schema
/// and a coarse profile. Never data, and never where the data lives.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub owner: crate::MemberId,
    pub name: ProductName,
    pub metadata: crate::ProductMetadata,
    pub schema: Vec<ColumnSchema>,
    /// Row count and per-column null and distinct counts; minimum and maximum values only
    /// for `open` products (extremes of personal data are themselves personal data).
    pub profile: ProductProfile,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Product {
    /// The product as offered to other members.
    pub fn offer(&self) -> Offer {
        let mut profile = self.profile.clone();
        // The spread of identifiers tells nothing about the data's quality.
        for c in &mut profile.columns {
            let role = self.metadata.columns.get(&c.name).map(|a| a.role);
            if matches!(
                role,
                Some(crate::ColumnRole::SubjectId | crate::ColumnRole::DirectIdentifier)
            ) {
                c.histogram = None;
            }
        }
        if self.metadata.classification.needs_agreement() {
            for c in &mut profile.columns {
                c.min = None;
                c.max = None;
                c.histogram = c.histogram.as_ref().and_then(Histogram::shape_only);
            }
        }
        Offer {
            owner: self.metadata.owner.clone(),
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            schema: self.schema.clone(),
            profile,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub const MAX_PER_PAGE: u32 = 200;
    pub const DEFAULT_PER_PAGE: u32 = 20;

    /// The highest page number asked for (beyond it the offset alone is absurd).
    pub const MAX_PAGE: u32 = 1_000_000;

    /// A page as a caller asked for it: refused, naming the value, when out of range.
    pub fn checked(page: Option<u32>, per_page: Option<u32>) -> Result<Self, PageError> {
        if let Some(p) = page
            && !(1..=Self::MAX_PAGE).contains(&p)
        {
            return Err(PageError::Page(p));
        }
        if let Some(n) = per_page
            && !(1..=Self::MAX_PER_PAGE).contains(&n)
        {
            return Err(PageError::PerPage(n));
        }
        Ok(Self::new(page, per_page))
    }

    /// Clamps to sane values: page ≥ 1, 1 ≤ per_page ≤ 200 (for callers that chose the
    /// values themselves; what a user asked for goes through [`PageRequest::checked`]).
    pub fn new(page: Option<u32>, per_page: Option<u32>) -> Self {
        Self {
            page: page.unwrap_or(1).max(1),
            per_page: per_page
                .unwrap_or(Self::DEFAULT_PER_PAGE)
                .clamp(1, Self::MAX_PER_PAGE),
        }
    }
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

/// A page number or size out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page must be between 1 and {max}, not {0}", max = PageRequest::MAX_PAGE)]
    Page(u32),
    #[error("per_page must be between 1 and {max}, not {0}", max = PageRequest::MAX_PER_PAGE)]
    PerPage(u32),
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// One page of results with the total count.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

impl<T> Page<T> {
    pub fn total_pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.per_page.max(1)))
    }
}

/// A search result: the product's catalog entry and its relevance score.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub name: ProductName,
    pub title: String,
    pub description: String,
    pub owner: String,
    pub classification: crate::Classification,
    pub keywords: Vec<String>,
    pub themes: Vec<crate::Theme>,
    pub score: i64,
    /// How the product can be used from the node that answered the search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// The agreement in force under which the node that answered reads the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(
            SourceFormat::from_file_name("a.CSV"),
            Some(SourceFormat::Csv)
        );
        assert_eq!(
            SourceFormat::from_file_name("a.csv.gz"),
            Some(SourceFormat::Csv)
        );
        assert_eq!(
            SourceFormat::from_file_name("part-0.parquet"),
            Some(SourceFormat::Parquet)
        );
        assert_eq!(SourceFormat::from_file_name("a.xlsx"), None);
    }

    #[test]
    fn locations_need_a_known_scheme() {
        assert!(DataSource::new("file:///data/x.csv", SourceFormat::Csv).is_ok());
        assert!(DataSource::new("s3://bucket/x.parquet", SourceFormat::Parquet).is_ok());
        assert!(DataSource::new("/data/x.csv", SourceFormat::Csv).is_err());
        assert!(DataSource::new("ftp://h/x.csv", SourceFormat::Csv).is_err());
    }

    #[test]
    fn paging_clamps() {
        let p = PageRequest::new(Some(0), Some(10_000));
        assert_eq!((p.page, p.per_page), (1, 200));
        assert_eq!(PageRequest::new(Some(3), Some(10)).offset(), 20);
    }

    #[test]
    fn paging_asked_for_out_of_range_is_refused() {
        assert_eq!(PageRequest::checked(Some(0), None), Err(PageError::Page(0)));
        assert_eq!(
            PageRequest::checked(None, Some(201)),
            Err(PageError::PerPage(201))
        );
        assert_eq!(
            PageRequest::checked(None, Some(0)),
            Err(PageError::PerPage(0))
        );
        assert!(PageRequest::checked(Some(1_000_001), None).is_err());
        let p = PageRequest::checked(Some(2), Some(200)).unwrap();
        assert_eq!((p.page, p.per_page), (2, 200));
    }

    #[test]
    fn delimiters() {
        assert_eq!(DataSource::parse_delimiter(";").unwrap(), b';');
        assert_eq!(DataSource::parse_delimiter("\\t").unwrap(), b'\t');
        assert!(DataSource::parse_delimiter(";;").is_err());
    }
}

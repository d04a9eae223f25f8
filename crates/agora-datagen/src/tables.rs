//! The generated tables: their order, schemas, the column builders a chunk fills, and
//! writing a finished batch as Parquet.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::GenError;

/// The tables generated per chunk, in output order: (member id, table name).
pub const TABLES: [(&str, &str); 8] = [
    ("population-registry", "residents"),
    ("employment-agency", "job_seekers"),
    ("tax-office", "annual_income"),
    ("tax-office", "benefit_payments"),
    ("city-hospital", "admissions"),
    ("county-hospital", "admissions"),
    ("city-hospital", "vacancies"),
    ("city-council", "incident_reports"),
];

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn date(name: &str) -> Field {
    Field::new(name, DataType::Date32, false)
}

pub fn schema(table_index: usize) -> Arc<Schema> {
    let fields = match table_index {
        0 => vec![
            utf8("person_id", false),
            utf8("given_name", false),
            utf8("family_name", false),
            date("birth_date"),
            utf8("sex", false),
            utf8("municipality", false),
            utf8("postcode", false),
            utf8("street_address", false),
            date("registered_since"),
        ],
        1 => vec![
            utf8("person_id", false),
            date("registered_on"),
            utf8("municipality", false),
            Field::new("education_level", DataType::Int32, false),
            utf8("occupation_sought", false),
            utf8("skills", false),
            Field::new("months_unemployed", DataType::Int32, false),
            Field::new("receiving_allowance", DataType::Boolean, false),
        ],
        2 => vec![
            utf8("person_id", false),
            Field::new("tax_year", DataType::Int32, false),
            Field::new("gross_income", DataType::Float64, false),
            utf8("employer_id", false),
            utf8("sector", false),
        ],
        3 => vec![
            utf8("payment_id", false),
            utf8("person_id", false),
            date("paid_on"),
            utf8("benefit_type", false),
            Field::new("amount", DataType::Float64, false),
            utf8("municipality", false),
        ],
        4 | 5 => vec![
            utf8("admission_id", false),
            utf8("person_id", true),
            utf8("given_name", false),
            utf8("family_name", false),
            date("birth_date"),
            utf8("postcode", false),
            date("admitted_on"),
            date("discharged_on"),
            Field::new("age_at_admission", DataType::Int32, false),
            utf8("sex", false),
            utf8("diagnosis_code", false),
            Field::new("length_of_stay", DataType::Int32, false),
            Field::new("readmitted_30d", DataType::Boolean, false),
        ],
        6 => vec![
            utf8("vacancy_id", false),
            utf8("occupation", false),
            utf8("required_skills", false),
            utf8("municipality", false),
            date("posted_on"),
            Field::new("open", DataType::Boolean, false),
        ],
        7 => vec![
            utf8("report_id", false),
            Field::new(
                "reported_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            utf8("category", false),
            Field::new("latitude", DataType::Float64, false),
            Field::new("longitude", DataType::Float64, false),
            utf8("description", false),
            utf8("status", false),
        ],
        _ => unreachable!("table index out of range"),
    };
    Arc::new(Schema::new(fields))
}

#[derive(Default)]
pub(crate) struct Residents {
    pub(crate) person_id: StringBuilder,
    pub(crate) given: StringBuilder,
    pub(crate) family: StringBuilder,
    pub(crate) birth: Date32Builder,
    pub(crate) sex: StringBuilder,
    pub(crate) municipality: StringBuilder,
    pub(crate) postcode: StringBuilder,
    pub(crate) street: StringBuilder,
    pub(crate) since: Date32Builder,
}

#[derive(Default)]
pub(crate) struct JobSeekers {
    pub(crate) person_id: StringBuilder,
    pub(crate) registered_on: Date32Builder,
    pub(crate) municipality: StringBuilder,
    pub(crate) education: Int32Builder,
    pub(crate) occupation: StringBuilder,
    pub(crate) skills: StringBuilder,
    pub(crate) months: Int32Builder,
    pub(crate) allowance: BooleanBuilder,
}

#[derive(Default)]
pub(crate) struct Income {
    pub(crate) person_id: StringBuilder,
    pub(crate) year: Int32Builder,
    pub(crate) gross: Float64Builder,
    pub(crate) employer: StringBuilder,
    pub(crate) sector: StringBuilder,
}

#[derive(Default)]
pub(crate) struct Benefits {
    pub(crate) payment_id: StringBuilder,
    pub(crate) person_id: StringBuilder,
    pub(crate) paid_on: Date32Builder,
    pub(crate) kind: StringBuilder,
    pub(crate) amount: Float64Builder,
    pub(crate) municipality: StringBuilder,
}

#[derive(Default)]
pub(crate) struct Admissions {
    pub(crate) admission_id: StringBuilder,
    pub(crate) person_id: StringBuilder,
    pub(crate) given: StringBuilder,
    pub(crate) family: StringBuilder,
    pub(crate) birth: Date32Builder,
    pub(crate) postcode: StringBuilder,
    pub(crate) admitted: Date32Builder,
    pub(crate) discharged: Date32Builder,
    pub(crate) age: Int32Builder,
    pub(crate) sex: StringBuilder,
    pub(crate) diagnosis: StringBuilder,
    pub(crate) los: Int32Builder,
    pub(crate) readmitted: BooleanBuilder,
    pub(crate) count: u64,
}

#[derive(Default)]
pub(crate) struct Vacancies {
    pub(crate) id: StringBuilder,
    pub(crate) occupation: StringBuilder,
    pub(crate) skills: StringBuilder,
    pub(crate) municipality: StringBuilder,
    pub(crate) posted: Date32Builder,
    pub(crate) open: BooleanBuilder,
}

#[derive(Default)]
pub(crate) struct Incidents {
    pub(crate) id: StringBuilder,
    pub(crate) at: TimestampMicrosecondBuilder,
    pub(crate) category: StringBuilder,
    pub(crate) lat: Float64Builder,
    pub(crate) lon: Float64Builder,
    pub(crate) description: StringBuilder,
    pub(crate) status: StringBuilder,
}

pub(crate) fn finish(cols: Vec<ArrayRef>, table_index: usize) -> Result<RecordBatch, GenError> {
    RecordBatch::try_new(schema(table_index), cols).map_err(|e| GenError::Encode {
        table: TABLES[table_index].1.to_owned(),
        message: e.to_string(),
    })
}

impl Residents {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.person_id.finish()),
                Arc::new(self.given.finish()),
                Arc::new(self.family.finish()),
                Arc::new(self.birth.finish()),
                Arc::new(self.sex.finish()),
                Arc::new(self.municipality.finish()),
                Arc::new(self.postcode.finish()),
                Arc::new(self.street.finish()),
                Arc::new(self.since.finish()),
            ],
            0,
        )
    }
}

impl JobSeekers {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.person_id.finish()),
                Arc::new(self.registered_on.finish()),
                Arc::new(self.municipality.finish()),
                Arc::new(self.education.finish()),
                Arc::new(self.occupation.finish()),
                Arc::new(self.skills.finish()),
                Arc::new(self.months.finish()),
                Arc::new(self.allowance.finish()),
            ],
            1,
        )
    }
}

impl Income {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.person_id.finish()),
                Arc::new(self.year.finish()),
                Arc::new(self.gross.finish()),
                Arc::new(self.employer.finish()),
                Arc::new(self.sector.finish()),
            ],
            2,
        )
    }
}

impl Benefits {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.payment_id.finish()),
                Arc::new(self.person_id.finish()),
                Arc::new(self.paid_on.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.amount.finish()),
                Arc::new(self.municipality.finish()),
            ],
            3,
        )
    }
}

impl Vacancies {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.id.finish()),
                Arc::new(self.occupation.finish()),
                Arc::new(self.skills.finish()),
                Arc::new(self.municipality.finish()),
                Arc::new(self.posted.finish()),
                Arc::new(self.open.finish()),
            ],
            6,
        )
    }
}

impl Incidents {
    pub(crate) fn batch(&mut self) -> Result<RecordBatch, GenError> {
        finish(
            vec![
                Arc::new(self.id.finish()),
                Arc::new(self.at.finish().with_timezone("UTC")),
                Arc::new(self.category.finish()),
                Arc::new(self.lat.finish()),
                Arc::new(self.lon.finish()),
                Arc::new(self.description.finish()),
                Arc::new(self.status.finish()),
            ],
            7,
        )
    }
}

pub(crate) fn admissions_batch(a: &mut Admissions, t: usize) -> Result<RecordBatch, GenError> {
    finish(
        vec![
            Arc::new(a.admission_id.finish()),
            Arc::new(a.person_id.finish()),
            Arc::new(a.given.finish()),
            Arc::new(a.family.finish()),
            Arc::new(a.birth.finish()),
            Arc::new(a.postcode.finish()),
            Arc::new(a.admitted.finish()),
            Arc::new(a.discharged.finish()),
            Arc::new(a.age.finish()),
            Arc::new(a.sex.finish()),
            Arc::new(a.diagnosis.finish()),
            Arc::new(a.los.finish()),
            Arc::new(a.readmitted.finish()),
        ],
        t,
    )
}

pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch, table: &str) -> Result<(), GenError> {
    let enc = |e: parquet::errors::ParquetError| GenError::Encode {
        table: table.to_owned(),
        message: e.to_string(),
    };
    let file = File::create(path).map_err(|e| GenError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(enc)?;
    writer.write(batch).map_err(enc)?;
    writer.close().map_err(enc)?;
    Ok(())
}

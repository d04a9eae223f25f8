//! Integration tests of the demo data generator.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use agora_datagen::{GenError, GenOptions, all_tables, generate, is_complete};
use agora_model::{ColumnSchema, MemberId, Sidecar, person_id_is_valid};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn read_table(dir: &Path) -> Vec<RecordBatch> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    parts
        .iter()
        .flat_map(|p| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(p).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(col).unwrap().as_string::<i32>();
            (0..a.len())
                .map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ints(batches: &[RecordBatch], col: &str) -> Vec<i32> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(col)
                .unwrap()
                .as_primitive::<Int32Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// Every skill named in a comma-separated skills column.
fn skill_set(batches: &[RecordBatch], col: &str) -> HashSet<String> {
    strings(batches, col)
        .into_iter()
        .flat_map(|s| {
            s.unwrap()
                .split(", ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn small(out: &Path, threads: usize) -> GenOptions {
    let mut o = GenOptions::new(6_000, 7, out);
    o.threads = threads;
    o.chunk_residents = 1_000;
    o
}

#[test]
fn output_is_deterministic_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    generate(&small(&a, 1), &|_| {}).unwrap();
    generate(&small(&b, 2), &|_| {}).unwrap();
    for (member, table) in all_tables() {
        let da = a.join(member).join(table);
        let db = b.join(member).join(table);
        let mut files: Vec<_> = std::fs::read_dir(&da)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{member}/{table} is empty");
        for f in files {
            assert_eq!(
                std::fs::read(da.join(&f)).unwrap(),
                std::fs::read(db.join(&f)).unwrap(),
                "{member}/{table}/{f:?} differs between runs"
            );
        }
    }
}

/// FNV-1a over every generated file, in table and file order: a fingerprint, not a
/// cryptographic digest.
fn fingerprint(out: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (member, table) in all_tables() {
        let dir = out.join(member).join(table);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            for b in std::fs::read(f).unwrap() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    h
}

/// The demo's people, figures and scenario outcomes are described in the README and the
/// demo guide: the generator's code may be rearranged, its output may not change. (A new
/// Parquet version that writes other bytes changes this value too; check the data, then
/// update it.)
#[test]
fn the_generated_data_stays_the_same_when_the_generator_is_rearranged() {
    let tmp = tempfile::tempdir().unwrap();
    generate(&small(tmp.path(), 2), &|_| {}).unwrap();
    assert_eq!(fingerprint(tmp.path()), 13_521_304_807_708_608_203);
}

#[test]
fn identifiers_are_valid_and_shared_across_members() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    let summary = generate(&small(&out, 0), &|_| {}).unwrap();
    assert!(is_complete(&small(&out, 0)));
    assert_eq!(summary.residents, 6_000);

    let residents = read_table(&out.join("population-registry/residents"));
    let ids: Vec<String> = strings(&residents, "person_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(ids.len(), 6_000);
    assert!(ids.iter().all(|s| person_id_is_valid(s)));
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "person ids must be unique");

    for table in [
        "employment-agency/job_seekers",
        "tax-office/annual_income",
        "tax-office/benefit_payments",
    ] {
        let rows = read_table(&out.join(table));
        let pids = strings(&rows, "person_id");
        assert!(!pids.is_empty(), "{table} has no rows");
        assert!(
            pids.iter()
                .all(|p| p.as_ref().is_some_and(|p| set.contains(p))),
            "{table} names a person who is not a resident"
        );
    }

    // Hospital records: some keyed in by hand without person_id; the rest are residents.
    let adm = read_table(&out.join("city-hospital/admissions"));
    let pids = strings(&adm, "person_id");
    let missing = pids.iter().filter(|p| p.is_none()).count();
    assert!(missing > 0, "expected some admissions without person_id");
    assert!(
        missing * 10 < pids.len(),
        "too many admissions without person_id"
    );
    assert!(pids.iter().flatten().all(|p| set.contains(p)));

    // Regression: nobody is admitted to hospital before being born.
    for b in &adm {
        let ages = b
            .column_by_name("age_at_admission")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert!(
            ages.values().iter().all(|a| *a >= 0),
            "negative age at admission"
        );
        let born = b
            .column_by_name("birth_date")
            .unwrap()
            .as_primitive::<arrow::datatypes::Date32Type>();
        let admitted = b
            .column_by_name("admitted_on")
            .unwrap()
            .as_primitive::<arrow::datatypes::Date32Type>();
        for i in 0..b.num_rows() {
            assert!(admitted.value(i) > born.value(i));
        }
    }
}

#[test]
fn scenarios_find_their_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    let mut opts = GenOptions::new(20_000, 3, &out);
    opts.chunk_residents = 5_000;
    generate(&opts, &|_| {}).unwrap();

    // Fraud prevention: some people paid an unemployment allowance in 2025 declare a full
    // year's income for 2025.
    let pay = read_table(&out.join("tax-office/benefit_payments"));
    let kinds = strings(&pay, "benefit_type");
    let payees: HashSet<String> = strings(&pay, "person_id")
        .into_iter()
        .zip(kinds)
        .filter(|(_, k)| k.as_deref() == Some("unemployment_allowance"))
        .map(|(p, _)| p.unwrap())
        .collect();
    let js = read_table(&out.join("employment-agency/job_seekers"));
    let months: Vec<i32> = ints(&js, "months_unemployed");
    let seeker_ids: Vec<String> = strings(&js, "person_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let long_term: HashSet<&String> = seeker_ids
        .iter()
        .zip(&months)
        .filter(|(_, m)| **m >= 12)
        .map(|(p, _)| p)
        .collect();
    let inc = read_table(&out.join("tax-office/annual_income"));
    let years: Vec<i32> = ints(&inc, "tax_year");
    let inc_ids = strings(&inc, "person_id");
    let suspicious = inc_ids
        .iter()
        .zip(&years)
        .filter(|(p, y)| {
            **y == 2025
                && p.as_ref()
                    .is_some_and(|p| payees.contains(p) && long_term.contains(p))
        })
        .count();
    assert!(
        suspicious > 0,
        "expected allowance recipients out of work all year who declare income"
    );

    // Job matching: the hospital's vacancies ask for skills that job seekers have.
    let vac = read_table(&out.join("city-hospital/vacancies"));
    let wanted = skill_set(&vac, "required_skills");
    let offered = skill_set(&js, "skills");
    assert!(wanted.intersection(&offered).count() >= 3);
}

#[test]
fn sidecars_describe_the_generated_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    generate(&small(&out, 0), &|_| {}).unwrap();
    for (member, table) in all_tables() {
        let dir = out.join(member).join(table);
        let path = dir.join("agora.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let sidecar = Sidecar::parse(&text, &path.display().to_string()).unwrap();
        let batches = read_table(&dir);
        let schema: Vec<ColumnSchema> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnSchema::new(f.name(), f.data_type().to_string(), f.is_nullable()))
            .collect();
        sidecar.check_schema(&schema, "sidecar").unwrap();
        let meta = sidecar.to_metadata(&MemberId::parse(member).unwrap(), table);
        meta.validate(&schema)
            .unwrap_or_else(|e| panic!("{member}/{table}: {e}"));
        assert!(
            !meta.description.is_empty(),
            "{member}/{table} lacks a description"
        );
    }
}

#[test]
fn census_sample_is_the_real_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    generate(&small(&out, 0), &|_| {}).unwrap();
    let b = read_table(&out.join("statistics-office/census_sample"));
    let rows: usize = b.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1_000);
    assert_eq!(b[0].schema().field(0).data_type(), &DataType::Int64);
}

#[test]
fn too_small_a_scale_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = generate(&GenOptions::new(10, 1, tmp.path().join("x")), &|_| {}).unwrap_err();
    assert!(matches!(err, GenError::ScaleTooSmall(10)));
    assert!(err.to_string().contains("at least 100"));
}

#[test]
fn unwritable_output_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = generate(&GenOptions::new(500, 1, file.join("sub")), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("cannot write demo data"), "{err}");
}

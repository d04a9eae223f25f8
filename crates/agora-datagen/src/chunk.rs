//! One chunk of residents and every member's rows about them.

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use agora_model::person_id_check_digit;
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp, Normal, Poisson};

use crate::GenError;
use crate::vocab::*;

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

/// The day the generated world stands still at.
pub fn reference_day() -> i32 {
    days(2026, 1, 1)
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    (NaiveDate::from_ymd_opt(y, m, d).expect("valid date") - epoch).num_days() as i32
}

/// Fixed odd multiplier coprime with 9·10⁹: spreads resident numbers over the id space.
const ID_MULTIPLIER: u64 = 7_919_999_777;
const ID_SPACE: u64 = 9_000_000_000;

/// The person_id of resident number `i`: 10 digits (first non-zero) and a check digit.
pub fn person_id(seed: u64, i: u64, out: &mut String) {
    let offset = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % ID_SPACE;
    let base = 1_000_000_000
        + ((i as u128 * ID_MULTIPLIER as u128 + offset as u128) % ID_SPACE as u128) as u64;
    let mut digits = [0u8; 10];
    let mut n = base;
    for d in digits.iter_mut().rev() {
        *d = (n % 10) as u8;
        n /= 10;
    }
    out.clear();
    for d in digits {
        out.push(char::from(b'0' + d));
    }
    out.push(char::from(b'0' + person_id_check_digit(&digits)));
}

struct Weighted {
    ages: WeightedIndex<f64>,
    municipalities: WeightedIndex<f64>,
    sectors: WeightedIndex<f64>,
    diagnoses: WeightedIndex<f64>,
    incidents: WeightedIndex<f64>,
    incident_status: WeightedIndex<f64>,
    female: WeightedIndex<f64>,
    male: WeightedIndex<f64>,
    family: WeightedIndex<f64>,
    education: WeightedIndex<f64>,
}

static WEIGHTS: LazyLock<Weighted> = LazyLock::new(|| {
    let zipf = |n: usize| (0..n).map(|i| 1.0 / (i as f64 + 1.5)).collect::<Vec<f64>>();
    let ages: Vec<f64> = (0..100)
        .map(|a| {
            if a < 60 {
                1.0 + 0.1 * ((a as f64 - 40.0) / 20.0).cos()
            } else {
                (1.0 - (a as f64 - 60.0) / 40.0).max(0.0).powf(1.5) + 0.01
            }
        })
        .collect();
    Weighted {
        ages: WeightedIndex::new(ages).expect("weights"),
        municipalities: WeightedIndex::new(MUNICIPALITIES.iter().map(|m| m.1)).expect("weights"),
        sectors: WeightedIndex::new(SECTORS.iter().map(|s| s.1)).expect("weights"),
        diagnoses: WeightedIndex::new(DIAGNOSES.iter().map(|d| d.1)).expect("weights"),
        incidents: WeightedIndex::new(INCIDENTS.iter().map(|d| d.1)).expect("weights"),
        incident_status: WeightedIndex::new(INCIDENT_STATUS.iter().map(|d| d.1)).expect("weights"),
        female: WeightedIndex::new(zipf(FEMALE_NAMES.len())).expect("weights"),
        male: WeightedIndex::new(zipf(MALE_NAMES.len())).expect("weights"),
        family: WeightedIndex::new(zipf(FAMILY_NAMES.len())).expect("weights"),
        // ISCED levels 0..=8 among adults.
        education: WeightedIndex::new([1.0, 4.0, 10.0, 24.0, 8.0, 12.0, 22.0, 15.0, 3.0])
            .expect("weights"),
    }
});

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
struct Residents {
    person_id: StringBuilder,
    given: StringBuilder,
    family: StringBuilder,
    birth: Date32Builder,
    sex: StringBuilder,
    municipality: StringBuilder,
    postcode: StringBuilder,
    street: StringBuilder,
    since: Date32Builder,
}

#[derive(Default)]
struct JobSeekers {
    person_id: StringBuilder,
    registered_on: Date32Builder,
    municipality: StringBuilder,
    education: Int32Builder,
    occupation: StringBuilder,
    skills: StringBuilder,
    months: Int32Builder,
    allowance: BooleanBuilder,
}

#[derive(Default)]
struct Income {
    person_id: StringBuilder,
    year: Int32Builder,
    gross: Float64Builder,
    employer: StringBuilder,
    sector: StringBuilder,
}

#[derive(Default)]
struct Benefits {
    payment_id: StringBuilder,
    person_id: StringBuilder,
    paid_on: Date32Builder,
    kind: StringBuilder,
    amount: Float64Builder,
    municipality: StringBuilder,
}

#[derive(Default)]
struct Admissions {
    admission_id: StringBuilder,
    person_id: StringBuilder,
    given: StringBuilder,
    family: StringBuilder,
    birth: Date32Builder,
    postcode: StringBuilder,
    admitted: Date32Builder,
    discharged: Date32Builder,
    age: Int32Builder,
    sex: StringBuilder,
    diagnosis: StringBuilder,
    los: Int32Builder,
    readmitted: BooleanBuilder,
    count: u64,
}

#[derive(Default)]
struct Vacancies {
    id: StringBuilder,
    occupation: StringBuilder,
    skills: StringBuilder,
    municipality: StringBuilder,
    posted: Date32Builder,
    open: BooleanBuilder,
}

#[derive(Default)]
struct Incidents {
    id: StringBuilder,
    at: TimestampMicrosecondBuilder,
    category: StringBuilder,
    lat: Float64Builder,
    lon: Float64Builder,
    description: StringBuilder,
    status: StringBuilder,
}

fn finish(cols: Vec<ArrayRef>, table_index: usize) -> Result<RecordBatch, GenError> {
    RecordBatch::try_new(schema(table_index), cols).map_err(|e| GenError::Encode {
        table: TABLES[table_index].1.to_owned(),
        message: e.to_string(),
    })
}

/// Introduces one typing error: a substitution, a deletion or a transposition.
fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_owned();
    }
    let i = rng.random_range(1..chars.len() - 1);
    let mut out = chars.clone();
    match rng.random_range(0..3) {
        0 => out[i] = char::from(b'a' + rng.random_range(0..26u8)),
        1 => {
            out.remove(i);
        }
        _ => out.swap(i - 1, i),
    }
    out.into_iter().collect()
}

fn pick_skills(rng: &mut ChaCha8Rng, skills: &[&str], min: usize, max: usize, out: &mut String) {
    out.clear();
    let n = rng.random_range(min..=max.min(skills.len()));
    // Partial Fisher–Yates over the indices.
    let mut idx: Vec<usize> = (0..skills.len()).collect();
    for k in 0..n {
        let j = rng.random_range(k..idx.len());
        idx.swap(k, j);
        if k > 0 {
            out.push_str(", ");
        }
        out.push_str(skills[idx[k]]);
    }
}

/// Generates residents `lo..hi` (chunk number `chunk`) and writes one part per table.
/// Returns the number of rows written per table, in `TABLES` order.
pub fn generate_chunk(
    seed: u64,
    chunk: u64,
    lo: u64,
    hi: u64,
    out: &Path,
) -> Result<[u64; 8], GenError> {
    let w = &*WEIGHTS;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chunk);
    let today = reference_day();
    let y2024 = days(2024, 1, 1);
    let y2025 = days(2025, 1, 1);
    let y2026 = days(2026, 1, 1);

    let mut res = Residents::default();
    let mut js = JobSeekers::default();
    let mut inc = Income::default();
    let mut ben = Benefits::default();
    let mut adm = [Admissions::default(), Admissions::default()];
    let mut vac = Vacancies::default();
    let mut ird = Incidents::default();

    let normal = Normal::new(0.0, 1.0).expect("normal");
    let mut pid = String::with_capacity(11);
    let mut buf = String::with_capacity(64);
    let mut payment_no: u64 = chunk * 100_000_000;

    for i in lo..hi {
        person_id(seed, i, &mut pid);
        let female = rng.random_bool(0.51);
        let sex = if female { "F" } else { "M" };
        let age = w.ages.sample(&mut rng) as i32;
        let birth = today - (age as f64 * 365.25) as i32 - rng.random_range(1..=365);
        let given = if female {
            FEMALE_NAMES[w.female.sample(&mut rng)]
        } else {
            MALE_NAMES[w.male.sample(&mut rng)]
        };
        let family = FAMILY_NAMES[w.family.sample(&mut rng)];
        let m = w.municipalities.sample(&mut rng);
        let (municipality, _, prefix) = MUNICIPALITIES[m];
        buf.clear();
        write!(buf, "{prefix:02}{:03}", rng.random_range(0..1000)).expect("write");
        let postcode = buf.clone();
        buf.clear();
        write!(
            buf,
            "{} {} {}",
            rng.random_range(1..180),
            STREETS[rng.random_range(0..STREETS.len())],
            STREET_KINDS[rng.random_range(0..STREET_KINDS.len())]
        )
        .expect("write");
        let since = if rng.random_bool(0.86) || age < 18 {
            birth
        } else {
            rng.random_range((birth + 18 * 365)..today)
        };
        res.person_id.append_value(&pid);
        res.given.append_value(given);
        res.family.append_value(family);
        res.birth.append_value(birth);
        res.sex.append_value(sex);
        res.municipality.append_value(municipality);
        res.postcode.append_value(&postcode);
        res.street.append_value(&buf);
        res.since.append_value(since);

        // Education, by age.
        let education = if age < 16 {
            0
        } else {
            let e = w.education.sample(&mut rng) as i32;
            if age < 22 { e.min(3) } else { e }
        };

        // Employment and income (tax years 2024 and 2025).
        let employed_p = match age {
            18..=24 => 0.55,
            25..=54 => 0.84,
            55..=64 => 0.68,
            65..=74 => 0.12,
            _ => 0.0,
        };
        let sector_i = w.sectors.sample(&mut rng);
        let (sector, _, pay) = SECTORS[sector_i];
        let career = 0.65 * (1.0 - (-(f64::from(age) - 18.0).max(0.0) / 12.0).exp());
        let mu = (22_000.0f64).ln() + career + pay.ln() + 0.09 * f64::from(education - 3);
        let base_income = (mu + 0.45 * normal.sample(&mut rng)).exp();
        let employer_no = rng.random_range(0..5_000);

        // Job seeking.
        let mut seeker = None;
        if (18..=66).contains(&age) {
            let mut p: f64 = 0.10;
            if education <= 2 {
                p += 0.07;
            } else if education >= 6 {
                p -= 0.04;
            }
            if age < 25 {
                p += 0.03;
            }
            if rng.random_bool(p) {
                let months = (rng.random_range(0.0f64..1.0).ln() / (1.0f64 - 0.08).ln()) as i32;
                let months = months.min(60);
                let allowance = rng.random_bool(if months <= 12 { 0.75 } else { 0.25 });
                seeker = Some((months, allowance));
                // Occupation the person can do, preferring those close to their education.
                let eligible: Vec<usize> = (0..OCCUPATIONS.len())
                    .filter(|&o| OCCUPATIONS[o].1 <= education.max(1))
                    .collect();
                let occ = eligible[rng.random_range(0..eligible.len())];
                let (occupation, _, skills) = OCCUPATIONS[occ];
                js.person_id.append_value(&pid);
                js.registered_on
                    .append_value(today - months * 30 - rng.random_range(0..30));
                js.municipality.append_value(municipality);
                js.education.append_value(education);
                js.occupation.append_value(occupation);
                pick_skills(&mut rng, skills, 2, 4, &mut buf);
                js.skills.append_value(&buf);
                js.months.append_value(months);
                js.allowance.append_value(allowance);
            }
        }

        // Declared income; job seekers lose income for the months they are out of work,
        // except a few allowance recipients who keep declaring full income (fraud cases).
        let fraud = matches!(seeker, Some((_, true))) && rng.random_bool(0.04);
        let mut income_2025 = None;
        for (year, year_start) in [(2024, y2024), (2025, y2025)] {
            let _ = year_start;
            if !rng.random_bool(employed_p) && !fraud {
                continue;
            }
            let mut gross = base_income * (1.0 + 0.03 * f64::from(year - 2024));
            if let Some((months, _)) = seeker
                && !fraud
            {
                let out_months = if year == 2025 {
                    months.min(12)
                } else {
                    (months - 12).clamp(0, 12)
                };
                if out_months >= 12 {
                    continue;
                }
                gross *= f64::from(12 - out_months) / 12.0;
            }
            let gross = (gross * 100.0).round() / 100.0;
            if year == 2025 {
                income_2025 = Some(gross);
            }
            inc.person_id.append_value(&pid);
            inc.year.append_value(year);
            inc.gross.append_value(gross);
            buf.clear();
            write!(buf, "EMP-{sector}{employer_no:05}").expect("write");
            inc.employer.append_value(&buf);
            inc.sector.append_value(sector);
        }

        // Benefit payments.
        let mut pay = |kind: &str, day: i32, amount: f64, ben: &mut Benefits| {
            payment_no += 1;
            buf.clear();
            write!(buf, "PAY{payment_no:012}").expect("write");
            ben.payment_id.append_value(&buf);
            ben.person_id.append_value(&pid);
            ben.paid_on.append_value(day);
            ben.kind.append_value(kind);
            ben.amount.append_value(amount);
            ben.municipality.append_value(municipality);
        };
        if let Some((months, true)) = seeker {
            let amount = (0.6 * base_income / 12.0).clamp(650.0, 2_400.0).round();
            for k in 0..(months + 1).min(12) {
                pay(BENEFIT_TYPES[0], y2026 - 7 - 30 * k, amount, &mut ben);
            }
        }
        if age >= 18 && income_2025.unwrap_or(0.0) < 16_000.0 && rng.random_bool(0.3) {
            let amount = f64::from(rng.random_range(15..45) * 10);
            for k in 0..12 {
                pay(BENEFIT_TYPES[1], y2026 - 3 - 30 * k, amount, &mut ben);
            }
        }
        if (24..=46).contains(&age) && rng.random_bool(0.3) {
            let amount = f64::from(rng.random_range(1..=3) * 100);
            for k in 0..12 {
                pay(BENEFIT_TYPES[2], y2026 - 20 - 30 * k, amount, &mut ben);
            }
        }

        // Hospital admissions in 2024–2025.
        let mut rate = 0.035 + 0.0025 * f64::from((age - 40).max(0));
        if age < 2 {
            rate += 0.08;
        }
        let n_adm = Poisson::new(2.0 * rate)
            .map(|p| p.sample(&mut rng) as u32)
            .unwrap_or(0);
        let low_income = age >= 18 && income_2025.unwrap_or(0.0) < 18_000.0;
        let mut last_admission: Option<i32> = None;
        // Admissions happen between the later of 2024-01-01 and birth, and the end of 2025.
        let first_day = y2024.max(birth + 1);
        let last_day = y2026 - 31;
        let n_adm = if first_day < last_day { n_adm } else { 0 };
        for _ in 0..n_adm {
            let near_city = m <= 1;
            let city = rng.random_bool(if near_city { 0.8 } else { 0.3 });
            let h = if city { 0 } else { 1 };
            let mut d = w.diagnoses.sample(&mut rng);
            for _ in 0..4 {
                let (code, _, _, _, min_age) = DIAGNOSES[d];
                let bad_delivery = code == "O80" && (!female || !(17..=45).contains(&age));
                if age >= min_age && !bad_delivery {
                    break;
                }
                d = w.diagnoses.sample(&mut rng);
            }
            let (mut code, _, base_logit, mean_los, min_age) = DIAGNOSES[d];
            if age < min_age || (code == "O80" && (!female || !(17..=45).contains(&age))) {
                code = "J18";
            }
            let admitted = rng.random_range(first_day..last_day);
            let los = (Exp::new(1.0 / mean_los)
                .map(|e| e.sample(&mut rng))
                .unwrap_or(mean_los)
                .round() as i32)
                .clamp(1, 90);
            let logit = base_logit
                + 0.025 * f64::from(age - 60)
                + if low_income { 0.45 } else { 0.0 }
                + if last_admission.is_some() { 0.3 } else { 0.0 };
            let readmitted = rng.random_bool(1.0 / (1.0 + (-logit).exp()));
            last_admission = Some(admitted);
            let a = &mut adm[h];
            a.count += 1;
            buf.clear();
            write!(
                buf,
                "{}{:011}",
                if h == 0 { "CGH" } else { "CTY" },
                chunk * 1_000_000_000 + a.count
            )
            .expect("write");
            a.admission_id.append_value(&buf);
            // A few records were keyed in by hand: misspelt names and no person_id.
            if rng.random_bool(0.04) {
                a.person_id.append_null();
                let g = if rng.random_bool(0.6) {
                    typo(&mut rng, given)
                } else {
                    given.to_owned()
                };
                let f = if rng.random_bool(0.7) {
                    typo(&mut rng, family)
                } else {
                    family.to_owned()
                };
                a.given.append_value(g);
                a.family.append_value(f);
            } else {
                a.person_id.append_value(&pid);
                a.given.append_value(given);
                a.family.append_value(family);
            }
            a.birth.append_value(birth);
            a.postcode.append_value(&postcode);
            a.admitted.append_value(admitted);
            a.discharged.append_value(admitted + los);
            a.age
                .append_value(((admitted - birth) as f64 / 365.25).floor() as i32);
            a.sex.append_value(sex);
            a.diagnosis.append_value(code);
            a.los.append_value(los);
            a.readmitted.append_value(readmitted);
        }
    }

    let n = hi - lo;
    // Hospital vacancies: about one per 400 residents.
    for k in 0..n / 400 {
        let weights = [8usize, 5, 2, 1, 1, 2, 2, 1, 2, 1, 1];
        let total: usize = weights.iter().sum();
        let mut r = rng.random_range(0..total);
        let mut pick = 0;
        for (j, wt) in weights.iter().enumerate() {
            if r < *wt {
                pick = j;
                break;
            }
            r -= wt;
        }
        let (occupation, _, skills) = OCCUPATIONS[HOSPITAL_OCCUPATIONS[pick]];
        buf.clear();
        write!(buf, "VAC{:09}", chunk * 1_000_000 + k).expect("write");
        vac.id.append_value(&buf);
        vac.occupation.append_value(occupation);
        pick_skills(&mut rng, skills, 2, 3, &mut buf);
        vac.skills.append_value(&buf);
        vac.municipality.append_value(if rng.random_bool(0.8) {
            "Northport"
        } else {
            "Eastbridge"
        });
        vac.posted.append_value(today - rng.random_range(1..180));
        vac.open.append_value(rng.random_bool(0.7));
    }
    // Citizens' incident reports in Northport during 2025: about one per 40 residents.
    let micros_2025 = i64::from(y2025) * 86_400_000_000;
    for k in 0..n / 40 {
        let (category, _, texts) = INCIDENTS[w.incidents.sample(&mut rng)];
        buf.clear();
        write!(buf, "INC{:09}", chunk * 1_000_000 + k).expect("write");
        ird.id.append_value(&buf);
        ird.at
            .append_value(micros_2025 + rng.random_range(0..365 * 86_400_000_000i64));
        ird.category.append_value(category);
        ird.lat
            .append_value(NORTHPORT_LAT + 0.02 * normal.sample(&mut rng));
        ird.lon
            .append_value(NORTHPORT_LON + 0.035 * normal.sample(&mut rng));
        ird.description
            .append_value(texts[rng.random_range(0..texts.len())]);
        ird.status
            .append_value(INCIDENT_STATUS[w.incident_status.sample(&mut rng)].0);
    }

    let batches = [
        finish(
            vec![
                Arc::new(res.person_id.finish()),
                Arc::new(res.given.finish()),
                Arc::new(res.family.finish()),
                Arc::new(res.birth.finish()),
                Arc::new(res.sex.finish()),
                Arc::new(res.municipality.finish()),
                Arc::new(res.postcode.finish()),
                Arc::new(res.street.finish()),
                Arc::new(res.since.finish()),
            ],
            0,
        )?,
        finish(
            vec![
                Arc::new(js.person_id.finish()),
                Arc::new(js.registered_on.finish()),
                Arc::new(js.municipality.finish()),
                Arc::new(js.education.finish()),
                Arc::new(js.occupation.finish()),
                Arc::new(js.skills.finish()),
                Arc::new(js.months.finish()),
                Arc::new(js.allowance.finish()),
            ],
            1,
        )?,
        finish(
            vec![
                Arc::new(inc.person_id.finish()),
                Arc::new(inc.year.finish()),
                Arc::new(inc.gross.finish()),
                Arc::new(inc.employer.finish()),
                Arc::new(inc.sector.finish()),
            ],
            2,
        )?,
        finish(
            vec![
                Arc::new(ben.payment_id.finish()),
                Arc::new(ben.person_id.finish()),
                Arc::new(ben.paid_on.finish()),
                Arc::new(ben.kind.finish()),
                Arc::new(ben.amount.finish()),
                Arc::new(ben.municipality.finish()),
            ],
            3,
        )?,
        admissions_batch(&mut adm[0], 4)?,
        admissions_batch(&mut adm[1], 5)?,
        finish(
            vec![
                Arc::new(vac.id.finish()),
                Arc::new(vac.occupation.finish()),
                Arc::new(vac.skills.finish()),
                Arc::new(vac.municipality.finish()),
                Arc::new(vac.posted.finish()),
                Arc::new(vac.open.finish()),
            ],
            6,
        )?,
        finish(
            vec![
                Arc::new(ird.id.finish()),
                Arc::new(ird.at.finish().with_timezone("UTC")),
                Arc::new(ird.category.finish()),
                Arc::new(ird.lat.finish()),
                Arc::new(ird.lon.finish()),
                Arc::new(ird.description.finish()),
                Arc::new(ird.status.finish()),
            ],
            7,
        )?,
    ];

    let mut rows = [0u64; 8];
    for (t, batch) in batches.iter().enumerate() {
        rows[t] = batch.num_rows() as u64;
        let (member, table) = TABLES[t];
        let path = out
            .join(member)
            .join(table)
            .join(format!("part-{chunk:05}.parquet"));
        write_parquet(&path, batch, table)?;
    }
    Ok(rows)
}

fn admissions_batch(a: &mut Admissions, t: usize) -> Result<RecordBatch, GenError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_ids_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        let mut s = String::new();
        for i in 0..50_000 {
            person_id(7, i, &mut s);
            assert_eq!(s.len(), 11);
            assert!(agora_model::person_id_is_valid(&s), "{s}");
            assert!(seen.insert(s.clone()), "duplicate {s}");
        }
    }

    #[test]
    fn typo_changes_at_most_one_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let t = typo(&mut rng, "Kristina");
            assert!((7..=8).contains(&t.chars().count()), "{t}");
        }
    }
}

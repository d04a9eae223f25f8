//! One chunk of residents and every member's rows about them.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::LazyLock;

use agora_model::person_id_check_digit;
use arrow::array::RecordBatch;
use chrono::NaiveDate;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp, Normal, Poisson};

use crate::GenError;
use crate::tables::*;
use crate::vocab::*;

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
    let mut g = ChunkWriter::new(seed, chunk);
    for i in lo..hi {
        person_id(seed, i, &mut g.pid);
        g.person();
    }
    let n = hi - lo;
    g.vacancies(n / 400);
    g.incidents(n / 40);
    let batches = g.batches()?;
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

/// What the other tables need to know of a resident once drawn.
#[derive(Clone, Copy)]
struct Person {
    female: bool,
    sex: &'static str,
    age: i32,
    birth: i32,
    given: &'static str,
    family: &'static str,
    /// Index into `MUNICIPALITIES`.
    place: usize,
    municipality: &'static str,
    education: i32,
}

/// A resident's job: its sector, the pay it would bring in a full year, the employer.
struct Job {
    sector: &'static str,
    base_income: f64,
    employer_no: i32,
}

/// One chunk's generator: its random stream, the builders of every table, and scratch
/// buffers. Its methods draw from the stream in a fixed order: the data depends on it
/// (`the_generated_data_stays_the_same_when_the_generator_is_rearranged`).
struct ChunkWriter {
    w: &'static Weighted,
    rng: ChaCha8Rng,
    normal: Normal<f64>,
    chunk: u64,
    today: i32,
    y2024: i32,
    y2025: i32,
    y2026: i32,
    /// The current resident's person_id and postcode.
    pid: String,
    postcode: String,
    buf: String,
    payment_no: u64,
    res: Residents,
    js: JobSeekers,
    inc: Income,
    ben: Benefits,
    adm: [Admissions; 2],
    vac: Vacancies,
    ird: Incidents,
}

impl ChunkWriter {
    fn new(seed: u64, chunk: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(chunk);
        Self {
            w: &WEIGHTS,
            rng,
            normal: Normal::new(0.0, 1.0).expect("normal"),
            chunk,
            today: reference_day(),
            y2024: days(2024, 1, 1),
            y2025: days(2025, 1, 1),
            y2026: days(2026, 1, 1),
            pid: String::with_capacity(11),
            postcode: String::with_capacity(5),
            buf: String::with_capacity(64),
            payment_no: chunk * 100_000_000,
            res: Residents::default(),
            js: JobSeekers::default(),
            inc: Income::default(),
            ben: Benefits::default(),
            adm: [Admissions::default(), Admissions::default()],
            vac: Vacancies::default(),
            ird: Incidents::default(),
        }
    }

    /// The resident `self.pid` and every member's rows about them.
    fn person(&mut self) {
        let p = self.resident();
        let job = self.job(&p);
        let seeker = self.job_seeker(&p);
        let income_2025 = self.incomes(&p, &job, seeker);
        self.benefits(&p, &job, seeker, income_2025);
        self.admissions(&p, income_2025);
    }

    /// The population register's row, and the resident's education.
    fn resident(&mut self) -> Person {
        let (w, rng, today) = (self.w, &mut self.rng, self.today);
        let female = rng.random_bool(0.51);
        let sex = if female { "F" } else { "M" };
        let age = w.ages.sample(rng) as i32;
        let birth = today - (age as f64 * 365.25) as i32 - rng.random_range(1..=365);
        let given = if female {
            FEMALE_NAMES[w.female.sample(rng)]
        } else {
            MALE_NAMES[w.male.sample(rng)]
        };
        let family = FAMILY_NAMES[w.family.sample(rng)];
        let place = w.municipalities.sample(rng);
        let (municipality, _, prefix) = MUNICIPALITIES[place];
        self.postcode.clear();
        write!(self.postcode, "{prefix:02}{:03}", rng.random_range(0..1000)).expect("write");
        self.buf.clear();
        write!(
            self.buf,
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
        let res = &mut self.res;
        res.person_id.append_value(&self.pid);
        res.given.append_value(given);
        res.family.append_value(family);
        res.birth.append_value(birth);
        res.sex.append_value(sex);
        res.municipality.append_value(municipality);
        res.postcode.append_value(&self.postcode);
        res.street.append_value(&self.buf);
        res.since.append_value(since);
        // Education, by age.
        let education = if age < 16 {
            0
        } else {
            let e = w.education.sample(rng) as i32;
            if age < 22 { e.min(3) } else { e }
        };
        Person {
            female,
            sex,
            age,
            birth,
            given,
            family,
            place,
            municipality,
            education,
        }
    }

    /// The sector a resident works (or would work) in, and the pay of a full year.
    fn job(&mut self, p: &Person) -> Job {
        let sector_i = self.w.sectors.sample(&mut self.rng);
        let (sector, _, pay) = SECTORS[sector_i];
        let career = 0.65 * (1.0 - (-(f64::from(p.age) - 18.0).max(0.0) / 12.0).exp());
        let mu = (22_000.0f64).ln() + career + pay.ln() + 0.09 * f64::from(p.education - 3);
        let base_income = (mu + 0.45 * self.normal.sample(&mut self.rng)).exp();
        let employer_no = self.rng.random_range(0..5_000);
        Job {
            sector,
            base_income,
            employer_no,
        }
    }

    /// Whether the resident is registered as a job seeker: `(months, allowance)`.
    fn job_seeker(&mut self, p: &Person) -> Option<(i32, bool)> {
        if !(18..=66).contains(&p.age) {
            return None;
        }
        let rng = &mut self.rng;
        let mut chance: f64 = 0.10;
        if p.education <= 2 {
            chance += 0.07;
        } else if p.education >= 6 {
            chance -= 0.04;
        }
        if p.age < 25 {
            chance += 0.03;
        }
        if !rng.random_bool(chance) {
            return None;
        }
        let months = (rng.random_range(0.0f64..1.0).ln() / (1.0f64 - 0.08).ln()) as i32;
        let months = months.min(60);
        let allowance = rng.random_bool(if months <= 12 { 0.75 } else { 0.25 });
        // Occupation the person can do, preferring those close to their education.
        let eligible: Vec<usize> = (0..OCCUPATIONS.len())
            .filter(|&o| OCCUPATIONS[o].1 <= p.education.max(1))
            .collect();
        let occ = eligible[rng.random_range(0..eligible.len())];
        let (occupation, _, skills) = OCCUPATIONS[occ];
        let js = &mut self.js;
        js.person_id.append_value(&self.pid);
        js.registered_on
            .append_value(self.today - months * 30 - rng.random_range(0..30));
        js.municipality.append_value(p.municipality);
        js.education.append_value(p.education);
        js.occupation.append_value(occupation);
        pick_skills(rng, skills, 2, 4, &mut self.buf);
        js.skills.append_value(&self.buf);
        js.months.append_value(months);
        js.allowance.append_value(allowance);
        Some((months, allowance))
    }

    /// Declared income for 2024 and 2025; returns 2025's. Job seekers lose income for the
    /// months they are out of work, except a few allowance recipients who keep declaring
    /// full income (fraud cases).
    fn incomes(&mut self, p: &Person, job: &Job, seeker: Option<(i32, bool)>) -> Option<f64> {
        let employed_p = match p.age {
            18..=24 => 0.55,
            25..=54 => 0.84,
            55..=64 => 0.68,
            65..=74 => 0.12,
            _ => 0.0,
        };
        let fraud = matches!(seeker, Some((_, true))) && self.rng.random_bool(0.04);
        let mut income_2025 = None;
        for year in [2024, 2025] {
            if !self.rng.random_bool(employed_p) && !fraud {
                continue;
            }
            let mut gross = job.base_income * (1.0 + 0.03 * f64::from(year - 2024));
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
            let inc = &mut self.inc;
            inc.person_id.append_value(&self.pid);
            inc.year.append_value(year);
            inc.gross.append_value(gross);
            self.buf.clear();
            write!(self.buf, "EMP-{}{:05}", job.sector, job.employer_no).expect("write");
            inc.employer.append_value(&self.buf);
            inc.sector.append_value(job.sector);
        }
        income_2025
    }

    /// Benefit payments: unemployment allowance, housing support, child benefit.
    fn benefits(
        &mut self,
        p: &Person,
        job: &Job,
        seeker: Option<(i32, bool)>,
        income: Option<f64>,
    ) {
        let y2026 = self.y2026;
        if let Some((months, true)) = seeker {
            let amount = (0.6 * job.base_income / 12.0).clamp(650.0, 2_400.0).round();
            for k in 0..(months + 1).min(12) {
                self.pay(p, BENEFIT_TYPES[0], y2026 - 7 - 30 * k, amount);
            }
        }
        if p.age >= 18 && income.unwrap_or(0.0) < 16_000.0 && self.rng.random_bool(0.3) {
            let amount = f64::from(self.rng.random_range(15..45) * 10);
            for k in 0..12 {
                self.pay(p, BENEFIT_TYPES[1], y2026 - 3 - 30 * k, amount);
            }
        }
        if (24..=46).contains(&p.age) && self.rng.random_bool(0.3) {
            let amount = f64::from(self.rng.random_range(1..=3) * 100);
            for k in 0..12 {
                self.pay(p, BENEFIT_TYPES[2], y2026 - 20 - 30 * k, amount);
            }
        }
    }

    fn pay(&mut self, p: &Person, kind: &str, day: i32, amount: f64) {
        self.payment_no += 1;
        self.buf.clear();
        write!(self.buf, "PAY{:012}", self.payment_no).expect("write");
        let ben = &mut self.ben;
        ben.payment_id.append_value(&self.buf);
        ben.person_id.append_value(&self.pid);
        ben.paid_on.append_value(day);
        ben.kind.append_value(kind);
        ben.amount.append_value(amount);
        ben.municipality.append_value(p.municipality);
    }

    /// Hospital admissions in 2024–2025, at the city or the county hospital.
    fn admissions(&mut self, p: &Person, income_2025: Option<f64>) {
        let (age, female) = (p.age, p.female);
        let mut rate = 0.035 + 0.0025 * f64::from((age - 40).max(0));
        if age < 2 {
            rate += 0.08;
        }
        let n_adm = Poisson::new(2.0 * rate)
            .map(|d| d.sample(&mut self.rng) as u32)
            .unwrap_or(0);
        let low_income = age >= 18 && income_2025.unwrap_or(0.0) < 18_000.0;
        let mut readmission = false;
        // Admissions happen between the later of 2024-01-01 and birth, and the end of 2025.
        let first_day = self.y2024.max(p.birth + 1);
        let last_day = self.y2026 - 31;
        let n_adm = if first_day < last_day { n_adm } else { 0 };
        for _ in 0..n_adm {
            let rng = &mut self.rng;
            let near_city = p.place <= 1;
            let city = rng.random_bool(if near_city { 0.8 } else { 0.3 });
            let h = if city { 0 } else { 1 };
            let mut d = self.w.diagnoses.sample(rng);
            for _ in 0..4 {
                let (code, _, _, _, min_age) = DIAGNOSES[d];
                let bad_delivery = code == "O80" && (!female || !(17..=45).contains(&age));
                if age >= min_age && !bad_delivery {
                    break;
                }
                d = self.w.diagnoses.sample(rng);
            }
            let (mut code, _, base_logit, mean_los, min_age) = DIAGNOSES[d];
            if age < min_age || (code == "O80" && (!female || !(17..=45).contains(&age))) {
                code = "J18";
            }
            let admitted = rng.random_range(first_day..last_day);
            let los = (Exp::new(1.0 / mean_los)
                .map(|e| e.sample(rng))
                .unwrap_or(mean_los)
                .round() as i32)
                .clamp(1, 90);
            let logit = base_logit
                + 0.025 * f64::from(age - 60)
                + if low_income { 0.45 } else { 0.0 }
                + if readmission { 0.3 } else { 0.0 };
            let readmitted = rng.random_bool(1.0 / (1.0 + (-logit).exp()));
            readmission = true;
            self.admission(p, h, code, admitted, los, readmitted);
        }
    }

    /// One admission's row at hospital `h` (0 city, 1 county).
    fn admission(
        &mut self,
        p: &Person,
        h: usize,
        code: &str,
        admitted: i32,
        los: i32,
        readmitted: bool,
    ) {
        let rng = &mut self.rng;
        let a = &mut self.adm[h];
        a.count += 1;
        self.buf.clear();
        write!(
            self.buf,
            "{}{:011}",
            if h == 0 { "CGH" } else { "CTY" },
            self.chunk * 1_000_000_000 + a.count
        )
        .expect("write");
        a.admission_id.append_value(&self.buf);
        // A few records were keyed in by hand: misspelt names and no person_id.
        if rng.random_bool(0.04) {
            a.person_id.append_null();
            let g = if rng.random_bool(0.6) {
                typo(rng, p.given)
            } else {
                p.given.to_owned()
            };
            let f = if rng.random_bool(0.7) {
                typo(rng, p.family)
            } else {
                p.family.to_owned()
            };
            a.given.append_value(g);
            a.family.append_value(f);
        } else {
            a.person_id.append_value(&self.pid);
            a.given.append_value(p.given);
            a.family.append_value(p.family);
        }
        a.birth.append_value(p.birth);
        a.postcode.append_value(&self.postcode);
        a.admitted.append_value(admitted);
        a.discharged.append_value(admitted + los);
        a.age
            .append_value(((admitted - p.birth) as f64 / 365.25).floor() as i32);
        a.sex.append_value(p.sex);
        a.diagnosis.append_value(code);
        a.los.append_value(los);
        a.readmitted.append_value(readmitted);
    }

    /// `n` hospital vacancies.
    fn vacancies(&mut self, n: u64) {
        let rng = &mut self.rng;
        for k in 0..n {
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
            let vac = &mut self.vac;
            self.buf.clear();
            write!(self.buf, "VAC{:09}", self.chunk * 1_000_000 + k).expect("write");
            vac.id.append_value(&self.buf);
            vac.occupation.append_value(occupation);
            pick_skills(rng, skills, 2, 3, &mut self.buf);
            vac.skills.append_value(&self.buf);
            vac.municipality.append_value(if rng.random_bool(0.8) {
                "Northport"
            } else {
                "Eastbridge"
            });
            vac.posted
                .append_value(self.today - rng.random_range(1..180));
            vac.open.append_value(rng.random_bool(0.7));
        }
    }

    /// `n` citizens' incident reports in Northport during 2025.
    fn incidents(&mut self, n: u64) {
        let micros_2025 = i64::from(self.y2025) * 86_400_000_000;
        let rng = &mut self.rng;
        for k in 0..n {
            let (category, _, texts) = INCIDENTS[self.w.incidents.sample(rng)];
            let ird = &mut self.ird;
            self.buf.clear();
            write!(self.buf, "INC{:09}", self.chunk * 1_000_000 + k).expect("write");
            ird.id.append_value(&self.buf);
            ird.at
                .append_value(micros_2025 + rng.random_range(0..365 * 86_400_000_000i64));
            ird.category.append_value(category);
            ird.lat
                .append_value(NORTHPORT_LAT + 0.02 * self.normal.sample(rng));
            ird.lon
                .append_value(NORTHPORT_LON + 0.035 * self.normal.sample(rng));
            ird.description
                .append_value(texts[rng.random_range(0..texts.len())]);
            ird.status
                .append_value(INCIDENT_STATUS[self.w.incident_status.sample(rng)].0);
        }
    }

    /// Every table's rows, in `TABLES` order.
    fn batches(&mut self) -> Result<[RecordBatch; 8], GenError> {
        let [city, county] = &mut self.adm;
        Ok([
            self.res.batch()?,
            self.js.batch()?,
            self.inc.batch()?,
            self.ben.batch()?,
            admissions_batch(city, 4)?,
            admissions_batch(county, 5)?,
            self.vac.batch()?,
            self.ird.batch()?,
        ])
    }
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

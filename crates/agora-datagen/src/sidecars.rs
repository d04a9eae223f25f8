//! Sidecar metadata (agora.toml) for each demo table: what a steward would write.

use std::path::Path;

use crate::GenError;

const SIDECARS: &[(&str, &str, &str)] = &[
    (
        "population-registry",
        "residents",
        r#"title = "Registered residents"
description = "Everyone registered as living in the country: name, date of birth, sex and registered address. The authoritative source of the national person identifier."
contact = "data-protection@population-registry.example"
keywords = ["population", "residents", "address", "person register"]
themes = ["SOCI", "GOVE", "REGI"]
classification = "personal"
purposes = ["service_delivery", "official_statistics", "public_health_research", "emergency_response", "welfare_targeting"]
legal_basis = "Population Register Act, section 4 (public task, GDPR Art. 6(1)(e))"
retention = "P75Y"
update_frequency = "daily"

[columns.person_id]
role = "subject_id"
description = "National person identifier (11 digits with check digit)"
[columns.given_name]
role = "direct_identifier"
[columns.family_name]
role = "direct_identifier"
[columns.street_address]
role = "direct_identifier"
[columns.birth_date]
role = "quasi_identifier"
[columns.sex]
role = "quasi_identifier"
[columns.postcode]
role = "quasi_identifier"
[columns.municipality]
role = "quasi_identifier"
"#,
    ),
    (
        "employment-agency",
        "job_seekers",
        r#"title = "Registered job seekers"
description = "People registered with the National Employment Agency as looking for work, with their education, the occupation they seek, their skills, how long they have been unemployed and whether they receive an allowance."
contact = "open-data@employment-agency.example"
keywords = ["unemployment", "job seekers", "skills", "labour market", "allowance"]
themes = ["ECON", "SOCI"]
classification = "personal"
purposes = ["job_matching", "fraud_prevention", "official_statistics", "welfare_targeting"]
legal_basis = "Employment Services Act, section 7 (public task, GDPR Art. 6(1)(e))"
retention = "P10Y"
update_frequency = "daily"

[columns.person_id]
role = "subject_id"
description = "National person identifier"
[columns.municipality]
role = "quasi_identifier"
[columns.education_level]
role = "quasi_identifier"
description = "ISCED 2011 level, 0 to 8"
[columns.skills]
description = "Comma-separated skills"
[columns.months_unemployed]
role = "sensitive"
[columns.receiving_allowance]
role = "sensitive"
"#,
    ),
    (
        "tax-office",
        "annual_income",
        r#"title = "Declared annual income"
description = "Gross income declared per person and tax year, with the employer and its economic sector (NACE section)."
contact = "statistics@tax-office.example"
keywords = ["income", "tax", "salary", "employer", "earnings"]
themes = ["ECON"]
classification = "sensitive"
purposes = ["fraud_prevention", "debt_recovery", "official_statistics", "public_health_research"]
legal_basis = "Taxation Act, section 26 (legal obligation, GDPR Art. 6(1)(c))"
retention = "P10Y"
update_frequency = "annual"

[columns.person_id]
role = "subject_id"
[columns.gross_income]
role = "sensitive"
description = "Gross income in euros"
[columns.sector]
description = "NACE Rev. 2 section letter"
"#,
    ),
    (
        "tax-office",
        "benefit_payments",
        r#"title = "Benefit payments"
description = "Every benefit payment made: unemployment allowance, housing benefit and child benefit, with amount and municipality."
contact = "statistics@tax-office.example"
keywords = ["benefits", "welfare", "allowance", "payments"]
themes = ["SOCI", "ECON"]
classification = "personal"
purposes = ["fraud_prevention", "welfare_targeting", "official_statistics"]
legal_basis = "Social Benefits Act, section 12 (public task, GDPR Art. 6(1)(e))"
retention = "P7Y"
update_frequency = "monthly"

[columns.person_id]
role = "subject_id"
[columns.amount]
role = "sensitive"
[columns.benefit_type]
role = "sensitive"
[columns.municipality]
role = "quasi_identifier"
"#,
    ),
    (
        "city-hospital",
        "vacancies",
        r#"title = "Open vacancies"
description = "Positions the hospital is recruiting for, with the occupation, required skills and place of work."
contact = "recruitment@city-hospital.example"
keywords = ["jobs", "vacancies", "recruitment", "skills"]
themes = ["ECON", "HEAL"]
classification = "open"
purposes = ["job_matching"]
update_frequency = "daily"
"#,
    ),
    (
        "city-council",
        "incident_reports",
        r#"title = "Citizens' incident reports"
description = "Reports made by residents of Northport about problems in public space: potholes, broken street lights, accidents, litter. Location and status, no reporter details."
contact = "opendata@northport.example"
keywords = ["incidents", "city", "public space", "reports", "smart city"]
themes = ["REGI", "TRAN", "JUST"]
classification = "internal"
purposes = ["emergency_response", "official_statistics"]
retention = "P5Y"
update_frequency = "continuous"
"#,
    ),
    (
        "statistics-office",
        "census_sample",
        r#"title = "Census public-use microdata sample"
description = "A real 1,000-person public-use microdata sample: age, sex, education, race, income and marital status (US Census PUMS, via the OpenDP SmartNoise SDK, MIT licence)."
contact = "microdata@statistics-office.example"
keywords = ["census", "microdata", "income", "education", "population"]
themes = ["SOCI", "ECON"]
classification = "personal"
purposes = ["official_statistics", "public_health_research"]
legal_basis = "Official Statistics Act, section 15 (statistical purposes, GDPR Art. 89)"
retention = "P50Y"
update_frequency = "never"

[columns.age]
role = "quasi_identifier"
[columns.sex]
role = "quasi_identifier"
[columns.educ]
role = "quasi_identifier"
[columns.race]
role = "sensitive"
[columns.income]
role = "sensitive"
[columns.married]
role = "quasi_identifier"
"#,
    ),
];

/// The two hospitals describe their admissions alike.
fn admissions_sidecar(hospital: &str, note: &str) -> String {
    format!(
        r#"title = "Hospital admissions"
description = "In-patient admissions to {hospital} with diagnosis (ICD-10), length of stay and 30-day readmission. {note}"
contact = "dpo@{slug}.example"
keywords = ["health", "hospital", "admissions", "readmission", "diagnosis"]
themes = ["HEAL"]
classification = "sensitive"
purposes = ["public_health_research", "official_statistics"]
legal_basis = "Health Services Act, section 41 (GDPR Art. 9(2)(h))"
retention = "P30Y"
update_frequency = "daily"

[columns.person_id]
role = "subject_id"
[columns.given_name]
role = "direct_identifier"
[columns.family_name]
role = "direct_identifier"
[columns.birth_date]
role = "quasi_identifier"
[columns.postcode]
role = "quasi_identifier"
[columns.age_at_admission]
role = "quasi_identifier"
[columns.sex]
role = "quasi_identifier"
[columns.diagnosis_code]
role = "sensitive"
description = "ICD-10 three-character category"
[columns.readmitted_30d]
role = "sensitive"
"#,
        slug = hospital.to_lowercase().replace(' ', "-"),
    )
}

/// Every sidecar: (member, table, TOML text).
pub fn sidecars() -> Vec<(&'static str, &'static str, String)> {
    let mut v: Vec<_> = SIDECARS
        .iter()
        .map(|(m, t, text)| (*m, *t, (*text).to_owned()))
        .collect();
    v.push((
        "city-hospital",
        "admissions",
        admissions_sidecar(
            "City General Hospital",
            "Some records keyed in by hand lack the person identifier.",
        ),
    ));
    v.push((
        "county-hospital",
        "admissions",
        admissions_sidecar(
            "County Hospital",
            "Same schema as City General Hospital's admissions.",
        ),
    ));
    v
}

pub fn write_sidecars(out: &Path) -> Result<(), GenError> {
    for (member, table, text) in sidecars() {
        let path = out.join(member).join(table).join("agora.toml");
        std::fs::write(&path, text).map_err(|e| GenError::io(&path, e))?;
    }
    Ok(())
}

//! Aggregate mode against differencing: a consumer who isolates one person by asking for
//! two cells that differ by that person alone does not learn the person's presence or
//! value from the two released figures, and asking again changes nothing.

use agora_engine::Catalog;
use arrow::array::Array;
use futures::TryStreamExt;

use crate::policy::world;

/// The first column of the first row, as a number (None: no row, or null).
async fn figure(catalog: &Catalog, sql: &str, as_member: bool) -> Option<f64> {
    let result = if as_member {
        catalog.query_for_member(sql).await
    } else {
        catalog.query(sql).await
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches: Vec<arrow::array::RecordBatch> =
        result.into_batches().try_collect().await.unwrap();
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Float64).unwrap();
    let c = c
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    (!c.is_null(0)).then(|| c.value(0))
}

/// Rows of (text, number, number) from the owner's own view.
async fn triples(catalog: &Catalog, sql: &str) -> Vec<(String, i64, i64)> {
    let batches: Vec<arrow::array::RecordBatch> = catalog
        .query(sql)
        .await
        .unwrap()
        .into_batches()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let t = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let x = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Int64).unwrap();
        let y = arrow::compute::cast(b.column(2), &arrow::datatypes::DataType::Int64).unwrap();
        let t = t
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        let x = x
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        let y = y
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        for r in 0..b.num_rows() {
            out.push((t.value(r).to_owned(), x.value(r), y.value(r)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_two_cells_does_not_reveal_the_one_person_between_them() {
    let w = world().await;
    let owner = w.owner_catalog("population-registry");
    let consumer = w.catalog_of("residents_tabulation");
    // People who are alone in their (municipality, sex, birth year) among the rows the
    // agreement shows: the attacker's targets.
    let alone = triples(
        &owner,
        "SELECT municipality || '|' || sex, CAST(date_part('year', birth_date) AS BIGINT), count(*) \
         FROM residents WHERE municipality <> 'Northport' GROUP BY 1, 2 HAVING count(*) = 1 \
         ORDER BY 1, 2 LIMIT 40",
    )
    .await;
    assert!(alone.len() >= 30, "only {} targets", alone.len());
    let (mut exact, mut differences) = (0, std::collections::BTreeSet::new());
    for (key, year, _) in &alone {
        let (m, s) = key.split_once('|').unwrap();
        let all = format!("SELECT count(*) FROM residents WHERE municipality = '{m}'");
        let all_but = format!(
            "SELECT count(*) FROM residents WHERE municipality = '{m}' \
             AND NOT (sex = '{s}' AND date_part('year', birth_date) = {year})"
        );
        let a = figure(&consumer, &all, true).await;
        let b = figure(&consumer, &all_but, true).await;
        // Asked again, the same figures: repeating cannot average the noise away.
        assert_eq!(a, figure(&consumer, &all, true).await);
        assert_eq!(b, figure(&consumer, &all_but, true).await);
        if let (Some(a), Some(b)) = (a, b) {
            let d = a - b;
            differences.insert(d as i64);
            if d == 1.0 {
                exact += 1;
            }
        }
    }
    // With counts moved by up to 2 (variance 1) the difference of two cells is the truth
    // about a quarter of the time; it must be far from always.
    assert!(
        exact * 2 < alone.len(),
        "{exact} of {} differences gave the one person away",
        alone.len()
    );
    assert!(differences.len() >= 3, "differences {differences:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sum_less_a_sum_without_one_person_is_not_their_value() {
    let w = world().await;
    let owner = w.owner_catalog("tax-office");
    let consumer = w.catalog_of("income_tabulation");
    // Sectors of 2024, and one person in each: the total, and the total without that
    // person's sector-year cell, cannot be formed (cells are sector by year), so the
    // attacker differences a sector against the whole year instead.
    let year = figure(
        &consumer,
        "SELECT sum(gross_income) FROM annual_income WHERE tax_year = 2024",
        true,
    )
    .await
    .unwrap();
    let true_year = figure(
        &owner,
        "SELECT sum(gross_income) FROM annual_income WHERE tax_year = 2024",
        false,
    )
    .await
    .unwrap();
    let sectors = triples(
        &owner,
        "SELECT sector, count(DISTINCT person_id), CAST(sum(gross_income) AS BIGINT) \
         FROM annual_income WHERE tax_year = 2024 GROUP BY 1 ORDER BY 1",
    )
    .await;
    // The sectors of fewer than 5 people are never shown; their totals, recovered as the
    // year's total less the rest, are off by the noise of two cells, not one person.
    let small: Vec<_> = sectors
        .iter()
        .filter(|(_, people, _)| *people < 5)
        .collect();
    assert!(!small.is_empty(), "{sectors:?}");
    let mut recovered = 0;
    for (sector, _, truth) in &small {
        let rest = figure(
            &consumer,
            &format!(
                "SELECT sum(gross_income) FROM annual_income WHERE tax_year = 2024 AND sector <> '{sector}'"
            ),
            true,
        )
        .await;
        if let Some(rest) = rest
            && ((year - rest) - *truth as f64).abs() <= 0.1 * (*truth as f64).abs().max(1.0)
        {
            recovered += 1;
        }
    }
    assert_eq!(
        recovered,
        0,
        "small sectors recovered within 10 %: {recovered} of {}",
        small.len()
    );
    assert!(
        (year - true_year).abs() > 0.0,
        "the year's total is released exactly"
    );
}

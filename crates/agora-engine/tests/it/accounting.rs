//! Record-level accounting: a query under a record-level agreement notes exactly the
//! subjects whose rows passed the agreement into the consumer's query — whether or not the
//! agreement shows the subject column, whatever the query then does with the rows — and
//! never shows the column it reads them from; an aggregate agreement notes its groups'
//! sizes and no subject.

use std::collections::BTreeMap;
use std::sync::Arc;

use agora_engine::{AccessLedger, Catalog, SubjectDigest, subject_digest};
use arrow::array::{Array, RecordBatch};
use futures::TryStreamExt;

use crate::policy::world;

/// The consumer's answer and what its query accounted for.
async fn run(catalog: &Catalog, sql: &str) -> (Vec<RecordBatch>, Arc<AccessLedger>) {
    let result = catalog
        .query_for_member(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    assert!(
        !columns.iter().any(|c| c.starts_with("__agora")),
        "{sql} shows a hidden column: {columns:?}"
    );
    let ledger = Arc::clone(&result.ledger);
    let batches: Vec<RecordBatch> = result.into_batches().try_collect().await.unwrap();
    for b in &batches {
        assert!(
            !b.schema()
                .fields()
                .iter()
                .any(|f| f.name().starts_with("__agora")),
            "{sql} sends a hidden column"
        );
    }
    (batches, ledger)
}

/// The digests of the first column's values of the owner's own query.
async fn owner_subjects(catalog: &Catalog, sql: &str) -> Vec<SubjectDigest> {
    let batches: Vec<RecordBatch> = catalog
        .query(sql)
        .await
        .unwrap()
        .into_batches()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let ids = ids
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        out.extend(ids.iter().flatten().map(subject_digest));
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_level_query_accounts_for_exactly_the_subjects_it_read() {
    let w = world().await;
    let registry = w.owner_catalog("population-registry");
    let agency = w.owner_catalog("employment-agency");

    // The agreement does not show person_id, and the answer is a count: the rows read
    // are still the people's whose data was used.
    let residents = w.catalog_of("residents_masked_records");
    let (_, r) = run(
        &residents,
        "SELECT sex, count(*) FROM residents GROUP BY sex",
    )
    .await;
    let expected = owner_subjects(
        &registry,
        "SELECT person_id FROM residents WHERE birth_date < DATE '1970-01-01'",
    )
    .await;
    assert!(!expected.is_empty());
    assert_eq!(r.subjects(), expected);
    assert_eq!(
        r.record_agreements(),
        vec!["residents_masked_records".to_owned()]
    );
    // A count reads no column of the agreement, and still reads everyone's rows.
    let (batches, r) = run(&residents, "SELECT count(*) FROM residents").await;
    let counted =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::UInt64).unwrap();
    let counted = counted
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .unwrap()
        .value(0);
    assert_eq!(counted as usize, expected.len(), "the count is unchanged");
    assert_eq!(r.subjects(), expected);

    // A condition evaluated below the boundary narrows what is read; the pseudonymised
    // subject column is accounted as the identifiers it masks.
    let jobs = w.catalog_of("job_matching_records");
    let (batches, r) = run(
        &jobs,
        "SELECT person_id, skills FROM job_seekers WHERE education_level >= 5",
    )
    .await;
    let expected = owner_subjects(
        &agency,
        "SELECT person_id FROM job_seekers \
         WHERE municipality = 'Northport' AND education_level >= 5",
    )
    .await;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 0 && !expected.is_empty());
    assert_eq!(r.subjects(), expected);
    let shown =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).unwrap();
    let shown = shown
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    assert!(
        !r.subjects().contains(&subject_digest(shown.value(0))),
        "the ledger holds identifiers, not the pseudonyms the consumer saw"
    );

    // A query that reads no row accounts for no one.
    let (_, r) = run(
        &jobs,
        "SELECT skills FROM job_seekers WHERE municipality = 'nowhere'",
    )
    .await;
    assert!(r.subjects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_query_accounts_for_group_sizes_not_subjects() {
    let w = world().await;
    let agency = w.owner_catalog("employment-agency");
    let stats = w.catalog_of("statistics_aggregate");
    let (_, r) = run(
        &stats,
        "SELECT municipality, count(*) FROM job_seekers GROUP BY municipality",
    )
    .await;
    assert!(r.subjects().is_empty(), "aggregates note no subject");
    let groups = r.aggregates();
    let g = &groups["statistics_aggregate"];
    let batches: Vec<RecordBatch> = agency
        .query(
            "SELECT municipality, count(DISTINCT person_id) AS n FROM job_seekers \
             GROUP BY municipality",
        )
        .await
        .unwrap()
        .into_batches()
        .try_collect()
        .await
        .unwrap();
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut groups_in_all = 0;
    for b in &batches {
        let n = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::UInt64).unwrap();
        let n = n
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .unwrap();
        for i in 0..n.len() {
            groups_in_all += 1;
            if n.value(i) >= 5 {
                *sizes.entry(n.value(i)).or_default() += 1;
            }
        }
    }
    let mut shown: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &g.shown {
        *shown.entry(*s).or_default() += 1;
    }
    assert_eq!(shown, sizes, "the sizes of the groups released");
    assert_eq!(g.shown_count + g.withheld, groups_in_all);
}

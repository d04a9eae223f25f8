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

/// The owner's own answer to `sql`.
async fn owner_batches(catalog: &Catalog, sql: &str) -> Vec<RecordBatch> {
    catalog
        .query(sql)
        .await
        .unwrap()
        .into_batches()
        .try_collect()
        .await
        .unwrap()
}

/// Column `i` of the batches as text (nulls left out).
fn texts(batches: &[RecordBatch], i: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
        let c = c
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        out.extend(c.iter().flatten().map(str::to_owned));
    }
    out
}

/// Column `i` of the batches as counts.
fn counts(batches: &[RecordBatch], i: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::UInt64).unwrap();
        let c = c
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .unwrap();
        out.extend(c.iter().flatten());
    }
    out
}

/// The digests of the first column's values of the owner's own query.
async fn owner_subjects(catalog: &Catalog, sql: &str) -> Vec<SubjectDigest> {
    let mut out: Vec<SubjectDigest> = texts(&owner_batches(catalog, sql).await, 0)
        .iter()
        .map(|id| subject_digest(id))
        .collect();
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
    assert_eq!(
        counts(&batches, 0),
        [expected.len() as u64],
        "the count is unchanged"
    );
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
    let shown = texts(&batches, 0);
    assert!(
        !r.subjects().contains(&subject_digest(&shown[0])),
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
    let per_group = counts(
        &owner_batches(
            &agency,
            "SELECT municipality, count(DISTINCT person_id) AS n FROM job_seekers \
             GROUP BY municipality",
        )
        .await,
        1,
    );
    let groups_in_all = per_group.len() as u64;
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    for n in per_group.into_iter().filter(|&n| n >= 5) {
        *sizes.entry(n).or_default() += 1;
    }
    let mut shown: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &g.shown {
        *shown.entry(*s).or_default() += 1;
    }
    assert_eq!(shown, sizes, "the sizes of the groups released");
    assert_eq!(g.shown_count + g.withheld, groups_in_all);
}

//! Federated queries: products of other members named `"member".product`, with the parts
//! of a plan that touch one owner sent to it as SQL. Every query is checked against the
//! same query over the same data held locally, and the SQL each owner received is checked
//! for what was pushed down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agora_engine::{
    Catalog, Engine, EngineError, OutputFormat, RemoteBatches, RemoteBinding, RemoteSource,
    TableBinding,
};
use agora_model::{DataSource, SourceFormat};
use async_trait::async_trait;
use futures::StreamExt;

use crate::{binding, engine, file_url, write};

/// Owners in the same process: each member's catalog as its node would expose it, and a
/// record of the SQL every owner was sent.
#[derive(Default)]
struct Owners {
    catalogs: HashMap<String, Catalog>,
    sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl RemoteSource for Owners {
    async fn query(&self, member: &str, sql: &str) -> Result<RemoteBatches, EngineError> {
        self.sent
            .lock()
            .unwrap()
            .push((member.to_owned(), sql.to_owned()));
        let catalog = self
            .catalogs
            .get(member)
            .ok_or_else(|| EngineError::Remote(format!("no member {member}")))?;
        Ok(catalog.query_for_member(sql).await?.into_batches())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    owners: Arc<Owners>,
    /// The consumer's catalog: a local table plus both members' products.
    federated: Catalog,
    /// All tables local, for the reference answers.
    reference: Catalog,
}

fn seekers_csv() -> String {
    let mut s = String::from("person_id,municipality,since,skill\n");
    for i in 0..60 {
        s.push_str(&format!(
            "P{i:03},{},2024-{:02}-01,{}\n",
            ["Tallinn", "Tartu", "Narva", "Pärnu"][i % 4],
            1 + i % 12,
            ["welding", "nursing", "it", "driving", "teaching"][i % 5]
        ));
    }
    s
}

fn residents_csv() -> String {
    let mut s = String::from("person_id,municipality,birth_year,income\n");
    for i in 0..100 {
        s.push_str(&format!(
            "P{i:03},{},{},{}\n",
            ["Tallinn", "Tartu", "Narva", "Pärnu", "Viljandi"][i % 5],
            1950 + (i * 7) % 50,
            1000 + (i * 137) % 3000
        ));
    }
    s
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let e = engine();
    let src = |name: &str, text: &str| {
        DataSource::new(file_url(&write(dir.path(), name, text)), SourceFormat::Csv).unwrap()
    };
    let seekers = binding(&e, "job_seekers", src("seekers.csv", &seekers_csv())).await;
    let residents = binding(&e, "residents", src("residents.csv", &residents_csv())).await;
    let mut secret = binding(
        &e,
        "sanctions",
        src("sanctions.csv", "person_id,amount\nP001,5\n"),
    )
    .await;
    secret.refusal =
        Some("product sanctions is classified personal: an agreement is needed".into());
    let local = binding(
        &e,
        "vacancies",
        src(
            "vacancies.csv",
            "municipality,open\nTallinn,12\nTartu,5\nNarva,3\n",
        ),
    )
    .await;

    let mut owners = Owners::default();
    owners.catalogs.insert(
        "employment-agency".into(),
        Engine::new(Default::default())
            .member_catalog("employment-agency", vec![seekers.clone(), secret.clone()]),
    );
    owners.catalogs.insert(
        "population-registry".into(),
        Engine::new(Default::default())
            .member_catalog("population-registry", vec![residents.clone()]),
    );
    let owners = Arc::new(owners);
    let remote = |member: &str, b: &TableBinding| RemoteBinding {
        member: member.into(),
        name: b.name.clone(),
        schema: b.schema.clone(),
    };
    let federated = e
        .federated_catalog(
            vec![local.clone()],
            vec![
                remote("employment-agency", &seekers),
                remote("employment-agency", &secret),
                remote("population-registry", &residents),
            ],
            owners.clone(),
        )
        .unwrap();
    let rename = |mut b: TableBinding, name: &str| {
        b.name = name.into();
        b
    };
    let reference = e.catalog(vec![
        local,
        rename(seekers, "ea_job_seekers"),
        rename(residents, "pr_residents"),
    ]);
    Fixture {
        _dir: dir,
        owners,
        federated,
        reference,
    }
}

async fn csv(catalog: &Catalog, sql: &str) -> Result<String, EngineError> {
    let mut s = catalog.query(sql).await?.encode(OutputFormat::Csv);
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(String::from_utf8(out).unwrap())
}

/// The query with remote names, and with the reference's local names.
fn both(template: &str) -> (String, String) {
    (
        template
            .replace("{ea}", "\"employment-agency\".job_seekers")
            .replace("{pr}", "\"population-registry\".residents"),
        template
            .replace("{ea}", "ea_job_seekers")
            .replace("{pr}", "pr_residents"),
    )
}

const QUERIES: &[&str] = &[
    "SELECT municipality, count(*) AS n FROM {ea} GROUP BY municipality ORDER BY municipality",
    "SELECT person_id, skill FROM {ea} WHERE municipality = 'Tartu' AND skill <> 'it' ORDER BY person_id",
    "SELECT * FROM {ea} ORDER BY person_id LIMIT 5",
    "SELECT count(*) FROM {ea}",
    "SELECT skill, min(since) AS first, max(since) AS last FROM {ea} GROUP BY skill HAVING count(*) > 10 ORDER BY skill",
    "SELECT j.person_id, r.birth_year FROM {ea} j JOIN {pr} r ON j.person_id = r.person_id WHERE r.birth_year < 1970 ORDER BY 1",
    "SELECT r.municipality, count(*) AS seekers, avg(r.income) AS income FROM {ea} j JOIN {pr} r USING (person_id) GROUP BY 1 ORDER BY 1",
    "SELECT j.municipality, count(*) AS n, max(v.open) AS open FROM {ea} j JOIN vacancies v ON v.municipality = j.municipality GROUP BY 1 ORDER BY 1",
    "WITH t AS (SELECT municipality, count(*) AS n FROM {pr} GROUP BY 1) SELECT * FROM t WHERE n > 10 ORDER BY municipality",
    "SELECT person_id, rank() OVER (PARTITION BY municipality ORDER BY income DESC) AS r FROM {pr} ORDER BY person_id LIMIT 10",
    "SELECT municipality FROM {ea} UNION SELECT municipality FROM {pr} ORDER BY 1",
    "SELECT person_id FROM {pr} WHERE person_id IN (SELECT person_id FROM {ea} WHERE skill = 'it') ORDER BY 1",
    "SELECT CASE WHEN income > 2500 THEN 'high' ELSE 'low' END AS band, count(*) FROM {pr} GROUP BY 1 ORDER BY 1",
    "SELECT upper(municipality) AS m, count(DISTINCT skill) FROM {ea} GROUP BY 1 ORDER BY 1",
    "SELECT r.person_id FROM {pr} r WHERE NOT EXISTS (SELECT 1 FROM {ea} j WHERE j.person_id = r.person_id) ORDER BY 1 LIMIT 7",
    "SELECT person_id FROM {ea} WHERE skill IN (SELECT skill FROM {ea} WHERE municipality = 'Narva') AND municipality = 'Tartu' ORDER BY 1",
];

#[tokio::test]
async fn federated_queries_answer_as_if_the_data_were_local() {
    let f = fixture().await;
    for q in QUERIES {
        let (remote, local) = both(q);
        let want = csv(&f.reference, &local).await.unwrap();
        let got = csv(&f.federated, &remote)
            .await
            .unwrap_or_else(|e| panic!("{remote}: {e}"));
        // Unaliased column headers name the table (remote or local); the rows must match.
        let rows = |s: &str| s.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(rows(&got), rows(&want), "{remote}");
        assert!(!rows(&want).is_empty(), "{local} returned nothing");
    }
}

fn sent(f: &Fixture) -> Vec<(String, String)> {
    std::mem::take(&mut *f.owners.sent.lock().unwrap())
}

#[tokio::test]
async fn single_owner_queries_run_entirely_at_the_owner() {
    let f = fixture().await;
    let (q, _) = both(QUERIES[4]);
    csv(&f.federated, &q).await.unwrap();
    let sent = sent(&f);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (member, sql) = &sent[0];
    assert_eq!(member, "employment-agency");
    for part in ["GROUP BY", "HAVING", "min(", "ORDER BY"] {
        assert!(sql.contains(part), "{part} not pushed down: {sql}");
    }
}

#[tokio::test]
async fn a_query_reading_one_owner_only_is_sent_as_written() {
    let f = fixture().await;
    // Subqueries too: every table the query reads is the same owner's.
    let (q, _) = both(QUERIES[15]);
    csv(&f.federated, &q).await.unwrap();
    assert_eq!(sent(&f), vec![("employment-agency".to_owned(), q)]);
    // With a local table in it, only the owner's parts are sent.
    let (q, _) = both(QUERIES[7]);
    csv(&f.federated, &q).await.unwrap();
    let sent = sent(&f);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(!sent[0].1.contains("vacancies"), "{sent:?}");
}

#[tokio::test]
async fn cross_member_joins_push_filters_and_projections_to_each_owner() {
    let f = fixture().await;
    let (q, _) = both(QUERIES[5]);
    csv(&f.federated, &q).await.unwrap();
    let sent = sent(&f);
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (_, pr) = sent
        .iter()
        .find(|(m, _)| m == "population-registry")
        .unwrap();
    assert!(
        pr.contains("WHERE") && pr.contains("1970"),
        "filter not pushed: {pr}"
    );
    assert!(!pr.contains("income"), "unused column fetched: {pr}");
    let (_, ea) = sent.iter().find(|(m, _)| m == "employment-agency").unwrap();
    assert!(
        !ea.contains("JOIN"),
        "the join must run at the consumer: {ea}"
    );
}

#[tokio::test]
async fn the_plan_shows_what_each_owner_runs() {
    let f = fixture().await;
    let (q, _) = both(QUERIES[6]);
    let plan = csv(&f.federated, &format!("EXPLAIN {q}")).await.unwrap();
    assert!(
        plan.contains("RemoteExec: member=employment-agency"),
        "{plan}"
    );
    assert!(
        plan.contains("RemoteExec: member=population-registry"),
        "{plan}"
    );
}

#[tokio::test]
async fn a_refused_product_names_the_reason() {
    let f = fixture().await;
    let err = csv(
        &f.federated,
        "SELECT * FROM \"employment-agency\".sanctions",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("an agreement is needed"), "{err}");
}

#[tokio::test]
async fn members_may_send_only_one_select() {
    let f = fixture().await;
    let owner = &f.owners.catalogs["employment-agency"];
    for sql in [
        "EXPLAIN SELECT * FROM job_seekers",
        "SHOW TABLES",
        "SELECT 1; SELECT 2",
        "CREATE TABLE x AS SELECT 1",
        "COPY job_seekers TO '/tmp/x.csv'",
    ] {
        let err = owner.query_for_member(sql).await.err().expect(sql);
        assert!(
            matches!(err, EngineError::NotReadOnly(_) | EngineError::Syntax(_)),
            "{sql}: {err}"
        );
    }
    // Plain and member-qualified names both resolve at the owner.
    for sql in [
        "SELECT count(*) FROM job_seekers",
        "SELECT count(*) FROM \"employment-agency\".\"job_seekers\"",
    ] {
        owner.query_for_member(sql).await.unwrap();
    }
}

#[tokio::test]
async fn an_owner_answer_of_the_wrong_shape_is_an_error_not_a_result() {
    struct Liar;
    #[async_trait]
    impl RemoteSource for Liar {
        async fn query(&self, _m: &str, _sql: &str) -> Result<RemoteBatches, EngineError> {
            let batch = arrow::record_batch::RecordBatch::try_from_iter([
                ("a", Arc::new(arrow::array::Int64Array::from(vec![1])) as _),
                ("b", Arc::new(arrow::array::Int64Array::from(vec![2])) as _),
            ])
            .unwrap();
            Ok(futures::stream::iter([Ok(batch)]).boxed())
        }
    }
    let e = engine();
    let c = e
        .federated_catalog(
            vec![],
            vec![RemoteBinding {
                member: "m".into(),
                name: "t".into(),
                schema: vec![agora_model::ColumnSchema::new("x", "Utf8", true)],
            }],
            Arc::new(Liar),
        )
        .unwrap();
    let err = csv(&c, "SELECT x FROM m.t").await.unwrap_err();
    assert!(err.to_string().contains("2 columns where 1"), "{err}");
}

//! The agreement-enforcement corpus: `tests/policy/*.slt`, sqllogictest files of queries a
//! consumer might send to an owner under an agreement, each expecting a refusal or the
//! exact safe result, run over the demo data (2 000 residents, seed 7).
//!
//! The harness adds one directive: `statement ok` / `USE AGREEMENT name` switches to the
//! owner's member catalog under the agreement `name` of `tests/policy/agreements.json`
//! (queries then run as [`agora_engine::Catalog::query_for_member`] would run them for that
//! consumer); `USE OWNER member` switches to the owner's own, unrestricted view, for
//! reference queries.
//!
//! To rewrite the expected results after a deliberate change:
//! `AGORA_UPDATE_POLICY_CORPUS=1 cargo nextest run -E 'test(policy_corpus)'`, then review
//! the diff: every changed result is a change in what consumers can see.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_engine::{
    Catalog, CellKeySecret, Enforcement, Engine, EngineConfig, LinkageKey, TableBinding,
};
use agora_model::{AgreementTerms, DataSource, SourceFormat};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};

#[derive(serde::Deserialize)]
pub(crate) struct AgreementFixture {
    name: String,
    owner: String,
    product: String,
    subject: Option<String>,
    /// 64 hex digits.
    linkage_key: Option<String>,
    terms: AgreementTerms,
}

/// The demo tables (member, table, classification).
const TABLES: &[(&str, &str, &str)] = &[
    ("population-registry", "residents", "personal"),
    ("employment-agency", "job_seekers", "personal"),
    ("tax-office", "annual_income", "sensitive"),
    ("tax-office", "benefit_payments", "personal"),
    ("city-hospital", "admissions", "sensitive"),
    ("city-hospital", "vacancies", "open"),
    ("city-council", "incident_reports", "internal"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy")
}

pub(crate) struct World {
    engine: Engine,
    /// Raw bindings of each owner's products.
    owners: HashMap<String, Vec<TableBinding>>,
    agreements: Vec<AgreementFixture>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    let mut opts = agora_datagen::GenOptions::new(2_000, 7, out.clone());
    opts.chunk_residents = 1_000;
    agora_datagen::generate(&opts, &|_| {}).unwrap();
    let engine = Engine::new(EngineConfig {
        target_partitions: 2,
        ..Default::default()
    });
    let mut owners: HashMap<String, Vec<TableBinding>> = HashMap::new();
    for (member, table, _) in TABLES {
        let source = DataSource::new(
            format!("file://{}/", out.join(member).join(table).display()),
            SourceFormat::Parquet,
        )
        .unwrap();
        let schema = engine.inspect(&source).await.unwrap();
        owners
            .entry(member.to_string())
            .or_default()
            .push(TableBinding {
                name: table.to_string(),
                source,
                schema,
                version: "1".into(),
                refusal: None,
                enforcement: None,
            });
    }
    let text = std::fs::read_to_string(corpus_dir().join("agreements.json")).unwrap();
    let agreements: Vec<AgreementFixture> = serde_json::from_str(&text).unwrap();
    World {
        engine,
        owners,
        agreements,
        _dir: dir,
    }
}

impl World {
    /// The catalog of the agreement fixture named `name`.
    pub(crate) fn catalog_of(&self, name: &str) -> Catalog {
        let a = self.agreements.iter().find(|a| a.name == name).unwrap();
        self.member_catalog(a)
    }

    /// The owner's own, unrestricted catalog.
    pub(crate) fn owner_catalog(&self, member: &str) -> Catalog {
        self.engine.catalog(self.owners[member].clone())
    }

    /// The catalog an owner's node builds for a consumer holding one agreement: the agreed
    /// product enforced, its open products as they are, every other product refused.
    pub(crate) fn member_catalog(&self, agreement: &AgreementFixture) -> Catalog {
        let tables = self.owners[&agreement.owner]
            .iter()
            .map(|b| {
                let mut b = b.clone();
                let class = TABLES
                    .iter()
                    .find(|(m, t, _)| *m == agreement.owner && *t == b.name)
                    .unwrap()
                    .2;
                if b.name == agreement.product {
                    b.enforcement = Some(Enforcement {
                        agreement: agreement.name.clone(),
                        terms: agreement.terms.clone(),
                        subject: agreement.subject.clone(),
                        linkage_key: agreement.linkage_key.as_ref().map(|h| {
                            let bytes: [u8; 32] = hex_bytes(h).try_into().unwrap();
                            LinkageKey::new(bytes)
                        }),
                        // A fixed secret: the corpus's released figures are reproducible.
                        cell_key: Some(CellKeySecret::new(*b"agora-policy-corpus-cell-key-32b")),
                        excluded: Vec::new(),
                    });
                } else if class != "open" {
                    b.refusal = Some(format!(
                        "{}.{} is classified {class}: other members may query it only under a \
                         sharing agreement",
                        agreement.owner, b.name
                    ));
                }
                b
            })
            .collect();
        self.engine.member_catalog(&agreement.owner, tables)
    }
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

struct PolicyDb {
    world: Arc<World>,
    catalogs: HashMap<String, Catalog>,
    current: Option<(Catalog, bool)>,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for PolicyDb {
    type Error = Refused;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Refused> {
        let trimmed = sql.trim();
        if let Some(name) = trimmed.strip_prefix("USE AGREEMENT ") {
            let name = name.trim();
            let catalog = match self.catalogs.get(name) {
                Some(c) => c.clone(),
                None => {
                    let a = self
                        .world
                        .agreements
                        .iter()
                        .find(|a| a.name == name)
                        .ok_or_else(|| Refused(format!("no agreement fixture {name}")))?;
                    let c = self.world.member_catalog(a);
                    self.catalogs.insert(name.to_owned(), c.clone());
                    c
                }
            };
            self.current = Some((catalog, true));
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(member) = trimmed.strip_prefix("USE OWNER ") {
            let tables = self.world.owners[member.trim()].clone();
            self.current = Some((self.world.engine.catalog(tables), false));
            return Ok(DBOutput::StatementComplete(0));
        }
        let (catalog, as_member) = self
            .current
            .as_ref()
            .ok_or_else(|| Refused("start with USE AGREEMENT or USE OWNER".into()))?;
        let result = if *as_member {
            catalog.query_for_member(sql).await
        } else {
            catalog.query(sql).await
        }
        .map_err(|e| Refused(e.to_string()))?;
        let mut batches = result.into_batches();
        let mut rows = Vec::new();
        let mut width = 0;
        let options = FormatOptions::default().with_null("NULL");
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Refused(e.to_string()))?;
            width = batch.num_columns();
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect::<Vec<_>>();
            for r in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| {
                            let s = f.value(r).to_string();
                            if s.is_empty() { "(empty)".into() } else { s }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_corpus() {
    let world = Arc::new(world().await);
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {:?}", corpus_dir());
    let update = std::env::var_os("AGORA_UPDATE_POLICY_CORPUS").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let w = Arc::clone(&world);
        let mut runner = sqllogictest::Runner::new(move || {
            let w = Arc::clone(&w);
            async move {
                Ok::<_, Refused>(PolicyDb {
                    world: w,
                    catalogs: HashMap::new(),
                    current: None,
                })
            }
        });
        runner.with_column_validator(sqllogictest::default_column_validator);
        if update {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap();
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

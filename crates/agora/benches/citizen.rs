//! Citizen history benchmark (issue 20): a resident's complete history across the seven
//! demo members, each holding AGORA_BENCH_RESIDENTS residents (default 1 000 000).
//!
//! An authority and seven enrolled nodes on loopback, every one naming the population
//! registry as its citizen portal. Each member holds a product with every resident, and a
//! log whose record-level answers carried them: one answer that read every resident (a
//! linkage over the whole population) and AGORA_BENCH_ANSWERS more (default 20) that read
//! one resident in twenty each, with their subject tags and index as the journal writes
//! them. Each member signs a checkpoint with its subject index, witnessed by the authority.
//!
//! Measured: the population registry's `citizen_history` for AGORA_BENCH_LOOKUPS
//! residents (default 20) — per member a blind tag evaluation, the bucket of the subject
//! index with its proofs, the bucket of the holdings, and the check of every answer: wall
//! time per resident (median, max), after one warm-up lookup (which computes the
//! holdings' tags; reported apart).
//!
//! Environment: AGORA_BENCH_DIR (default $TMPDIR/agora-bench), AGORA_BENCH_RESIDENTS,
//! AGORA_BENCH_ANSWERS, AGORA_BENCH_LOOKUPS.
//! Output: tab-separated `name  metric  median  unit  min  max  n` lines and `#` notes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{AuditEntry, AuditKind, Endpoints, MemberId, SubjectCommitment};
use agora_node::{Node, NodeConfig, RegisterRequest};
use agora_trust::tlog::SubjectSet;
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::{emit, env_u64};

const MEMBERS: &[&str] = &[
    "population-registry",
    "employment-agency",
    "tax-office",
    "city-hospital",
    "county-hospital",
    "statistics-office",
    "city-council",
];

/// The residents' identifiers (11 digits).
fn resident(i: u64) -> String {
    (10_000_000_000 + i).to_string()
}

/// A product of `residents` rows, one per resident (Parquet, written once).
fn write_people(dir: &Path, residents: u64) -> PathBuf {
    let path = dir.join(format!("people_{residents}.parquet"));
    if path.exists() {
        return path;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
    ]));
    let tmp = path.with_extension("tmp");
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&tmp).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    let ids: Vec<i64> = (0..residents).map(|i| 10_000_000_000 + i as i64).collect();
    let values: Vec<i64> = (0..residents).map(|i| (i % 1000) as i64).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(values)),
        ],
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn register_people(node: &Node, path: &Path) {
    let patch: agora_model::MetadataPatch = serde_json::from_value(serde_json::json!({
        "title": "Residents served",
        "description": "one row per resident, for the citizen benchmark",
        "classification": "personal",
        "legal_basis": "benchmark",
        "purposes": ["fraud_prevention"],
        "columns": {"person_id": {"role": "subject_id"}},
    }))
    .unwrap();
    node.register(
        RegisterRequest {
            location: path.display().to_string(),
            name: Some("people".into()),
            metadata: patch,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
}

/// The member's log: one answer that read everyone and `answers` that read one in twenty.
async fn fill_log(node: &Node, residents: u64, answers: u64) {
    let ids: Vec<String> = (0..residents).map(resident).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let n = node.clone();
    let refs_owned: Vec<String> = refs.iter().map(|s| (*s).to_owned()).collect();
    let tags = tokio::task::spawn_blocking(move || {
        let r: Vec<&str> = refs_owned.iter().map(String::as_str).collect();
        n.subject_tags(&r).unwrap()
    })
    .await
    .unwrap();
    for a in 0..=answers {
        let chosen: Vec<_> = if a == 0 {
            tags.clone()
        } else {
            tags.iter().skip(a as usize).step_by(20).copied().collect()
        };
        let set = SubjectSet::from_tags(chosen);
        let mut entry = AuditEntry::new(
            AuditKind::Exchange,
            format!("exchange:bench-{a}"),
            "employment-agency",
        )
        .peer("employment-agency")
        .purpose("fraud_prevention")
        .agreement("bench-agreement")
        .outcome("answered")
        .with("legal_basis", "public_task");
        entry.subjects = Some(SubjectCommitment {
            count: set.len(),
            root: hex::encode(set.root().unwrap().0),
        });
        node.store()
            .log_append_with_tags(vec![(entry, set.tags().concat())])
            .await
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let residents = env_u64("AGORA_BENCH_RESIDENTS", 1_000_000);
    let answers = env_u64("AGORA_BENCH_ANSWERS", 20);
    let lookups = env_u64("AGORA_BENCH_LOOKUPS", 20);
    let dir = std::env::var("AGORA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"));
    let run = dir.join("citizen-run");
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).unwrap();
    let people = write_people(&dir, residents);

    let al = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", al.local_addr().unwrap());
    let authority = Arc::new(
        Authority::init(AuthorityConfig::new(run.join("authority")), "bench", &url)
            .await
            .unwrap(),
    );
    tokio::spawn(agora_server::serve_authority(
        authority.clone(),
        al,
        vec!["127.0.0.1".into()],
        std::future::pending(),
    ));
    let portal = MemberId::parse("population-registry").unwrap();
    let mut nodes = Vec::new();
    for id in MEMBERS {
        let member = MemberId::parse(id).unwrap();
        let mut cfg = NodeConfig::new(run.join(id));
        cfg.citizens.portals = vec![portal.clone()];
        cfg.citizens.lookups_per_minute = 100_000;
        let (node, _) = Node::init(&cfg, &member, id).await.unwrap();
        let xl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t = authority.admit(&member, id).await.unwrap();
        node.enrol(
            &url,
            &t,
            Endpoints {
                exchange: Some(format!("https://{}", xl.local_addr().unwrap())),
            },
        )
        .await
        .unwrap();
        tokio::spawn(agora_server::serve_exchange(
            node.clone(),
            xl,
            std::future::pending(),
        ));
        nodes.push(node);
    }
    let started = Instant::now();
    eprintln!(
        "# {residents} residents × {} members; tagging and logging (once per run)…",
        MEMBERS.len()
    );
    for node in &nodes {
        node.trust().unwrap().refresh().await.unwrap();
        register_people(node, &people).await;
    }
    let fills = nodes.iter().map(|n| fill_log(n, residents, answers));
    futures::future::join_all(fills).await;
    for node in &nodes {
        let c = node.checkpoint().await.unwrap().unwrap();
        assert!(
            c.witnessed.is_some(),
            "the authority witnessed the checkpoint"
        );
    }
    eprintln!(
        "# set up in {:.0} s: each log holds {} answers, {} subject index rows",
        started.elapsed().as_secs_f64(),
        answers + 1,
        residents + answers * residents / 20
    );

    let registry = &nodes[0];
    let t = Instant::now();
    let first = registry.citizen_history(&resident(7)).await.unwrap();
    let warm_up = t.elapsed().as_secs_f64();
    for m in &first.members {
        let h = m.outcome.as_ref().unwrap();
        assert!(!h.accesses.is_empty(), "{}: {h:?}", m.member);
        assert_eq!(m.holdings.as_ref().unwrap().len(), 1);
    }
    emit("citizen_history", "first_lookup", &[warm_up * 1000.0], "ms");
    let mut times = Vec::new();
    let mut accesses = 0;
    for k in 0..lookups {
        let who = resident((k * 7919 + 13) % residents);
        let t = Instant::now();
        let h = registry.citizen_history(&who).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        for m in &h.members {
            accesses += m.outcome.as_ref().unwrap().accesses.len();
        }
    }
    emit("citizen_history", "seven_members", &times, "ms");
    println!(
        "# {lookups} residents, {accesses} accesses verified in all, every answer checked complete"
    );
}

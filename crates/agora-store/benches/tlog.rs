//! Transparency log benchmark (issue 20): appends and proofs, through the store as the
//! node uses it (SQLite in a data directory).
//!
//! 1. Appends: AGORA_BENCH_WRITERS tasks each append one entry at a time (an exchange
//!    entry of the demo's shape, ~300 bytes) and wait for it to be durable, for
//!    AGORA_BENCH_SECONDS, while another task signs and stores a checkpoint every second,
//!    as the node does. Entries per second, median of AGORA_BENCH_ROUNDS rounds.
//! 2. Proofs at AGORA_BENCH_LOG_SIZE entries (default 10 000 000; the log is built once in
//!    AGORA_BENCH_DIR and kept for later runs): an inclusion proof of a random entry and a
//!    consistency proof from a random earlier size, generated from the stored tiles and
//!    verified against the roots; microseconds each, median of 1000.
//!
//! 3. Record-level accounting: the commitment of an answer that carried the records of
//!    AGORA_BENCH_SUBJECTS subjects (default 100 000): each digest tagged by the node's
//!    VOPRF key and the Merkle root over the tags; microseconds per subject, median of 3.
//!
//! Output: tab-separated `name  metric  median  unit  min  max  n` lines and `#` notes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agora_model::{AuditEntry, AuditKind};
use agora_store::Store;
use agora_trust::MemberKey;
use agora_trust::tlog;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn emit(name: &str, metric: &str, values: &[f64], unit: &str) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s[s.len() / 2];
    println!(
        "{name}\t{metric}\t{m:.3}\t{unit}\t{:.3}\t{:.3}\t{}",
        s[0],
        s[s.len() - 1],
        s.len()
    );
    m
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new(
        AuditKind::Exchange,
        format!("exchange:{i}"),
        "social-benefits",
    )
    .peer("social-benefits")
    .product("annual_incomes")
    .agreement("0193b7a2c4d34c5e8f0a1b2c3d4e5f60")
    .purpose("fraud_prevention")
    .outcome("answered")
    .with("operation", "query")
    .with("rows", 1)
    .with(
        "request_digest",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    )
}

async fn appends(store: &Store, key: &MemberKey, writers: u64, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w << 32;
            while !stop.load(Ordering::Relaxed) {
                store.log_append(vec![entry(i)]).await.expect("append");
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let checkpoints = {
        let (store, stop, key) = (store.clone(), stop.clone(), key.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (size, root) = store.log_head().await.expect("head");
                let note = tlog::sign_checkpoint("bench/node", size, root, &key).expect("sign");
                store
                    .put_checkpoint(size, &String::from_utf8(note).expect("utf-8"))
                    .await
                    .expect("checkpoint");
                n += 1;
            }
            n
        })
    };
    let started = Instant::now();
    let before = count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = count.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }
    let n = checkpoints.await.expect("checkpoints");
    println!("# round: {done} entries in {elapsed:.2} s with {n} checkpoints");
    done as f64 / elapsed
}

async fn build(store: &Store, size: u64) {
    let (have, _) = store.log_head().await.expect("head");
    if have >= size {
        return;
    }
    let started = Instant::now();
    let mut n = have;
    while n < size {
        let batch = (size - n).min(20_000);
        store
            .log_append((n..n + batch).map(entry).collect())
            .await
            .expect("append");
        n += batch;
    }
    println!(
        "# built a log of {size} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn proofs(store: &Store, size: u64) {
    let root = store.log_root(size).await.expect("root");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let (mut gen_i, mut ver_i, mut gen_c, mut ver_c) = (vec![], vec![], vec![], vec![]);
    for _ in 0..1000 {
        let i = next(size);
        let t = Instant::now();
        let p = store.log_inclusion_proof(size, i).await.expect("inclusion");
        gen_i.push(t.elapsed().as_secs_f64() * 1e6);
        let data = store.log_entry_data(i, i + 1).await.expect("entry");
        let t = Instant::now();
        tlog::check_inclusion(&p, size, root, i, &data[0]).expect("verifies");
        ver_i.push(t.elapsed().as_secs_f64() * 1e6);

        let old = 1 + next(size - 1);
        let old_root = store.log_root(old).await.expect("old root");
        let t = Instant::now();
        let c = store
            .log_consistency_proof(size, old)
            .await
            .expect("consistency");
        gen_c.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        tlog::check_consistency(&c, size, root, old, old_root).expect("verifies");
        ver_c.push(t.elapsed().as_secs_f64() * 1e6);
    }
    emit("tlog_inclusion_proof", "generate", &gen_i, "us");
    emit("tlog_inclusion_proof", "verify", &ver_i, "us");
    emit("tlog_consistency_proof", "generate", &gen_c, "us");
    emit("tlog_consistency_proof", "verify", &ver_c, "us");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let base = std::env::var("AGORA_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"));
        let writers = env_u64("AGORA_BENCH_WRITERS", 512);
        let seconds = env_u64("AGORA_BENCH_SECONDS", 5);
        let rounds = env_u64("AGORA_BENCH_ROUNDS", 3);
        let size = env_u64("AGORA_BENCH_LOG_SIZE", 10_000_000);
        let key = MemberKey::generate().expect("key");

        let dir = base.join("tlog-appends");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_in_dir(&dir).await.expect("store");
        println!("# {writers} writers, one entry each per append, one checkpoint per second");
        let mut rates = Vec::new();
        for _ in 0..rounds {
            rates.push(appends(&store, &key, writers, seconds).await);
        }
        emit("tlog_append", "entries_per_s", &rates, "1/s");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);

        let store = Store::open_in_dir(&base.join(format!("tlog-{size}")))
            .await
            .expect("store");
        build(&store, size).await;
        proofs(&store, size).await;
        store.close().await;
        accounting(env_u64("AGORA_BENCH_SUBJECTS", 100_000));
    });
}

/// The cost of committing to the subjects of one answer, per subject.
fn accounting(subjects: u64) {
    let key = tlog::SubjectKey::new([7; 32]);
    let digests: Vec<tlog::SubjectDigest> = (0..subjects)
        .map(|i| {
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&i.to_be_bytes());
            d
        })
        .collect();
    let mut per_subject = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let set = tlog::SubjectSet::new(&key, &digests);
        let _root = set.root().expect("root");
        per_subject.push(started.elapsed().as_secs_f64() * 1e6 / subjects as f64);
    }
    println!("# record-level accounting of {subjects} subjects");
    emit("subject_commitment", "us_per_subject", &per_subject, "us");
}

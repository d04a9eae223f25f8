//! The transparency log between running nodes and their authority: every exchange is an
//! entry on both sides, checkpoints are signed and witnessed, the log is served in the
//! C2SP layout, and a log rewritten or truncated behind the node's back is caught by the
//! authority (and shown by its /readyz and the node's).

use agora_model::{AuditKind, EntryFilter};
use agora_node::{Node, NodeConfig};
use agora_trust::tlog;

use crate::ecosystem::{member, register_csv, start_authority};

async fn entries(node: &Node, kind: AuditKind) -> Vec<agora_model::LoggedEntry> {
    node.audit_entries(&EntryFilter {
        kind: Some(kind.as_str().into()),
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Rewrites a node's log behind its back: everything goes, and other entries are
/// appended in its place (as an operator covering tracks would).
async fn rewrite_log(dir: &std::path::Path) {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rw", dir.join("agora.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for sql in [
        "DELETE FROM tlog_chunks",
        "DELETE FROM tlog_tiles",
        "DELETE FROM tlog_checkpoints",
        "UPDATE tlog_state SET size = 0",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_are_logged_on_both_sides_witnessed_and_a_rewritten_log_is_caught() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register_csv(&tax.node, dir.path(), "income_statistics", "open").await;
    ea.node.refresh_offers().await.unwrap();

    // Both sides logged the exchange: the owner the inbound call, the consumer the
    // outbound one, each its start and its end.
    let inbound = entries(&tax.node, AuditKind::Exchange).await;
    let outbound = entries(&ea.node, AuditKind::Exchange).await;
    assert!(
        inbound
            .iter()
            .any(|e| e.entry.peer.as_deref() == Some("employment-agency")
                && e.entry.detail["direction"] == "inbound"
                && e.entry.outcome == "ok")
    );
    assert!(
        outbound
            .iter()
            .any(|e| e.entry.peer.as_deref() == Some("tax-office")
                && e.entry.actor == "node"
                && e.entry.outcome == "ok")
    );

    // A checkpoint is signed and witnessed; the authority keeps what it cosigned.
    let c = tax.node.checkpoint().await.unwrap().unwrap();
    let cosigned = c.witnessed.clone().expect("witnessed");
    let origin = tax.node.log_origin().unwrap();
    assert_eq!(origin, "agora/test-ecosystem/tax-office");
    let key = tax.node.trust().unwrap().material().key.public();
    let opened = tlog::open_checkpoint(cosigned.as_bytes(), &origin, &key).unwrap();
    let root_key = tax.node.trust().unwrap().material().root_info.public_key;
    tlog::check_cosignature(
        cosigned.as_bytes(),
        "agora/test-ecosystem/authority",
        &root_key,
    )
    .unwrap();
    let seen = a
        .authority
        .store()
        .witnessed("tax-office")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.size, opened.size());
    assert_eq!(tax.node.witness_state().witnessed_size, Some(c.size));

    // The log grows; the next checkpoint is witnessed from the last (a consistency proof).
    ea.node.refresh_offers().await.unwrap();
    let c2 = tax.node.checkpoint().await.unwrap().unwrap();
    assert!(c2.size > c.size && c2.witnessed.is_some());
    assert_eq!(
        a.authority
            .store()
            .witnessed("tax-office")
            .await
            .unwrap()
            .unwrap()
            .size,
        c2.size
    );

    // Every entry is proven in the checkpoint it is served with.
    for i in 0..c2.size {
        let p = tax.node.log_inclusion(i).await.unwrap();
        let cp = tlog::open_checkpoint(p.checkpoint.as_bytes(), &origin, &key).unwrap();
        let proof: Vec<tlog::Hash> = p
            .proof
            .iter()
            .map(|h| tlog::Hash(hex::decode(h).unwrap().try_into().unwrap()))
            .collect();
        tlog::check_inclusion(&proof, cp.size(), *cp.hash(), i, p.entry.as_bytes()).unwrap();
    }

    // Rewritten behind the node's back and grown past what was witnessed: the authority
    // refuses to cosign, records why, and says so in /readyz; the node says so too.
    rewrite_log(&dir.path().join("tax-office")).await;
    for _ in 0..(c2.size + 2) {
        ea.node.refresh_offers().await.unwrap();
    }
    let restarted = Node::open(&NodeConfig::new(dir.path().join("tax-office")))
        .await
        .unwrap();
    restarted.checkpoint().await.unwrap();
    let state = restarted.witness_state();
    let why = state
        .inconsistent
        .expect("the authority found the log inconsistent");
    assert!(why.contains("rewritten or forked"), "{why}");
    let alerts = a.authority.witness_alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].member, "tax-office");
    assert_eq!(alerts[0].witnessed_size, c2.size);
    let ready = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{}/readyz", a.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ready.starts_with("ready\n"), "{ready}");
    assert!(
        ready.contains("transparency log of tax-office inconsistent"),
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_log_is_caught_by_the_authority() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    for _ in 0..3 {
        ea.node.refresh_offers().await.unwrap();
    }
    let c = tax.node.checkpoint().await.unwrap().unwrap();
    assert!(c.witnessed.is_some());
    rewrite_log(&dir.path().join("tax-office")).await;
    ea.node.refresh_offers().await.unwrap();
    let restarted = Node::open(&NodeConfig::new(dir.path().join("tax-office")))
        .await
        .unwrap();
    restarted.checkpoint().await.unwrap();
    let why = restarted.witness_state().inconsistent.unwrap();
    assert!(
        why.contains("truncated or restored from an older copy"),
        "{why}"
    );
    let alerts = a.authority.witness_alerts(10).await.unwrap();
    assert!(alerts[0].claimed_size < c.size);
}

/// What a hostile or broken member may send the witness: a checkpoint signed by another
/// key, one of another member's log, an oversized note, a proof too long or not hex, a
/// proof from a size never witnessed. Each is refused with a clear reason, and nothing
/// is cosigned or recorded as witnessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_refuses_forged_foreign_oversized_and_malformed_checkpoints() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    ea.node.refresh_offers().await.unwrap();
    let presented = tax.node.trust().unwrap().material().info.clone();
    let origin = tax.node.log_origin().unwrap();
    let (size, root) = tax.node.log_head().await.unwrap();
    let key = tax.node.trust().unwrap().material().key.clone();
    let note = |origin: &str, key: &agora_trust::MemberKey| {
        String::from_utf8(tlog::sign_checkpoint(origin, size, root, key).unwrap()).unwrap()
    };
    let req =
        |checkpoint: String, old_size: u64, consistency: Vec<String>| agora_model::WitnessRequest {
            checkpoint,
            old_size,
            consistency,
        };
    let refused = |r: Result<agora_model::WitnessReply, agora_authority::AuthorityError>| {
        r.expect_err("refused").to_string()
    };
    let other = agora_trust::MemberKey::generate().unwrap();
    let why = refused(
        a.authority
            .witness(&presented, &req(note(&origin, &other), 0, vec![]))
            .await,
    );
    assert!(why.contains("signature does not verify"), "{why}");
    let foreign = "agora/test-ecosystem/employment-agency";
    let why = refused(
        a.authority
            .witness(&presented, &req(note(foreign, &key), 0, vec![]))
            .await,
    );
    assert!(why.contains("tax-office"), "{why}");
    let huge = format!("{}{}", note(&origin, &key), "x".repeat(5000));
    let why = refused(a.authority.witness(&presented, &req(huge, 0, vec![])).await);
    assert!(why.contains("at most 4096 bytes"), "{why}");
    // First sight must start from nothing; then a proof must be hashes, and not too many.
    let why = refused(
        a.authority
            .witness(&presented, &req(note(&origin, &key), 7, vec![]))
            .await,
    );
    assert!(why.contains("witnessed 0 entries"), "{why}");
    a.authority
        .witness(&presented, &req(note(&origin, &key), 0, vec![]))
        .await
        .unwrap();
    let why = refused(
        a.authority
            .witness(
                &presented,
                &req(note(&origin, &key), size, vec!["zz".into()]),
            )
            .await,
    );
    assert!(why.contains("not a hex SHA-256 hash"), "{why}");
    let long = vec!["00".repeat(32); 200];
    let why = refused(
        a.authority
            .witness(&presented, &req(note(&origin, &key), size, long))
            .await,
    );
    assert!(why.contains("at most 130 hashes"), "{why}");
    // Only the one honest checkpoint was witnessed; nothing was flagged.
    let seen = a
        .authority
        .store()
        .witnessed("tax-office")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.size, size);
    assert!(a.authority.witness_alerts(10).await.unwrap().is_empty());
}

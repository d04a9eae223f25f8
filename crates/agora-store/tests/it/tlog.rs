//! The transparency log's storage: appends in groups and from two processes build the
//! same tree as the reference in memory, and its proofs verify.

use agora_model::EntryFilter;
use agora_model::{AuditEntry, AuditKind};
use agora_store::Store;
use agora_trust::tlog;

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new(AuditKind::Exchange, format!("exchange:{i}"), "tax-office")
        .peer(if i.is_multiple_of(2) {
            "social-benefits"
        } else {
            "hospital"
        })
        .product("annual_incomes")
        .purpose("fraud_prevention")
        .outcome(if i.is_multiple_of(3) {
            "refused: no agreement"
        } else {
            "answered"
        })
}

/// The reference: the same entries hashed into a log in memory.
fn reference(entries: &[Vec<u8>]) -> tlog::MemoryHashes {
    let m = tlog::MemoryHashes::default();
    for (i, e) in entries.iter().enumerate() {
        let h = tlog::hashes_to_store(i as u64, e, &m).unwrap();
        m.push(&h);
    }
    m
}

async fn stored(store: &Store) -> Vec<Vec<u8>> {
    let (size, _) = store.log_head().await.unwrap();
    store.log_entry_data(0, size).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_entries_form_the_tree_their_proofs_prove() {
    for t in crate::stores().await {
        let s = &t.store;
        // One at a time, a batch crossing a tile boundary, and many concurrent appends.
        s.log_append(vec![entry(0)]).await.unwrap();
        let first = s.log_append((1..300).map(entry).collect()).await.unwrap();
        assert_eq!(first, 1);
        let mut handles = Vec::new();
        for i in 300..700 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.log_append(vec![entry(i)]).await.unwrap()
            }));
        }
        let mut indexes = Vec::new();
        for h in handles {
            indexes.push(h.await.unwrap());
        }
        indexes.sort();
        assert_eq!(
            indexes,
            (300..700).collect::<Vec<u64>>(),
            "{:?}",
            s.backend()
        );

        let data = stored(s).await;
        assert_eq!(data.len(), 700);
        let m = reference(&data);
        let (size, root) = s.log_head().await.unwrap();
        assert_eq!(root, tlog::root(size, &m).unwrap());
        for (old, new, i) in [
            (1, 700, 0),
            (256, 700, 255),
            (300, 513, 512),
            (699, 700, 699),
        ] {
            let r_new = s.log_root(new).await.unwrap();
            let r_old = s.log_root(old).await.unwrap();
            let p = s.log_inclusion_proof(new, i).await.unwrap();
            tlog::check_inclusion(&p, new, r_new, i, &data[i as usize]).unwrap();
            let c = s.log_consistency_proof(new, old).await.unwrap();
            tlog::check_consistency(&c, new, r_new, old, r_old).unwrap();
        }
        assert!(s.log_inclusion_proof(701, 3).await.is_err());
        assert!(s.log_inclusion_proof(10, 10).await.is_err());
        t.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_append_to_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open_in_dir(dir.path()).await.unwrap();
    let b = Store::open_in_dir(dir.path()).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..60u64 {
        let s = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        handles.push(tokio::spawn(async move {
            s.log_append(vec![entry(i), entry(i + 1000)]).await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let data = stored(&a).await;
    assert_eq!(data.len(), 120);
    let (size, root) = b.log_head().await.unwrap();
    assert_eq!(root, tlog::root(size, &reference(&data)).unwrap());
}

#[tokio::test]
async fn an_auditor_filters_entries_by_what_they_record() {
    for t in crate::stores().await {
        let s = &t.store;
        s.log_append((0..30).map(entry).collect()).await.unwrap();
        s.log_append(vec![
            AuditEntry::new(AuditKind::Access, "access:x", "user:ann")
                .product("annual_incomes, registered_jobseekers")
                .outcome("answered"),
        ])
        .await
        .unwrap();
        let all = |f: EntryFilter| async move {
            s.log_entries(&EntryFilter { limit: 100, ..f })
                .await
                .unwrap()
        };
        assert_eq!(all(EntryFilter::default()).await.len(), 31);
        let hospital = all(EntryFilter {
            peer: Some("hospital".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(hospital.len(), 15);
        assert!(
            hospital.windows(2).all(|w| w[0].index > w[1].index),
            "newest first"
        );
        let refused = all(EntryFilter {
            outcome: Some("refused".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(refused.len(), 10);
        let jobs = all(EntryFilter {
            product: Some("registered_jobseekers".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].entry.actor, "user:ann");
        // A product name is matched whole: "annual" is not "annual_incomes"; `_` is literal.
        assert!(
            all(EntryFilter {
                product: Some("annual".into()),
                ..Default::default()
            })
            .await
            .is_empty()
        );
        assert!(
            all(EntryFilter {
                product: Some("annual_income_".into()),
                ..Default::default()
            })
            .await
            .is_empty()
        );
        let access = all(EntryFilter {
            kind: Some("access".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(access.len(), 1);
        let by_ref = |r: &str| EntryFilter {
            reference: Some(r.into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            s.log_entries(&by_ref("exchange:4")).await.unwrap()[0].index,
            4
        );
        // Quotes, backslashes, control characters and other scripts are kept byte for byte.
        let odd = AuditEntry::new(AuditKind::User, "user:zoë", "user:\"admin\"")
            .outcome("renamed \\ \u{0} \u{1b} Ελλάδα 🙂");
        let i = s.log_append(vec![odd.clone()]).await.unwrap();
        assert_eq!(
            s.log_entry_data(i, i + 1).await.unwrap()[0],
            odd.encode().unwrap()
        );
        assert_eq!(
            s.log_entries(&by_ref("user:zoë")).await.unwrap()[0].entry,
            odd
        );
        // Paging backwards: the next page starts below the last index seen.
        let page = s
            .log_entries(&EntryFilter {
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        let next = s
            .log_entries(&EntryFilter {
                limit: 100,
                before: Some(page[6].index),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len() + next.len(), 32);
        assert_eq!(next[0].index, page[6].index - 1);
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn exchange_records_have_their_entries_and_a_replay_has_none() {
    for t in crate::stores().await {
        let s = &t.store;
        let (seq, _) = s
            .begin_exchange(&crate::start("n1", "tax-office"))
            .await
            .unwrap();
        assert!(
            s.begin_exchange(&crate::start("n1", "tax-office"))
                .await
                .is_err()
        );
        let end = agora_model::ExchangeEnd {
            outcome: "ok".into(),
            rows: 3,
            context: agora_model::AuditContext {
                products: "annual_incomes".into(),
                agreements: "agr-1".into(),
                purposes: "fraud_prevention".into(),
                legal_bases: "legal_obligation".into(),
                subjects: Some(agora_model::SubjectCommitment {
                    count: 2,
                    root: "ab".repeat(32),
                }),
                groups: vec![],
                subject_tags: vec![7; 128],
            },
            ..Default::default()
        };
        s.finish_exchange(seq, &end).await.unwrap();
        // A record already complete is not completed (nor logged) again.
        s.finish_exchange(seq, &end).await.unwrap();
        let entries = s
            .log_entries(&EntryFilter {
                kind: Some("exchange".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let outcomes: Vec<&str> = entries.iter().map(|e| e.entry.outcome.as_str()).collect();
        assert_eq!(outcomes, ["ok", "started"], "{:?}", s.backend());
        let done = &entries[0].entry;
        assert_eq!(done.reference, format!("exchange:{seq}"));
        assert_eq!(done.peer.as_deref(), Some("tax-office"));
        assert_eq!(done.actor, "tax-office");
        assert_eq!(done.agreement.as_deref(), Some("agr-1"));
        assert_eq!(done.detail["legal_basis"], "legal_obligation");
        // The tags the entry commits to are kept beside it, never in it.
        assert_eq!(done.subjects.as_ref().map(|c| c.count), Some(2));
        assert!(!serde_json::to_string(done).unwrap().contains("0707"));
        assert_eq!(
            s.log_subject_tags(entries[0].index).await.unwrap(),
            Some(vec![7; 128])
        );
        assert_eq!(s.log_subject_tags(entries[1].index).await.unwrap(), None);
        let by_purpose = s
            .log_entries(&EntryFilter {
                purpose: Some("fraud_prevention".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_purpose.len(), 1);
        t.drop_schema().await;
    }
}

//! Products registered in place and queried through one node while another process (a
//! second `Node` on the same data directory, as the command line is) changes them.

use agora_model::{MemberId, PageRequest};
use agora_node::{ErrorKind, Node, NodeConfig, RegisterRequest};

const JOBS_CSV: &str = "job_id,title,salary\n1,Nurse,3200\n2,Welder,2900\n3,Clerk,2400\n";

async fn node(dir: &std::path::Path) -> Node {
    let member = MemberId::parse("employment-agency").unwrap();
    Node::init(&NodeConfig::new(dir), &member, "Employment Agency")
        .await
        .unwrap()
        .0
}

async fn count(node: &Node, sql: &str) -> Result<String, agora_node::NodeError> {
    let result = node.query(sql).await?;
    Ok(result.to_text_table(10).await?.0)
}

#[tokio::test]
async fn products_another_process_registers_or_removes_are_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let reader = node(&dir.path().join("node")).await;
    let writer = Node::open(&NodeConfig::new(dir.path().join("node")))
        .await
        .unwrap();
    let e = count(&reader, "SELECT count(*) AS n FROM jobs")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSql, "{e}");
    let path = dir.path().join("jobs.csv");
    std::fs::write(&path, JOBS_CSV).unwrap();
    writer
        .register(
            RegisterRequest {
                location: path.display().to_string(),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    let seen = count(&reader, "SELECT count(*) AS n FROM jobs")
        .await
        .unwrap();
    assert!(seen.contains('3'), "{seen}");
    writer.remove("jobs").await.unwrap();
    assert!(
        count(&reader, "SELECT count(*) AS n FROM jobs")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_registration_that_fails_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir.path().join("node")).await;
    let path = dir.path().join("ragged.csv");
    std::fs::write(&path, "a,b\n1,2\n3\n").unwrap();
    let e = node
        .register(
            RegisterRequest {
                location: path.display().to_string(),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(e.is_user_error(), "{e}");
    assert!(e.to_string().contains("line 3"), "{e}");
    let products = node.products(PageRequest::default()).await.unwrap();
    assert_eq!(products.total, 0);
    let e = node.product("ragged").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

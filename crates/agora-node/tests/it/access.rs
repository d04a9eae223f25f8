//! The access log of the node's own people and tools.

use agora_node::trust::TrustSettings;
use agora_node::{Accessor, Channel};
use futures::StreamExt;

use crate::World;

#[tokio::test]
async fn own_queries_of_products_are_logged_with_who_what_and_how_many_rows() {
    let w = World::new(TrustSettings::default()).await;
    let who = Accessor {
        principal: "user:ada".into(),
        channel: Channel::Web,
    };
    let sql = "SELECT person_id, income FROM annual_income WHERE year = 2021";
    let q = w.tax.query_logged(&who, None, sql).await.unwrap();
    assert_eq!(q.products, ["annual_income"]);
    // Recorded before the first row is read.
    let running = &w.tax.accesses(10).await.unwrap()[0];
    assert_eq!(running.outcome, "running");
    let mut batches = q.result.into_batches();
    let mut rows = 0;
    while let Some(b) = batches.next().await {
        rows += b.unwrap().num_rows();
    }
    drop(batches);
    w.tax.flush_access_log().await;
    let log = w.tax.accesses(10).await.unwrap();
    assert_eq!(log.len(), 1, "{log:#?}");
    let a = &log[0];
    assert_eq!(
        (
            a.principal.as_str(),
            a.channel.as_str(),
            a.products.as_str()
        ),
        ("user:ada", "web", "annual_income")
    );
    assert_eq!(a.outcome, "answered");
    assert_eq!(a.rows_returned, rows as i64);
    assert_eq!(rows, 10);
    // The SQL is kept as its digest only: it may quote personal data.
    assert_eq!(a.sql_digest, agora_trust::digest_hex(sql.as_bytes()));
    assert!(a.finished_at.is_some());

    // An answer its reader stops reading is logged as such, with the rows it got.
    let q = w
        .tax
        .query_logged(&who, None, "SELECT * FROM annual_income")
        .await
        .unwrap();
    drop(q);
    w.tax.flush_access_log().await;
    assert_eq!(
        w.tax.accesses(1).await.unwrap()[0].outcome,
        "stopped by the client"
    );

    // A query that reads no product is no data access.
    let q = w.tax.query_logged(&who, None, "SELECT 1").await.unwrap();
    drop(q);
    w.tax.flush_access_log().await;
    assert_eq!(w.tax.accesses(10).await.unwrap().len(), 2);
}

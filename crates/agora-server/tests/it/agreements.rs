//! Sharing agreements between real nodes on loopback: a request negotiated over the signed
//! exchange channel to an agreement both members sign, enforced by the owner on every
//! query; counter-offers, policy refusals, deadlines, revocation, tampering, and
//! pseudonyms that join only within one linkage purpose.

use std::time::Duration;

use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, MemberId, NegotiationRole,
    NegotiationState, ProductName,
};
use agora_node::trust::TrustSettings;
use agora_node::{Node, NodeError};

use crate::ecosystem::{Member, TestAuthority, member, member_with, start_authority};

/// Registers `name` at `node`: person ids, years and incomes, classified as given, with
/// `person_id` the subject identifier and the purposes it admits.
async fn register(
    node: &Node,
    dir: &std::path::Path,
    name: &str,
    classification: &str,
    purposes: &[&str],
) {
    let ids: Vec<String> = (0..40).map(|i| (10_000_000 + i).to_string()).collect();
    register_people(node, dir, name, classification, purposes, &ids).await;
}

/// [`register`] with these people's identifiers (one row each).
async fn register_people(
    node: &Node,
    dir: &std::path::Path,
    name: &str,
    classification: &str,
    purposes: &[&str],
    ids: &[String],
) {
    let path = dir.join(format!("{name}.csv"));
    let mut csv = String::from("person_id,year,income\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},{},{}\n", 2020 + i % 4, 20_000 + i * 1_000));
    }
    std::fs::write(&path, csv).unwrap();
    let patch: agora_model::MetadataPatch = serde_json::from_value(serde_json::json!({
        "title": format!("Incomes {name}"),
        "description": "taxable income per person and year",
        "classification": classification,
        "legal_basis": "Income Tax Act",
        "purposes": purposes,
        "columns": {"person_id": {"role": "subject_id"}},
    }))
    .unwrap();
    node.register(
        agora_node::RegisterRequest {
            location: path.display().to_string(),
            name: Some(name.into()),
            metadata: patch,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
}

pub(crate) struct World {
    pub tax: Member,
    pub ea: Member,
    dir: tempfile::TempDir,
    _a: TestAuthority,
}

pub(crate) async fn world(consumer: TrustSettings) -> World {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member_with(&a, dir.path(), "employment-agency", consumer).await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register(
        &tax.node,
        dir.path(),
        "annual_income",
        "personal",
        &["fraud_prevention"],
    )
    .await;
    ea.node.refresh_offers().await.unwrap();
    World {
        tax,
        ea,
        dir,
        _a: a,
    }
}

pub(crate) fn request(
    product: &str,
    purpose: &str,
    columns: &str,
    mode: AccessMode,
) -> AccessRequest {
    let now = chrono::Utc::now();
    AccessRequest {
        owner: MemberId::parse("tax-office").unwrap(),
        product: ProductName::parse(product).unwrap(),
        purpose: purpose.into(),
        legal_basis: "public_task".into(),
        justification: "checking unemployment allowances against declared income".into(),
        terms: AgreementTerms {
            columns: ColumnTerm::parse_list(columns).unwrap(),
            row_filter: None,
            mode,
            min_group_size: 5,
            max_rows: Some(100),
            measures: vec![],
            disclosure: (mode == AccessMode::Aggregate)
                .then(agora_model::DisclosureControl::standard),
            query_limits: Default::default(),
        },
        valid_from: now - chrono::Duration::minutes(1),
        valid_until: now + chrono::Duration::days(30),
    }
}

/// Waits until `node`'s side of negotiation `id` is in `state` (steps travel on their own
/// tasks), and returns it.
pub(crate) async fn reaches(
    node: &Node,
    id: &str,
    role: NegotiationRole,
    state: NegotiationState,
) -> agora_model::Negotiation {
    let mut last = None;
    for _ in 0..200 {
        if let Some(n) = node.store().negotiation(id, role).await.unwrap() {
            if n.state == state {
                return n;
            }
            last = Some(n);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("negotiation {id} ({role:?}) never reached {state}: {last:#?}");
}

/// Requests `r` from `owner`, has the owner's steward approve it, and returns the owner's
/// record once both sides hold the finalized agreement.
async fn agreed(owner: &Node, consumer: &Node, r: AccessRequest) -> agora_model::Negotiation {
    let n = consumer.request_access(r).await.unwrap();
    reaches(
        owner,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    owner.approve(&n.id, "").await.unwrap();
    reaches(
        consumer,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    reaches(
        owner,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Finalized,
    )
    .await
}

/// The owner's newest exchange entry that `wanted` accepts, once written (the end of an
/// answer is recorded just after the answer is sent).
async fn owner_entry(
    owner: &Node,
    wanted: impl Fn(&agora_model::AuditEntry) -> bool,
) -> agora_model::LoggedEntry {
    let mut found = Vec::new();
    for _ in 0..200 {
        found = owner
            .audit_entries(&agora_model::EntryFilter {
                kind: Some("exchange".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(i) = found.iter().position(|e| wanted(&e.entry)) {
            return found.swap_remove(i);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the owner logged no such exchange entry: {found:#?}");
}

async fn rows(node: &Node, sql: &str) -> Vec<arrow::array::RecordBatch> {
    use futures::TryStreamExt;
    let r = node.query(sql).await.unwrap();
    r.into_batches().try_collect().await.unwrap()
}

pub(crate) async fn count(node: &Node, sql: &str) -> i64 {
    let b = rows(node, sql).await;
    b[0].column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

async fn text(node: &Node, sql: &str) -> Result<String, NodeError> {
    let r = node.query(sql).await?;
    Ok(r.to_text_table(100).await?.0)
}

/// Runs `sql` through `node`'s HTTP API and returns its `agora-tables` and
/// `agora-agreements` headers.
/// What the API says a query read: `(agora-tables, agora-agreements,
/// agora-disclosure-control)`, and the CSV answer.
async fn api_read_under(
    node: &Node,
    sql: &str,
) -> (Option<String>, Option<String>, Option<String>, String) {
    let token = node
        .create_token(
            "test",
            agora_node::ApiRole::Analyst,
            &agora_node::Accessor::command_line(),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/query", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agora_server::serve(
        node.clone(),
        listener,
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(&token.secret)
        .json(&serde_json::json!({"sql": sql, "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let read = (
        header("agora-tables"),
        header("agora-agreements"),
        header("agora-disclosure-control"),
    );
    let body = r.text().await.unwrap();
    let _ = tx.send(());
    let _ = server.await;
    (read.0, read.1, read.2, body)
}

#[tokio::test]
async fn a_request_is_negotiated_to_an_agreement_both_sign_and_the_owner_enforces() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let sql = "SELECT person_id, income FROM \"tax-office\".annual_income ORDER BY income LIMIT 3";
    assert!(
        text(ea, sql)
            .await
            .unwrap_err()
            .to_string()
            .contains("agreement")
    );

    let n = ea
        .request_access(request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym,income=band:10000",
            AccessMode::Records,
        ))
        .await
        .unwrap();
    assert_eq!(n.state, NegotiationState::Requested);
    let at_owner = reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    assert_eq!(at_owner.consumer.as_str(), "employment-agency");
    // Nobody approved yet: still no access.
    assert!(text(ea, sql).await.is_err());

    tax.approve(&n.id, "checked by the data protection officer")
        .await
        .unwrap();
    let done = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    let owned = reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Finalized,
    )
    .await;
    // Both keep the same agreement with both signatures, which verify.
    assert_eq!(done.agreement, owned.agreement);
    assert_eq!(done.signatures, owned.signatures);
    agora_node::agreements::check_signatures(&done).unwrap();
    let odrl = done.agreement.as_ref().unwrap().to_odrl(&done.signatures);
    assert!(
        odrl["agora:signatures"]["owner"].is_string()
            && odrl["agora:signatures"]["consumer"].is_string()
    );
    let history: Vec<_> = ea
        .negotiation(&n.id, None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.state)
        .collect();
    use NegotiationState::*;
    assert_eq!(history, [Requested, Agreed, Verified, Finalized]);

    // The consumer sees pseudonyms and bands, never identifiers or exact incomes.
    ea.refresh_offers().await.unwrap();
    let out = text(ea, sql).await.unwrap();
    assert!(!out.contains("10000000") && out.contains("20000"), "{out}");
    let batches = rows(
        ea,
        "SELECT person_id FROM \"tax-office\".annual_income WHERE income = 20000",
    )
    .await;
    let col = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    let pseudonym = col.value(0).to_owned();
    assert_eq!(pseudonym.len(), 64, "{pseudonym}");
    // The owner's log entry for that answer commits to exactly whose records the query
    // read, as a count and a root over keyed tags — no identifier, no pseudonym. The
    // condition on a banded income is evaluated over the banded rows, so all 40 people's
    // rows were read to find the 10 sent.
    let logged = owner_entry(tax, |e| {
        e.subjects.is_some() && e.detail.get("rows").and_then(|r| r.as_i64()) == Some(10)
    })
    .await;
    let entry = logged.entry;
    let all: Vec<String> = (10_000_000..10_000_040).map(|i| i.to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(entry.subjects, Some(tax.subject_commitment(&all).unwrap()));
    assert_ne!(
        entry.subjects,
        Some(tax.subject_commitment(&all[1..]).unwrap()),
        "one person fewer is another commitment"
    );
    // The owner keeps the tags beside the entry, and they are what it committed to.
    let kept = tax.log_subjects(logged.index).await.unwrap().unwrap();
    assert_eq!(kept.len(), 40);
    assert_eq!(
        hex::encode(kept.root().unwrap().0),
        entry.subjects.as_ref().unwrap().root
    );
    let text_of_entry = serde_json::to_string(&entry).unwrap();
    assert!(
        !text_of_entry.contains("10000000") && !text_of_entry.contains(&pseudonym),
        "{text_of_entry}"
    );
    // Columns outside the agreement do not exist for the consumer.
    assert!(
        text(ea, "SELECT year FROM \"tax-office\".annual_income")
            .await
            .is_err()
    );
    // Only the owner maps a pseudonym back.
    let back = tax
        .reidentify(&n.id, &[pseudonym.clone(), "ff".repeat(32)])
        .await
        .unwrap();
    assert_eq!(back[1].1, None);
    assert!(
        back[0]
            .1
            .as_deref()
            .is_some_and(|id| id.starts_with("100000")),
        "{back:?}"
    );

    // The owner logged why it let the request through.
    let decisions = tax.policy_decisions(10).await.unwrap();
    assert!(
        decisions.iter().any(|d| d.action == "request"
            && d.decision == "allow"
            && d.policies.contains(&"baseline/admitted-purpose".to_owned())),
        "{decisions:#?}"
    );

    // The API names what a query read, and under which agreement, from the plan (a CTE
    // hides neither).
    let (tables, agreements, disclosure, _) = api_read_under(
        ea,
        "WITH t AS (SELECT * FROM \"tax-office\".annual_income) SELECT count(*) FROM t",
    )
    .await;
    assert_eq!(tables.as_deref(), Some("\"tax-office\".annual_income"));
    assert_eq!(agreements.as_deref(), Some(n.id.as_str()));
    assert_eq!(disclosure, None, "a records agreement withholds no groups");

    // The consumer revokes: the owner stops serving at once when the message arrives.
    ea.terminate(&n.id, "the investigation is closed")
        .await
        .unwrap();
    let ended = reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Terminated,
    )
    .await;
    assert!(ended.reason.unwrap().contains("investigation is closed"));
    let e = text(ea, sql).await.unwrap_err().to_string();
    assert!(e.contains("agreement"), "{e}");
}

#[tokio::test]
async fn a_counter_offer_accepted_by_the_consumer_becomes_the_agreement() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let n = ea
        .request_access(request(
            "annual_income",
            "fraud_prevention",
            "person_id,year,income",
            AccessMode::Records,
        ))
        .await
        .unwrap();
    reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    let offer = AgreementTerms {
        columns: ColumnTerm::parse_list("person_id,year,income=band:5000").unwrap(),
        row_filter: Some("year >= 2021".into()),
        mode: AccessMode::Aggregate,
        min_group_size: 5,
        max_rows: None,
        measures: vec![],
        disclosure: Some(agora_model::DisclosureControl::standard()),
        query_limits: Default::default(),
    };
    tax.counter_offer(
        &n.id,
        offer.clone(),
        "aggregates are enough for this purpose",
    )
    .await
    .unwrap();
    let got = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Offered,
    )
    .await;
    assert_eq!(got.offer.as_ref(), Some(&offer));
    // An owner cannot approve what is under offer; only the consumer can move it on.
    assert!(tax.approve(&n.id, "").await.is_err());
    ea.accept_offer(&n.id).await.unwrap();
    let done = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    assert_eq!(done.agreement.unwrap().terms, offer);
    ea.refresh_offers().await.unwrap();
    // Aggregate mode: counts per year (10 people each), perturbed by at most 2, rows
    // before 2021 filtered out, records refused.
    let out = text(
        ea,
        "SELECT year, count(*) AS n FROM \"tax-office\".annual_income GROUP BY year ORDER BY year",
    )
    .await
    .unwrap();
    assert!(out.contains("2021") && !out.contains("2020"), "{out}");
    let counts: Vec<i64> = out
        .lines()
        .filter_map(|l| l.split('|').nth(2)?.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{out}");
    assert!(counts.iter().all(|n| (8..=12).contains(n)), "{out}");
    // The owner's entry records the groups' sizes (10 people a year, exactly), not who.
    let entry = owner_entry(tax, |e| e.detail.contains_key("groups"))
        .await
        .entry;
    assert_eq!(entry.subjects, None, "{entry:?}");
    let groups = &entry.detail["groups"][0];
    assert_eq!(
        groups["sizes"],
        serde_json::json!([10, 10, 10]),
        "{entry:?}"
    );
    assert_eq!(
        (groups["shown"].as_u64(), groups["withheld"].as_u64()),
        (Some(3), Some(0))
    );
    // Groups of one or two people are all withheld: the answer is empty, and says why —
    // but not how many groups there were (that would tell whether small groups exist).
    let (_, agreements, disclosure, body) = api_read_under(
        ea,
        "SELECT year, income, count(*) AS n FROM \"tax-office\".annual_income GROUP BY year, income",
    )
    .await;
    assert_eq!(body.lines().count(), 1, "only the header: {body}");
    assert_eq!(agreements.as_deref(), Some(n.id.as_str()));
    let disclosure = disclosure.expect("an agora-disclosure-control header");
    assert!(
        disclosure.contains("groups of fewer than 5 people are withheld")
            && disclosure.contains("how many groups were withheld is not said"),
        "{disclosure}"
    );
    assert!(
        text(ea, "SELECT person_id FROM \"tax-office\".annual_income")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_altered_agreement_is_not_applied() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let mut n = agreed(
        tax,
        ea,
        request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym",
            AccessMode::Records,
        ),
    )
    .await;
    ea.refresh_offers().await.unwrap();
    assert!(
        text(ea, "SELECT person_id FROM \"tax-office\".annual_income")
            .await
            .is_ok()
    );
    // Someone with access to the owner's database widens the terms.
    let a = n.agreement.as_mut().unwrap();
    a.terms.columns = ColumnTerm::parse_list("person_id,income").unwrap();
    let event = agora_model::NegotiationEvent {
        at: chrono::Utc::now(),
        state: NegotiationState::Finalized,
        actor: MemberId::parse("tax-office").unwrap(),
        note: "edited".into(),
    };
    tax.store()
        .advance_negotiation(&n, NegotiationState::Finalized, &event)
        .await
        .unwrap();
    let e = text(ea, "SELECT person_id FROM \"tax-office\".annual_income")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("altered"), "{e}");
}

#[tokio::test]
async fn pseudonyms_join_within_one_linkage_purpose_and_never_across_purposes() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    // A second owner with the same people, and a second product for another purpose.
    let pr = member(&w._a, w.dir.path(), "population-registry").await;
    for m in [tax, &pr.node] {
        m.trust().unwrap().refresh().await.unwrap();
    }
    // The data sits beside the node's data directory, never in it (refused).
    register(
        &pr.node,
        w.dir.path(),
        "residents",
        "personal",
        &["fraud_prevention"],
    )
    .await;
    register(tax, w.dir.path(), "debts", "personal", &["debt_recovery"]).await;
    ea.trust().unwrap().refresh().await.unwrap();
    ea.refresh_offers().await.unwrap();
    for (owner, product, purpose) in [
        ("tax-office", "annual_income", "fraud_prevention"),
        ("population-registry", "residents", "fraud_prevention"),
        ("tax-office", "debts", "debt_recovery"),
    ] {
        let mut r = request(
            product,
            purpose,
            "person_id=pseudonym,income",
            AccessMode::Linkage,
        );
        r.owner = MemberId::parse(owner).unwrap();
        let owner_node = if owner == "tax-office" { tax } else { &pr.node };
        agreed(owner_node, ea, r).await;
    }
    ea.refresh_offers().await.unwrap();
    // Same purpose, same consumer: the two owners' pseudonyms join, person by person.
    assert_eq!(
        count(ea, "SELECT count(*) FROM \"tax-office\".annual_income t JOIN \"population-registry\".residents r ON t.person_id = r.person_id").await,
        40
    );
    // Another purpose: nothing joins.
    assert_eq!(
        count(ea, "SELECT count(*) FROM \"tax-office\".annual_income t JOIN \"tax-office\".debts d ON t.person_id = d.person_id").await,
        0
    );
    // The consumer cannot get the key that makes its pseudonyms.
    let e = ea
        .trust()
        .unwrap()
        .linkage_key("fraud_prevention", ea.member(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("never the consumer"), "{e}");
}

#[tokio::test]
async fn an_agreement_serves_only_its_consumer_and_only_until_it_expires() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let other = member(&w._a, w.dir.path(), "population-registry").await;
    for m in [tax, ea] {
        m.trust().unwrap().refresh().await.unwrap();
    }
    other.node.refresh_offers().await.unwrap();
    let mut r = request(
        "annual_income",
        "fraud_prevention",
        "person_id=pseudonym,income",
        AccessMode::Records,
    );
    r.valid_until = chrono::Utc::now() + chrono::Duration::seconds(3);
    agreed(tax, ea, r).await;
    ea.refresh_offers().await.unwrap();
    let sql = "SELECT count(*) FROM \"tax-office\".annual_income";
    assert_eq!(count(ea, sql).await, 40);
    // Another member's query finds no agreement of its own.
    let e = text(&other.node, sql).await.unwrap_err().to_string();
    assert!(e.contains("agreement"), "{e}");
    // Once the validity ends, the owner refuses and says so.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let e = text(ea, sql).await.unwrap_err().to_string();
    assert!(e.contains("expired"), "{e}");
}

#[tokio::test]
async fn a_broader_request_for_the_same_purpose_changes_nothing_until_a_steward_supersedes() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let narrow = agreed(
        tax,
        ea,
        request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym,income=band:10000",
            AccessMode::Records,
        ),
    )
    .await;
    let unbanded = "SELECT count(*) FROM \"tax-office\".annual_income WHERE income % 10000 <> 0";
    assert_eq!(count(ea, unbanded).await, 0);

    // The same product and purpose again, with the income unmasked.
    let wide = ea
        .request_access(request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym,income",
            AccessMode::Records,
        ))
        .await
        .unwrap();
    reaches(
        tax,
        &wide.id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    // Pending: what is served has not changed.
    assert_eq!(count(ea, unbanded).await, 0);
    // The policies saw that it would replace an agreement in force.
    let decisions = tax.store().policy_decisions(50).await.unwrap();
    assert!(
        decisions.iter().any(|d| d.context_json.contains(&wide.id)
            && d.context_json
                .contains("\"replaces_agreement_in_force\":true")),
        "{decisions:#?}"
    );
    // Approving it as it is would replace the narrow one: refused, saying what to do.
    let e = tax.approve(&wide.id, "").await.unwrap_err().to_string();
    assert!(e.contains("supersede") && e.contains(&narrow.id), "{e}");
    assert_eq!(count(ea, unbanded).await, 0);

    // The steward decides to replace it.
    tax.approve_superseding(&wide.id, "replaces the banded agreement", true)
        .await
        .unwrap();
    let done = reaches(
        tax,
        &wide.id,
        NegotiationRole::Provider,
        NegotiationState::Finalized,
    )
    .await;
    assert_eq!(
        done.agreement.as_ref().unwrap().supersedes.as_deref(),
        Some(narrow.id.as_str())
    );
    let old = reaches(
        tax,
        &narrow.id,
        NegotiationRole::Provider,
        NegotiationState::Terminated,
    )
    .await;
    assert!(old.reason.unwrap().contains("superseded"));
    reaches(
        ea,
        &wide.id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    reaches(
        ea,
        &narrow.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    assert!(count(ea, unbanded).await > 0);
}

/// Runs `sql` as a signed member query sent straight to the tax office, as a consumer that
/// modified its own node could, and returns the refusal or failure it ends with.
async fn straight_to_owner(consumer: &Node, sql: &str) -> Result<usize, String> {
    use futures::TryStreamExt;
    let stream = consumer
        .remote_query("tax-office", sql)
        .await
        .map_err(|e| e.to_string())?;
    let batches: Vec<arrow::array::RecordBatch> =
        stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

#[tokio::test]
async fn aggregate_attacks_are_refused_alike_through_the_node_and_straight_to_the_owner() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let mut r = request(
        "annual_income",
        "fraud_prevention",
        "person_id,year,income",
        AccessMode::Aggregate,
    );
    r.terms.measures = vec!["income".into()];
    agreed(tax, ea, r).await;
    for (attack, expected) in [
        (
            "SELECT sum(CASE WHEN person_id = '10000001' THEN income ELSE 0 END) FROM {t}",
            "must be a column as it is",
        ),
        (
            "SELECT count(*) FROM {t} WHERE income > 58000",
            "uses income, the measure",
        ),
        (
            "SELECT count(*) FROM {t} WHERE person_id <> '10000001'",
            "uses person_id, the subject",
        ),
        ("SELECT max(income) FROM {t}", "not MAX"),
        (
            "SELECT count(*) FROM {t} WHERE CASE WHEN year = 2021 THEN CAST('x' AS INT) ELSE 0 END = 0",
            "CAST",
        ),
        ("SELECT * FROM {t}", "tables only, not rows"),
    ] {
        let via_node = text(ea, &attack.replace("{t}", "\"tax-office\".annual_income"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &via_node,
                NodeError::Engine(agora_node::EngineError::RemoteRefused(_))
            ),
            "{attack}: {via_node:?}"
        );
        assert!(
            via_node.to_string().contains(expected),
            "{attack}: {via_node}"
        );
        let direct = straight_to_owner(ea, &attack.replace("{t}", "annual_income"))
            .await
            .unwrap_err();
        assert!(direct.contains(expected), "{attack}: {direct}");
    }
    // A table asked for twice, or asked for in another shape, carries the same noise.
    let table = "SELECT year, count(*), sum(income) FROM \"tax-office\".annual_income GROUP BY year ORDER BY year";
    let once = text(ea, table).await.unwrap();
    assert_eq!(once, text(ea, table).await.unwrap());
    let cell = |sql: &'static str| async move { text(ea, sql).await.unwrap() };
    let a = cell("SELECT count(*) AS n FROM \"tax-office\".annual_income WHERE year = 2021").await;
    let b = cell(
        "WITH t AS (SELECT year AS y FROM \"tax-office\".annual_income) SELECT count(1) AS n FROM t WHERE y = 2021",
    )
    .await;
    assert_eq!(a, b);
}

/// Waits until the authority has witnessed a checkpoint of `node`'s log that holds entry
/// `index`.
pub(crate) async fn witnessed_past(node: &Node, index: u64) {
    for _ in 0..200 {
        let c = node.checkpoint().await.unwrap();
        if c.is_some_and(|c| c.size > index && c.witnessed.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no witnessed checkpoint holds entry {index}");
}

/// The tax office answering the employment agency's citizen portal (`citizens`: the
/// `[citizens]` table of its `node.toml`), with `ids` in its `annual_income`, an agreement
/// for `columns` in records mode, and the agency's query `sql` answered, logged and
/// witnessed on both sides. Returns the world and the tax office's entry for the answer.
pub(crate) async fn portal_world(
    citizens: &str,
    ids: &[String],
    (columns, legal_basis): (&str, &str),
    sql: &str,
) -> (World, agora_model::LoggedEntry) {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tax-office")).unwrap();
    std::fs::write(
        dir.path().join("tax-office/node.toml"),
        format!("[citizens]\n{citizens}"),
    )
    .unwrap();
    let w = World {
        tax: member(&a, dir.path(), "tax-office").await,
        ea: member(&a, dir.path(), "employment-agency").await,
        dir,
        _a: a,
    };
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    tax.trust().unwrap().refresh().await.unwrap();
    register_people(
        tax,
        w.dir.path(),
        "annual_income",
        "personal",
        &["fraud_prevention"],
        ids,
    )
    .await;
    ea.refresh_offers().await.unwrap();
    let mut r = request(
        "annual_income",
        "fraud_prevention",
        columns,
        AccessMode::Records,
    );
    r.legal_basis = legal_basis.into();
    agreed(tax, ea, r).await;
    ea.refresh_offers().await.unwrap();
    rows(ea, sql).await;
    let logged = owner_entry(tax, |e| e.subjects.is_some()).await;
    witnessed_past(tax, logged.index).await;
    witnessed_past(ea, 0).await;
    (w, logged)
}

#[tokio::test]
async fn a_resident_sees_every_access_to_their_records_proven_complete_and_an_omission_is_caught() {
    // The tax office answers the employment agency's citizen portal, eight lookups a minute
    // (a resident's history costs three: the tag, the bucket, the holdings).
    let ids: Vec<String> = (0..40).map(|i| (10_000_000 + i).to_string()).collect();
    let (w, logged) = portal_world(
        "portals = [\"employment-agency\"]\nlookups_per_minute = 8\n",
        &ids,
        ("person_id=pseudonym,income=band:10000", "public_task"),
        "SELECT person_id FROM \"tax-office\".annual_income WHERE income = 20000",
    )
    .await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);

    // A resident whose row the query read: the tax office's log holds that one access,
    // proven in its witnessed log and complete up to the checkpoint; the agency's own log
    // holds none.
    let history = ea.citizen_history("10000003").await.unwrap();
    let part = |h: &agora_node::citizen::CitizenHistory, m: &str| {
        h.members
            .iter()
            .find(|p| p.member.as_str() == m)
            .unwrap()
            .outcome
            .clone()
    };
    let at_tax = part(&history, "tax-office").unwrap();
    // Which products hold them, without the tax office learning whom the portal asked for.
    let holds = |h: &agora_node::citizen::CitizenHistory, m: &str| {
        h.members
            .iter()
            .find(|p| p.member.as_str() == m)
            .unwrap()
            .holdings
            .clone()
            .unwrap()
    };
    assert_eq!(holds(&history, "tax-office"), ["Incomes annual_income"]);
    assert!(holds(&history, "employment-agency").is_empty());
    assert_eq!(
        at_tax
            .accesses
            .iter()
            .map(|a| (a.index, a.entry.purpose.as_deref()))
            .collect::<Vec<_>>(),
        [(logged.index, Some("fraud_prevention"))]
    );
    assert_eq!(
        at_tax.accesses[0].entry.peer.as_deref(),
        Some("employment-agency")
    );
    assert!(at_tax.size > logged.index);
    assert!(
        part(&history, "employment-agency")
            .unwrap()
            .accesses
            .is_empty()
    );
    // Someone the tax office holds nothing on: provably no access.
    let nobody = ea.citizen_history("99999999").await.unwrap();
    assert!(part(&nobody, "tax-office").unwrap().accesses.is_empty());
    assert!(holds(&nobody, "tax-office").is_empty());

    // The tax office leaves the access out of its answer: the portal's check fails.
    let tag = tax.subject_tag("10000003").unwrap();
    let mut answer = tax
        .subject_history(
            ea.member(),
            &agora_model::SubjectHistoryRequest {
                bucket: tag[0],
                size: Some(at_tax.size),
                after: None,
            },
        )
        .await
        .unwrap();
    let trust = tax.trust().unwrap();
    let material = trust.material();
    let keys = agora_node::citizen::LogKeys {
        origin: agora_model::audit_origin(&trust.list().ecosystem, tax.member()),
        node: material.key.public(),
        witness: agora_model::witness_name(&trust.list().ecosystem),
        root: &material.root_info.public_key,
    };
    let key = tax.subject_public_key().unwrap();
    agora_node::citizen::verify_history(&keys, &tag, &key, std::slice::from_ref(&answer)).unwrap();
    let mine = hex::encode(tag);
    let element = answer.elements.iter_mut().find(|e| e.tag == mine).unwrap();
    element.entries.retain(|n| *n != logged.index);
    if element.entries.is_empty() {
        answer.elements.retain(|e| e.tag != mine);
    }
    let caught = agora_node::citizen::verify_history(&keys, &tag, &key, &[answer]).unwrap_err();
    assert!(caught.contains("left out"), "{caught}");

    // The tax office answers only the portals its owner named, and only so often.
    let refused = tax.citizen_history("10000003").await.unwrap();
    let e = part(&refused, "employment-agency").unwrap_err();
    assert!(e.contains("not a citizen portal"), "{e}");
    let limited = ea.citizen_history("10000003").await.unwrap();
    let e = part(&limited, "tax-office").unwrap_err();
    assert!(e.contains("a minute"), "{e}");
}

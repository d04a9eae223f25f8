//! Negotiations between two nodes in one process: policy refusals, deadlines, answers to
//! offers, re-identification, tampering, and steps that cannot be delivered.

use std::time::Duration;

use agora_model::{AccessMode, AgreementTerms, ColumnTerm, NegotiationRole, NegotiationState};
use agora_node::trust::TrustSettings;

use crate::{World, reaches, request};

#[tokio::test]
async fn requests_the_policies_forbid_end_on_both_sides_with_the_rule_that_refused() {
    let w = World::new(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax, &w.ea);
    w.register("tax_audits", "sensitive", &["fraud_prevention"])
        .await;
    let records = request(
        "tax_audits",
        "fraud_prevention",
        "person_id=pseudonym,income",
        AccessMode::Records,
    );
    // The baseline policies are every node's: the consumer's own node refuses what they
    // forbid, in the owner's words, and sends nothing.
    let e = ea.request_access(records.clone()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("tax-office would refuse this request")
            && e.to_string().contains("baseline/sensitive-never-records"),
        "{e}"
    );
    assert!(ea.negotiations(None, None, 10).await.unwrap().is_empty());
    // A consumer whose copy of the offer is out of date (it says personal) still meets the
    // owner's refusal, on both sides, with the rule that refused.
    let owner = tax.member().clone();
    let mut offers = ea.store().offers(Some(&owner)).await.unwrap();
    for o in offers
        .iter_mut()
        .filter(|o| o.name.as_str() == "tax_audits")
    {
        o.metadata.classification = agora_model::Classification::Personal;
    }
    ea.store()
        .replace_offers(&owner, &offers, chrono::Utc::now())
        .await
        .unwrap();
    let n = ea.request_access(records).await.unwrap();
    let ours = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    let theirs = reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Terminated,
    )
    .await;
    for r in [ours.reason.unwrap(), theirs.reason.unwrap()] {
        assert!(r.contains("baseline/sensitive-never-records"), "{r}");
    }
    let d = &tax.policy_decisions(1).await.unwrap()[0];
    assert_eq!(
        (d.decision.as_str(), d.action.as_str()),
        ("deny", "request")
    );

    // A purpose the product does not admit is refused by the consumer's own node, which
    // names the purposes that would be accepted, before anything is sent.
    let job_matching = request(
        "annual_income",
        "job_matching",
        "person_id=pseudonym",
        AccessMode::Records,
    );
    let e = ea.request_access(job_matching.clone()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("admits the purposes fraud_prevention")
            && e.to_string().contains("\"job_matching\" is not among them"),
        "{e}"
    );
    // A consumer whose copy of the offer says otherwise (stale, or altered) still meets
    // the owner's refusal, by default and with the admitted purposes named.
    let owner = tax.member().clone();
    let mut offers = ea.store().offers(Some(&owner)).await.unwrap();
    for o in &mut offers {
        o.metadata.purposes.push("job_matching".into());
    }
    ea.store()
        .replace_offers(&owner, &offers, chrono::Utc::now())
        .await
        .unwrap();
    let n = ea.request_access(job_matching).await.unwrap();
    let ours = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    let reason = ours.reason.unwrap();
    assert!(
        reason.contains("no policy permits it")
            && reason.contains("admits the purposes fraud_prevention"),
        "{reason}"
    );

    // Bad requests never leave the consumer's node.
    let e = ea
        .request_access(request(
            "annual_income",
            "fraud_prevention",
            "shoe_size",
            AccessMode::Records,
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("shoe_size"), "{e}");
    let e = ea
        .request_access(request(
            "annual_income",
            "astrology",
            "income",
            AccessMode::Records,
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("astrology"), "{e}");
    let e = ea
        .request_access(request(
            "no_such_product",
            "fraud_prevention",
            "income",
            AccessMode::Records,
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no_such_product"), "{e}");
}

#[tokio::test]
async fn negotiations_past_their_deadline_end_on_both_sides() {
    let w = World::new(TrustSettings {
        negotiation_timeout: chrono::Duration::milliseconds(800),
        ..Default::default()
    })
    .await;
    let (tax, ea) = (&w.tax, &w.ea);
    let n = ea
        .request_access(request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym",
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
    tokio::time::sleep(Duration::from_millis(900)).await;
    // The owner's own timer ends it (the deadline travelled with the request) …
    assert_eq!(tax.expire_negotiations().await.unwrap(), 1);
    // … and the consumer learns it, or ends it itself: both agree.
    let ours = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    assert!(ours.reason.unwrap().contains("deadline"));
    assert_eq!(ea.expire_negotiations().await.unwrap(), 0);
    assert!(tax.approve(&n.id, "").await.is_err());
}

#[tokio::test]
async fn a_counter_request_the_owner_cannot_accept_ends_the_negotiation_on_both_sides() {
    let w = World::new(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax, &w.ea);
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
        columns: ColumnTerm::parse_list("person_id=pseudonym,income=band:5000").unwrap(),
        row_filter: None,
        mode: AccessMode::Records,
        min_group_size: 5,
        max_rows: Some(100),
        measures: vec![],
        disclosure: None,
        query_limits: Default::default(),
    };
    tax.counter_offer(&n.id, offer, "").await.unwrap();
    reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Offered,
    )
    .await;
    // Only an OFFERED negotiation can be answered with other terms, and only by its consumer.
    assert!(
        tax.counter_request(&n.id, n.request.terms.clone(), "")
            .await
            .is_err()
    );
    // Terms naming a column the product does not have are refused before anything is sent.
    let unknown = AgreementTerms {
        columns: ColumnTerm::parse_list("person_id,shoe_size").unwrap(),
        ..n.request.terms.clone()
    };
    let e = ea.counter_request(&n.id, unknown, "").await.unwrap_err();
    assert!(e.to_string().contains("shoe_size"), "{e}");
    assert_eq!(
        ea.negotiation(&n.id, None).await.unwrap().negotiation.state,
        NegotiationState::Offered
    );
    // A row filter the owner's engine cannot use is refused by the owner: both sides end.
    let bad_filter = AgreementTerms {
        row_filter: Some("no_such_column > 1".into()),
        ..n.request.terms.clone()
    };
    ea.counter_request(&n.id, bad_filter, "a narrower selection")
        .await
        .unwrap();
    let ended = reaches(
        ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    assert!(
        ended.reason.unwrap_or_default().contains("refused"),
        "the consumer learns why"
    );
    reaches(
        tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Terminated,
    )
    .await;
}

/// Requests `r` from the tax office, has its steward approve it, and returns the owner's
/// record once both sides hold the finalized agreement.
async fn agreed(w: &World, r: agora_model::AccessRequest) -> agora_model::Negotiation {
    let n = w.ea.request_access(r).await.unwrap();
    reaches(
        &w.tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    w.tax.approve(&n.id, "").await.unwrap();
    reaches(
        &w.ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    reaches(
        &w.tax,
        &n.id,
        NegotiationRole::Provider,
        NegotiationState::Finalized,
    )
    .await
}

#[tokio::test]
async fn both_sides_sign_and_only_the_owner_may_reidentify() {
    let w = World::new(TrustSettings::default()).await;
    // (Pseudonymised terms need the authority's linkage keys, served over HTTPS: the
    // server's tests cover them.)
    let n = agreed(
        &w,
        request(
            "annual_income",
            "fraud_prevention",
            "person_id,income",
            AccessMode::Records,
        ),
    )
    .await;
    // Both records hold both signatures, and both verify.
    let theirs = w.ea.negotiation(&n.id, None).await.unwrap().negotiation;
    for record in [&n, &theirs] {
        agora_node::agreements::check_signatures(record).unwrap();
    }
    assert_eq!(theirs.agreement, n.agreement);
    let consumer_side =
        w.ea.agreements_in_force(NegotiationRole::Consumer)
            .await
            .unwrap();
    assert_eq!(consumer_side.len(), 1);
    // The consumer holds no owner's record to map anything back with, and is told that
    // only the owner can (not that the agreement it holds does not exist).
    let e = w.ea.reidentify(&n.id, &["abc".into()]).await.unwrap_err();
    assert_eq!(e.kind(), agora_node::ErrorKind::Forbidden, "{e}");
    assert!(
        e.to_string()
            .contains("only the owner of the data, tax-office"),
        "{e}"
    );
    // An id neither side knows is still not found.
    let e =
        w.ea.reidentify("no-such-id", &["abc".into()])
            .await
            .unwrap_err();
    assert_eq!(e.kind(), agora_node::ErrorKind::NotFound, "{e}");
    // The owner refuses for an agreement that shares no pseudonyms.
    let e = w
        .tax
        .reidentify(&n.id, &["abc".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("shares no pseudonyms"), "{e}");
}

#[tokio::test]
async fn an_agreement_altered_in_the_owners_store_is_not_in_force() {
    let w = World::new(TrustSettings::default()).await;
    let mut n = agreed(
        &w,
        request(
            "annual_income",
            "fraud_prevention",
            "person_id,income",
            AccessMode::Records,
        ),
    )
    .await;
    let in_force = w
        .tax
        .agreements_in_force(NegotiationRole::Provider)
        .await
        .unwrap();
    assert_eq!(in_force.len(), 1);
    // Someone with access to the owner's database widens the terms.
    let a = n.agreement.as_mut().unwrap();
    a.terms.columns = ColumnTerm::parse_list("person_id,year,income").unwrap();
    let event = agora_model::NegotiationEvent {
        at: chrono::Utc::now(),
        state: NegotiationState::Finalized,
        actor: w.tax.member().clone(),
        note: "edited".into(),
    };
    w.tax
        .store()
        .advance_negotiation(&n, NegotiationState::Finalized, &event)
        .await
        .unwrap();
    let e = agora_node::agreements::check_signatures(&n).unwrap_err();
    assert!(e.contains("altered"), "{e}");
    assert!(
        w.tax
            .agreements_in_force(NegotiationRole::Provider)
            .await
            .unwrap()
            .is_empty()
    );
    // What is shown of it comes from verification, not from the state it was left in.
    let stored = w
        .tax
        .negotiation(&n.id, Some(NegotiationRole::Provider))
        .await
        .unwrap()
        .negotiation;
    assert_eq!(stored.state, NegotiationState::Finalized);
    let status = agora_node::agreements::agreement_status(&stored, chrono::Utc::now()).unwrap();
    assert!(!status.in_force(), "{status}");
    assert!(status.to_string().starts_with("NOT in force"), "{status}");
    // The consumer's untouched copy is in force.
    let theirs =
        w.ea.negotiation(&n.id, Some(NegotiationRole::Consumer))
            .await
            .unwrap()
            .negotiation;
    assert!(
        agora_node::agreements::agreement_status(&theirs, chrono::Utc::now())
            .unwrap()
            .in_force()
    );
}

#[tokio::test]
async fn removing_a_product_read_under_agreements_revokes_them_or_is_refused() {
    let w = World::new(TrustSettings::default()).await;
    let n = agreed(
        &w,
        request(
            "annual_income",
            "fraud_prevention",
            "person_id,income",
            AccessMode::Records,
        ),
    )
    .await;
    // Refused, naming the agreement, while it is in force.
    let e = w.tax.remove("annual_income").await.unwrap_err().to_string();
    assert!(e.contains(&n.id) && e.contains("revoke"), "{e}");
    assert!(w.tax.product("annual_income").await.is_ok());
    // With revocation: the agreement ends on both sides, and registering a product of the
    // same name again does not revive it.
    let revoked = w.tax.remove_product("annual_income", true).await.unwrap();
    assert_eq!(revoked, vec![n.id.clone()]);
    let theirs = reaches(
        &w.ea,
        &n.id,
        NegotiationRole::Consumer,
        NegotiationState::Terminated,
    )
    .await;
    assert!(theirs.reason.unwrap().contains("withdrawn"));
    w.register("annual_income", "personal", &["fraud_prevention"])
        .await;
    assert!(
        w.tax
            .agreements_in_force(NegotiationRole::Provider)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn steps_to_an_unreachable_member_wait_in_the_outbox_until_the_deadline_ends_them() {
    let w = World::with(
        TrustSettings {
            negotiation_timeout: chrono::Duration::milliseconds(800),
            ..Default::default()
        },
        false,
    )
    .await;
    let n =
        w.ea.request_access(request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym",
            AccessMode::Records,
        ))
        .await
        .unwrap();
    assert_eq!(n.state, NegotiationState::Requested);
    // Nothing listens at the owner's endpoint: the step stays owed, with its failure noted.
    assert_eq!(w.ea.deliver_outbox().await.unwrap(), 0);
    let record = w.ea.negotiation(&n.id, None).await.unwrap();
    assert_eq!(record.undelivered, 1);
    let owed = w.ea.store().pending_messages().await.unwrap();
    assert!(owed[0].attempts >= 1, "{owed:?}");
    assert!(
        w.tax
            .store()
            .negotiation(&n.id, NegotiationRole::Provider)
            .await
            .unwrap()
            .is_none()
    );
    // The consumer's own timer ends it, and owes the owner the news as well.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(w.ea.expire_negotiations().await.unwrap(), 1);
    let record = w.ea.negotiation(&n.id, None).await.unwrap();
    assert_eq!(record.negotiation.state, NegotiationState::Terminated);
    assert!(record.negotiation.reason.unwrap().contains("deadline"));
    assert_eq!(record.undelivered, 2);
    assert_eq!(w.ea.expire_negotiations().await.unwrap(), 0);
}

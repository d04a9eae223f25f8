//! Policy decisions over the demo ecosystem's products.

use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, Mask, MemberId, ProductMetadata,
    ProductName,
};
use agora_policy::{PolicyAction, PolicyEngine, PolicyError, RequestFacts};
use chrono::{Duration, Utc};

fn metadata(classification: &str, purposes: &[&str], legal_basis: bool) -> ProductMetadata {
    let mut v = serde_json::json!({
        "title": "Product",
        "owner": "employment-agency",
        "classification": classification,
        "purposes": purposes,
        "columns": {
            "person_id": {"role": "subject_id"},
            "given_name": {"role": "direct_identifier"},
            "birth_date": {"role": "quasi_identifier"},
        },
    });
    if legal_basis {
        v["legal_basis"] = "Employment Services Act, section 7".into();
    }
    serde_json::from_value(v).unwrap()
}

fn request(
    purpose: &str,
    legal_basis: &str,
    mode: AccessMode,
    columns: &[(&str, Option<Mask>)],
) -> AccessRequest {
    let now = Utc::now();
    AccessRequest {
        owner: MemberId::parse("employment-agency").unwrap(),
        product: ProductName::parse("job_seekers").unwrap(),
        purpose: purpose.into(),
        legal_basis: legal_basis.into(),
        justification: "to match job seekers with vacancies".into(),
        terms: AgreementTerms {
            columns: columns
                .iter()
                .map(|(n, m)| ColumnTerm {
                    name: n.to_string(),
                    mask: *m,
                })
                .collect(),
            row_filter: None,
            mode,
            min_group_size: 5,
            max_rows: None,
            measures: vec![],
            disclosure: None,
            query_limits: Default::default(),
        },
        valid_from: now,
        valid_until: now + Duration::days(90),
    }
}

fn facts(m: &ProductMetadata, r: &AccessRequest) -> RequestFacts {
    let hospital = MemberId::parse("city-hospital").unwrap();
    RequestFacts::of(&hospital, r, &r.terms, m)
}

fn baseline() -> PolicyEngine {
    PolicyEngine::new(&[]).unwrap()
}

const PSEUDONYM: Option<Mask> = Some(Mask::Pseudonym);

#[test]
fn a_request_for_an_admitted_purpose_is_permitted_and_says_why() {
    let m = metadata("personal", &["job_matching"], true);
    let r = request(
        "job_matching",
        "public_task",
        AccessMode::Records,
        &[("person_id", PSEUDONYM), ("birth_date", None)],
    );
    let d = baseline()
        .decide(PolicyAction::Request, &facts(&m, &r))
        .unwrap();
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(d.policy_ids(), ["baseline/admitted-purpose"]);
    assert!(
        d.explain().contains("purpose its owner admits"),
        "{}",
        d.explain()
    );
}

#[test]
fn a_purpose_the_product_does_not_admit_is_denied_by_default() {
    let m = metadata("personal", &["job_matching"], true);
    let r = request(
        "debt_recovery",
        "public_task",
        AccessMode::Records,
        &[("birth_date", None)],
    );
    let d = baseline()
        .decide(PolicyAction::Request, &facts(&m, &r))
        .unwrap();
    assert!(!d.allowed);
    assert!(d.determining.is_empty());
    assert!(
        d.explain().contains("no policy permits it"),
        "{}",
        d.explain()
    );
}

#[test]
fn sensitive_products_are_never_shared_as_records() {
    let m = metadata("sensitive", &["public_health_research"], true);
    let r = request(
        "public_health_research",
        "public_task",
        AccessMode::Records,
        &[("birth_date", None)],
    );
    let d = baseline()
        .decide(PolicyAction::Request, &facts(&m, &r))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.policy_ids(), ["baseline/sensitive-never-records"]);
    let agg = request(
        "public_health_research",
        "public_task",
        AccessMode::Aggregate,
        &[("person_id", None), ("birth_date", None)],
    );
    let d = baseline()
        .decide(PolicyAction::Request, &facts(&m, &agg))
        .unwrap();
    assert!(d.allowed, "{}", d.explain());
}

#[test]
fn unmasked_direct_identifiers_of_personal_products_need_records_and_an_explicit_legal_basis() {
    let m = metadata("personal", &["job_matching"], true);
    let named = [("given_name", None), ("birth_date", None)];
    let ok = request("job_matching", "public_task", AccessMode::Records, &named);
    assert!(
        baseline()
            .decide(PolicyAction::Request, &facts(&m, &ok))
            .unwrap()
            .allowed
    );
    for (basis, mode, with_law) in [
        ("legitimate_interests", AccessMode::Records, true),
        ("public_task", AccessMode::Records, false),
        ("public_task", AccessMode::Linkage, true),
    ] {
        let m = metadata("personal", &["job_matching"], with_law);
        let r = request("job_matching", basis, mode, &named);
        let d = baseline()
            .decide(PolicyAction::Request, &facts(&m, &r))
            .unwrap();
        assert!(!d.allowed, "{basis} {mode} {with_law}");
        assert_eq!(d.policy_ids(), ["baseline/personal-direct-identifiers"]);
    }
    // Masked identifiers are fine in any mode.
    let masked = request(
        "job_matching",
        "legitimate_interests",
        AccessMode::Linkage,
        &[("person_id", PSEUDONYM), ("given_name", Some(Mask::Redact))],
    );
    assert!(
        baseline()
            .decide(PolicyAction::Request, &facts(&m, &masked))
            .unwrap()
            .allowed
    );
    // An unmasked subject identifier counts as a direct identifier, except in aggregate mode
    // (where it is only counted, never shown).
    let plain_id = request(
        "job_matching",
        "legitimate_interests",
        AccessMode::Records,
        &[("person_id", None)],
    );
    assert!(
        !baseline()
            .decide(PolicyAction::Request, &facts(&m, &plain_id))
            .unwrap()
            .allowed
    );
    let agg = request(
        "job_matching",
        "legitimate_interests",
        AccessMode::Aggregate,
        &[("person_id", None)],
    );
    assert!(
        baseline()
            .decide(PolicyAction::Request, &facts(&m, &agg))
            .unwrap()
            .allowed
    );
}

#[test]
fn nothing_is_approved_automatically_unless_the_owner_permits_it() {
    let m = metadata("personal", &["job_matching"], true);
    let r = request(
        "job_matching",
        "public_task",
        AccessMode::Records,
        &[("person_id", PSEUDONYM)],
    );
    let d = baseline()
        .decide(PolicyAction::AutoApprove, &facts(&m, &r))
        .unwrap();
    assert!(!d.allowed);
    let owner = PolicyEngine::new(&[(
        "auto.cedar".into(),
        r#"
        @id("hospital-job-matching")
        @reason("the city hospital's job-matching requests for pseudonymised profiles are pre-approved")
        permit (principal == Member::"city-hospital", action == Action::"auto_approve",
                resource == Product::"employment-agency/job_seekers")
        when { context.purpose == "job_matching" && context.mode == "records" && context.validity_days <= 366 };
        "#
        .into(),
    )])
    .unwrap();
    let d = owner
        .decide(PolicyAction::AutoApprove, &facts(&m, &r))
        .unwrap();
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(d.determining[0].origin, "auto.cedar");
    // The baseline still forbids what it forbids.
    let named = request(
        "job_matching",
        "legitimate_interests",
        AccessMode::Records,
        &[("given_name", None)],
    );
    let d = owner
        .decide(PolicyAction::AutoApprove, &facts(&m, &named))
        .unwrap();
    assert!(!d.allowed);
    assert!(
        d.policy_ids()
            .contains(&"baseline/personal-direct-identifiers".to_owned()),
        "{:?}",
        d.policy_ids()
    );
    // Another member's request is not pre-approved.
    let tax = MemberId::parse("tax-office").unwrap();
    let d = owner
        .decide(
            PolicyAction::AutoApprove,
            &RequestFacts::of(&tax, &r, &r.terms, &m),
        )
        .unwrap();
    assert!(!d.allowed);
}

#[test]
fn owners_can_forbid_members_and_purposes() {
    let m = metadata("personal", &["job_matching", "fraud_prevention"], true);
    let owner = PolicyEngine::new(&[(
        "restrict.cedar".into(),
        r#"
        @id("no-fraud-for-hospitals")
        @reason("hospitals have no fraud mandate")
        forbid (principal == Member::"city-hospital", action == Action::"request", resource)
        when { context.purpose == "fraud_prevention" };
        "#
        .into(),
    )])
    .unwrap();
    let r = request(
        "fraud_prevention",
        "public_task",
        AccessMode::Linkage,
        &[("person_id", PSEUDONYM)],
    );
    let d = owner.decide(PolicyAction::Request, &facts(&m, &r)).unwrap();
    assert!(!d.allowed);
    assert_eq!(
        d.explain(),
        "the request is forbidden: hospitals have no fraud mandate (no-fraud-for-hospitals)"
    );
}

#[test]
fn policies_that_do_not_fit_the_schema_are_refused_at_start_naming_file_and_policy() {
    let err = PolicyEngine::new(&[(
        "typo.cedar".into(),
        r#"@id("typo") permit (principal, action == Action::"request", resource) when { context.purpse == "x" };"#.into(),
    )])
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { id, origin, .. } if id == "typo" && origin == "typo.cedar"),
        "{err}"
    );
    let err = PolicyEngine::new(&[(
        "bad.cedar".into(),
        "permit (principal, action, resource".into(),
    )])
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Parse { origin, .. } if origin == "bad.cedar"),
        "{err}"
    );
    let err = PolicyEngine::new(&[(
        "unknown-action.cedar".into(),
        r#"permit (principal, action == Action::"delete", resource);"#.into(),
    )])
    .unwrap_err();
    assert!(matches!(err, PolicyError::Invalid { .. }), "{err}");
    let err = PolicyEngine::new(&[(
        "dup.cedar".into(),
        r#"@id("baseline/admitted-purpose") permit (principal, action == Action::"request", resource);"#.into(),
    )])
    .unwrap_err();
    assert!(matches!(err, PolicyError::DuplicateId(_)), "{err}");
}

#[test]
fn policies_without_an_id_are_named_after_their_file_and_position() {
    let m = metadata("personal", &[], true);
    let owner = PolicyEngine::new(&[(
        "open-to-statistics.cedar".into(),
        "permit (principal == Member::\"city-hospital\", action == Action::\"request\", resource);\n\
         forbid (principal, action == Action::\"request\", resource) when { context.max_rows > 100000 };"
            .into(),
    )])
    .unwrap();
    assert_eq!(owner.len(), 7 + 2);
    let r = request(
        "official_statistics",
        "public_task",
        AccessMode::Aggregate,
        &[("person_id", None)],
    );
    let d = owner.decide(PolicyAction::Request, &facts(&m, &r)).unwrap();
    assert!(d.allowed);
    assert_eq!(d.policy_ids(), ["open-to-statistics.cedar#1"]);
    let mut big = r.clone();
    big.terms.max_rows = Some(1_000_000);
    let d = owner
        .decide(
            PolicyAction::Request,
            &RequestFacts::of(
                &MemberId::parse("city-hospital").unwrap(),
                &big,
                &big.terms,
                &m,
            ),
        )
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.policy_ids(), ["open-to-statistics.cedar#2"]);
}

/// An owner rule that approves every request for an admitted purpose automatically: the
/// baseline must still keep steward decisions where they belong.
fn approve_everything() -> PolicyEngine {
    PolicyEngine::new(&[(
        "everything.cedar".into(),
        r#"
        @id("approve-everything")
        @reason("approves every request")
        permit (principal, action == Action::"auto_approve", resource);
        "#
        .into(),
    )])
    .unwrap()
}

#[test]
fn unmasked_sensitive_records_of_personal_products_need_a_steward() {
    let mut m = metadata("personal", &["job_matching"], true);
    m.columns.insert(
        "income".into(),
        serde_json::from_value(serde_json::json!({"role": "sensitive"})).unwrap(),
    );
    let owner = approve_everything();
    let unmasked = request(
        "job_matching",
        "public_task",
        AccessMode::Records,
        &[("person_id", PSEUDONYM), ("income", None)],
    );
    let f = facts(&m, &unmasked);
    assert!(f.unmasked_sensitive);
    assert_eq!(f.unmasked_columns, ["income"]);
    assert_eq!(f.masks, ["person_id=pseudonym"]);
    // Asking is allowed; approving without a steward is not.
    assert!(owner.decide(PolicyAction::Request, &f).unwrap().allowed);
    let d = owner.decide(PolicyAction::AutoApprove, &f).unwrap();
    assert!(!d.allowed);
    assert_eq!(
        d.policy_ids(),
        ["baseline/personal-records-unmasked-by-steward"]
    );
    // Banded, the same request may be approved by the owner's rule.
    let banded = request(
        "job_matching",
        "public_task",
        AccessMode::Records,
        &[
            ("person_id", PSEUDONYM),
            ("income", Some(Mask::Band { width: 1000.0 })),
        ],
    );
    assert!(
        owner
            .decide(PolicyAction::AutoApprove, &facts(&m, &banded))
            .unwrap()
            .allowed
    );
}

#[test]
fn a_request_replacing_an_agreement_in_force_is_never_approved_automatically() {
    let m = metadata("personal", &["job_matching"], true);
    let r = request(
        "job_matching",
        "public_task",
        AccessMode::Records,
        &[("person_id", PSEUDONYM)],
    );
    let owner = approve_everything();
    let mut f = facts(&m, &r);
    assert!(owner.decide(PolicyAction::AutoApprove, &f).unwrap().allowed);
    f.replaces_agreement_in_force = true;
    let d = owner.decide(PolicyAction::AutoApprove, &f).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.policy_ids(), ["baseline/no-automatic-replacement"]);
    assert!(owner.decide(PolicyAction::Request, &f).unwrap().allowed);
}

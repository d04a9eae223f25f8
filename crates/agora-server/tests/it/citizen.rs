//! The citizen portal in the browser's terms, between two real enrolled nodes: the tax
//! office answers the employment agency's portal; a resident whose row the agency read
//! under an agreement signs in at the agency's portal with a one-time code and sees that
//! access, proven. Wrong, replayed, expired and guessed codes are refused, and nothing in a
//! URL or form shows anyone else's history.

use agora_node::Node;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::agreements::{count, portal_world};
use crate::web::{cookie, hidden, web_site};

/// A valid national identifier (11 digits with the check digit) from a 10-digit stem.
fn national_id(stem: u64) -> String {
    let digits: [u8; 10] = std::array::from_fn(|i| (stem / 10u64.pow(9 - i as u32) % 10) as u8);
    let check = agora_model::person_id_check_digit(&digits);
    format!("{stem:010}{check}")
}

struct Portal {
    url: String,
    http: reqwest::Client,
}

impl Portal {
    /// The portal's pages of `node`, with a client that does not follow redirects.
    async fn of(node: &Node) -> Self {
        Self {
            url: web_site(node).await,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Sends the sign-in form (with a fresh form token) and returns the answer.
    async fn sign_in(&self, person_id: &str, code: &str) -> reqwest::Response {
        let form = self
            .http
            .get(format!("{}/citizen/sign-in", self.url))
            .send()
            .await
            .unwrap();
        let pre = cookie(&form, "agora_sign_in");
        let csrf = hidden(&form.text().await.unwrap(), "csrf");
        self.http
            .post(format!("{}/citizen/sign-in", self.url))
            .header("cookie", format!("agora_sign_in={pre}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("person_id", person_id),
                ("code", code),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str, session: &str) -> (StatusCode, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", format!("agora_citizen={session}"))
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status(), location, r.text().await.unwrap())
    }
}

/// The node's whole HTTP application (API and pages) on a port of its own.
async fn api_site(node: &Node) -> String {
    let app = agora_server::app(node.clone(), agora_server::ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    url
}

async fn code_for(node: &Node, id: &str) -> String {
    node.issue_citizen_code(id, &agora_node::Accessor::command_line())
        .await
        .unwrap()
        .code
}

#[tokio::test]
async fn a_resident_signs_in_with_a_one_time_code_and_sees_only_their_own_proven_history() {
    // The agency reads the rows of the first three people only.
    let ids: Vec<String> = (0..40).map(|i| national_id(1_234_500_000 + i)).collect();
    let (w, logged) = portal_world(
        "portals = [\"employment-agency\"]\n",
        &ids,
        ("person_id=pseudonym,income", "public_task"),
        "SELECT person_id FROM \"tax-office\".annual_income WHERE income < 23000",
    )
    .await;
    assert_eq!(logged.entry.subjects.as_ref().unwrap().count, 3);
    let ea = &w.ea.node;

    let portal = Portal::of(ea).await;
    let (me, other) = (&ids[1], &ids[30]);
    // Not signed in: the portal asks to sign in.
    let (status, location, _) = portal.get("/citizen", "").await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/citizen/sign-in")
    );

    // A code is for the resident it was issued for, and works once.
    let code = code_for(ea, me).await;
    let r = portal.sign_in(other, &code).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("not right"));
    let r = portal.sign_in(me, &code).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = cookie(&r, "agora_citizen");
    let replayed = portal.sign_in(me, &code).await;
    assert_eq!(replayed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The resident's history: the tax office's log holds the one access, proven; the
    // agency's own log holds none.
    let (status, _, page) = portal.get("/citizen", &session).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("1 access"), "{page}");
    assert!(
        page.contains("Holds records about you in: Incomes annual_income."),
        "{page}"
    );
    assert!(page.contains("fraud_prevention"), "{page}");
    assert!(
        page.contains(&format!("{} (proven)", logged.index)),
        "{page}"
    );
    assert!(page.contains("complete up to entry"), "{page}");
    assert!(!page.contains("could not be checked"), "{page}");
    // Naming someone else in the address changes nothing: the session says whose.
    let (_, _, again) = portal
        .get(&format!("/citizen?person_id={other}"), &session)
        .await;
    let ending = |id: &str| format!("ending in {}.", &id[id.len() - 3..]);
    assert!(again.contains(&ending(me)) && !again.contains(&ending(other)));
    assert!(again.contains("1 access"), "{again}");

    // Someone whose rows were not read: proven to have no access at the tax office.
    let r = portal.sign_in(other, &code_for(ea, other).await).await;
    let theirs = cookie(&r, "agora_citizen");
    let (_, _, page) = portal.get("/citizen", &theirs).await;
    assert!(page.contains("0 accesses"), "{page}");
    assert!(page.contains("Holds no records about you."), "{page}");

    // An expired code is refused.
    let stale = "24681357";
    ea.store()
        .put_citizen_code(
            me,
            stale,
            "test",
            chrono::Utc::now() - chrono::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(
        portal.sign_in(me, stale).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Guessing codes is throttled.
    let mut last = StatusCode::OK;
    for guess in 0..8 {
        last = portal
            .sign_in(other, &format!("{:08}", guess))
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);

    // The same through the API: a resident's token reads their history and nothing else.
    let api = api_site(ea).await;
    let http = reqwest::Client::new();
    let session_of = |body: serde_json::Value| {
        let http = http.clone();
        let api = api.clone();
        async move {
            http.post(format!("{api}/api/v1/citizen/sessions"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = session_of(serde_json::json!({"person_id": me, "code": "00000000"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = session_of(serde_json::json!({"person_id": me, "code": code_for(ea, me).await})).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let token = ok.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: serde_json::Value = http
        .get(format!("{api}/api/v1/citizen/history"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tax = history["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"] == "tax-office")
        .unwrap();
    assert_eq!(
        tax["verified"]["accesses"].as_array().unwrap().len(),
        1,
        "{tax}"
    );
    assert_eq!(tax["holdings"][0], "Incomes annual_income", "{tax}");
    for (path, who) in [
        ("/api/v1/products", Some(token.as_str())),
        ("/api/v1/citizen/history", None),
    ] {
        let mut r = http.get(format!("{api}{path}"));
        if let Some(t) = who {
            r = r.bearer_auth(t);
        }
        assert_eq!(
            r.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let out = http
        .delete(format!("{api}/api/v1/citizen/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = http
        .get(format!("{api}/api/v1/citizen/history"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // Signing out ends the session.
    let (_, _, page) = portal.get("/citizen", &session).await;
    let csrf = hidden(&page, "csrf");
    let out = portal
        .http
        .post(format!("{}/citizen/sign-out", portal.url))
        .header("cookie", format!("agora_citizen={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (status, location, _) = portal.get("/citizen", &session).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/citizen/sign-in")
    );
}

#[tokio::test]
async fn a_resident_who_withdraws_consent_is_left_out_of_the_next_query_at_every_owner() {
    // The agency reads the tax office's incomes under an agreement that relies on consent.
    let ids: Vec<String> = (0..40).map(|i| national_id(2_345_600_000 + i)).collect();
    let (w, _) = portal_world(
        "portals = [\"employment-agency\"]\n",
        &ids,
        ("person_id=pseudonym,income", "consent"),
        "SELECT person_id FROM \"tax-office\".annual_income WHERE income < 23000",
    )
    .await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let all = "SELECT count(*) FROM \"tax-office\".annual_income";
    assert_eq!(count(ea, all).await, 40);

    // The resident withdraws consent at the portal: the tax office holds them and applies
    // it; the agency holds no record of them.
    let me = &ids[1];
    let answers = ea
        .citizen_consent(me, "fraud_prevention", true)
        .await
        .unwrap();
    let mut held: Vec<(&str, bool)> = answers
        .iter()
        .map(|a| (a.member.as_str(), *a.outcome.as_ref().unwrap()))
        .collect();
    held.sort();
    assert_eq!(
        held,
        [("employment-agency", false), ("tax-office", true)],
        "{answers:?}"
    );
    // The very next query leaves their row out, whatever it asks.
    assert_eq!(count(ea, all).await, 39);
    assert_eq!(
        count(
            ea,
            "SELECT count(*) FROM \"tax-office\".annual_income WHERE income = 21000"
        )
        .await,
        0
    );
    // Another purpose's consent, or someone the owner does not hold, changes nothing.
    ea.citizen_consent(&ids[2], "job_matching", true)
        .await
        .unwrap();
    assert_eq!(count(ea, all).await, 39);
    let nobody = national_id(9_999_999_999);
    let answers = ea
        .citizen_consent(&nobody, "fraud_prevention", true)
        .await
        .unwrap();
    assert!(
        answers.iter().all(|a| a.outcome == Ok(false)),
        "{answers:?}"
    );
    // Bad input is refused with a clear error.
    let e = ea
        .citizen_consent(me, "Fraud Prevention!", true)
        .await
        .unwrap();
    assert!(
        e.iter().any(|a| a
            .outcome
            .as_ref()
            .is_err_and(|e| e.contains("not a purpose"))),
        "{e:?}"
    );

    // The change is in the tax office's log, in the resident's history.
    let logged = tax
        .audit_entries(&agora_model::EntryFilter {
            kind: Some("consent".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let entry = logged
        .iter()
        .find(|e| e.entry.purpose.as_deref() == Some("fraud_prevention"))
        .unwrap();
    assert_eq!(entry.entry.outcome, "withdrawn");
    assert!(
        !serde_json::to_string(&entry.entry)
            .unwrap()
            .contains(me.as_str())
    );
    crate::agreements::witnessed_past(tax, entry.index).await;
    let history = ea.citizen_history(me).await.unwrap();
    let at_tax = history
        .members
        .iter()
        .find(|m| m.member.as_str() == "tax-office")
        .unwrap()
        .outcome
        .as_ref()
        .unwrap();
    assert!(
        at_tax
            .accesses
            .iter()
            .any(|a| a.entry.kind == agora_model::AuditKind::Consent && a.index == entry.index),
        "{at_tax:?}"
    );

    // In the portal's pages: the consent section offers to give it again, and doing so
    // brings the row back at once.
    let portal = Portal::of(ea).await;
    let r = portal.sign_in(me, &code_for(ea, me).await).await;
    let session = cookie(&r, "agora_citizen");
    let (_, _, page) = portal.get("/citizen", &session).await;
    assert!(page.contains("You withdrew your consent"), "{page}");
    assert!(
        page.contains("Give consent for fraud prevention again"),
        "{page}"
    );
    let csrf = hidden(&page, "csrf");
    let done = portal
        .http
        .post(format!("{}/citizen/consent", portal.url))
        .header("cookie", format!("agora_citizen={session}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("purpose", "fraud_prevention"),
            ("action", "grant"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let text = done.text().await.unwrap();
    assert!(
        text.contains("Consent given again") && text.contains("done"),
        "{text}"
    );
    assert_eq!(count(ea, all).await, 40);
    // Without the session's form token nothing changes.
    let forged = portal
        .http
        .post(format!("{}/citizen/consent", portal.url))
        .header("cookie", format!("agora_citizen={session}"))
        .form(&[
            ("csrf", "0"),
            ("purpose", "fraud_prevention"),
            ("action", "withdraw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(ea, all).await, 40);
}

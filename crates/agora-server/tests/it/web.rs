//! The access-request journeys in the web interface, between two real enrolled nodes: an
//! analyst of the employment agency asks for the tax office's product from its page, the
//! tax office's steward approves it, the agreement page shows terms and verified
//! signatures, and a steward revokes it; and a steward's counter-offer that the agency's
//! steward accepts. Each form is also sent wrong once, and each answer is tried by a role
//! that may not give it.

use agora_model::{NegotiationRole, NegotiationState};
use agora_node::trust::TrustSettings;
use agora_node::{ApiRole, Node};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};

use crate::agreements::{reaches, world};

const PASSWORD: &str = "a long enough password";

/// The node's web interface on a port of its own.
pub(crate) async fn web_site(node: &Node) -> String {
    let app = agora_web::router(
        node.clone(),
        agora_web::WebConfig {
            secure_cookies: false,
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

pub(crate) fn cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (k, val) = v.split(';').next()?.split_once('=')?;
            (k == name).then(|| val.to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

pub(crate) fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).expect("a hidden field") + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// A person signed in to one node's web interface.
struct Person {
    url: String,
    http: reqwest::Client,
    session: String,
    csrf: String,
}

struct Page {
    status: StatusCode,
    body: String,
    location: String,
}

impl Person {
    async fn sign_in(url: &str, node: &Node, user: &str, role: ApiRole) -> Self {
        node.create_user(
            user,
            user,
            role,
            PASSWORD,
            &agora_node::Accessor::command_line(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http.get(format!("{url}/sign-in")).send().await.unwrap();
        let pre = cookie(&form, "agora_sign_in");
        let csrf = hidden(&form.text().await.unwrap(), "csrf");
        let r = http
            .post(format!("{url}/sign-in"))
            .header("cookie", format!("agora_sign_in={pre}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("next", "/catalog"),
                ("username", user),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let mut p = Self {
            url: url.to_owned(),
            http,
            session: cookie(&r, agora_web::SESSION_COOKIE),
            csrf: String::new(),
        };
        p.csrf = hidden(&p.get("/catalog").await.body, "csrf");
        p
    }

    async fn page(&self, r: reqwest::RequestBuilder) -> Page {
        let r = r
            .header(
                "cookie",
                format!("{}={}", agora_web::SESSION_COOKIE, self.session),
            )
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Page {
            status: r.status(),
            location,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.page(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.page(self.http.post(format!("{}{path}", self.url)).form(&form))
            .await
    }
}

/// The negotiation id in a redirect to its page.
fn negotiation_id(location: &str) -> String {
    location
        .strip_prefix("/requests/")
        .and_then(|s| s.split('?').next())
        .unwrap_or_else(|| panic!("not a negotiation page: {location}"))
        .to_owned()
}

#[tokio::test]
async fn an_access_request_goes_from_a_product_page_to_a_revoked_agreement_in_the_browser() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let (tax_web, ea_web) = (web_site(tax).await, web_site(ea).await);
    let analyst = Person::sign_in(&ea_web, ea, "ea-analyst", ApiRole::Analyst).await;
    let ea_steward = Person::sign_in(&ea_web, ea, "ea-steward", ApiRole::Steward).await;
    let tax_analyst = Person::sign_in(&tax_web, tax, "tax-analyst", ApiRole::Analyst).await;
    let tax_steward = Person::sign_in(&tax_web, tax, "tax-steward", ApiRole::Steward).await;

    // The product page leads to the request form, which offers the purposes it admits.
    let product = analyst.get("/catalog/tax-office/annual_income").await;
    assert_eq!(product.status, StatusCode::OK);
    assert!(
        product
            .body
            .contains("href=\"/catalog/tax-office/annual_income/request\"")
    );
    let form = analyst
        .get("/catalog/tax-office/annual_income/request")
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("value=\"fraud_prevention\""));
    assert!(!form.body.contains("value=\"job_matching\""));
    assert!(form.body.contains("name=\"col.person_id\""));
    // Each column is offered only the masks that apply to its type and role: a number
    // bands, never dates cut to the month; only the subject's identifier a pseudonym.
    let masks_of = |column: &str| -> String {
        let at = form
            .body
            .find(&format!("name=\"mask.{column}\""))
            .unwrap_or_else(|| panic!("a mask for {column}"));
        let rest = &form.body[at..];
        rest[..rest.find("</select>").unwrap()].to_owned()
    };
    let income = masks_of("income");
    assert!(
        income.contains("value=\"band\"") && !income.contains("value=\"month\""),
        "{income}"
    );
    assert!(!income.contains("value=\"pseudonym\""), "{income}");
    assert!(masks_of("person_id").contains("value=\"pseudonym\""));
    // The dates are typed in the format the hint gives, not a browser's own date picker.
    assert!(form.body.contains("Year-month-day, for example"));
    assert!(!form.body.contains("type=\"date\""));

    // Sent empty: every missing answer is listed and linked to its field; nothing is sent.
    let wrong = analyst
        .post(
            "/catalog/tax-office/annual_income/request",
            &[("justification", "short")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    for expected in [
        "There is a problem",
        "href=\"#purpose\"",
        "Choose the purpose",
        "href=\"#legal_basis\"",
        "href=\"#justification\"",
        "href=\"#mode\"",
        "Choose at least one column",
        "<title>Error: Request access",
    ] {
        assert!(
            wrong.body.contains(expected),
            "{expected} in {}",
            wrong.body
        );
    }
    assert!(ea.negotiations(None, None, 10).await.unwrap().is_empty());

    // A request the owner's terms check refuses (a mask that does not fit its column) comes
    // back on the form with the node's reason.
    let today = chrono::Utc::now().date_naive();
    let until = (today + chrono::Duration::days(30)).to_string();
    let today = today.to_string();
    let mut fields = vec![
        ("purpose", "fraud_prevention"),
        ("legal_basis", "public_task"),
        (
            "justification",
            "checking unemployment allowances against declared income",
        ),
        ("mode", "records"),
        ("col.person_id", "on"),
        ("mask.person_id", "pseudonym"),
        ("col.income", "on"),
        ("mask.income", "month"),
        ("valid_from", &today),
        ("valid_until", &until),
    ];
    let refused = analyst
        .post("/catalog/tax-office/annual_income/request", &fields)
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("href=\"#columns\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("income"));
    fields.retain(|(k, _)| *k != "mask.income");
    fields.extend([("mask.income", "band"), ("band.income", "10000")]);
    let sent = analyst
        .post("/catalog/tax-office/annual_income/request", &fields)
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(sent.location.ends_with("side=consumer&done=requested"));
    let id = negotiation_id(&sent.location);
    let product = analyst.get("/catalog/tax-office/annual_income").await;
    assert!(
        product
            .body
            .contains(&format!("href=\"/requests/{id}?side=consumer\"")),
        "the product page links to the request: {}",
        product.body
    );
    let mine = analyst.get(&sent.location).await;
    assert!(mine.body.contains("Your request was sent to the owner."));
    assert!(mine.body.contains("Waiting for tax-office to answer"));
    assert!(mine.body.contains("aria-current=\"step\""));

    // At the owner: listed, and answered by stewards only.
    reaches(
        tax,
        &id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    let list = tax_steward.get("/requests").await;
    assert!(list.body.contains(&format!("/requests/{id}?side=provider")));
    assert!(list.body.contains("Requests for your data"));
    let as_analyst = tax_analyst
        .get(&format!("/requests/{id}?side=provider"))
        .await;
    assert!(
        as_analyst
            .body
            .contains("A data steward of your organisation answers this.")
    );
    assert!(!as_analyst.body.contains("/approve\""));
    let denied = tax_analyst
        .post(&format!("/requests/{id}/approve"), &[("side", "provider")])
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let forged = tax_steward
        .page(
            tax_steward
                .http
                .post(format!("{tax_web}/requests/{id}/approve"))
                .form(&[("csrf", "not-the-token"), ("side", "provider")]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        tax.negotiation(&id, Some(NegotiationRole::Provider))
            .await
            .unwrap()
            .negotiation
            .state,
        NegotiationState::Requested
    );

    // The steward approves as asked; both sides end FINALIZED.
    let approved = tax_steward
        .post(
            &format!("/requests/{id}/approve"),
            &[("side", "provider"), ("note", "checked by the DPO")],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert!(approved.location.ends_with("done=approved"));
    reaches(
        ea,
        &id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    let agreement = analyst.get(&format!("/requests/{id}?side=consumer")).await;
    for expected in [
        "<title>Agreement",
        "The agreement is in force.",
        "Both Ed25519 signatures verify",
        "In bands of 10000",
        "Pseudonym (HMAC-SHA256",
    ] {
        assert!(
            agreement.body.contains(expected),
            "{expected} in {}",
            agreement.body
        );
    }
    assert!(!agreement.body.contains("Revoke the agreement"));
    let odrl = analyst
        .http
        .get(format!("{ea_web}/requests/{id}/odrl?side=consumer"))
        .header(
            "cookie",
            format!("{}={}", agora_web::SESSION_COOKIE, analyst.session),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(odrl.status(), StatusCode::OK);
    assert_eq!(odrl.headers()[CONTENT_TYPE], "application/ld+json");
    let odrl: serde_json::Value = odrl.json().await.unwrap();
    assert!(odrl.to_string().contains("odrl"), "{odrl}");

    // The query page names the agreement a query read under, from the tables its plan
    // scans: through a CTE and an alias too, and not for a product named only in a comment.
    let ran = analyst
        .post(
            "/query",
            &[
                (
                    "sql",
                    "WITH i AS (SELECT * FROM \"tax-office\".annual_income) SELECT count(*) AS n FROM i AS x",
                ),
                ("action", "run"),
            ],
        )
        .await;
    assert!(ran.body.contains("is read under agreement"), "{}", ran.body);
    let unread = analyst
        .post(
            "/query",
            &[
                ("sql", "SELECT 1 AS one -- not \"tax-office\".annual_income"),
                ("action", "run"),
            ],
        )
        .await;
    assert!(
        !unread.body.contains("is read under agreement"),
        "{}",
        unread.body
    );

    // Revocation needs a reason, then reaches the owner.
    let page = ea_steward
        .get(&format!("/requests/{id}?side=consumer"))
        .await;
    assert!(page.body.contains("Revoke the agreement"));
    let no_reason = ea_steward
        .post(
            &format!("/requests/{id}/end"),
            &[("side", "consumer"), ("reason", "  ")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.body.contains("href=\"#reason\""));
    let revoked = ea_steward
        .post(
            &format!("/requests/{id}/end"),
            &[("side", "consumer"), ("reason", "the project has ended")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let at_owner = reaches(
        tax,
        &id,
        NegotiationRole::Provider,
        NegotiationState::Terminated,
    )
    .await;
    assert!(
        at_owner
            .reason
            .unwrap_or_default()
            .contains("the project has ended")
    );
    let ended = tax_steward
        .get(&format!("/requests/{id}?side=provider"))
        .await;
    assert!(ended.body.contains("the project has ended"));
    assert!(!ended.body.contains("/end\""));
}

#[tokio::test]
async fn a_steward_counter_offers_in_the_browser_and_the_consumer_accepts() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let (tax_web, ea_web) = (web_site(tax).await, web_site(ea).await);
    let analyst = Person::sign_in(&ea_web, ea, "ea-analyst", ApiRole::Analyst).await;
    let ea_steward = Person::sign_in(&ea_web, ea, "ea-steward", ApiRole::Steward).await;
    let tax_steward = Person::sign_in(&tax_web, tax, "tax-steward", ApiRole::Steward).await;
    let id = ea
        .request_access(crate::agreements::request(
            "annual_income",
            "fraud_prevention",
            "person_id=pseudonym,income=band:10000",
            agora_model::AccessMode::Records,
        ))
        .await
        .unwrap()
        .id;
    reaches(
        tax,
        &id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    // The steward offers other terms: the form starts from the request.
    let offer_form = tax_steward
        .get(&format!("/requests/{id}/offer?side=provider"))
        .await;
    assert_eq!(offer_form.status, StatusCode::OK, "{}", offer_form.body);
    assert!(offer_form.body.contains("value=\"10000\""));
    let offer = [
        ("side", "provider"),
        ("mode", "aggregate"),
        ("col.person_id", "on"),
        ("col.year", "on"),
        ("col.income", "on"),
        ("mask.income", "band"),
        ("band.income", "-5"),
        ("row_filter", "year >= 2021"),
        ("min_group_size", "5"),
        ("note", "aggregates are enough for this purpose"),
    ];
    let bad = tax_steward
        .post(&format!("/requests/{id}/offer"), &offer)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Enter a band width greater than 0"));
    let mut offer = offer.to_vec();
    offer.retain(|(k, _)| *k != "band.income");
    offer.push(("band.income", "5000"));
    let offered = tax_steward
        .post(&format!("/requests/{id}/offer"), &offer)
        .await;
    assert_eq!(offered.status, StatusCode::SEE_OTHER, "{}", offered.body);
    assert!(offered.location.ends_with("done=offered"));

    // The consumer's steward accepts; the analyst may read but not answer.
    reaches(
        ea,
        &id,
        NegotiationRole::Consumer,
        NegotiationState::Offered,
    )
    .await;
    let seen = analyst.get(&format!("/requests/{id}?side=consumer")).await;
    assert!(seen.body.contains("What the owner offered"));
    assert!(
        seen.body
            .contains("Only where <code>year &gt;= 2021</code>")
    );
    assert!(
        seen.body
            .contains("A data steward of your organisation answers this.")
    );
    let accepted = ea_steward
        .post(&format!("/requests/{id}/accept"), &[("side", "consumer")])
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);

    // The owner's node agrees to the terms it offered itself: both sides end FINALIZED,
    // under the offered terms.
    let done = reaches(
        ea,
        &id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    let agreement = ea_steward
        .get(&format!("/requests/{id}?side=consumer"))
        .await;
    for expected in [
        "The agreement is in force.",
        "In bands of 5000",
        "Only where <code>year &gt;= 2021</code>",
        "Both Ed25519 signatures verify",
    ] {
        assert!(
            agreement.body.contains(expected),
            "{expected} in {}",
            agreement.body
        );
    }
    assert_eq!(
        done.agreement.unwrap().terms.mode,
        agora_model::AccessMode::Aggregate
    );
}

#[tokio::test]
async fn a_consumer_answers_an_offer_with_other_terms_in_the_browser() {
    let w = world(TrustSettings::default()).await;
    let (tax, ea) = (&w.tax.node, &w.ea.node);
    let (tax_web, ea_web) = (web_site(tax).await, web_site(ea).await);
    let ea_analyst = Person::sign_in(&ea_web, ea, "ea-analyst", ApiRole::Analyst).await;
    let ea_steward = Person::sign_in(&ea_web, ea, "ea-steward", ApiRole::Steward).await;
    let tax_steward = Person::sign_in(&tax_web, tax, "tax-steward", ApiRole::Steward).await;
    let id = ea
        .request_access(crate::agreements::request(
            "annual_income",
            "fraud_prevention",
            "person_id,year,income",
            agora_model::AccessMode::Aggregate,
        ))
        .await
        .unwrap()
        .id;
    reaches(
        tax,
        &id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    tax.counter_offer(
        &id,
        agora_model::AgreementTerms {
            columns: agora_model::ColumnTerm::parse_list("person_id,income=band:10000").unwrap(),
            row_filter: None,
            mode: agora_model::AccessMode::Aggregate,
            min_group_size: 10,
            max_rows: None,
            measures: vec![],
            disclosure: Some(agora_model::DisclosureControl::standard()),
            query_limits: Default::default(),
        },
        "income in bands only",
    )
    .await
    .unwrap();
    reaches(
        ea,
        &id,
        NegotiationRole::Consumer,
        NegotiationState::Offered,
    )
    .await;

    // The analyst reads the offer but cannot answer it; the steward's form starts from it.
    let seen = ea_analyst
        .get(&format!("/requests/{id}?side=consumer"))
        .await;
    assert!(!seen.body.contains("/counter?side=consumer"));
    let refused = ea_analyst.get(&format!("/requests/{id}/counter")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let page = ea_steward
        .get(&format!("/requests/{id}?side=consumer"))
        .await;
    assert!(
        page.body
            .contains(&format!("/requests/{id}/counter?side=consumer"))
    );
    let form = ea_steward.get(&format!("/requests/{id}/counter")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("value=\"10000\""), "{}", form.body);
    assert!(!form.body.contains("name=\"col.year\" value=\"on\" checked"));

    let fields = [
        ("side", "consumer"),
        ("mode", "aggregate"),
        ("col.person_id", "on"),
        ("col.year", "on"),
        ("col.income", "on"),
        ("mask.income", "band"),
        ("band.income", "10000"),
        ("min_group_size", "10"),
        ("note", "we need the year to compare"),
    ];
    let sent = ea_steward
        .post(&format!("/requests/{id}/counter"), &fields)
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(sent.location.ends_with("done=countered"));

    // The owner sees the request again, with the new terms and the reason, and approves.
    let at_owner = reaches(
        tax,
        &id,
        NegotiationRole::Provider,
        NegotiationState::Requested,
    )
    .await;
    assert!(at_owner.offer.is_none());
    assert_eq!(at_owner.request.terms.columns.len(), 3);
    let owner_page = tax_steward
        .get(&format!("/requests/{id}?side=provider"))
        .await;
    assert!(
        owner_page
            .body
            .contains("received a request with other terms: we need the year to compare"),
        "{}",
        owner_page.body
    );
    let approved = tax_steward
        .post(&format!("/requests/{id}/approve"), &[("side", "provider")])
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let done = reaches(
        ea,
        &id,
        NegotiationRole::Consumer,
        NegotiationState::Finalized,
    )
    .await;
    let terms = done.agreement.unwrap().terms;
    assert_eq!(terms.min_group_size, 10);
    assert!(terms.columns.iter().any(|c| c.name == "year"));
}

//! The citizen portal in the browser's terms, between two real enrolled nodes: the tax
//! office answers the employment agency's portal; a resident whose row the agency read
//! under an agreement signs in at the agency's portal with a one-time code and sees that
//! access, proven. Wrong, replayed, expired and guessed codes are refused, and nothing in a
//! URL or form shows anyone else's history.

use agora_node::Node;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::agreements::portal_world;
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
        "person_id=pseudonym,income",
        "SELECT person_id FROM \"tax-office\".annual_income WHERE income < 23000",
    )
    .await;
    assert_eq!(logged.entry.subjects.as_ref().unwrap().count, 3);
    let ea = &w.ea.node;

    let portal = Portal {
        url: web_site(ea).await,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
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

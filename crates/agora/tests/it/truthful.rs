//! What the command line says about access, checked against the running demo: the
//! catalog shows the agreements a member holds, queries say what they read under,
//! refused requests fail and say what would be accepted, only owners re-identify, policy
//! decisions read as what they meant, and an agreement's status comes from verification.

use std::path::Path;

use serde_json::Value;

use crate::{fails, ok};

fn data_dir<'a>(eco: &'a Value, id: &str) -> &'a str {
    eco["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["data_dir"].as_str())
        .unwrap_or_else(|| panic!("{id} in ecosystem.json"))
}

/// The id of the agreement in force `dir`'s member holds as consumer for `product`.
fn agreement_of(dir: &str, product: &str) -> String {
    let list: Vec<Value> = serde_json::from_str(&ok(&[
        "agreement",
        "list",
        "--role",
        "consumer",
        "--state",
        "FINALIZED",
        "--json",
        "--data-dir",
        dir,
    ]))
    .unwrap();
    list.iter()
        .find(|n| n["request"]["product"] == product)
        .and_then(|n| n["id"].as_str())
        .unwrap_or_else(|| panic!("an agreement for {product}: {list:?}"))
        .to_owned()
}

/// While the demo runs.
pub fn the_cli_tells_the_truth_about_access(eco: &Value) {
    let ea = data_dir(eco, "employment-agency");
    let hospital = data_dir(eco, "city-hospital");
    let tax = data_dir(eco, "tax-office");

    // The catalog shows the agreement the agency reads the tax office's incomes under.
    let income = agreement_of(ea, "annual_income");
    let out = ok(&["catalog", "search", "income", "--data-dir", ea]);
    assert!(out.contains(&format!("under agreement {income}")), "{out}");

    // A query says which agreement it read under.
    let out = ok(&[
        "sql",
        "SELECT count(*) AS n FROM \"tax-office\".annual_income",
        "--data-dir",
        ea,
    ]);
    assert!(
        out.contains(&format!("Read under agreement {income}")) && out.contains("fraud_prevention"),
        "{out}"
    );

    // The access log says who read what under which agreement; the owner's product page
    // says who reads it.
    let log = ok(&["node", "accesses", "--data-dir", ea]);
    assert!(
        log.contains("\"tax-office\".annual_income") && log.contains(&format!("(under {income})")),
        "{log}"
    );
    let show = ok(&["product", "show", "annual_income", "--data-dir", tax]);
    assert!(
        show.contains(&format!(
            "Read by employment-agency under agreement {income}"
        )),
        "{show}"
    );

    // The node's status is in words.
    let status = ok(&["node", "status", "--data-dir", ea]);
    assert!(
        status.contains("trust list: valid (number")
            && status.contains("standing: in good standing"),
        "{status}"
    );
    assert!(!status.contains('{'), "no JSON in the status: {status}");

    // A purpose the product does not admit fails before anything is sent, naming the
    // purposes it admits; so does a justification that is there but too short.
    let request = |purpose: &str, justification: &str| {
        fails(&[
            "agreement",
            "request",
            "--owner",
            "tax-office",
            "--product",
            "annual_income",
            "--purpose",
            purpose,
            "--justification",
            justification,
            "--columns",
            "tax_year",
            "--data-dir",
            ea,
        ])
    };
    let err = request(
        "job_matching",
        "matching registered job seekers to vacancies",
    );
    assert!(
        err.contains("admits the purposes fraud_prevention") && err.contains("not among them"),
        "{err}"
    );
    let err = request("fraud_prevention", "fraud");
    assert!(err.contains("too short (5 characters)"), "{err}");
    assert!(!err.contains("needs a justification"), "{err}");

    // The consumer is told that only the owner re-identifies.
    let job = agreement_of(hospital, "job_seekers");
    let err = fails(&[
        "agreement",
        "reidentify",
        &job,
        "abc",
        "--data-dir",
        hospital,
    ]);
    assert!(
        err.contains("only the owner of the data, employment-agency"),
        "{err}"
    );

    // Decisions read as what they meant for the request.
    let out = ok(&["agreement", "decisions", "--data-dir", ea]);
    assert!(out.contains("approved automatically"), "{out}");
    let out = ok(&["agreement", "decisions", "--data-dir", tax]);
    assert!(
        out.contains("left to a steward") && out.contains("request admitted"),
        "{out}"
    );
    assert!(!out.contains(" deny "), "{out}");
}

/// After the browser journeys (it stops an agreement the journeys query under): the
/// owner's stored terms are edited behind its back; every view says it is not in force.
pub fn an_edited_agreement_is_shown_as_not_in_force(eco: &Value) {
    let ea = data_dir(eco, "employment-agency");
    let tax = data_dir(eco, "tax-office");
    let income = agreement_of(ea, "annual_income");
    let show = ok(&["agreement", "show", &income, "--data-dir", tax]);
    assert!(show.contains("status: in force until"), "{show}");
    let db = Path::new(tax).join("agora.db");
    let edit = format!(
        "import sqlite3, json\n\
         db = sqlite3.connect({db:?})\n\
         (doc,) = db.execute(\"SELECT agreement_json FROM negotiations WHERE id = ? AND role = 'provider'\", ({income:?},)).fetchone()\n\
         a = json.loads(doc)\n\
         a['terms']['max_rows'] = 999999999\n\
         db.execute(\"UPDATE negotiations SET agreement_json = ? WHERE id = ? AND role = 'provider'\", (json.dumps(a), {income:?}))\n\
         db.commit()\n",
        db = db.display().to_string(),
    );
    crate::python(&["-c", &edit]);
    let show = ok(&["agreement", "show", &income, "--data-dir", tax]);
    assert!(
        show.contains("status: NOT in force") && show.contains("altered"),
        "{show}"
    );
    assert!(!show.contains("status: in force"), "{show}");
    let list = ok(&["agreement", "list", "--data-dir", tax]);
    assert!(list.contains("NOT in force"), "{list}");
}

/// The guide the demo printed: each scenario says its purpose, legal basis and masks in
/// words before its output; the people re-identified are the ones shown; commands work as
/// printed.
pub fn the_guide_can_be_followed(printed: &str) {
    let job = printed
        .split("Scenario 1 — job matching")
        .nth(1)
        .and_then(|rest| rest.split("Scenario 2").next())
        .unwrap_or_else(|| panic!("scenario 1 in the guide:\n{printed}"));
    assert!(
        job.contains("Purpose: job matching") && job.contains("Legal basis: consent"),
        "{job}"
    );
    assert!(job.contains("replaced by a pseudonym"), "{job}");
    let (shown, reidentified) = job
        .split_once("re-identifies those")
        .unwrap_or_else(|| panic!("a re-identification in scenario 1:\n{job}"));
    let mapped: Vec<&str> = reidentified
        .lines()
        .filter(|l| l.contains("→  person"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!mapped.is_empty(), "{job}");
    for p in &mapped {
        assert!(
            shown.contains(p),
            "{p} was re-identified but not shown to the hospital:\n{job}"
        );
    }
    // The commands the guide prints name this very binary, which need not be on PATH.
    assert!(
        printed.contains(&format!("{} sql --data-dir", env!("CARGO_BIN_EXE_agora")))
            || printed.contains("\n  agora sql --data-dir"),
        "{printed}"
    );
}

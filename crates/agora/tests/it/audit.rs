//! `agora audit` against the running demo: every member's transparency log verifies from
//! its data directory and — with an auditor's token and the ecosystem's root — from its
//! API; an auditor lists who read what for which purpose; a log altered behind the node's
//! back fails verification.

use std::path::Path;

use serde_json::Value;

use crate::{fails, ok};

fn member<'a>(eco: &'a Value, id: &str) -> &'a Value {
    eco["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} in ecosystem.json"))
}

/// Waits until the node's latest checkpoint is witnessed (it signs one a second).
fn verified_and_witnessed(dir: &str) -> String {
    for _ in 0..100 {
        let out = ok(&["audit", "verify", "--data-dir", dir]);
        if out.contains("cosigned by the authority") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{dir}: no witnessed checkpoint after 10 s");
}

/// While the demo runs.
pub fn every_log_verifies_and_an_auditor_sees_who_read_what(eco: &Value) {
    for m in eco["members"].as_array().unwrap() {
        let out = verified_and_witnessed(m["data_dir"].as_str().unwrap());
        assert!(out.contains("The log verifies."), "{out}");
        assert!(out.contains("every tile matches"), "{out}");
    }

    // Over the API, with an auditor's token and the ecosystem's root certificate.
    let tax = member(eco, "tax-office");
    // The administration page says the log is witnessed.
    let admin = tax["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap();
    let page = crate::web_page(
        tax["base_url"].as_str().unwrap(),
        "admin",
        admin["password"].as_str().unwrap(),
        "/admin",
    );
    assert!(
        page.contains("Transparency log") && page.contains("Witnessed by the authority"),
        "{page}"
    );
    assert!(!page.contains(">refused</strong>"), "{page}");
    let dir = tax["data_dir"].as_str().unwrap();
    let created = ok(&[
        "token",
        "create",
        "--label",
        "auditor",
        "--role",
        "auditor",
        "--data-dir",
        dir,
    ]);
    let secret = created.lines().nth(1).unwrap().trim().to_owned();
    let url = tax["base_url"].as_str().unwrap();
    let root = eco["root_certificate"].as_str().unwrap();
    let out = ok(&[
        "audit", "verify", "--node", url, "--token", &secret, "--root", root,
    ]);
    assert!(
        out.contains("The log verifies.") && out.contains("cosigned"),
        "{out}"
    );
    // The auditor recomputed the subject index the checkpoint states from the tags each
    // entry commits to (the linkage answers of the fraud scenario carried subjects).
    let index_line = out
        .lines()
        .find(|l| l.contains("subject index:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        index_line.contains("the checkpoint's index is theirs")
            && !index_line.contains(": 0 entries"),
        "{out}"
    );
    // Without the root, who signed cannot be checked: refused, and said why.
    let err = fails(&["audit", "verify", "--node", url, "--token", &secret]);
    assert!(err.contains("--root"), "{err}");
    // The auditor's token reads no data.
    let (status, body) = crate::post_query(url, &secret, "SELECT 1");
    assert_eq!(status, 403, "{body}");
    // Who read the tax office's incomes, for which purpose and under which agreement:
    // the owner's log says, from its own side of each exchange.
    let entries = crate::get(
        &format!("{url}/api/v1/audit/entries?kind=exchange&product=annual_income&limit=1000"),
        &secret,
    );
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        assert_eq!(e["entry"]["peer"], "employment-agency", "{e}");
        assert!(
            e["entry"]["agreement"]
                .as_str()
                .is_some_and(|a| !a.is_empty()),
            "{e}"
        );
        assert!(e["entry"]["purpose"].as_str().is_some(), "{e}");
    }
    // Answers under the linkage agreement commit to whose records they carried: a count
    // and a root, nothing that names anyone.
    let committed: Vec<&Value> = entries
        .iter()
        .filter_map(|e| e["entry"].get("subjects"))
        .collect();
    assert!(!committed.is_empty(), "{entries:?}");
    for c in committed {
        let fields: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["count", "root"], "{c}");
        assert!(c["count"].as_u64().unwrap() > 0);
        assert_eq!(c["root"].as_str().unwrap().len(), 64);
    }
    // Served proofs check out with a verifier written from RFC 9162 and the C2SP formats
    // alone (tests/tlog/verify.py, Python's hashlib); an altered entry does not.
    let mut cases = Vec::new();
    for index in [0, 1, entries[0]["index"].as_u64().unwrap()] {
        let p = crate::get(&format!("{url}/api/v1/tlog/entries/{index}/proof"), &secret);
        let mut case = serde_json::json!({"kind": "inclusion", "index": index,
            "entry": p["entry"], "proof": p["proof"], "checkpoint": p["checkpoint"]});
        cases.push(case.clone());
        case["entry"] = Value::String(
            p["entry"]
                .as_str()
                .unwrap()
                .replace("\"kind\"", "\"kind\" "),
        );
        case["bad"] = Value::Bool(true);
        cases.push(case);
    }
    let file = Path::new(dir).join("proof-cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tlog/verify.py");
    let out = crate::python(&[script.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.trim(), "6 cases ok");

    let listed = ok(&[
        "audit",
        "entries",
        "--kind",
        "exchange",
        "--product",
        "annual_income",
        "--data-dir",
        dir,
    ]);
    assert!(listed.contains("employment-agency"), "{listed}");
    // For a spreadsheet: CSV with a header, one row per entry.
    let csv = ok(&[
        "audit",
        "entries",
        "--kind",
        "exchange",
        "--product",
        "annual_income",
        "--csv",
        "--data-dir",
        dir,
    ]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        agora_model::CSV_COLUMNS.join(","),
        "the header names the model's columns"
    );
    assert!(
        lines.all(|l| l.contains(",exchange,") && l.contains("employment-agency")),
        "{csv}"
    );
}

/// After the demo stopped: an entry rewritten in the store fails verification.
pub fn an_altered_log_fails_verification(eco: &Value) {
    // The tax office's operator swaps the kept tags of an answer that carried records:
    // the entry's commitment no longer matches them.
    // (The tax office left the ecosystem in this run; its node's folder is still there.)
    let hospital = member(eco, "city-hospital")["data_dir"].as_str().unwrap();
    let tax = Path::new(hospital).with_file_name("tax-office");
    let tax = tax.to_str().unwrap();
    ok(&["audit", "verify", "--data-dir", tax]);
    let tax_db = Path::new(tax).join("agora.db");
    let swap = format!(
        "import sqlite3\n\
         db = sqlite3.connect({db:?})\n\
         (entry, tags) = db.execute('SELECT entry, tags FROM tlog_subjects ORDER BY entry LIMIT 1').fetchone()\n\
         tags = bytes(tags)\n\
         tags = bytes([tags[0] ^ 1]) + tags[1:]\n\
         db.execute('UPDATE tlog_subjects SET tags = ? WHERE entry = ?', (tags, entry))\n\
         db.commit()\n",
        db = tax_db.display().to_string(),
    );
    crate::python(&["-c", &swap]);
    let err = fails(&["audit", "verify", "--data-dir", tax]);
    assert!(err.contains("they were altered"), "{err}");

    let dir = member(eco, "city-hospital")["data_dir"].as_str().unwrap();
    ok(&["audit", "verify", "--data-dir", dir]);
    let db = Path::new(dir).join("agora.db");
    // The operator rewrites one outcome in the first chunk (same length, so the bundle
    // still parses).
    let edit = format!(
        "import sqlite3\n\
         db = sqlite3.connect({db:?})\n\
         (first, data) = db.execute('SELECT first, data FROM tlog_chunks ORDER BY first LIMIT 1').fetchone()\n\
         data = bytes(data)\n\
         assert b'\"outcome\":\"' in data\n\
         i = data.index(b'\"outcome\":\"') + len(b'\"outcome\":\"')\n\
         data = data[:i] + (b'X' if data[i:i+1] != b'X' else b'Y') + data[i+1:]\n\
         db.execute('UPDATE tlog_chunks SET data = ? WHERE first = ?', (data, first))\n\
         db.commit()\n",
        db = db.display().to_string(),
    );
    crate::python(&["-c", &edit]);
    let err = fails(&["audit", "verify", "--data-dir", dir]);
    assert!(
        err.contains("was changed after it was signed") || err.contains("was altered"),
        "{err}"
    );
}

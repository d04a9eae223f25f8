//! The API against its own OpenAPI document, checked by Schemathesis (from PyPI, installed
//! by scripts/python-env.sh): every operation, generated valid and invalid requests, and
//! stateful sequences; every status must be documented, every response must match its
//! schema, invalid input must be refused and no request may fail the server.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{JOBS_CSV, ServedNode, s};

#[test]
fn the_api_keeps_its_openapi_document_under_schemathesis() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = ServedNode::start(tmp.path(), &[]);
    std::fs::write(tmp.path().join("jobs.csv"), JOBS_CSV).unwrap();
    let (status, body) = node.post(
        "/api/v1/products",
        &serde_json::json!({"location": s(&tmp.path().join("jobs.csv")), "name": "job_seekers"}),
    );
    assert_eq!(status, 201, "{body}");

    let python = std::env::var("AGORA_PYTHON").unwrap_or_else(|_| "python3".into());
    let schemathesis = Path::new(&python).with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run the tests with scripts/test.sh, which installs it",
        schemathesis.display()
    );
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/api/schemathesis.toml");
    // Run in the test's own folder: Schemathesis keeps a cache where it runs.
    let out = Command::new(&schemathesis)
        .current_dir(tmp.path())
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", node.url),
            "--url",
            &node.url,
            "-H",
            &format!("Authorization: Bearer {}", node.token),
            "--checks",
            "all",
            // Revoking tokens is tested on its own (the server's tests): here it would
            // revoke the token the run itself uses.
            "--exclude-operation-id",
            "revoke_token",
            "--max-examples",
            "40",
            "--seed",
            "20261205",
            "--generation-deterministic",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(!stdout.contains("failures"), "{stdout}");
    node.assert_alive();
}

//! The command line as a Unix tool and as a newcomer meets it: read-only commands create
//! nothing, a closed pipe ends quietly, binary output is not written to a terminal,
//! errors say each cause once in plain words and what to do, logs are plain text in a
//! file, completions and a manual page come from the same definitions, and what the node
//! says about access is true (its own queries are logged).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{JOBS_CSV, agora, fails, init_node, ok, run, s};

/// A node with the `jobs` product registered.
fn node_with_jobs(dir: &Path) -> std::path::PathBuf {
    let node = dir.join("node");
    init_node(&node);
    let csv = dir.join("jobs.csv");
    std::fs::write(&csv, JOBS_CSV).unwrap();
    ok(&[
        "product",
        "add",
        s(&csv),
        "--data-dir",
        s(&node),
        "--keyword",
        "unemployment",
        "--keyword",
        "registry",
    ]);
    node
}

#[test]
fn read_only_commands_on_a_mistyped_data_dir_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("agora-dta");
    for args in [
        &["product", "list"][..],
        &["node", "status"],
        &["catalog", "search", "income"],
        &["sql", "SELECT 1"],
        &["agreement", "list"],
        &["node", "accesses"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--data-dir", s(&typo)]);
        let err = fails(&all);
        assert!(err.contains("not initialised"), "{all:?}: {err}");
        assert!(!typo.exists(), "{all:?} created {}", typo.display());
    }
}

#[test]
fn errors_say_each_cause_once_without_rust_formatting() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    for args in [
        vec![
            "product",
            "add",
            "/no/such/file.csv",
            "--data-dir",
            s(&node),
        ],
        vec!["product", "show", "annual_incomes", "--data-dir", s(&node)],
        vec!["sql", "SELECT * FROM nowhere", "--data-dir", s(&node)],
    ] {
        let err = fails(&args);
        let causes: Vec<&str> = err
            .lines()
            .filter_map(|l| l.trim().strip_prefix("caused by: "))
            .collect();
        for c in &causes {
            let first_line = err.lines().next().unwrap_or_default();
            assert!(!first_line.contains(c), "{args:?} repeats {c:?}:\n{err}");
        }
        let mut unique = causes.clone();
        unique.dedup();
        assert_eq!(unique, causes, "{args:?}:\n{err}");
        assert!(
            !err.contains("Name(\""),
            "{args:?} leaks Rust formatting:\n{err}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    for args in [
        vec!["product", "show", "jobs", "--data-dir", s(&node)],
        vec!["node", "status", "--data-dir", s(&node)],
        vec!["completions", "bash"],
    ] {
        let mut child = agora()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command has written anything (as `| head -0`).
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!err.contains("panicked"), "{args:?}:\n{err}");
        assert!(!err.contains("Broken pipe"), "{args:?}:\n{err}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                status.success() || status.signal() == Some(libc_sigpipe()),
                "{args:?}: {status:?}\n{err}"
            );
        }
    }
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn binary_output_is_refused_on_a_terminal_and_written_to_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    // `script` gives the command a terminal as its stdout.
    let command = format!(
        "{} sql 'SELECT * FROM jobs' --format arrow --data-dir {}",
        env!("CARGO_BIN_EXE_agora"),
        s(&node)
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("AGORA_DATA_DIR")
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("binary") && text.contains("redirect it to a file"),
        "{text}"
    );
    // Into a pipe it is written.
    let out = run(&[
        "sql",
        "SELECT * FROM jobs",
        "--format",
        "arrow",
        "--data-dir",
        s(&node),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.len() > 100);
}

#[test]
fn sql_mistakes_name_what_would_work() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    let err = fails(&[
        "sql",
        "SELECT * FROM \"tax-ofice\".annual_income",
        "--data-dir",
        s(&node),
    ]);
    assert!(err.contains("no member named \"tax-ofice\""), "{err}");
    // Every format is listed, `table` (the default) too.
    let err = fails(&["sql", "SELECT 1", "--format", "xml", "--data-dir", s(&node)]);
    for f in ["table", "json", "ndjson", "csv", "arrow", "parquet"] {
        assert!(err.contains(f), "{f}: {err}");
    }
    // A file of another delimiter gets the delimiter suggested.
    let semi = tmp.path().join("semi.csv");
    std::fs::write(&semi, "a;b;c\n1;2;3\n4;5;6\n").unwrap();
    let err = fails(&["product", "add", s(&semi), "--data-dir", s(&node)]);
    assert!(err.contains("--delimiter ';'"), "{err}");
    ok(&[
        "product",
        "add",
        s(&semi),
        "--delimiter",
        ";",
        "--data-dir",
        s(&node),
    ]);
}

#[test]
fn keywords_are_added_and_removed_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    let keywords = || -> Vec<String> {
        let p: Value = serde_json::from_str(&ok(&[
            "product",
            "show",
            "jobs",
            "--json",
            "--data-dir",
            s(&node),
        ]))
        .unwrap();
        serde_json::from_value(p["metadata"]["keywords"].clone()).unwrap()
    };
    assert_eq!(keywords(), ["unemployment", "registry"]);
    ok(&[
        "product",
        "update",
        "jobs",
        "--add-keyword",
        "skills",
        "--remove-keyword",
        "registry",
        "--data-dir",
        s(&node),
    ]);
    assert_eq!(keywords(), ["unemployment", "skills"]);
    // --keyword says it replaces them all, and does.
    let help = ok(&["product", "update", "--help"]);
    assert!(help.contains("replace all"), "{help}");
    ok(&[
        "product",
        "update",
        "jobs",
        "--keyword",
        "jobs",
        "--data-dir",
        s(&node),
    ]);
    assert_eq!(keywords(), ["jobs"]);
}

#[test]
fn own_queries_are_in_the_access_log() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    ok(&["sql", "SELECT * FROM jobs", "--data-dir", s(&node)]);
    ok(&["sql", "SELECT 1", "--data-dir", s(&node)]);
    let log = ok(&["node", "accesses", "--json", "--data-dir", s(&node)]);
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        1,
        "only the query that read a product: {log}"
    );
    let r = &records[0];
    assert_eq!(r["channel"], "cli");
    assert!(r["principal"].as_str().unwrap().starts_with("cli:"));
    assert_eq!(r["products"], "jobs");
    assert_eq!(r["outcome"], "answered");
    assert_eq!(r["rows_returned"], 2);
    assert_eq!(r["sql_digest"].as_str().unwrap().len(), 64);
}

#[test]
fn completions_and_the_manual_come_from_the_command_definitions() {
    let bash = ok(&["completions", "bash"]);
    assert!(
        bash.contains("_agora") && bash.contains("agreement"),
        "{bash}"
    );
    for shell in ["zsh", "fish"] {
        assert!(ok(&["completions", shell]).contains("agora"));
    }
    let man = ok(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("agora") && man.contains("catalog"), "{man}");
    // Every page the main one refers to can be written.
    let tmp = tempfile::tempdir().unwrap();
    ok(&["man", "--out", s(tmp.path())]);
    for page in [
        "agora.1",
        "agora-node.1",
        "agora-sql.1",
        "agora-agreement-request.1",
    ] {
        let text = std::fs::read_to_string(tmp.path().join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

#[test]
fn text_logs_in_a_file_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_jobs(tmp.path());
    let log_path = tmp.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = agora()
        .args([
            "node",
            "start",
            "--data-dir",
            s(&node),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("INFO") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("INFO"), "no log line: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
}

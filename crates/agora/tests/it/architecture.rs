//! The invariants of ARCHITECTURE.md that the dependency graph shows, checked over
//! `cargo metadata`: a crate that starts to use what only another layer may use fails here,
//! not in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate's normal (not dev or build) dependencies.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// Which crates may depend directly on each library, and why (ARCHITECTURE.md).
const ALLOWED: &[(&str, &[&str], &str)] = &[
    (
        "datafusion",
        &["agora-engine"],
        "only the engine knows DataFusion",
    ),
    (
        "sqlx",
        &["agora-store"],
        "only the store knows SQL databases",
    ),
    (
        "axum",
        &["agora-server", "agora-web"],
        "only the server and its pages know HTTP inbound",
    ),
    (
        "tonic",
        &["agora-server", "agora-exchange"],
        "only the server and the exchange crate speak gRPC",
    ),
    (
        "reqwest",
        &["agora-exchange", "agora"],
        "HTTP calls go out through the exchange crate (the binary's demo waits on its own nodes)",
    ),
    (
        "rustls",
        &["agora-trust", "agora-exchange", "agora-server"],
        "TLS is configured by agora-trust and used where connections are made",
    ),
    (
        "ring",
        &[],
        "no crate uses ring directly; rustls uses it as its provider",
    ),
    ("aws-lc-rs", &[], "the ring provider only"),
    (
        "rcgen",
        &["agora-trust"],
        "cryptography lives in agora-trust",
    ),
    (
        "ed25519-dalek",
        &["agora-trust"],
        "cryptography lives in agora-trust",
    ),
    (
        "argon2",
        &["agora-trust"],
        "cryptography lives in agora-trust",
    ),
    (
        "subtle",
        &["agora-trust"],
        "cryptography lives in agora-trust",
    ),
    (
        "tlog_tiles",
        &["agora-trust"],
        "transparency logs' hashing and proofs are cryptography: they live in agora-trust",
    ),
    (
        "signed_note",
        &["agora-trust"],
        "signed checkpoints are cryptography: they live in agora-trust",
    ),
    (
        "voprf",
        &["agora-trust"],
        "subject tags (an OPRF) are cryptography: they live in agora-trust",
    ),
    (
        "sha2",
        &["agora-trust", "agora-engine"],
        "cryptography lives in agora-trust (the engine's per-row pseudonyms are the documented exception)",
    ),
    (
        "hmac",
        &["agora-trust", "agora-engine"],
        "cryptography lives in agora-trust (the engine's per-row pseudonyms are the documented exception)",
    ),
    (
        "utoipa",
        &["agora-server", "agora-model"],
        "OpenAPI schemas live where HTTP is (the model's wire formats derive theirs behind its `openapi` feature, which only the server turns on)",
    ),
    (
        "hyper",
        &["agora-server"],
        "only the server knows HTTP inbound",
    ),
    (
        "http",
        &[],
        "HTTP types stay inside axum, reqwest and tonic",
    ),
    (
        "agora-store",
        &["agora-node", "agora-authority"],
        "the store is reached through the node (and the authority's own): the exchange log and every record have one writer",
    ),
    (
        "agora-engine",
        &["agora-node"],
        "the engine is reached through the node, which keeps DataFusion out of every other crate",
    ),
    (
        "rand",
        &["agora-trust", "agora-datagen"],
        "secrets come from agora-trust (the generator's synthetic people are not secrets)",
    ),
];

#[test]
fn crates_depend_only_on_what_their_layer_may_know() {
    let deps = dependencies();
    let mut wrong = Vec::new();
    for (library, allowed, why) in ALLOWED {
        for (krate, uses) in &deps {
            if uses.contains(*library) && !allowed.contains(&krate.as_str()) {
                wrong.push(format!("{krate} depends on {library}: {why}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_model_depends_on_no_layer_and_does_no_io() {
    let deps = dependencies();
    let model = &deps["agora-model"];
    let io = [
        "tokio",
        "sqlx",
        "reqwest",
        "object_store",
        "hyper",
        "axum",
        "datafusion",
    ];
    let found: Vec<_> = model
        .iter()
        .filter(|d| d.starts_with("agora-") || io.contains(&d.as_str()))
        .collect();
    assert!(found.is_empty(), "agora-model depends on {found:?}");
}

#[test]
fn no_layer_depends_on_one_above_it() {
    // Lower layers first; a crate may depend only on crates listed before it.
    let order = [
        "agora-model",
        "agora-trust",
        "agora-store",
        "agora-policy",
        "agora-engine",
        "agora-exchange",
        "agora-authority",
        "agora-datagen",
        "agora-node",
        "agora-web",
        "agora-server",
        "agora",
    ];
    let deps = dependencies();
    for (i, krate) in order.iter().enumerate() {
        for d in deps[*krate].iter().filter(|d| d.starts_with("agora")) {
            let at = order.iter().position(|o| o == d).expect("a known crate");
            assert!(at < i, "{krate} depends on {d}, a layer above it");
        }
    }
}

/// The Rust sources of a crate, as (path, text).
fn sources(krate: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(krate)
        .join("src");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

/// Whether `text` names a variant of `error` (`StoreError::Conflict`, not `StoreError`).
fn names_variant_of(text: &str, error: &str) -> bool {
    let needle = format!("{error}::");
    text.match_indices(&needle).any(|(i, _)| {
        text[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
    })
}

#[test]
fn front_ends_map_error_kinds_not_store_or_engine_variants() {
    let mut wrong = Vec::new();
    for krate in ["agora-server", "agora-web", "agora"] {
        for (path, text) in sources(krate) {
            for error in [
                "StoreError",
                "EngineError",
                "ExchangeError",
                "AuthorityError",
            ] {
                // Building an error to hand back is fine; deciding by its variant is not.
                let deciding = text.lines().any(|l| {
                    let pattern = l.split_once("=>").map(|(p, _)| p);
                    pattern.is_some_and(|p| names_variant_of(p, error))
                        || ((l.contains("matches!") || l.contains("if let"))
                            && names_variant_of(l, error))
                });
                if deciding {
                    wrong.push(format!("{path} decides by a variant of {error}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "front ends map ErrorKind / AuthorityErrorKind instead:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_node_speaks_no_http() {
    for (path, text) in sources("agora-node") {
        for word in ["StatusCode", "reqwest", "axum", "http::", "Method::"] {
            assert!(!text.contains(word), "{path} uses {word}");
        }
    }
}

#[test]
fn which_products_need_an_agreement_is_decided_in_one_place() {
    // `Classification::needs_agreement` states the rule; nothing else compares with `Open`.
    for krate in [
        "agora-trust",
        "agora-store",
        "agora-policy",
        "agora-engine",
        "agora-exchange",
        "agora-authority",
        "agora-node",
        "agora-web",
        "agora-server",
        "agora",
    ] {
        for (path, text) in sources(krate) {
            assert!(
                !text.contains("Classification::Open"),
                "{path} decides about open data itself: use Classification::needs_agreement"
            );
        }
    }
}

#[test]
fn no_crate_re_exports_a_whole_layer() {
    // A crate's users depend on the layers they use themselves (the binary on agora-trust,
    // not on `agora_node::agora_trust`); types in a crate's own signatures may be re-exported.
    for krate in [
        "agora-store",
        "agora-engine",
        "agora-exchange",
        "agora-authority",
        "agora-node",
        "agora-web",
        "agora-server",
    ] {
        for (path, text) in sources(krate) {
            let whole = text.lines().any(|l| {
                let l = l.trim();
                l.starts_with("pub use agora_") && !l.contains("::") && l.ends_with(';')
            });
            assert!(!whole, "{path} re-exports a whole crate");
        }
    }
}
